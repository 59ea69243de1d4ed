//! Storage tiers: memory, disk and peers, in front of the repo's pack store.
//!
//! [`TieredStore`] is the [`BlockStore`] that `Repo::store` hands
//! out. It counts reads (hits and misses per tier) and the blocks that arrive from peers, and
//! on a leecher it bounds what the node keeps of what it fetched:
//!
//! - **disk**: every block put through it is tracked by an [`AdaptiveCache`] of
//!   `cache.max_bytes` (those are the blocks fetched from peers: the repo's own writers, `add`,
//!   `block put` and CAR import, write to the pack store directly and are not cache). A block
//!   the cache evicts is removed from the store unless it is pinned (recursively, directly or
//!   indirectly) or a running write protects it (see [`crate::store::gc`]). Reads are references:
//!   the first read of a freshly fetched block belongs to the fetch, a later one moves the
//!   block to ARC's frequent list.
//! - **memory**: an [`AdaptiveCache`] of `cache.memory_bytes` holding block bytes in front
//!   of disk reads.
//! - **peer**: the blocks and bytes fetched from peers, that is the misses of the local
//!   tiers.
//!
//! A reader that fetches a DAG and then reads it takes a [`CacheHold`] across both. A block
//! evicted while a hold taken before the eviction is alive stays on disk until that hold
//! ends, and a block that a reader finds on disk after its eviction (`has`, `get`) is admitted
//! again; so nothing a holder relies on disappears under it, even a DAG larger than the cache.
//!
//! Masters and workers, and a repo used without a daemon, keep every block: their tiers only
//! count.

use crate::store;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cid::Cid;

mod config;
mod disk;
mod memory;
mod report;

pub use config::CacheConfig;

use disk::DiskCache;
use memory::MemoryCache;
pub use report::{DiskTier, MemoryTier, PeerTier, Tier, TiersReport};

use crate::store::block::Block;
use crate::store::block::{Hash, RAW};
use crate::store::blockstore::{BlockStore, StoreStat};
use crate::store::cache::{AdaptiveCache, CachePolicy};
use crate::store::pack::PackStore;
use crate::store::pins::Pins;
use crate::store::protect::{Protector, Removal};
use ipfsbench_protocols::Role;

/// Failures to start the tiers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the store to seed the cache, or evicting, failed.
    #[error(transparent)]
    Store(#[from] store::error::Error),
    /// The tiers were started once already, as another role.
    #[error("the storage tiers already run as {active}, not {asked}")]
    RoleChanged {
        /// The role they run as.
        active: Role,
        /// The role asked for.
        asked: Role,
    },
    /// The thread that compacts evicted space could not be started.
    #[error("starting the cache compaction thread: {0}")]
    Thread(#[source] std::io::Error),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state consistent between statements: recover it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default)]
struct Counters {
    memory_hits: AtomicU64,
    memory_misses: AtomicU64,
    disk_hits: AtomicU64,
    disk_misses: AtomicU64,
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
    peer_blocks: AtomicU64,
    peer_bytes: AtomicU64,
    /// Evicted bytes since compaction was last asked for.
    uncompacted: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The live set as of one pin generation; `None` when marking failed at that generation.
#[derive(Debug)]
struct LiveSet {
    generation: u64,
    hashes: Option<Arc<HashSet<Hash>>>,
}

/// How the tiers keep what the node fetched from peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep every block (masters and workers; a repo used without a daemon).
    KeepAll,
    /// Keep fetched, unpinned blocks in a cache of `cache.max_bytes`, with a memory tier
    /// in front (leechers).
    Cache,
}

/// The pack store behind the memory tier, with the leecher's bounded cache. See the module
/// docs.
#[derive(Debug)]
pub struct TieredStore {
    disk: PackStore,
    pins: Pins,
    protector: Arc<Protector>,
    config: CacheConfig,
    /// Evicted bytes after which the pack store is asked to compact.
    compact_after: u64,
    /// The mode, and the role it was started for (a label for the report).
    active: OnceLock<(Mode, Role)>,
    cache: Mutex<DiskCache>,
    memory: Mutex<MemoryCache>,
    live: Mutex<Option<LiveSet>>,
    counters: Counters,
    compactor: OnceLock<SyncSender<()>>,
}

/// Keeps evicted blocks on disk while alive: take one before fetching a DAG that will be
/// read, and drop it when the reading is done. See the module docs.
#[derive(Debug)]
#[must_use = "a hold protects only while it is alive"]
pub struct CacheHold {
    tiers: Arc<TieredStore>,
    taken_at: u64,
}

impl Drop for CacheHold {
    fn drop(&mut self) {
        {
            let mut cache = lock(&self.tiers.cache);
            if let Some(n) = cache.holds.get_mut(&self.taken_at) {
                *n -= 1;
                if *n == 0 {
                    cache.holds.remove(&self.taken_at);
                }
            }
        }
        if let Err(e) = self.tiers.drain() {
            tracing::warn!(error = %e, "removing evicted blocks failed");
        }
    }
}

impl TieredStore {
    /// Tiers over `disk`; `pins` and `protector` are the repo's, consulted before evicting.
    /// Every tier only counts until [`TieredStore::activate`].
    pub(crate) fn new(
        disk: PackStore,
        pins: Pins,
        protector: Arc<Protector>,
        config: CacheConfig,
        compact_after: u64,
    ) -> Self {
        Self {
            disk,
            pins,
            protector,
            cache: Mutex::new(DiskCache::new(config.max_bytes)),
            memory: Mutex::new(MemoryCache {
                policy: AdaptiveCache::new(config.memory_bytes),
                blocks: HashMap::new(),
            }),
            config,
            compact_after: compact_after.max(1),
            active: OnceLock::new(),
            live: Mutex::new(None),
            counters: Counters::default(),
            compactor: OnceLock::new(),
        }
    }

    /// The pack store itself, for the repo's own writers.
    pub(crate) fn disk(&self) -> &PackStore {
        &self.disk
    }

    /// Starts the tiers in `mode`, once per process, for a node of `role` (which only labels
    /// the report). A cache is seeded with the unpinned blocks already stored, and evicts
    /// down to `cache.max_bytes` at once.
    pub fn activate(self: &Arc<Self>, mode: Mode, role: Role) -> Result<(), Error> {
        if self.active.set((mode, role)).is_err() {
            return match self.active.get() {
                Some(&(active_mode, active)) if (active_mode, active) != (mode, role) => {
                    Err(Error::RoleChanged {
                        active,
                        asked: role,
                    })
                }
                _ => Ok(()),
            };
        }
        if mode != Mode::Cache {
            return Ok(());
        }
        self.start_compactor()?;
        let Some((_, live)) = self.live_set() else {
            return Ok(());
        };
        let mut found = Vec::new();
        self.disk.for_each_hash(&mut |hash| {
            if !live.contains(&hash) {
                found.push(hash);
            }
            Ok(())
        })?;
        for hash in found {
            if let Some(size) = self.disk.size(&Cid::new_v1(RAW, hash))? {
                lock(&self.cache).admit(hash, size, false);
            }
        }
        self.drain()?;
        Ok(())
    }

    /// Pack files keep the bytes of removed blocks until compacted; a thread compacts once
    /// evictions have freed half a pack's worth, off the paths that evict.
    fn start_compactor(self: &Arc<Self>) -> Result<(), Error> {
        let (tx, rx) = sync_channel::<()>(1);
        let tiers = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("cache-compaction".into())
            .spawn(move || {
                // Ends when the store, and with it the sender, is dropped.
                while rx.recv().is_ok() {
                    let Some(tiers) = tiers.upgrade() else {
                        break;
                    };
                    match tiers.disk.compact() {
                        Ok(freed) => tracing::debug!(freed, "compacted evicted blocks' space"),
                        Err(e) => tracing::warn!(error = %e, "compacting evicted space failed"),
                    }
                }
            })
            .map_err(Error::Thread)?;
        let _ = self.compactor.set(tx);
        Ok(())
    }

    /// The role the tiers run for, once activated.
    pub fn role(&self) -> Option<Role> {
        self.active.get().map(|&(_, role)| role)
    }

    /// The mode, once activated.
    pub fn mode(&self) -> Option<Mode> {
        self.active.get().map(|&(mode, _)| mode)
    }

    /// Whether the node answers other peers' Bitswap requests: `cache.serve_blocks`, by
    /// default every node but one that only caches (a leecher).
    pub fn serves_blocks(&self) -> bool {
        self.config
            .serve_blocks
            .unwrap_or(self.mode() != Some(Mode::Cache))
    }

    fn bounded(&self) -> bool {
        self.mode() == Some(Mode::Cache)
    }

    fn memory_on(&self) -> bool {
        self.bounded() && self.config.memory_bytes > 0
    }

    /// Keeps blocks evicted from now on on disk until the hold is dropped.
    pub fn hold(self: &Arc<Self>) -> CacheHold {
        let taken_at = {
            let mut cache = lock(&self.cache);
            let at = cache.clock;
            *cache.holds.entry(at).or_default() += 1;
            at
        };
        CacheHold {
            tiers: Arc::clone(self),
            taken_at,
        }
    }

    /// The tiers' figures.
    pub fn report(&self) -> Result<TiersReport, store::error::Error> {
        let stat = self.disk.stat()?;
        let c = &self.counters;
        let disk = {
            let cache = lock(&self.cache);
            DiskTier {
                bytes: stat.logical_bytes,
                blocks: stat.blocks,
                cache_bytes: cache.policy.bytes(),
                cache_blocks: cache.policy.len() as u64,
                max_bytes: self.bounded().then_some(self.config.max_bytes),
                recent_bytes: cache.policy.recent_bytes(),
                frequent_bytes: cache.policy.frequent_bytes(),
                pending_evictions: cache.pending_at.len() as u64,
                hits: read(&c.disk_hits),
                misses: read(&c.disk_misses),
                evictions: read(&c.evictions),
                evicted_bytes: read(&c.evicted_bytes),
            }
        };
        let memory = {
            let memory = lock(&self.memory);
            MemoryTier {
                bytes: memory.policy.bytes(),
                max_bytes: if self.memory_on() {
                    self.config.memory_bytes
                } else {
                    0
                },
                blocks: memory.policy.len() as u64,
                hits: read(&c.memory_hits),
                misses: read(&c.memory_misses),
            }
        };
        Ok(TiersReport {
            role: self.role(),
            serves_blocks: self.serves_blocks(),
            tiers: vec![
                Tier::Memory(memory),
                Tier::Disk(disk),
                Tier::Peer(PeerTier {
                    blocks: read(&c.peer_blocks),
                    bytes: read(&c.peer_bytes),
                }),
            ],
        })
    }

    /// Drops what the tiers track but the store lost (after a GC or a direct removal).
    pub(crate) fn forget_missing(&self) -> Result<(), store::error::Error> {
        let mut cache = lock(&self.cache);
        let tracked: Vec<Hash> = cache.policy.keys().copied().collect();
        let mut memory = lock(&self.memory);
        for hash in tracked {
            if !self.disk.has(&hash)? {
                cache.forget(&hash);
                memory.remove(&hash);
            }
        }
        let held: Vec<Hash> = memory.blocks.keys().copied().collect();
        for hash in held {
            if !self.disk.has(&hash)? {
                memory.remove(&hash);
            }
        }
        Ok(())
    }

    /// Every multihash a pin protects, computed again only when the pins changed. `None` when
    /// a pinned DAG is incomplete: then nothing can be evicted safely.
    fn live_set(&self) -> Option<(u64, Arc<HashSet<Hash>>)> {
        let mut cached = lock(&self.live);
        let generation = self.pins.generation();
        if let Some(live) = cached.as_ref().filter(|l| l.generation == generation) {
            return live.hashes.clone().map(|h| (generation, h));
        }
        let hashes = match self.pins.live_set(&self.disk) {
            Ok(hashes) => Some(Arc::new(hashes)),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot mark pinned blocks: the cache evicts nothing until the pins are whole"
                );
                None
            }
        };
        *cached = Some(LiveSet {
            generation,
            hashes: hashes.clone(),
        });
        hashes.map(|h| (generation, h))
    }

    /// Removes from disk the evicted blocks no hold keeps, unless pinned or protected.
    fn drain(&self) -> Result<(), store::error::Error> {
        // A pin change seen while removing makes the live set stale: mark again, a few times.
        for _ in 0..4 {
            if !lock(&self.cache).has_removable() {
                return Ok(());
            }
            let Some((generation, live)) = self.live_set() else {
                return Ok(());
            };
            let mut cache = lock(&self.cache);
            let mut keep = Vec::new();
            let mut stale = false;
            let mut result = Ok(());
            while let Some(p) = cache.pop_removable() {
                if live.contains(&p.hash) {
                    // Pinned: it stays on disk, no longer the cache's.
                    continue;
                }
                let removal = self.protector.remove_unprotected(&self.disk, &p.hash, || {
                    self.pins.generation() == generation
                });
                match removal {
                    Ok(Removal::Removed) => {
                        bump(&self.counters.evictions, 1);
                        bump(&self.counters.evicted_bytes, p.size);
                        bump(&self.counters.uncompacted, p.size);
                        lock(&self.memory).remove(&p.hash);
                    }
                    Ok(Removal::Absent) => {}
                    Ok(Removal::Protected) => keep.push(p),
                    Ok(Removal::Stale) => {
                        keep.push(p);
                        stale = true;
                        break;
                    }
                    Err(e) => {
                        keep.push(p);
                        result = Err(e);
                        break;
                    }
                }
            }
            for p in keep {
                cache.enqueue(p.hash, p.size);
            }
            drop(cache);
            self.maybe_compact();
            result?;
            if !stale {
                return Ok(());
            }
        }
        Ok(())
    }

    fn maybe_compact(&self) {
        if read(&self.counters.uncompacted) < self.compact_after {
            return;
        }
        if let Some(tx) = self.compactor.get() {
            // Full means a compaction is already due: nothing to add.
            if tx.try_send(()).is_ok() {
                self.counters.uncompacted.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Counts a read of a stored block as a reference.
    fn reference(&self, hash: &Hash) -> Result<(), store::error::Error> {
        let due = {
            let mut cache = lock(&self.cache);
            cache.touch(hash);
            cache.has_removable()
        };
        if due {
            self.drain()?;
        }
        Ok(())
    }
}

impl BlockStore for TieredStore {
    /// Stores a block that arrived from a peer: counted in the peer tier and, on a leecher,
    /// tracked by the cache.
    fn put(&self, block: &Block) -> Result<bool, store::error::Error> {
        let hash = *block.cid().hash();
        let new = self.disk.put(block)?;
        if !new {
            if self.bounded() {
                lock(&self.cache).revive(&hash);
            }
            return Ok(false);
        }
        let size = block.data().len() as u64;
        bump(&self.counters.peer_blocks, 1);
        bump(&self.counters.peer_bytes, size);
        if self.bounded() {
            lock(&self.cache).admit(hash, size, true);
            self.drain()?;
        }
        Ok(true)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, store::error::Error> {
        let hash = cid.hash();
        let memory_on = self.memory_on();
        if memory_on {
            let cached = lock(&self.memory).get(hash);
            if let Some(data) = cached {
                bump(&self.counters.memory_hits, 1);
                self.reference(hash)?;
                return Ok(Some(data));
            }
            bump(&self.counters.memory_misses, 1);
        }
        let data = self.disk.get(cid)?;
        match &data {
            Some(bytes) => {
                bump(&self.counters.disk_hits, 1);
                if self.bounded() {
                    self.reference(hash)?;
                }
                if memory_on {
                    lock(&self.memory).put(*hash, bytes);
                }
            }
            None => {
                bump(&self.counters.disk_misses, 1);
                if self.bounded() {
                    lock(&self.cache).forget(hash);
                }
            }
        }
        Ok(data)
    }

    fn has(&self, hash: &Hash) -> Result<bool, store::error::Error> {
        if self.bounded() {
            // Under the cache's lock, so that an evicted block found here is not removed
            // between this answer and the caller's read.
            let due = {
                let mut cache = lock(&self.cache);
                cache.revive(hash);
                cache.has_removable()
            };
            if due {
                self.drain()?;
            }
        }
        self.disk.has(hash)
    }

    fn size(&self, cid: &Cid) -> Result<Option<u64>, store::error::Error> {
        self.disk.size(cid)
    }

    fn remove(&self, hash: &Hash) -> Result<bool, store::error::Error> {
        lock(&self.cache).forget(hash);
        lock(&self.memory).remove(hash);
        self.disk.remove(hash)
    }

    fn for_each_hash(
        &self,
        f: &mut dyn FnMut(Hash) -> Result<(), store::error::Error>,
    ) -> Result<(), store::error::Error> {
        self.disk.for_each_hash(f)
    }

    fn flush(&self) -> Result<(), store::error::Error> {
        self.disk.flush()
    }

    fn stat(&self) -> Result<StoreStat, store::error::Error> {
        self.disk.stat()
    }

    fn compact(&self) -> Result<u64, store::error::Error> {
        self.disk.compact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PackStoreConfig;

    const BLOCK: usize = 1000;

    fn tiers(dir: &std::path::Path, max_blocks: u64, memory_bytes: u64) -> Arc<TieredStore> {
        let disk = PackStore::open(dir, PackStoreConfig::default()).unwrap();
        let pins = Pins::open(disk.db()).unwrap();
        let config = CacheConfig {
            max_bytes: max_blocks * BLOCK as u64,
            memory_bytes,
            serve_blocks: None,
        };
        Arc::new(TieredStore::new(
            disk,
            pins,
            Arc::new(Protector::new()),
            config,
            u64::MAX,
        ))
    }

    fn block(i: u32) -> Block {
        let mut data = vec![0u8; BLOCK];
        data[..4].copy_from_slice(&i.to_le_bytes());
        Block::hash(RAW, data, false)
    }

    fn disk_tier(t: &TieredStore) -> DiskTier {
        match &t.report().unwrap().tiers[1] {
            Tier::Disk(d) => d.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_leecher_keeps_its_budget_and_its_pins() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 10, 0);
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        let pinned = block(0);
        t.put(&pinned).unwrap();
        t.pins
            .add(&t.disk, &t.protector, pinned.cid(), false)
            .unwrap();
        for i in 1..=50 {
            t.put(&block(i)).unwrap();
            let d = disk_tier(&t);
            assert!(d.cache_bytes <= d.max_bytes.unwrap());
            // The pinned block, at most 10 cached ones, nothing else.
            assert!(d.bytes <= 11 * BLOCK as u64, "{d:?}");
        }
        let d = disk_tier(&t);
        assert!(d.evictions >= 39, "{d:?}");
        assert!(t.has(pinned.cid().hash()).unwrap());
        assert_eq!(t.get(pinned.cid()).unwrap().as_deref(), Some(pinned.data()));
        // The newest blocks are the ones kept.
        assert!(t.has(block(50).cid().hash()).unwrap());
        assert!(!t.has(block(1).cid().hash()).unwrap());
        match &t.report().unwrap().tiers[2] {
            Tier::Peer(p) => assert_eq!((p.blocks, p.bytes), (51, 51 * BLOCK as u64)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frequently_read_blocks_survive_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 10, 0);
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        let hot: Vec<Block> = (0..4).map(block).collect();
        for b in &hot {
            t.put(b).unwrap();
            // The read that follows a fetch is part of it; the second is a reuse.
            t.get(b.cid()).unwrap().unwrap();
            t.get(b.cid()).unwrap().unwrap();
        }
        for i in 100..200 {
            let b = block(i);
            t.put(&b).unwrap();
            t.get(b.cid()).unwrap().unwrap();
        }
        for b in &hot {
            assert!(
                t.has(b.cid().hash()).unwrap(),
                "hot block evicted by a scan"
            );
        }
    }

    #[test]
    fn a_hold_keeps_evicted_blocks_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 5, 0);
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        let hold = t.hold();
        let blocks: Vec<Block> = (0..20).map(block).collect();
        for b in &blocks {
            t.put(b).unwrap();
        }
        // Twenty blocks on disk, five in the cache, fifteen waiting.
        let d = disk_tier(&t);
        assert_eq!((d.blocks, d.cache_blocks, d.pending_evictions), (20, 5, 15));
        for b in &blocks {
            assert_eq!(t.get(b.cid()).unwrap().as_deref(), Some(b.data()));
        }
        drop(hold);
        let d = disk_tier(&t);
        assert!(d.blocks <= 5 && d.bytes <= d.max_bytes.unwrap(), "{d:?}");
        assert_eq!(d.pending_evictions, 0);
    }

    #[test]
    fn a_block_found_after_its_eviction_is_admitted_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 5, 0);
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        let first = t.hold();
        let early = block(0);
        t.put(&early).unwrap();
        for i in 1..10 {
            t.put(&block(i)).unwrap();
        }
        assert!(!lock(&t.cache).policy.contains(early.cid().hash()));
        // A later reader finds it (as a DAG fetch checks what is local), then the first
        // reader ends: the block stays for the later one.
        let second = t.hold();
        assert!(t.has(early.cid().hash()).unwrap());
        drop(first);
        assert_eq!(t.get(early.cid()).unwrap().as_deref(), Some(early.data()));
        drop(second);
        assert!(disk_tier(&t).bytes <= 5 * BLOCK as u64);
    }

    #[test]
    fn a_block_a_running_write_protects_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 3, 0);
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        let kept = block(0);
        let protector = Arc::clone(&t.protector);
        let session = protector.session();
        session.protect(kept.cid().hash());
        t.put(&kept).unwrap();
        for i in 1..10 {
            t.put(&block(i)).unwrap();
        }
        assert!(t.disk.has(kept.cid().hash()).unwrap());
        drop(session);
        t.put(&block(10)).unwrap();
        assert!(!t.disk.has(kept.cid().hash()).unwrap());
    }

    #[test]
    fn the_memory_tier_serves_repeated_reads() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 100, 10 * BLOCK as u64);
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        let b = block(1);
        t.put(&b).unwrap();
        for _ in 0..3 {
            assert_eq!(t.get(b.cid()).unwrap().as_deref(), Some(b.data()));
        }
        match &t.report().unwrap().tiers[0] {
            Tier::Memory(m) => {
                assert_eq!((m.hits, m.misses, m.blocks), (2, 1, 1));
                assert_eq!(m.max_bytes, 10 * BLOCK as u64);
            }
            other => panic!("{other:?}"),
        }
        // Removing the block drops it from memory too.
        assert!(t.remove(b.cid().hash()).unwrap());
        assert!(t.get(b.cid()).unwrap().is_none());
    }

    #[test]
    fn workers_keep_everything_and_serve() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 2, 1 << 20);
        t.activate(Mode::KeepAll, Role::Worker).unwrap();
        for i in 0..10 {
            t.put(&block(i)).unwrap();
        }
        let d = disk_tier(&t);
        assert_eq!((d.blocks, d.evictions, d.max_bytes), (10, 0, None));
        assert!(t.serves_blocks());
        assert!(matches!(
            t.activate(Mode::Cache, Role::Leecher),
            Err(Error::RoleChanged { .. })
        ));
        let report = serde_json::to_value(t.report().unwrap()).unwrap();
        assert_eq!(report["Role"], "worker");
        assert_eq!(report["Tiers"][1]["Name"], "disk");
        assert_eq!(report["Tiers"][1]["Blocks"], 10);
        assert_eq!(report["Tiers"][0]["MaxBytes"], 0);
    }

    #[test]
    fn a_leecher_starts_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let t = tiers(dir.path(), 4, 0);
        for i in 0..12 {
            t.put(&block(i)).unwrap();
        }
        assert!(t.serves_blocks() && t.role().is_none());
        t.activate(Mode::Cache, Role::Leecher).unwrap();
        assert!(!t.serves_blocks());
        let d = disk_tier(&t);
        assert!(d.blocks <= 4 && d.evictions >= 8, "{d:?}");
    }
}
