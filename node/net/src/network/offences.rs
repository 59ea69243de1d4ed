//! Peers that relay invalid task messages: counted, and past a limit cut off (disconnected
//! and refused from then on). Both tables are bounded; when one is full the entry made
//! longest ago is forgotten, one at a time, so fresh identities cannot wipe out every ban.

use std::collections::{BTreeMap, HashMap};

use libp2p::PeerId;

/// A table of at most `cap` peers that forgets its oldest entry when full.
#[derive(Debug)]
struct Bounded<V> {
    cap: usize,
    next: u64,
    entries: HashMap<PeerId, (u64, V)>,
    order: BTreeMap<u64, PeerId>,
}

impl<V> Bounded<V> {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn get_or_insert(&mut self, peer: PeerId, value: impl FnOnce() -> V) -> &mut V {
        if self.entries.len() >= self.cap && !self.entries.contains_key(&peer) {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        let (next, order) = (&mut self.next, &mut self.order);
        &mut self
            .entries
            .entry(peer)
            .or_insert_with(|| {
                let seq = *next;
                *next += 1;
                order.insert(seq, peer);
                (seq, value())
            })
            .1
    }

    fn remove(&mut self, peer: &PeerId) {
        if let Some((seq, _)) = self.entries.remove(peer) {
            self.order.remove(&seq);
        }
    }

    fn contains(&self, peer: &PeerId) -> bool {
        self.entries.contains_key(peer)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Offences {
    limit: u32,
    invalid: Bounded<u32>,
    cut_off: Bounded<()>,
}

impl Offences {
    /// Cuts a peer off at its `limit`th invalid message; tracks at most `cap` peers in each
    /// table.
    pub(crate) fn new(limit: u32, cap: usize) -> Self {
        Self {
            limit: limit.max(1),
            invalid: Bounded::new(cap),
            cut_off: Bounded::new(cap),
        }
    }

    /// Counts an invalid message from `peer`; `true` when this cuts it off.
    pub(crate) fn invalid(&mut self, peer: PeerId) -> bool {
        let count = self.invalid.get_or_insert(peer, || 0);
        *count += 1;
        if *count < self.limit {
            return false;
        }
        self.invalid.remove(&peer);
        self.cut_off.get_or_insert(peer, || ());
        true
    }

    /// Cuts `peer` off whatever it sent.
    pub(crate) fn cut_off(&mut self, peer: PeerId) {
        self.invalid.remove(&peer);
        self.cut_off.get_or_insert(peer, || ());
    }

    /// Whether `peer` is cut off.
    pub(crate) fn is_cut_off(&self, peer: &PeerId) -> bool {
        self.cut_off.contains(peer)
    }

    /// Peers cut off and remembered.
    #[cfg(test)]
    pub(crate) fn cut_off_len(&self) -> usize {
        self.cut_off.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_cut_off_at_the_limit() {
        let mut o = Offences::new(3, 16);
        let p = PeerId::random();
        assert!(!o.invalid(p));
        assert!(!o.invalid(p));
        assert!(o.invalid(p));
        assert!(o.is_cut_off(&p));
    }

    #[test]
    fn a_full_table_forgets_one_ban_at_a_time() {
        let mut o = Offences::new(1, 4);
        let first: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for p in &first {
            assert!(o.invalid(*p));
        }
        // A flood of fresh identities forgets the oldest bans only, one per new ban.
        let fresh = PeerId::random();
        assert!(o.invalid(fresh));
        assert_eq!(o.cut_off_len(), 4);
        assert!(!o.is_cut_off(&first[0]));
        assert!(first[1..].iter().all(|p| o.is_cut_off(p)));
        assert!(o.is_cut_off(&fresh));
    }

    #[test]
    fn counts_are_bounded_too() {
        let mut o = Offences::new(100, 8);
        for _ in 0..1000 {
            o.invalid(PeerId::random());
        }
        assert_eq!(o.invalid.len(), 8);
        assert_eq!(o.invalid.order.len(), 8);
    }
}
