//! The tiers' settings, the `[cache]` section of `config.toml`.

use serde::{Deserialize, Serialize};

/// The storage tiers (`[cache]`): how a leecher bounds what it keeps of what it fetched.
/// Masters and workers keep every block and ignore the two sizes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Leechers: the most bytes of fetched, unpinned blocks kept on disk; beyond it blocks are
    /// evicted by adaptive replacement (recency and frequency). Pinned blocks are never
    /// evicted and not counted. Bytes; default 1 GiB.
    pub max_bytes: u64,
    /// Leechers: an in-memory tier of recently read blocks in front of the disk. Bytes;
    /// default 64 MiB; 0 turns it off.
    pub memory_bytes: u64,
    /// Answer other peers' Bitswap requests from this node's blocks. Default: true for
    /// masters and workers, false for leechers.
    pub serve_blocks: Option<bool>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            memory_bytes: 64 << 20,
            serve_blocks: None,
        }
    }
}
