//! What `storage tiers` reports: each tier's size and hit and miss counts.

use serde::{Deserialize, Serialize};

use ipfsbench_protocols::Role;

/// What the tiers hold and how reads went, as `storage tiers` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TiersReport {
    /// The role the tiers run as; `None` for a repo used without a daemon.
    pub role: Option<Role>,
    /// Whether this node answers other peers' Bitswap requests.
    pub serves_blocks: bool,
    /// Memory, disk and peer, in that order.
    pub tiers: Vec<Tier>,
}

/// One tier's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Name", rename_all = "lowercase")]
pub enum Tier {
    /// Block bytes in memory.
    Memory(MemoryTier),
    /// The block store.
    Disk(DiskTier),
    /// Blocks fetched from other peers.
    Peer(PeerTier),
}

/// The memory tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemoryTier {
    /// Bytes held.
    pub bytes: u64,
    /// Capacity in bytes; 0 when the tier is off (masters, workers, `memory_bytes = 0`).
    pub max_bytes: u64,
    /// Blocks held.
    pub blocks: u64,
    /// Reads served from memory.
    pub hits: u64,
    /// Reads that went on to the disk.
    pub misses: u64,
}

/// The disk tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskTier {
    /// Bytes of every block stored (cached, pinned and added).
    pub bytes: u64,
    /// Blocks stored.
    pub blocks: u64,
    /// Bytes of the fetched blocks the cache tracks; at most `MaxBytes`.
    pub cache_bytes: u64,
    /// Blocks the cache tracks.
    pub cache_blocks: u64,
    /// The cache's capacity in bytes; `None` when the node keeps everything.
    pub max_bytes: Option<u64>,
    /// Cached bytes referenced once since they were fetched (ARC's T1).
    pub recent_bytes: u64,
    /// Cached bytes referenced more than once (ARC's T2).
    pub frequent_bytes: u64,
    /// Evicted blocks still on disk because a reader holds the cache.
    pub pending_evictions: u64,
    /// Reads found on disk.
    pub hits: u64,
    /// Reads of blocks not stored.
    pub misses: u64,
    /// Blocks the cache removed from disk.
    pub evictions: u64,
    /// Their bytes.
    pub evicted_bytes: u64,
}

/// The peer tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerTier {
    /// Blocks fetched from peers and stored.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}
