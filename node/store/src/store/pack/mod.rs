//! The persistent block store: block bytes in append-only pack files, their locations in sled.
//!
//! Layout under the store directory:
//! - `index/`: the sled database; tree `blocks` maps multihash bytes to a 16-byte location
//!   (pack id, offset, length).
//! - `packs/NNNNNNNN.pack`: records `len: u32 LE ‖ hash_len: u8 ‖ multihash ‖ bytes`.
//!
//! Durability: a location enters sled only after its bytes are fsynced (see [`PackStore::flush`]),
//! so a crash at any moment leaves an index whose every entry points at complete bytes; bytes
//! written after the last flush are unreferenced garbage that [`PackStore::compact`] reclaims.
//! Records are staged in one reused buffer and written in large writes, straight to the disk
//! (`O_DIRECT`) where the file system allows it (see `writer`); otherwise through the page
//! cache, with writeback of each few MiB written started at once (`sync_file_range`), so the
//! disk works while the importer hashes and the final fsync waits for little.

mod files;
mod loc;
mod pack_store;
mod reader;
mod writer;

pub use files::PackStoreConfig;
pub use pack_store::PackStore;

#[cfg(test)]
mod tests;
