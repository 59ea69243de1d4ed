//! A block store in memory, for tests and throwaway use.

use crate::store;
use std::collections::HashMap;
use std::sync::RwLock;

use cid::Cid;

use super::block::Block;
use super::blockstore::{BlockStore, StoreStat};
use crate::store::block::Hash;

/// Blocks in a hash map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    blocks: RwLock<HashMap<Hash, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Hash, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        self.blocks.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Hash, Vec<u8>>> {
        self.blocks.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockStore for MemoryStore {
    fn put(&self, block: &Block) -> Result<bool, store::error::Error> {
        let mut map = self.write();
        if map.contains_key(block.cid().hash()) {
            return Ok(false);
        }
        map.insert(*block.cid().hash(), block.data().to_vec());
        Ok(true)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, store::error::Error> {
        Ok(self.read().get(cid.hash()).cloned())
    }

    fn has(&self, hash: &Hash) -> Result<bool, store::error::Error> {
        Ok(self.read().contains_key(hash))
    }

    fn size(&self, cid: &Cid) -> Result<Option<u64>, store::error::Error> {
        Ok(self.read().get(cid.hash()).map(|d| d.len() as u64))
    }

    fn remove(&self, hash: &Hash) -> Result<bool, store::error::Error> {
        Ok(self.write().remove(hash).is_some())
    }

    fn for_each_hash(
        &self,
        f: &mut dyn FnMut(Hash) -> Result<(), store::error::Error>,
    ) -> Result<(), store::error::Error> {
        let hashes: Vec<Hash> = self.read().keys().copied().collect();
        hashes.into_iter().try_for_each(f)
    }

    fn flush(&self) -> Result<(), store::error::Error> {
        Ok(())
    }

    fn stat(&self) -> Result<StoreStat, store::error::Error> {
        let map = self.read();
        Ok(StoreStat {
            blocks: map.len() as u64,
            logical_bytes: map.values().map(|d| d.len() as u64).sum(),
            disk_bytes: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scenario() {
        super::super::tests::exercise(&super::MemoryStore::new());
    }
}
