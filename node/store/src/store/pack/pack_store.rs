//! The store over the packs: writes staged and flushed in order, reads by location, compaction.

use crate::store;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cid::Cid;

use super::files::{io_err, open_pack, pack_ids, pack_path, PackStoreConfig};
use super::loc::{end_of, rebuild_ends, Loc};
use super::reader::PackReader;
use super::writer::Writer;
use crate::store::block::Block;
use crate::store::block::Hash;
use crate::store::blockstore::{BlockStore, StoreStat};

/// Block bytes in pack files, indexed by sled. See the module docs.
pub struct PackStore {
    packs_dir: PathBuf,
    config: PackStoreConfig,
    db: sled::Db,
    index: sled::Tree,
    /// Pack id (big endian) to the end of the last record the index may point to in it.
    /// Written before the index entries it covers, so bytes past it are never referenced.
    ends: sled::Tree,
    writer: Mutex<Writer>,
    pending: Mutex<HashMap<Hash, Loc>>,
    /// Held from reading the pending entries to writing them to the index and taking them
    /// out of the pending map, so that two flushes never index the same entries at once.
    indexing: Mutex<()>,
    /// Group commit: flushes asked for so far, the last one a finished flush covered, and
    /// the turn of flushing. A flush that starts after a caller asked covers that caller, so
    /// callers flushing at once (workers' result records) share one sync.
    pub(super) flush_asked: AtomicU64,
    flush_covered: AtomicU64,
    flushing: Mutex<()>,
    readers: RwLock<HashMap<u32, Arc<PackReader>>>,
    compacting: Mutex<()>,
}

impl std::fmt::Debug for PackStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackStore")
            .field("packs_dir", &self.packs_dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State behind these locks is updated in single steps; a panic elsewhere cannot tear it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether rewriting a pack of `size` bytes, `live` of them still referenced, is worth its
/// copying: when most of it is dead, or when a quarter pack's worth is.
fn worth_rewriting(size: u64, live: u64, target: u64) -> bool {
    let dead = size.saturating_sub(live);
    dead > 0 && (live * 2 < size || dead >= target / 4)
}

/// Cuts every pack back to the end of what the index may reference, and removes packs with
/// nothing referenced but the newest; returns the ids of the packs that remain.
fn trim_packs(packs_dir: &Path, ends: &sled::Tree) -> Result<Vec<u32>, store::error::Error> {
    // Bytes past what the index may reference were written by a write that never became
    // durable (a crash, a failed write): cut them off, so the pack grows from where its
    // last durable record ends and no dead bytes stay in the middle of it.
    let mut ids = Vec::new();
    let all = pack_ids(packs_dir)?;
    for &id in &all {
        let path = pack_path(packs_dir, id);
        let end = ends.get(id.to_be_bytes())?.map_or(0, |v| end_of(&v));
        let len = fs::metadata(&path).map_err(io_err(&path))?.len();
        if end == 0 && Some(&id) != all.last() {
            fs::remove_file(&path).map_err(io_err(&path))?;
            continue;
        }
        if len > end {
            tracing::info!(
                pack = id,
                bytes = len - end,
                "trimming bytes no index entry references"
            );
            open_pack(&path, false)?
                .set_len(end)
                .map_err(io_err(&path))?;
        }
        ids.push(id);
    }
    Ok(ids)
}

impl PackStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, config: PackStoreConfig) -> Result<Self, store::error::Error> {
        let packs_dir = dir.join("packs");
        fs::create_dir_all(&packs_dir).map_err(io_err(&packs_dir))?;
        let db = crate::store::db::open_db(
            &dir.join("index"),
            sled::Config::new()
                .cache_capacity(config.index_cache_bytes)
                .flush_every_ms(Some(1000)),
        )?;
        let index = db.open_tree("blocks")?;
        let ends = db.open_tree("pack_ends")?;
        if ends.is_empty() && !index.is_empty() {
            rebuild_ends(&index, &ends)?;
            db.flush()?;
        }

        let ids = trim_packs(&packs_dir, &ends)?;

        // Append to the newest pack while it has room.
        let (id, dir_dirty) = match ids.last() {
            Some(&last) => {
                let len = fs::metadata(pack_path(&packs_dir, last))
                    .map_err(io_err(&packs_dir))?
                    .len();
                if len < config.pack_target_bytes {
                    (last, false)
                } else {
                    (last + 1, true)
                }
            }
            None => (0, true),
        };
        let writer = Writer::open(&packs_dir, id, dir_dirty, config.direct_writes)?;

        Ok(Self {
            packs_dir,
            config,
            db,
            index,
            ends,
            writer: Mutex::new(writer),
            pending: Mutex::new(HashMap::new()),
            indexing: Mutex::new(()),
            flush_asked: AtomicU64::new(0),
            flush_covered: AtomicU64::new(0),
            flushing: Mutex::new(()),
            readers: RwLock::new(HashMap::new()),
            compacting: Mutex::new(()),
        })
    }

    /// The sled database, for other trees of the same repo (pins, metadata).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    fn lookup(&self, hash: &Hash) -> Result<Option<Loc>, store::error::Error> {
        if let Some(loc) = lock(&self.pending).get(hash) {
            return Ok(Some(*loc));
        }
        match self.index.get(hash.to_bytes())? {
            Some(v) => Ok(Some(Loc::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn reader(&self, pack: u32) -> Result<Arc<PackReader>, std::io::Error> {
        if let Some(f) = self
            .readers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pack)
        {
            return Ok(Arc::clone(f));
        }
        let path = pack_path(&self.packs_dir, pack);
        let reader = Arc::new(PackReader::open(&path, self.config.direct_writes)?);
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pack, Arc::clone(&reader));
        Ok(reader)
    }

    fn read(&self, hash: &Hash) -> Result<Option<Vec<u8>>, store::error::Error> {
        // A concurrent compaction may move the block and delete its pack between the lookup
        // and the read; the second lookup then finds the new location.
        for attempt in 0..2 {
            let Some(loc) = self.lookup(hash)? else {
                return Ok(None);
            };
            {
                // Still in the write buffer: answer from there.
                if let Some(bytes) = lock(&self.writer).staged(&loc) {
                    let path = pack_path(&self.packs_dir, loc.pack);
                    return Ok(Some(bytes.map_err(io_err(&path))?));
                }
            }
            let path = pack_path(&self.packs_dir, loc.pack);
            let file = match self.reader(loc.pack) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            return Ok(Some(file.read(&loc).map_err(io_err(&path))?));
        }
        Ok(None)
    }

    fn live_bytes_per_pack(&self) -> Result<HashMap<u32, u64>, store::error::Error> {
        let mut live: HashMap<u32, u64> = HashMap::new();
        for item in self.index.iter() {
            let (k, v) = item?;
            let loc = Loc::decode(&v)?;
            *live.entry(loc.pack).or_default() += loc.record_len(k.len());
        }
        for (h, loc) in lock(&self.pending).iter() {
            *live.entry(loc.pack).or_default() += loc.record_len(h.encoded_len());
        }
        Ok(live)
    }

    /// Records that the index may point up to these offsets, before it does.
    fn extend_ends(&self, locs: impl Iterator<Item = Loc>) -> Result<(), store::error::Error> {
        let mut ends: HashMap<u32, u64> = HashMap::new();
        for loc in locs {
            let end = ends.entry(loc.pack).or_default();
            *end = (*end).max(loc.end());
        }
        for (pack, end) in ends {
            let key = pack.to_be_bytes();
            let old = self.ends.get(key)?.map_or(0, |v| end_of(&v));
            if end > old {
                self.ends.insert(key, &end.to_be_bytes())?;
            }
        }
        Ok(())
    }

    /// Syncs and indexes what is pending; returns the pack being written when the pending
    /// entries were taken (every older pack is then wholly indexed).
    fn flush_pending(&self) -> Result<u32, store::error::Error> {
        let _indexing = lock(&self.indexing);
        let (current, entries): (u32, Vec<(Hash, Loc)>) = {
            let mut w = lock(&self.writer);
            w.sync(&self.config, &self.packs_dir)?;
            let pending = lock(&self.pending);
            (w.id, pending.iter().map(|(h, l)| (*h, *l)).collect())
        };
        self.extend_ends(entries.iter().map(|(_, loc)| *loc))?;
        // Each entry points at synced bytes, so entries need not land together; small batches
        // keep sled's memory flat however many blocks one flush indexes.
        for group in entries.chunks(256) {
            let mut batch = sled::Batch::default();
            for (hash, loc) in group {
                batch.insert(hash.to_bytes(), &loc.encode()[..]);
            }
            self.index.apply_batch(batch)?;
        }
        // Only now out of the pending map: a lookup meanwhile finds each entry in one or both
        // (a reader streaming a file while its fetch flushes never sees a gap). An entry that
        // changed meanwhile (removed, written again) is left as it is.
        {
            let mut pending = lock(&self.pending);
            for (hash, loc) in &entries {
                if pending.get(hash) == Some(loc) {
                    pending.remove(hash);
                }
            }
        }
        self.db.flush()?;
        Ok(current)
    }

    /// Moves the live records of `pack` to the writer, then deletes the pack file. The caller
    /// makes sure every record of the pack is indexed (none pending).
    fn rewrite_pack(&self, pack: u32) -> Result<(), store::error::Error> {
        let path = pack_path(&self.packs_dir, pack);
        let mut moved = Vec::new();
        for item in self.index.iter() {
            let (k, v) = item?;
            let old = Loc::decode(&v)?;
            if old.pack != pack {
                continue;
            }
            let hash = Hash::from_bytes(&k).map_err(|e| {
                store::error::Error::CorruptIndex(format!("key is no multihash: {e}"))
            })?;
            let data = self
                .reader(pack)
                .and_then(|f| f.read(&old))
                .map_err(io_err(&path))?;
            let new = {
                let mut w = lock(&self.writer);
                w.append(&self.config, &self.packs_dir, &hash, &data)?
            };
            moved.push((k, v, new));
        }
        {
            let mut w = lock(&self.writer);
            w.sync(&self.config, &self.packs_dir)?;
        }
        self.extend_ends(moved.iter().map(|(_, _, new)| *new))?;
        for (k, old, new) in moved {
            // Leave entries that changed meanwhile (removed, rewritten) as they are.
            let _ = self
                .index
                .compare_and_swap(k, Some(old), Some(&new.encode()[..]))?;
        }
        self.db.flush()?;
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pack);
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.ends.remove(pack.to_be_bytes())?;
        Ok(())
    }
}

impl BlockStore for PackStore {
    fn put(&self, block: &Block) -> Result<bool, store::error::Error> {
        let hash = block.cid().hash();
        if self.lookup(hash)?.is_some() {
            return Ok(false);
        }
        let mut w = lock(&self.writer);
        let loc = w.append(&self.config, &self.packs_dir, hash, block.data())?;
        // Recorded under the writer lock, so `flush` never indexes bytes it did not sync.
        lock(&self.pending).insert(*hash, loc);
        Ok(true)
    }

    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, store::error::Error> {
        self.read(cid.hash())
    }

    fn has(&self, hash: &Hash) -> Result<bool, store::error::Error> {
        Ok(self.lookup(hash)?.is_some())
    }

    fn size(&self, cid: &Cid) -> Result<Option<u64>, store::error::Error> {
        Ok(self.lookup(cid.hash())?.map(|l| u64::from(l.len)))
    }

    fn remove(&self, hash: &Hash) -> Result<bool, store::error::Error> {
        let was_pending = lock(&self.pending).remove(hash).is_some();
        let was_indexed = self.index.remove(hash.to_bytes())?.is_some();
        Ok(was_pending || was_indexed)
    }

    fn for_each_hash(
        &self,
        f: &mut dyn FnMut(Hash) -> Result<(), store::error::Error>,
    ) -> Result<(), store::error::Error> {
        let pending: Vec<Hash> = lock(&self.pending).keys().copied().collect();
        for h in pending {
            f(h)?;
        }
        for key in self.index.iter().keys() {
            let key = key?;
            let hash = Hash::from_bytes(&key).map_err(|e| {
                store::error::Error::CorruptIndex(format!("key is no multihash: {e}"))
            })?;
            f(hash)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), store::error::Error> {
        let ticket = self.flush_asked.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = lock(&self.flushing);
        if self.flush_covered.load(Ordering::SeqCst) >= ticket {
            // A flush that started after this call asked has made its writes durable.
            return Ok(());
        }
        let covers = self.flush_asked.load(Ordering::SeqCst);
        self.flush_pending()?;
        self.flush_covered.store(covers, Ordering::SeqCst);
        Ok(())
    }

    fn stat(&self) -> Result<StoreStat, store::error::Error> {
        let mut stat = StoreStat::default();
        for v in self.index.iter().values() {
            stat.blocks += 1;
            stat.logical_bytes += u64::from(Loc::decode(&v?)?.len);
        }
        for loc in lock(&self.pending).values() {
            stat.blocks += 1;
            stat.logical_bytes += u64::from(loc.len);
        }
        for id in pack_ids(&self.packs_dir)? {
            let path = pack_path(&self.packs_dir, id);
            stat.disk_bytes += fs::metadata(&path).map_err(io_err(&path))?.len();
        }
        stat.disk_bytes += self.db.size_on_disk()?;
        Ok(stat)
    }

    fn compact(&self) -> Result<u64, store::error::Error> {
        let _one_at_a_time = lock(&self.compacting);
        let target = self.config.pack_target_bytes;
        let mut current = self.flush_pending()?;
        let live = self.live_bytes_per_pack()?;
        // The pack being written is closed too when it is worth rewriting, so that blocks
        // removed from it give their space back.
        let sealed = {
            let mut w = lock(&self.writer);
            let size = w.end();
            let live = live.get(&w.id).copied().unwrap_or(0);
            worth_rewriting(size, live, target)
                && match w.roll(&self.config, &self.packs_dir) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot close the pack being written");
                        false
                    }
                }
        };
        if sealed {
            current = self.flush_pending()?;
        }
        let mut candidates = Vec::new();
        for id in pack_ids(&self.packs_dir)? {
            if id >= current {
                continue;
            }
            let path = pack_path(&self.packs_dir, id);
            let size = fs::metadata(&path).map_err(io_err(&path))?.len();
            let live = live.get(&id).copied().unwrap_or(0);
            if worth_rewriting(size, live, target) {
                candidates.push((size - live, id));
            }
        }
        // Most dead bytes first: on a full disk, packs with nothing live free space without
        // needing any.
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let mut freed = 0;
        for (dead, id) in candidates {
            self.rewrite_pack(id)?;
            freed += dead;
        }
        Ok(freed)
    }
}
