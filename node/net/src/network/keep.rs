//! Peers the node keeps connected: its bootstrap peers and the peers its role trusts (a
//! worker's masters, a master's workers). When a connection to one of them ends, or a dial
//! fails, it is dialled again after a capped exponential backoff, so a restarted master gets
//! its workers back within seconds.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

/// The first wait before a redial.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The longest wait between redials.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(8);

#[derive(Debug)]
struct Peer {
    /// Addresses given for it (bootstrap multiaddrs, without `/p2p`); others come from
    /// Kademlia and identify.
    addrs: Vec<Multiaddr>,
    connected: bool,
    failures: u32,
    /// When to dial next, while disconnected and not dialling.
    due: Option<Instant>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Keep {
    peers: HashMap<PeerId, Peer>,
}

impl Keep {
    /// Keeps `peer` connected, dialling it at once.
    pub(crate) fn add(&mut self, peer: PeerId, addr: Option<Multiaddr>, now: Instant) {
        let entry = self.peers.entry(peer).or_insert_with(|| Peer {
            addrs: Vec::new(),
            connected: false,
            failures: 0,
            due: Some(now),
        });
        if let Some(addr) = addr {
            if !entry.addrs.contains(&addr) {
                entry.addrs.push(addr);
            }
        }
    }

    /// A connection to `peer` is up.
    pub(crate) fn connected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = true;
            p.failures = 0;
            p.due = None;
        }
    }

    /// The last connection to `peer` ended: dial again soon.
    pub(crate) fn disconnected(&mut self, peer: &PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = false;
            p.due = Some(now + backoff(p.failures));
        }
    }

    /// A dial to `peer` failed: dial again after a longer wait.
    pub(crate) fn dial_failed(&mut self, peer: &PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            if !p.connected {
                p.failures = p.failures.saturating_add(1);
                p.due = Some(now + backoff(p.failures));
            }
        }
    }

    /// The peers to dial now, with their given addresses; each is not due again until its
    /// dial fails or its connection ends.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut out = Vec::new();
        for (peer, p) in &mut self.peers {
            if !p.connected && p.due.is_some_and(|d| d <= now) {
                p.due = None;
                out.push((*peer, p.addrs.clone()));
            }
        }
        out
    }
}

/// The wait after `failures` failed dials: doubling from [`BACKOFF_BASE`] up to
/// [`BACKOFF_MAX`].
fn backoff(failures: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_with_capped_backoff_and_resets_on_success() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let mut keep = Keep::default();
        keep.add(peer, Some("/ip4/127.0.0.1/tcp/1".parse().unwrap()), t0);
        assert_eq!(keep.due(t0).len(), 1);
        assert!(keep.due(t0).is_empty(), "not again while dialling");

        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            keep.dial_failed(&peer, now);
            let mut wait = Duration::ZERO;
            while keep.due(now + wait).is_empty() {
                wait += Duration::from_millis(50);
            }
            waits.push(wait);
            now += wait;
        }
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert!(*waits.last().unwrap() <= BACKOFF_MAX + Duration::from_millis(50));
        assert!(waits[0] < Duration::from_secs(1));

        keep.connected(&peer);
        assert!(keep.due(now + BACKOFF_MAX * 2).is_empty());
        keep.disconnected(&peer, now);
        // The first wait again, not the longest.
        assert_eq!(keep.due(now + BACKOFF_BASE).len(), 1);
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(1), BACKOFF_BASE * 2);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }
}
