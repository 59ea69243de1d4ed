//! Block storage: a small trait, a memory implementation for tests and a persistent one
//! (append-only pack files indexed by sled) for repos.
//!
//! Blocks are keyed by multihash, as in Kubo: the same bytes under two codecs are stored once.
//! Every block entering a store is a [`Block`], which can only be made by hashing its bytes or
//! by checking them against a CID, so nothing unverified is ever stored.

pub mod block;
mod blockstore;
mod cache;
pub mod dag;
mod db;
mod error;
pub mod gc;
mod memory;
mod pack;
pub mod pins;
pub mod protect;
mod sys;
#[cfg(test)]
pub(crate) mod tests;
pub mod tiers;

pub use block::Block;
pub use blockstore::{BlockStore, StoreStat};
pub use cache::{AdaptiveCache, CachePolicy, LruCache};
pub use db::open_db;
pub use error::Error;
pub use memory::MemoryStore;
pub use pack::{PackStore, PackStoreConfig};
pub use sys::cap_malloc_arenas;
