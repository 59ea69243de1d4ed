//! Block storage: a small trait, a memory implementation for tests and a persistent one
//! (append-only pack files indexed by sled) for repos.
//!
//! Blocks are keyed by multihash, as in Kubo: the same bytes under two codecs are stored once.
//! Every block entering a store is a [`Block`], which can only be made by hashing its bytes or
//! by checking them against a CID, so nothing unverified is ever stored.

pub mod block;
mod cache;
pub mod dag;
pub mod gc;
mod memory;
mod pack;
pub mod pins;
pub mod protect;
mod sys;
pub mod tiers;

use cid::Cid;

pub use cache::{AdaptiveCache, CachePolicy, LruCache};
pub use memory::MemoryStore;
pub use pack::{PackStore, PackStoreConfig};
pub use sys::cap_malloc_arenas;

use self::block::{BlockError, Hash};

/// A block whose bytes are known to match its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    /// Shared bytes: a block received over Bitswap is a slice of the frame it came in.
    data: bytes::Bytes,
}

impl Block {
    /// Checks `data` against `cid`.
    pub fn new(cid: Cid, data: Vec<u8>) -> Result<Self, BlockError> {
        block::verify(&cid, &data)?;
        Ok(Self {
            cid,
            data: data.into(),
        })
    }

    /// A block whose bytes a protocol layer of this node already checked against `cid` (Bitswap
    /// verifies every block it receives before handing it over).
    pub fn verified_upstream(cid: Cid, data: bytes::Bytes) -> Self {
        Self { cid, data }
    }

    /// Hashes `data` with sha2-256 under `codec` (CIDv0 when `v0` and the codec is dag-pb).
    pub fn hash(codec: u64, data: Vec<u8>, v0: bool) -> Self {
        Self {
            cid: block::cid_for(codec, &data, v0),
            data: data.into(),
        }
    }

    /// The block's CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The block's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the bytes out (shared, not copied).
    pub fn into_data(self) -> bytes::Bytes {
        self.data
    }
}

/// Failures of a block store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a pack file failed.
    #[error("block store I/O on {path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The sled index failed.
    #[error("block index: {0}")]
    Index(#[from] sled::Error),
    /// An index entry is malformed.
    #[error("corrupt block index entry: {0}")]
    CorruptIndex(String),
    /// A write would leave less free space than the store keeps in reserve. Nothing was
    /// written; writes work again once space is freed (`repo gc`, or removing other files).
    #[error(
        "disk full: {free} bytes free under {}, and the store keeps {reserve} free \
         (store.min_free_bytes); free some space, for example with `repo gc`",
        path.display()
    )]
    DiskFull {
        /// The store's pack directory.
        path: std::path::PathBuf,
        /// Bytes free on its file system.
        free: u64,
        /// Bytes the store keeps free.
        reserve: u64,
    },
    /// An fsync failed earlier, so the store refuses writes until the node restarts (what was
    /// acknowledged before is safe; reopening resumes from it).
    #[error("the block store refuses writes after a failed fsync ({0}); restart the node")]
    Failed(String),
}

/// How long opening a sled database waits for a handle of this process that is being
/// dropped to release the database's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the sled database at `path` with `config`.
///
/// - sled releases its file lock only once its background threads have let go of the last
///   handle, a moment after the handle is dropped; a reopen in that moment waits for it, for
///   at most [`LOCK_WAIT`], instead of failing.
/// - sled writes a snapshot as `snap.N.generating` and renames it when complete, but on
///   opening it also reads a `.generating` file left by a write that failed (a full disk) or
///   was cut short, and then refuses to open at all. Such a file is never a finished
///   snapshot: when sled refuses for corruption and one is there, it is removed and the open
///   tried again (sled then recovers from its log).
pub fn open_db(path: &std::path::Path, config: sled::Config) -> sled::Result<sled::Db> {
    let config = config.path(path);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut cleared = false;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Corruption { .. }) if !cleared && unfinished_snapshots(path)? > 0 => {
                cleared = true;
            }
            other => return other,
        }
    }
}

/// Removes the unfinished snapshots (`snap.*.generating`) in the sled directory `path`;
/// returns how many there were.
fn unfinished_snapshots(path: &std::path::Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %entry.path().display(), "removing an unfinished sled snapshot");
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

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

#[cfg(test)]
pub(crate) mod tests {
    //! One scenario, run against every store.
    use super::*;
    use crate::store::block::{DAG_PB, RAW};

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
}
