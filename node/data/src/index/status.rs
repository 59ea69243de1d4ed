//! What the index reports of itself.

use std::collections::BTreeMap;

/// What the index reports of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// Live partitions in the views, by table name.
    pub partitions: BTreeMap<String, u64>,
    /// Rows in them, by table name.
    pub rows: BTreeMap<String, u64>,
    /// Nodes whose partitions are in the views.
    pub nodes: u64,
    /// This node's latest manifest sequence.
    pub latest: u64,
    /// Rows buffered, not yet written.
    pub pending: u64,
    /// Counters.
    pub counters: BTreeMap<String, u64>,
}
