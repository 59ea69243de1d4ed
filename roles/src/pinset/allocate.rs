//! Choosing the peers that hold a pin: workers (and masters when allowed; never leechers),
//! explicit allocations first, then peers with every wanted tag, most free space first.

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::Role;

/// A peer that might hold a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The peer.
    pub peer: PeerId,
    /// Its role.
    pub role: Role,
    /// Free space of its store. Bytes.
    pub free_bytes: u64,
    /// Its tags, `key:value`.
    pub tags: Vec<String>,
    /// Pins already allocated to it (to balance).
    pub pins: u64,
}

/// What a pin asks of its allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The least copies; `None`: every eligible peer.
    pub min: Option<u32>,
    /// The most copies; `None`: every eligible peer.
    pub max: Option<u32>,
    /// Peers the user named: used first, in this order.
    pub user: Vec<PeerId>,
    /// Tags every chosen peer (beyond the named ones) must have.
    pub tags: Vec<String>,
    /// Peers to keep if they are still eligible (a re-allocation keeps what still works).
    pub keep: Vec<PeerId>,
    /// Whether masters may hold it.
    pub masters: bool,
}

/// An allocation that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Fewer eligible peers than the least number of copies.
    #[error("{eligible} eligible peers for a pin that needs at least {min}")]
    NotEnoughPeers {
        /// Peers that could hold it.
        eligible: usize,
        /// Copies needed.
        min: u32,
    },
    /// A named peer cannot hold pins (unknown, silent, untrusted, or a leecher).
    #[error("peer {0} cannot hold pins (not a live worker{1} whose reports this node applies)")]
    Ineligible(PeerId, &'static str),
}

/// The chosen peers, and whether fewer than `max` were available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The peers, in choice order.
    pub peers: Vec<PeerId>,
    /// Fewer than the most copies wanted were possible.
    pub under_replicated: bool,
}

/// Chooses the peers to hold a pin among `candidates`.
pub fn allocate(wanted: &Wanted, candidates: &[Candidate]) -> Result<Allocation, AllocError> {
    let eligible_role = |c: &Candidate| match c.role {
        Role::Worker => true,
        Role::Master => wanted.masters,
        Role::Leecher => false,
    };
    let or_master = if wanted.masters { " or master" } else { "" };
    let mut chosen: Vec<PeerId> = Vec::new();
    for p in &wanted.user {
        match candidates.iter().find(|c| &c.peer == p) {
            Some(c) if eligible_role(c) => {
                if !chosen.contains(p) {
                    chosen.push(*p);
                }
            }
            _ => return Err(AllocError::Ineligible(*p, or_master)),
        }
    }
    let has_tags = |c: &Candidate| wanted.tags.iter().all(|t| c.tags.contains(t));
    let mut others: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| eligible_role(c) && has_tags(c) && !chosen.contains(&c.peer))
        .collect();
    // Peers kept from before come first, then the emptiest (fewest pins, most free space).
    others.sort_by(|a, b| {
        let kept = |c: &Candidate| !wanted.keep.contains(&c.peer);
        kept(a)
            .cmp(&kept(b))
            .then(a.pins.cmp(&b.pins))
            .then(b.free_bytes.cmp(&a.free_bytes))
            .then(a.peer.cmp(&b.peer))
    });
    let eligible = chosen.len() + others.len();
    let max = wanted
        .max
        .map_or(eligible, |m| m as usize)
        .max(chosen.len());
    chosen.extend(
        others
            .iter()
            .take(max.saturating_sub(chosen.len()))
            .map(|c| c.peer),
    );
    if let Some(min) = wanted.min {
        if chosen.len() < min as usize {
            return Err(AllocError::NotEnoughPeers { eligible, min });
        }
    }
    Ok(Allocation {
        under_replicated: wanted.max.is_some_and(|m| chosen.len() < m as usize),
        peers: chosen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(role: Role, free_gib: u64, tags: &[&str], pins: u64) -> Candidate {
        Candidate {
            peer: PeerId::random(),
            role,
            free_bytes: free_gib << 30,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pins,
        }
    }

    fn wanted(min: u32, max: u32) -> Wanted {
        Wanted {
            min: Some(min),
            max: Some(max),
            ..Wanted::default()
        }
    }

    #[test]
    fn workers_with_room_first_never_leechers() {
        let c = vec![
            peer(Role::Worker, 10, &[], 0),
            peer(Role::Worker, 50, &[], 0),
            peer(Role::Leecher, 900, &[], 0),
            peer(Role::Master, 900, &[], 0),
            peer(Role::Worker, 30, &[], 0),
        ];
        let a = allocate(&wanted(1, 2), &c).unwrap();
        assert_eq!(a.peers, vec![c[1].peer, c[4].peer]);
        assert!(!a.under_replicated);
        let mut w = wanted(1, 3);
        w.masters = true;
        let a = allocate(&w, &c).unwrap();
        assert_eq!(a.peers[0], c[3].peer, "masters when allowed, by free space");
        assert!(!a.peers.contains(&c[2].peer));
    }

    #[test]
    fn balanced_by_pins_held_then_tags_and_named_peers() {
        let c = vec![
            peer(Role::Worker, 50, &["zone:a"], 9),
            peer(Role::Worker, 10, &["zone:b"], 0),
            peer(Role::Worker, 20, &["zone:a"], 1),
        ];
        assert_eq!(allocate(&wanted(1, 1), &c).unwrap().peers, vec![c[1].peer]);
        let mut w = wanted(1, 1);
        w.tags = vec!["zone:a".into()];
        assert_eq!(allocate(&w, &c).unwrap().peers, vec![c[2].peer]);
        let mut w = wanted(2, 2);
        w.user = vec![c[0].peer];
        assert_eq!(allocate(&w, &c).unwrap().peers, vec![c[0].peer, c[1].peer]);
        let mut w = wanted(1, 1);
        w.user = vec![PeerId::random()];
        assert!(matches!(allocate(&w, &c), Err(AllocError::Ineligible(..))));
    }

    #[test]
    fn too_few_peers_is_an_error_or_under_replicated() {
        let c = vec![peer(Role::Worker, 1, &[], 0), peer(Role::Worker, 1, &[], 0)];
        assert_eq!(
            allocate(&wanted(3, 3), &c),
            Err(AllocError::NotEnoughPeers {
                eligible: 2,
                min: 3
            })
        );
        let a = allocate(&wanted(2, 3), &c).unwrap();
        assert_eq!(a.peers.len(), 2);
        assert!(a.under_replicated);
        let everywhere = Wanted::default();
        assert_eq!(allocate(&everywhere, &c).unwrap().peers.len(), 2);
    }

    #[test]
    fn a_reallocation_keeps_the_peers_that_still_work() {
        let c = vec![
            peer(Role::Worker, 90, &[], 0),
            peer(Role::Worker, 10, &[], 5),
            peer(Role::Worker, 80, &[], 0),
        ];
        let mut w = wanted(2, 2);
        w.keep = vec![c[1].peer];
        let a = allocate(&w, &c).unwrap();
        assert_eq!(a.peers, vec![c[1].peer, c[0].peer]);
    }
}
