//! UnixFS: importing files and directories into DAGs exactly as Kubo's `ipfs add` does, and
//! reading them back (`cat` with byte ranges, `ls`, `get`).
//!
//! Spec: <https://github.com/ipfs/specs/blob/main/UNIXFS.md>. The layout details that make the
//! CIDs match Kubo are listed in `shared/INTEROP.md` of the project and checked against a real
//! Kubo by the `kubo_cids` integration test.

pub mod car;
mod importer;
mod reader;

pub use importer::{add_path, add_reader, AddError, AddOptions, Added, Chunker, Sink};
pub use reader::{
    cat, file_node, file_size, get, kind, ls, resolve, Entry, EntryKind, FileNode, ReadError,
};

/// Kubo's default chunk size: 256 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// The largest chunk Kubo's chunker accepts: 1 MiB.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;
/// Links per file node in the balanced layout.
pub const MAX_LINKS: usize = 174;
/// Kubo switches a directory to a HAMT shard when the estimated size of its links
/// (Σ name length + CID length) reaches this many bytes.
pub const SHARDING_THRESHOLD: usize = 256 * 1024;
