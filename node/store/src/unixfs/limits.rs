//! Kubo's import limits: chunk sizes, links per node, the directory sharding threshold.

/// Kubo's default chunk size: 256 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// The largest chunk Kubo's chunker accepts: 1 MiB.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;
/// Links per file node in the balanced layout.
pub const MAX_LINKS: usize = 174;
/// Kubo switches a directory to a HAMT shard when the estimated size of its links
/// (Σ name length + CID length) reaches this many bytes.
pub const SHARDING_THRESHOLD: usize = 256 * 1024;
