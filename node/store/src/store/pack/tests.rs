//! The pack store's own tests (the shared store scenario runs here too).

use super::files::{pack_ids, pack_path};
use super::*;
use crate::store;
use crate::store::block::Block;
use crate::store::block::RAW;
use crate::store::blockstore::BlockStore;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;

#[test]
fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    super::super::tests::exercise(&store);
}

#[test]
fn only_flushed_blocks_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = Block::hash(RAW, b"durable".to_vec(), false);
    let b = Block::hash(RAW, b"not yet".to_vec(), false);
    {
        let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
        store.put(&a).unwrap();
        store.flush().unwrap();
        store.put(&b).unwrap();
        // Dropped without flush: as if the process died here.
    }
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    assert_eq!(store.get(a.cid()).unwrap().unwrap(), b"durable");
    assert!(store.get(b.cid()).unwrap().is_none());
    // The store keeps appending after the garbage.
    store.put(&b).unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(b.cid()).unwrap().unwrap(), b"not yet");
}

#[test]
fn flushes_at_once_share_a_sync_and_each_covers_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<Block> = (0..64u32)
        .map(|i| Block::hash(RAW, format!("record {i}").into_bytes(), false))
        .collect();
    {
        let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
        std::thread::scope(|s| {
            for chunk in blocks.chunks(8) {
                let store = &store;
                s.spawn(move || {
                    for b in chunk {
                        store.put(b).unwrap();
                        store.flush().unwrap();
                    }
                });
            }
        });
        // Every flush returned after its own block was durable; fewer syncs ran.
        let asked = store.flush_asked.load(Ordering::SeqCst);
        assert_eq!(asked, 64);
        // Dropped without another flush: as if the process died here.
    }
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    for b in &blocks {
        assert_eq!(
            store.get(b.cid()).unwrap().unwrap(),
            b.data(),
            "{}",
            b.cid()
        );
    }
}

#[test]
fn packs_roll_and_compaction_frees_dead_packs() {
    let dir = tempfile::tempdir().unwrap();
    let config = PackStoreConfig {
        pack_target_bytes: 100_000,
        ..PackStoreConfig::default()
    };
    let store = PackStore::open(dir.path(), config).unwrap();
    let blocks: Vec<Block> = (0..20u8)
        .map(|i| Block::hash(RAW, vec![i; 40_000], false))
        .collect();
    for b in &blocks {
        store.put(b).unwrap();
    }
    store.flush().unwrap();
    assert!(pack_ids(&dir.path().join("packs")).unwrap().len() >= 5);
    let before = store.stat().unwrap().disk_bytes;
    for b in &blocks[..16] {
        store.remove(b.cid().hash()).unwrap();
    }
    let freed = store.compact().unwrap();
    assert!(freed >= 16 * 40_000 - 3 * 100_000, "freed {freed}");
    assert!(store.stat().unwrap().disk_bytes < before);
    for b in &blocks[16..] {
        assert_eq!(store.get(b.cid()).unwrap().unwrap(), b.data());
    }
    drop(store);
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    for b in &blocks[16..] {
        assert_eq!(store.get(b.cid()).unwrap().unwrap(), b.data());
    }
    assert_eq!(store.stat().unwrap().blocks, 4);
}

fn pack_len(dir: &Path) -> u64 {
    pack_ids(&dir.join("packs"))
        .unwrap()
        .iter()
        .map(|id| {
            fs::metadata(pack_path(&dir.join("packs"), *id))
                .unwrap()
                .len()
        })
        .sum()
}

#[test]
fn a_write_refused_for_space_changes_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let a = Block::hash(RAW, b"kept".to_vec(), false);
    {
        let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
        store.put(&a).unwrap();
        store.flush().unwrap();
    }
    let before = pack_len(dir.path());
    let full = PackStoreConfig {
        min_free_bytes: u64::MAX / 2,
        ..PackStoreConfig::default()
    };
    let b = Block::hash(RAW, vec![7u8; 300_000], false);
    {
        let store = PackStore::open(dir.path(), full).unwrap();
        store.put(&b).unwrap();
        let err = store.flush().unwrap_err();
        assert!(matches!(err, store::error::Error::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
        // Still readable from memory, and nothing reached the pack.
        assert_eq!(store.get(b.cid()).unwrap().unwrap(), b.data());
        assert_eq!(pack_len(dir.path()), before);
    }
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    assert_eq!(store.get(a.cid()).unwrap().unwrap(), b"kept");
    assert!(store.get(b.cid()).unwrap().is_none());
    store.put(&b).unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(b.cid()).unwrap().unwrap(), b.data());
}

#[test]
fn open_trims_bytes_no_entry_references() {
    let dir = tempfile::tempdir().unwrap();
    let a = Block::hash(RAW, b"durable".to_vec(), false);
    let end = {
        let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
        store.put(&a).unwrap();
        store.flush().unwrap();
        let end = pack_len(dir.path());
        // Large enough to reach the file before any flush: a crash leaves these bytes.
        store
            .put(&Block::hash(
                RAW,
                vec![1u8; writer::WRITE_BUFFER + 1],
                false,
            ))
            .unwrap();
        store
            .put(&Block::hash(RAW, b"tail".to_vec(), false))
            .unwrap();
        assert!(pack_len(dir.path()) > end);
        end
    };
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    assert_eq!(pack_len(dir.path()), end);
    let b = Block::hash(RAW, b"after".to_vec(), false);
    store.put(&b).unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(a.cid()).unwrap().unwrap(), b"durable");
    assert_eq!(store.get(b.cid()).unwrap().unwrap(), b"after");
}

#[test]
fn compaction_reclaims_the_pack_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    let blocks: Vec<Block> = (0..10u8)
        .map(|i| Block::hash(RAW, vec![i; 40_000], false))
        .collect();
    for b in &blocks {
        store.put(b).unwrap();
    }
    store.flush().unwrap();
    for b in &blocks[..8] {
        store.remove(b.cid().hash()).unwrap();
    }
    let before = pack_len(dir.path());
    let freed = store.compact().unwrap();
    assert!(freed >= 8 * 40_000, "freed {freed}");
    assert!(pack_len(dir.path()) <= before - 8 * 40_000);
    for b in &blocks[8..] {
        assert_eq!(store.get(b.cid()).unwrap().unwrap(), b.data());
    }
    drop(store);
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    for b in &blocks[8..] {
        assert_eq!(store.get(b.cid()).unwrap().unwrap(), b.data());
    }
}

#[test]
fn ends_are_rebuilt_for_stores_written_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = Block::hash(RAW, vec![3u8; 1000], false);
    {
        let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
        store.put(&a).unwrap();
        store.flush().unwrap();
        store.db().drop_tree("pack_ends").unwrap();
        store.db().flush().unwrap();
    }
    let len = pack_len(dir.path());
    let store = PackStore::open(dir.path(), PackStoreConfig::default()).unwrap();
    assert_eq!(pack_len(dir.path()), len, "nothing referenced was trimmed");
    assert_eq!(store.get(a.cid()).unwrap().unwrap(), a.data());
}
