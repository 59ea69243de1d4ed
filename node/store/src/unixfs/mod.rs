//! UnixFS: importing files and directories into DAGs exactly as Kubo's `ipfs add` does, and
//! reading them back (`cat` with byte ranges, `ls`, `get`).
//!
//! Spec: <https://github.com/ipfs/specs/blob/main/UNIXFS.md>. The layout details that make the
//! CIDs match Kubo are listed in `shared/INTEROP.md` of the project and checked against a real
//! Kubo by the `kubo_cids` integration test.

pub mod car;
mod importer;
mod limits;
mod reader;

pub use importer::{add_path, add_reader, AddError, AddOptions, Added, Chunker, Sink};
pub use limits::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_LINKS, SHARDING_THRESHOLD};
pub use reader::{
    cat, file_node, file_size, get, kind, ls, resolve, Entry, EntryKind, FileNode, ReadError,
};
