//! What a node knows of its cluster: the peers it heard heartbeats from, and counts of the
//! task messages it received, acted on or dropped.

use std::collections::HashMap;

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Capacity, Heartbeat};
use ipfsbench_protocols::Role;
use serde::Serialize;

/// The most peers the table keeps; past it the longest silent one is forgotten.
pub(crate) const MAX_PEERS: usize = 4096;

/// A peer as its last heartbeat described it.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) role: Role,
    pub(crate) seq: u64,
    pub(crate) capacity: Capacity,
    pub(crate) running: usize,
    pub(crate) last_seen_ms: u64,
    /// The epoch of its leadership, when it is the master that schedules.
    pub(crate) leads: Option<u64>,
}

/// The peers of the cluster, from their heartbeats.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    peers: HashMap<PeerId, Peer>,
}

impl Peers {
    /// Records a heartbeat. Returns false for an old one (a lower sequence number from the same
    /// process), which changes nothing.
    pub(crate) fn heard(&mut self, from: PeerId, hb: &Heartbeat, now_ms: u64) -> bool {
        if let Some(known) = self.peers.get(&from) {
            // A restarted node starts again from 0, so only a recent higher number is stale.
            if hb.seq <= known.seq && hb.seq != 0 && now_ms < known.last_seen_ms + 60_000 {
                return false;
            }
        } else if self.peers.len() >= MAX_PEERS {
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, p)| p.last_seen_ms)
                .map(|(id, _)| *id)
            {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert(
            from,
            Peer {
                role: hb.role,
                seq: hb.seq,
                capacity: hb.capacity.clone(),
                running: hb.running.len(),
                last_seen_ms: now_ms,
                leads: hb.leads,
            },
        );
        true
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&Peer> {
        self.peers.get(peer)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&PeerId, &Peer)> {
        self.peers.iter()
    }
}

/// Counts of task messages, as `cluster stats` reports them.
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Counters {
    /// Messages decoded and looked at.
    pub received: u64,
    /// Messages from a peer not allowed to send them (an assignment from an untrusted master,
    /// a submission from a peer not listed as a submitter): dropped.
    pub unauthorised: u64,
    /// Messages that did not decode on arrival here: dropped.
    pub malformed: u64,
    /// Messages not for this node, or about attempts that are over: dropped.
    pub ignored: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(seq: u64) -> Heartbeat {
        Heartbeat {
            role: Role::Worker,
            seq,
            capacity: Capacity {
                cores: 1,
                memory_total_bytes: 0,
                memory_available_bytes: 0,
                store_free_bytes: 0,
                running: 0,
                max_concurrent: 1,
                hardware: String::new(),
                programs: Vec::new(),
                tags: Vec::new(),
            },
            running: Vec::new(),
            leads: None,
        }
    }

    #[test]
    fn stale_heartbeats_change_nothing_and_the_table_is_bounded() {
        let mut peers = Peers::default();
        let p = PeerId::random();
        assert!(peers.heard(p, &hb(5), 1000));
        assert!(!peers.heard(p, &hb(4), 1001));
        assert!(peers.heard(p, &hb(0), 1002), "a restart starts from 0");
        for i in 0..MAX_PEERS as u64 + 10 {
            peers.heard(PeerId::random(), &hb(1), 2000 + i);
        }
        assert_eq!(peers.iter().count(), MAX_PEERS);
        assert!(
            peers.get(&p).is_none(),
            "the longest silent peer went first"
        );
    }
}
