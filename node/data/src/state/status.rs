//! What the replica reports of itself.

/// What the replica reports of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// Live keys.
    pub live: u64,
    /// Tombstones kept.
    pub tombstones: u64,
    /// The live state's digest, hex.
    pub digest: String,
    /// Heads, as `<cid>` strings.
    pub heads: Vec<String>,
    /// The highest DAG height among the heads.
    pub height: u64,
    /// Writers known, with their highest applied sequence.
    pub writers: Vec<(String, u64)>,
    /// Deltas fetched and waiting for their parents.
    pub pending: usize,
    /// Blocks being fetched.
    pub fetching: usize,
    /// Deltas applied since start.
    pub applied: u64,
    /// Deltas written here since start.
    pub written: u64,
    /// Announcements and deltas of untrusted peers dropped.
    pub dropped_untrusted: u64,
    /// Deltas that broke a rule, dropped.
    pub invalid: u64,
    /// Fetches that failed or timed out.
    pub fetch_failures: u64,
    /// The newest snapshot this node has, if any.
    pub snapshot: Option<String>,
    /// Snapshots loaded from peers.
    pub snapshots_loaded: u64,
    /// Tombstones dropped by compaction since start.
    pub tombstones_collected: u64,
    /// The furthest any trusted writer is known to be ahead of this node: deltas.
    pub lag: u64,
}
