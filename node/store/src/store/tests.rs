//! One scenario, run against every store.
use super::*;
use crate::store::block::{DAG_PB, RAW};
use cid::Cid;

pub(crate) fn exercise(store: &dyn BlockStore) {
    let a = Block::hash(RAW, b"alpha".to_vec(), false);
    let b = Block::hash(DAG_PB, vec![0x0a, 0x02, 0x08, 0x01], true);
    let big = Block::hash(RAW, vec![42u8; 300_000], false);
    assert!(store.put(&a).unwrap());
    assert!(!store.put(&a).unwrap(), "second put is a no-op");
    assert!(store.put(&b).unwrap());
    assert!(store.put(&big).unwrap());
    // Readable before and after the durability barrier.
    assert_eq!(store.get(a.cid()).unwrap().as_deref(), Some(&b"alpha"[..]));
    store.flush().unwrap();
    assert_eq!(store.get(big.cid()).unwrap().unwrap(), big.data());
    assert_eq!(store.size(b.cid()).unwrap(), Some(4));
    assert!(store.has(a.cid().hash()).unwrap());
    // Same multihash under another codec is the same block.
    let same_hash = Cid::new_v1(DAG_PB, *a.cid().hash());
    assert!(store.get(&same_hash).unwrap().is_some());

    let stat = store.stat().unwrap();
    assert_eq!(stat.blocks, 3);
    assert_eq!(stat.logical_bytes, 5 + 4 + 300_000);

    let mut seen = Vec::new();
    store
        .for_each_hash(&mut |h| {
            seen.push(h);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.len(), 3);

    assert!(store.remove(a.cid().hash()).unwrap());
    assert!(!store.remove(a.cid().hash()).unwrap());
    assert!(store.get(a.cid()).unwrap().is_none());
    store.flush().unwrap();
    store.compact().unwrap();
    assert_eq!(store.get(big.cid()).unwrap().unwrap(), big.data());
    assert_eq!(store.stat().unwrap().blocks, 2);
}

#[test]
fn reopening_waits_for_a_handle_being_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open_db(&path, sled::Config::new()).unwrap();
    db.insert(b"k", b"v").unwrap();
    db.flush().unwrap();
    // Plain sled refuses while the first handle lives.
    assert!(sled::Config::new().path(&path).open().is_err());
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(db);
    });
    let again = open_db(&path, sled::Config::new()).unwrap();
    assert_eq!(again.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    dropper.join().unwrap();
}

#[test]
fn an_unfinished_snapshot_does_not_stop_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = open_db(&path, sled::Config::new()).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    // What a snapshot write cut short by a full disk leaves.
    std::fs::write(path.join("snap.00000000FFFFFFFF.generating"), b"short").unwrap();
    assert!(sled::Config::new().path(&path).open().is_err());
    let db = open_db(&path, sled::Config::new()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn block_new_verifies() {
    let good = Block::hash(RAW, b"x".to_vec(), false);
    assert!(Block::new(*good.cid(), b"x".to_vec()).is_ok());
    assert!(Block::new(*good.cid(), b"y".to_vec()).is_err());
}
