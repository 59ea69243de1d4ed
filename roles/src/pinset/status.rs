//! How each allocated peer is doing with a pin, and the cluster-wide view of a pin.

use std::collections::BTreeMap;

use cid::Cid;
use ipfsbench_core::network::PeerId;
use serde::{Deserialize, Serialize};

use super::pin::Pin;

/// Where a peer is with a pin allocated to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tracking {
    /// Allocated, not started.
    PinQueued,
    /// Fetching the DAG.
    Pinning,
    /// Held.
    Pinned,
    /// Failed; `recover` retries.
    PinError,
    /// Was pinned, and the local pin is gone (removed by hand).
    UnexpectedlyUnpinned,
    /// Allocated elsewhere: this peer does not hold it.
    Remote,
}

impl Tracking {
    /// Its name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tracking::PinQueued => "pin_queued",
            Tracking::Pinning => "pinning",
            Tracking::Pinned => "pinned",
            Tracking::PinError => "pin_error",
            Tracking::UnexpectedlyUnpinned => "unexpectedly_unpinned",
            Tracking::Remote => "remote",
        }
    }
}

/// One peer's report on one pin: `status/<cid>/<peer>` in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerStatus {
    /// Where it is.
    pub status: Tracking,
    /// Bytes of the DAG local so far.
    pub bytes: u64,
    /// Blocks of the DAG local so far.
    pub blocks: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The pin's recover counter this report answers.
    pub recover: u64,
    /// When it was written. Unix milliseconds.
    pub updated_at_ms: u64,
}

impl PeerStatus {
    /// Its key in the replicated state.
    pub fn key(cid: &Cid, peer: &PeerId) -> Vec<u8> {
        format!("status/{cid}/{peer}").into_bytes()
    }

    /// The prefix of every report on `cid`.
    pub fn prefix(cid: &Cid) -> Vec<u8> {
        format!("status/{cid}/").into_bytes()
    }
}

/// A pin with every peer's report: `cluster pin status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinStatus {
    /// The CID.
    pub cid: String,
    /// Its name.
    pub name: String,
    /// Copies wanted at least (`None`: everywhere).
    pub replication_factor_min: Option<u32>,
    /// Peers that report it pinned.
    pub pinned: usize,
    /// Fewer peers hold it than its least number of copies, or fewer than allocated.
    pub under_replicated: bool,
    /// Each allocated peer's report (peers that have not reported yet are `pin_queued`), and
    /// peers that reported but are no longer allocated (`remote`).
    pub peer_map: BTreeMap<String, PeerStatus>,
}

impl PinStatus {
    /// The view of `pin` from `reports` (peer, report).
    pub fn gather(pin: &Pin, reports: Vec<(PeerId, PeerStatus)>) -> Self {
        let mut peer_map = BTreeMap::new();
        for peer in &pin.allocations {
            let report = reports
                .iter()
                .find(|(p, _)| p == peer)
                .map(|(_, r)| r.clone())
                .unwrap_or(PeerStatus {
                    status: Tracking::PinQueued,
                    bytes: 0,
                    blocks: 0,
                    error: None,
                    recover: pin.recover,
                    updated_at_ms: 0,
                });
            peer_map.insert(peer.to_string(), report);
        }
        for (peer, report) in reports {
            if !pin.allocations.contains(&peer) {
                let remote = PeerStatus {
                    status: Tracking::Remote,
                    ..report
                };
                peer_map.insert(peer.to_string(), remote);
            }
        }
        let pinned = pin
            .allocations
            .iter()
            .filter(|p| {
                peer_map
                    .get(&p.to_string())
                    .is_some_and(|r| r.status == Tracking::Pinned)
            })
            .count();
        let min = pin
            .replication_factor_min
            .map_or(pin.allocations.len(), |m| m as usize);
        Self {
            cid: pin.cid.to_string(),
            name: pin.name.clone(),
            replication_factor_min: pin.replication_factor_min,
            pinned,
            under_replicated: pin.under_replicated || pinned < min,
            peer_map,
        }
    }
}
