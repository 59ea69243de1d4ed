//! Which master schedules. Every master can; one does at a time: the **leader**, which says so
//! in its heartbeats with the epoch of its leadership. A master that is not leading (a
//! **standby**) takes over once no leader has been heard for the lease, with an epoch above
//! every one it knows, and records it in the replicated state (`master/active`). Of two
//! leaders (a partition healed, two standbys took over at once) the higher epoch, then the
//! higher PeerId, keeps leading; the other steps down on hearing it.
//!
//! [`Leadership`] is plain state with the time passed in, like the task table.

use ipfsbench_core::network::PeerId;
use serde::{Deserialize, Serialize};

/// The state key of the latest takeover.
pub const ACTIVE_KEY: &[u8] = b"master/active";

/// The latest takeover, as the replicated state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lease {
    /// The master that took over.
    #[serde(with = "crate::text")]
    pub peer: PeerId,
    /// Its epoch.
    pub epoch: u64,
    /// When. Unix ms.
    pub since_ms: u64,
}

/// What a step of [`Leadership`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing.
    None,
    /// This master leads now, with this epoch.
    TookOver(u64),
    /// This master stopped leading: another leads with a higher epoch.
    SteppedDown,
}

/// A leader heard.
#[derive(Debug, Clone, Copy)]
struct Heard {
    peer: PeerId,
    epoch: u64,
    at_ms: u64,
}

/// One master's view of who leads. See the module docs.
#[derive(Debug)]
pub struct Leadership {
    me: PeerId,
    lease_ms: u64,
    leading: Option<(u64, u64)>,
    leader: Option<Heard>,
    highest: u64,
    /// A master that is not leading does not take over before this.
    wait_until_ms: u64,
}

impl Leadership {
    /// A master starting. `recorded` is the latest takeover the state knows: when it names
    /// another master, that one is given a whole lease to be heard; otherwise (this master led
    /// last, or none ever did) `grace` is enough to hear a leader that this node's state has
    /// not heard of yet.
    pub fn new(
        me: PeerId,
        lease_ms: u64,
        grace_ms: u64,
        recorded: Option<&Lease>,
        now_ms: u64,
    ) -> Self {
        let wait = match recorded {
            Some(l) if l.peer != me => lease_ms,
            _ => grace_ms.min(lease_ms),
        };
        Self {
            me,
            lease_ms,
            leading: None,
            leader: None,
            highest: recorded.map_or(0, |l| l.epoch),
            wait_until_ms: now_ms + wait,
        }
    }

    /// This master's epoch while it leads.
    pub fn epoch(&self) -> Option<u64> {
        self.leading.map(|(epoch, _)| epoch)
    }

    /// The master that leads as far as this one knows, its epoch, and since when (Unix ms;
    /// for another master, when it was last heard).
    pub fn active(&self, now_ms: u64) -> Option<(PeerId, u64, u64)> {
        if let Some((epoch, since)) = self.leading {
            return Some((self.me, epoch, since));
        }
        self.leader
            .filter(|l| now_ms.saturating_sub(l.at_ms) < self.lease_ms)
            .map(|l| (l.peer, l.epoch, l.at_ms))
    }

    /// A master's heartbeat said it leads with `epoch`.
    pub fn heard(&mut self, from: PeerId, epoch: u64, now_ms: u64) -> Change {
        if from == self.me {
            return Change::None;
        }
        self.highest = self.highest.max(epoch);
        if let Some((mine, _)) = self.leading {
            if (epoch, from) <= (mine, self.me) {
                return Change::None;
            }
            self.leading = None;
            self.wait_until_ms = now_ms + self.lease_ms;
            self.leader = Some(Heard {
                peer: from,
                epoch,
                at_ms: now_ms,
            });
            return Change::SteppedDown;
        }
        let newer = self
            .leader
            .is_none_or(|l| l.peer == from || (epoch, from) >= (l.epoch, l.peer));
        if newer {
            self.leader = Some(Heard {
                peer: from,
                epoch,
                at_ms: now_ms,
            });
        }
        Change::None
    }

    /// Takes over when no leader has been heard for the lease (and the wait since starting or
    /// stepping down is over).
    pub fn tick(&mut self, now_ms: u64) -> Change {
        if self.leading.is_some() || now_ms < self.wait_until_ms {
            return Change::None;
        }
        if self
            .leader
            .is_some_and(|l| now_ms.saturating_sub(l.at_ms) < self.lease_ms)
        {
            return Change::None;
        }
        self.highest += 1;
        self.leading = Some((self.highest, now_ms));
        self.leader = None;
        Change::TookOver(self.highest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const LEASE: u64 = 10_000;

    #[test]
    fn a_lone_master_leads_after_the_grace_and_a_standby_after_the_lease() {
        let me = PeerId::random();
        let mut lone = Leadership::new(me, LEASE, 2_000, None, T0);
        assert_eq!(lone.tick(T0 + 1_999), Change::None);
        assert_eq!(lone.tick(T0 + 2_000), Change::TookOver(1));
        assert_eq!(lone.active(T0 + 2_000).map(|a| a.0), Some(me));

        let other = PeerId::random();
        let recorded = Lease {
            peer: other,
            epoch: 4,
            since_ms: T0,
        };
        let mut standby = Leadership::new(me, LEASE, 2_000, Some(&recorded), T0);
        assert_eq!(standby.tick(T0 + 5_000), Change::None);
        // The leader is heard, then falls silent: the standby waits a lease from the last
        // heartbeat, then takes over above the epoch it heard.
        assert_eq!(standby.heard(other, 5, T0 + 8_000), Change::None);
        assert_eq!(
            standby.active(T0 + 8_000).map(|a| (a.0, a.1)),
            Some((other, 5))
        );
        assert_eq!(standby.tick(T0 + 17_999), Change::None);
        assert_eq!(standby.tick(T0 + 18_000), Change::TookOver(6));
        assert_eq!(standby.epoch(), Some(6));
    }

    #[test]
    fn of_two_leaders_the_higher_epoch_then_peer_keeps_leading() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut la = Leadership::new(a, LEASE, 0, None, T0);
        let mut lb = Leadership::new(b, LEASE, 0, None, T0);
        assert_eq!(la.tick(T0), Change::TookOver(1));
        assert_eq!(lb.tick(T0), Change::TookOver(1));
        let (ca, cb) = (la.heard(b, 1, T0 + 1), lb.heard(a, 1, T0 + 1));
        let (winner, loser) = if a > b { (a, b) } else { (b, a) };
        assert_eq!(
            [ca, cb]
                .iter()
                .filter(|c| **c == Change::SteppedDown)
                .count(),
            1
        );
        let (lw, ll) = if winner == a { (&la, &lb) } else { (&lb, &la) };
        assert_eq!(lw.epoch(), Some(1));
        assert_eq!(ll.epoch(), None);
        assert_eq!(ll.active(T0 + 2).map(|x| x.0), Some(winner));
        assert_ne!(winner, loser);
        // A higher epoch wins whatever the PeerIds.
        let mut lw = Leadership::new(winner, LEASE, 0, None, T0);
        lw.tick(T0);
        assert_eq!(lw.heard(loser, 2, T0 + 1), Change::SteppedDown);
        // A stepped-down master does not take over again while the leader is heard.
        assert_eq!(lw.tick(T0 + LEASE), Change::None);
        lw.heard(loser, 2, T0 + LEASE);
        assert_eq!(lw.tick(T0 + 2 * LEASE - 1), Change::None);
        assert_eq!(lw.tick(T0 + 2 * LEASE), Change::TookOver(3));
    }
}
