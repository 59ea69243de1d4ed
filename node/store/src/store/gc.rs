//! Garbage collection: removes every block that no pin protects and no running write holds
//! (see [`super::protect`]). The sweep checks protection and removes under one lock, so a
//! writer that re-uses an existing block either protects it first or stores it anew.

use super::blockstore::BlockStore;
use super::pins::Pins;
use super::protect::Protector;
use crate::store;
use crate::store::pins;

/// What a collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blocks removed.
    pub removed_blocks: u64,
    /// Their total size.
    pub removed_bytes: u64,
    /// Disk space given back by compacting packs.
    pub reclaimed_disk_bytes: u64,
}

/// GC failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Marking the pinned DAGs failed; nothing was removed.
    #[error("marking pinned blocks: {0}")]
    Mark(#[from] pins::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::error::Error),
}

/// Removes unpinned, unprotected blocks, then compacts the store.
pub fn collect(
    store: &dyn BlockStore,
    pins: &Pins,
    protector: &Protector,
) -> Result<GcStats, Error> {
    let _one_at_a_time = protector
        .collecting
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    protector.state().collecting = true;
    let result = sweep(store, pins, protector);
    {
        let mut state = protector.state();
        state.collecting = false;
        state.deferred.clear();
    }
    let mut stats = result?;
    store.flush()?;
    stats.reclaimed_disk_bytes = store.compact()?;
    Ok(stats)
}

fn sweep(store: &dyn BlockStore, pins: &Pins, protector: &Protector) -> Result<GcStats, Error> {
    let live = pins.live_set(store)?;
    let mut candidates = Vec::new();
    store.for_each_hash(&mut |h| {
        if !live.contains(&h) {
            candidates.push(h);
        }
        Ok(())
    })?;
    let mut stats = GcStats::default();
    for hash in candidates {
        let state = protector.state();
        if Protector::is_protected(&state, &hash) {
            continue;
        }
        let cid = cid::Cid::new_v1(crate::store::block::RAW, hash);
        let size = store.size(&cid)?.unwrap_or(0);
        if store.remove(&hash)? {
            stats.removed_blocks += 1;
            stats.removed_bytes += size;
        }
        drop(state);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::store::MemoryStore;
    use crate::unixfs::{self, AddOptions, Sink};

    #[test]
    fn add_running_during_gc_loses_nothing() {
        let store = MemoryStore::new();
        let pins = Pins::temporary().unwrap();
        let protector = Protector::new();
        let options = AddOptions {
            chunker: "size-64".parse().unwrap(),
            ..AddOptions::default()
        };
        let done = AtomicBool::new(false);
        let roots = std::thread::scope(|s| {
            let collector = s.spawn(|| {
                let mut runs = 0;
                while !done.load(Ordering::Relaxed) || runs < 3 {
                    collect(&store, &pins, &protector).unwrap();
                    runs += 1;
                }
                runs
            });
            let mut roots = Vec::new();
            for i in 0..200u32 {
                let data: Vec<u8> = (0..1000u32).map(|j| (i * 7 + j) as u8).collect();
                let session = protector.session();
                let mut sink = Sink::new(&store, &session);
                let added = unixfs::add_reader(
                    Box::new(Cursor::new(data.clone())),
                    Path::new("-"),
                    &options,
                    &mut sink,
                )
                .unwrap();
                pins.add_written(&added.cid).unwrap();
                drop(session);
                roots.push((added.cid, data));
            }
            done.store(true, Ordering::Relaxed);
            assert!(collector.join().unwrap() >= 3);
            roots
        });
        // One more collection after everything settled: still nothing pinned goes.
        collect(&store, &pins, &protector).unwrap();
        for (cid, data) in roots {
            let mut out = Vec::new();
            unixfs::cat(&store, &cid, 0, None, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn unpinned_blocks_go_protected_ones_stay() {
        let store = MemoryStore::new();
        let pins = Pins::temporary().unwrap();
        let protector = Protector::new();
        let loose = crate::store::Block::hash(crate::store::block::RAW, b"loose".to_vec(), false);
        let held = crate::store::Block::hash(crate::store::block::RAW, b"held".to_vec(), false);
        store.put(&loose).unwrap();
        store.put(&held).unwrap();
        let session = protector.session();
        session.protect(held.cid().hash());
        let stats = collect(&store, &pins, &protector).unwrap();
        assert_eq!(stats.removed_blocks, 1);
        assert!(store.has(held.cid().hash()).unwrap());
        drop(session);
        assert_eq!(
            collect(&store, &pins, &protector).unwrap().removed_blocks,
            1
        );
    }
}
