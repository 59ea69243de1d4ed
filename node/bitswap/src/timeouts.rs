//! The engine's clock: want-blocks that time out move to another peer, silent peers stop
//! holding off "not found", and stale wants are asked again.

use std::time::Instant;

use cid::Cid;
use libp2p::PeerId;

use super::behaviour::Behaviour;
use super::message::Entry;

impl Behaviour {
    /// Moves timed-out want-blocks elsewhere and re-broadcasts stale wants.
    pub(super) fn on_tick(&mut self, now: Instant) {
        let silent: Vec<Cid> = self
            .wants
            .iter_mut()
            .filter_map(|(cid, w)| {
                let before = w.asked.len();
                w.asked.retain(|_, deadline| *deadline > now);
                (w.asked.len() < before).then_some(*cid)
            })
            .collect();
        for cid in silent {
            self.maybe_not_found(cid);
        }

        let expired: Vec<(Cid, PeerId)> = self
            .wants
            .iter()
            .filter_map(|(cid, w)| match w.block_peer {
                Some((peer, deadline)) if deadline <= now => Some((*cid, peer)),
                _ => None,
            })
            .collect();
        for (cid, peer) in expired {
            self.stats.want_timeouts += 1;
            tracing::debug!(%cid, %peer, "want-block timed out");
            if let Some(want) = self.wants.get_mut(&cid) {
                want.block_peer = None;
                want.timed_out.insert(peer);
            }
            self.release_slot(&peer);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.outbox.push_entry(Entry::cancel(cid));
            }
            self.schedule(cid);
            let stuck = self
                .wants
                .get(&cid)
                .is_some_and(|w| w.block_peer.is_none() && w.asked.is_empty() && !w.starved);
            if stuck {
                self.rebroadcast(cid, false);
            }
            self.maybe_not_found(cid);
        }

        let due = self
            .next_rebroadcast
            .get_or_insert(now + self.config.rebroadcast_interval);
        if *due <= now {
            *due = now + self.config.rebroadcast_interval;
            let idle: Vec<Cid> = self
                .wants
                .iter()
                .filter(|(_, w)| w.block_peer.is_none())
                .map(|(c, _)| *c)
                .collect();
            for cid in idle {
                self.rebroadcast(cid, true);
            }
        }
    }

    /// Asks every connected peer again (those that said DONT_HAVE too when `all`).
    fn rebroadcast(&mut self, cid: Cid, all: bool) {
        if let Some(want) = self.wants.get_mut(&cid) {
            want.timed_out.clear();
            want.asked.clear();
            want.sent_to.retain(|p| want.haves.contains(p));
            if all {
                want.dont_have.clear();
                want.dialed.clear();
            }
        }
        self.schedule(cid);
    }
}
