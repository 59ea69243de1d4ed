//! What every block store does: the trait, and what a store holds.

use cid::Cid;

use super::block::{Block, Hash};
use super::error::Error;

/// What a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStat {
    /// Number of blocks.
    pub blocks: u64,
    /// Sum of the blocks' sizes.
    pub logical_bytes: u64,
    /// Bytes the store occupies on disk (packs and index), 0 for memory.
    pub disk_bytes: u64,
}

/// A content-addressed block store.
pub trait BlockStore: Send + Sync {
    /// Stores a block; `Ok(false)` when it was already present.
    fn put(&self, block: &Block) -> Result<bool, Error>;
    /// The bytes of the block with `cid`'s multihash, if present.
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error>;
    /// Whether a block with this multihash is present.
    fn has(&self, hash: &Hash) -> Result<bool, Error>;
    /// The size of the block, if present.
    fn size(&self, cid: &Cid) -> Result<Option<u64>, Error>;
    /// Removes a block; `Ok(false)` when it was absent.
    fn remove(&self, hash: &Hash) -> Result<bool, Error>;
    /// Calls `f` with the multihash of every block (in no particular order).
    fn for_each_hash(&self, f: &mut dyn FnMut(Hash) -> Result<(), Error>) -> Result<(), Error>;
    /// Makes every block put so far durable: after it returns, a crash loses none of them.
    fn flush(&self) -> Result<(), Error>;
    /// Counts what the store holds.
    fn stat(&self) -> Result<StoreStat, Error>;
    /// Reclaims space left by removed blocks; returns the bytes freed on disk.
    fn compact(&self) -> Result<u64, Error> {
        Ok(0)
    }
}
