//! A pin of the cluster as the replicated state keeps it, and what a request for one asks.

use std::collections::BTreeMap;

use cid::Cid;
use ipfsbench_core::network::PeerId;
use serde::{Deserialize, Serialize};

use super::allocate::Wanted;
use crate::settings::ClusterSettings;

/// A pin of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pin {
    /// What is pinned (recursively).
    #[serde(with = "crate::text")]
    pub cid: Cid,
    /// A name for people.
    pub name: String,
    /// The least copies; `None`: every eligible peer.
    pub replication_factor_min: Option<u32>,
    /// The most copies; `None`: every eligible peer.
    pub replication_factor_max: Option<u32>,
    /// The peers that hold it.
    #[serde(with = "crate::text::list")]
    pub allocations: Vec<PeerId>,
    /// The peers the user asked for.
    #[serde(with = "crate::text::list")]
    pub user_allocations: Vec<PeerId>,
    /// Tags every allocated peer must have.
    pub tags: Vec<String>,
    /// Free-form key/values.
    pub metadata: BTreeMap<String, String>,
    /// When it stops being kept. Unix milliseconds.
    pub expire_at_ms: Option<u64>,
    /// When it was added. Unix milliseconds.
    pub added_at_ms: u64,
    /// Fewer peers hold it than `replication_factor_max` asks (not enough were eligible).
    pub under_replicated: bool,
    /// Bumped by `recover`: holders retry what failed.
    pub recover: u64,
}

impl Pin {
    /// Its key in the replicated state.
    pub fn key(cid: &Cid) -> Vec<u8> {
        format!("pin/{cid}").into_bytes()
    }

    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms.is_some_and(|t| t <= now_ms)
    }

    pub(super) fn wanted(&self, settings: &ClusterSettings) -> Wanted {
        Wanted {
            min: self.replication_factor_min,
            max: self.replication_factor_max,
            user: self.user_allocations.clone(),
            tags: self.tags.clone(),
            keep: self.allocations.clone(),
            masters: settings.allocate_to_masters,
        }
    }
}

/// What `cluster pin add` asks for.
#[derive(Debug, Clone, Default)]
pub struct PinRequest {
    /// The CID.
    pub cid: Option<Cid>,
    /// A name.
    pub name: String,
    /// Least copies (`Some(None)`: everywhere); `None` takes the configured default.
    pub min: Option<Option<u32>>,
    /// Most copies, as `min`.
    pub max: Option<Option<u32>>,
    /// Peers to use first.
    pub allocations: Vec<PeerId>,
    /// Tags every allocated peer must have.
    pub tags: Vec<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Expiry. Unix milliseconds.
    pub expire_at_ms: Option<u64>,
}
