//! How the replica runs.

use std::time::Duration;

use crate::trust::Trust;

/// How the replica runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster's state topic.
    pub topic: String,
    /// Writers whose deltas are applied (this node always is).
    pub trusted: Trust,
    /// Announce the heads at least this often, changed or not.
    pub announce_every: Duration,
    /// Write a snapshot once this many deltas were applied since the last one (0: never on
    /// its own; on demand only).
    pub snapshot_every: u64,
    /// How long one delta or snapshot block may take to fetch.
    pub fetch_timeout: Duration,
    /// Deltas fetched but not yet applicable, at most.
    pub max_pending: usize,
    /// Behind a peer by more than this many deltas, start from its snapshot.
    pub catch_up_from_snapshot: u64,
}

impl Config {
    /// The defaults, on `topic`, trusting `trusted`.
    pub fn new(topic: String, trusted: impl Into<Trust>) -> Self {
        Self {
            topic,
            trusted: trusted.into(),
            announce_every: Duration::from_secs(5),
            snapshot_every: 1_000,
            fetch_timeout: Duration::from_secs(10),
            max_pending: 65_536,
            catch_up_from_snapshot: 256,
        }
    }
}
