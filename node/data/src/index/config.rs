//! How the index runs.

use std::collections::HashSet;
use std::time::Duration;

use ipfsbench_protocols::index::Table;
use ipfsbench_sql::Limits;
use libp2p::PeerId;

/// How the index runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster's index topic.
    pub topic: String,
    /// Nodes whose partitions are merged (this node always is).
    pub trusted: HashSet<PeerId>,
    /// The tables fetched from peers (a leecher may sync only what it asks for).
    pub sync: Vec<Table>,
    /// Write buffered rows at least this often.
    pub flush_every: Duration,
    /// ... or as soon as this many are buffered.
    pub flush_rows: usize,
    /// Announce the manifest's latest sequence this often.
    pub announce_every: Duration,
    /// List this node's content this often (`None`: never).
    pub content_every: Option<Duration>,
    /// Partitions under this many rows are merged...
    pub compact_rows: u64,
    /// ... once there are this many of them.
    pub compact_after: usize,
    /// The query cache's size, at most, bytes.
    pub cache_bytes: u64,
    /// Each query's limits.
    pub limits: Limits,
    /// How long fetching one partition may take.
    pub fetch_timeout: Duration,
}

impl Config {
    /// The defaults, on `topic`, trusting `trusted`, syncing every table.
    pub fn new(topic: String, trusted: HashSet<PeerId>) -> Self {
        Self {
            topic,
            trusted,
            sync: Table::ALL.to_vec(),
            flush_every: Duration::from_secs(1),
            flush_rows: 65_536,
            announce_every: Duration::from_secs(1),
            content_every: Some(Duration::from_secs(60)),
            compact_rows: 65_536,
            compact_after: 8,
            cache_bytes: 64 << 20,
            limits: Limits::default(),
            fetch_timeout: Duration::from_secs(60),
        }
    }
}
