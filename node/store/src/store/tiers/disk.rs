//! The disk tier's bookkeeping on a leecher: adaptive replacement over the fetched blocks,
//! and evictions that wait until no reader holds the cache.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::store::block::Hash;
use crate::store::cache::{AdaptiveCache, CachePolicy};

/// An evicted block waiting to be removed from disk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    /// When it was evicted, on the cache's clock.
    pub(super) epoch: u64,
    pub(super) hash: Hash,
    pub(super) size: u64,
}

/// The disk tier's bookkeeping.
#[derive(Debug)]
pub(super) struct DiskCache {
    pub(super) policy: AdaptiveCache<Hash>,
    /// Fetched, not read since: the first read is part of the fetch, not a second reference.
    pub(super) fresh: HashSet<Hash>,
    /// Evictions in epoch order; an entry whose epoch no longer matches `pending_at` is stale.
    pub(super) pending: VecDeque<Pending>,
    /// The live pending entry of each evicted block still on disk: epoch and size.
    pub(super) pending_at: HashMap<Hash, (u64, u64)>,
    /// Counts evictions; holds remember its value when taken.
    pub(super) clock: u64,
    /// Live holds by the clock value when taken, with their number.
    pub(super) holds: BTreeMap<u64, usize>,
}

impl DiskCache {
    pub(super) fn new(capacity: u64) -> Self {
        Self {
            policy: AdaptiveCache::new(capacity),
            fresh: HashSet::new(),
            pending: VecDeque::new(),
            pending_at: HashMap::new(),
            clock: 0,
            holds: BTreeMap::new(),
        }
    }

    /// Tracks `hash`; what the policy evicts waits for removal.
    pub(super) fn admit(&mut self, hash: Hash, size: u64, fresh: bool) {
        self.pending_at.remove(&hash);
        let evicted = self.policy.insert(hash, size);
        if fresh && self.policy.contains(&hash) {
            self.fresh.insert(hash);
        }
        for (gone, size) in evicted {
            self.fresh.remove(&gone);
            self.enqueue(gone, size);
        }
    }

    pub(super) fn enqueue(&mut self, hash: Hash, size: u64) {
        self.clock += 1;
        let epoch = self.clock;
        self.pending.push_back(Pending { epoch, hash, size });
        self.pending_at.insert(hash, (epoch, size));
    }

    /// Counts a read of `hash`.
    pub(super) fn touch(&mut self, hash: &Hash) {
        if self.fresh.remove(hash) || self.policy.record_hit(hash) {
            return;
        }
        self.revive(hash);
    }

    /// Admits `hash` again if it was evicted but is still on disk.
    pub(super) fn revive(&mut self, hash: &Hash) {
        if let Some(&(_, size)) = self.pending_at.get(hash) {
            self.admit(*hash, size, false);
        }
    }

    pub(super) fn forget(&mut self, hash: &Hash) {
        self.policy.remove(hash);
        self.fresh.remove(hash);
        self.pending_at.remove(hash);
    }

    /// An eviction may be carried out once every hold taken before it has ended.
    pub(super) fn removable(&self, epoch: u64) -> bool {
        self.holds
            .keys()
            .next()
            .is_none_or(|&oldest| oldest >= epoch)
    }

    pub(super) fn has_removable(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|p| self.removable(p.epoch))
    }

    /// The oldest eviction that may be carried out, no longer pending once returned.
    pub(super) fn pop_removable(&mut self) -> Option<Pending> {
        while let Some(front) = self.pending.front().copied() {
            if !self.removable(front.epoch) {
                return None;
            }
            self.pending.pop_front();
            if self
                .pending_at
                .get(&front.hash)
                .is_some_and(|&(epoch, _)| epoch == front.epoch)
            {
                self.pending_at.remove(&front.hash);
                return Some(front);
            }
        }
        None
    }
}
