//! The memory tier: block bytes in front of disk reads.

use std::collections::HashMap;

use crate::store::block::Hash;
use crate::store::cache::{AdaptiveCache, CachePolicy};

/// Block bytes in memory, chosen by adaptive replacement.
#[derive(Debug)]
pub(super) struct MemoryCache {
    pub(super) policy: AdaptiveCache<Hash>,
    pub(super) blocks: HashMap<Hash, Vec<u8>>,
}

impl MemoryCache {
    pub(super) fn get(&mut self, hash: &Hash) -> Option<Vec<u8>> {
        if self.policy.record_hit(hash) {
            self.blocks.get(hash).cloned()
        } else {
            None
        }
    }

    pub(super) fn put(&mut self, hash: Hash, data: &[u8]) {
        if self.policy.contains(&hash) {
            return;
        }
        for (gone, _) in self.policy.insert(hash, data.len() as u64) {
            self.blocks.remove(&gone);
        }
        if self.policy.contains(&hash) {
            self.blocks.insert(hash, data.to_vec());
        }
    }

    pub(super) fn remove(&mut self, hash: &Hash) {
        self.policy.remove(hash);
        self.blocks.remove(hash);
    }
}
