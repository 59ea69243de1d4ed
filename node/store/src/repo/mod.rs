//! The repo: a directory holding the config, the node identity, the block store and the pins,
//! used by one process at a time.
//!
//! ```text
//! <repo>/config.toml     commented configuration (written last by init: its presence
//!                        marks an initialised repo)
//! <repo>/identity.key    Ed25519 key, libp2p protobuf encoding, mode 0600
//! <repo>/repo.lock       advisory lock; names the holding process
//! <repo>/blocks/         the pack store and its sled index (pins live in the same db)
//! <repo>/tmp/            scratch: upload spools, benchmark stores, exec directories;
//!                        what a crash leaves there is removed at open and by `gc`
//! ```

use crate::store;
use crate::store::pins;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cid::Cid;
use libp2p_identity::{Keypair, PeerId};

pub mod scratch;

use self::scratch::Scratch;
use crate::config::Config;
use crate::store::block::{self, Hash, RAW};
use crate::store::gc::{self, GcStats};
use crate::store::pins::{PinKind, Pins};
use crate::store::protect::Protector;
use crate::store::tiers::TieredStore;
use crate::store::{Block, BlockStore, PackStore, StoreStat};
use crate::unixfs::car::{self, CarError};
use crate::unixfs::{self, AddError, AddOptions, Added, Sink};

/// Failures to open or use a repo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repo at the path.
    #[error("no ipfsbench repo at {0} (run `ipfsbench-node init`)")]
    NotInitialised(PathBuf),
    /// `init` on an existing repo.
    #[error("a repo already exists at {0}")]
    AlreadyInitialised(PathBuf),
    /// Another process holds the repo.
    #[error("repo {path} is locked by another process ({holder}); stop it or use another --repo")]
    Locked {
        /// The repo.
        path: PathBuf,
        /// What the lock file says about the holder.
        holder: String,
    },
    /// File access failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The config does not parse.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The identity key is unreadable or does not match the config.
    #[error("identity: {0}")]
    Identity(String),
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A pin operation failed.
    #[error(transparent)]
    Pin(#[from] pins::Error),
    /// An add failed; nothing it stored remains.
    #[error(transparent)]
    Add(#[from] AddError),
    /// A CAR import or export failed; an import leaves nothing behind.
    #[error(transparent)]
    Car(#[from] CarError),
    /// Garbage collection failed.
    #[error(transparent)]
    Gc(#[from] gc::Error),
    /// A block was refused.
    #[error(transparent)]
    Block(#[from] block::BlockError),
    /// A block is pinned and cannot be removed.
    #[error("cannot remove {cid}: pinned ({kind})")]
    Pinned {
        /// The block.
        cid: Cid,
        /// How it is pinned.
        kind: PinKind,
    },
    /// A block is not in the repo.
    #[error("block {0} not found locally")]
    NotFound(Cid),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The exclusive lock on a repo, released when dropped (the OS releases it if we die).
#[derive(Debug)]
struct RepoLock {
    _file: File,
}

impl RepoLock {
    fn acquire(repo: &Path) -> Result<Self, Error> {
        let path = repo.join("repo.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: repo.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown process".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_at(&path)(e)),
        }
        let me = format!(
            "pid {} ({})",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        file.set_len(0)
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(io_at(&path))?;
        Ok(Self { _file: file })
    }
}

/// An open repo. See the module docs.
#[derive(Debug)]
pub struct Repo {
    path: PathBuf,
    config: Config,
    keypair: Keypair,
    /// The pack store behind the storage tiers; the repo's own writers use `store.disk()`.
    store: Arc<TieredStore>,
    pins: Pins,
    protector: Arc<Protector>,
    scratch: Scratch,
    _lock: RepoLock,
}

/// What a CAR import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarImport {
    /// The roots, now pinned.
    pub roots: Vec<Cid>,
    /// Blocks read from the CAR.
    pub blocks: u64,
}

/// The outcome of `repo verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blocks checked.
    pub checked: u64,
    /// Blocks whose bytes do not hash to their key, or could not be read, with the reason.
    pub bad: Vec<(Hash, String)>,
}

impl Repo {
    /// `$IPFSBENCH_PATH`, else `~/.ipfsbench`.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("IPFSBENCH_PATH").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".ipfsbench")
    }

    /// Whether `path` holds an initialised repo.
    pub fn exists(path: &Path) -> bool {
        path.join("config.toml").is_file()
    }

    /// Creates a repo at `path`: identity, commented config, empty stores.
    pub fn init(path: &Path) -> Result<Self, Error> {
        fs::create_dir_all(path).map_err(io_at(path))?;
        let lock = RepoLock::acquire(path)?;
        if Self::exists(path) {
            return Err(Error::AlreadyInitialised(path.to_path_buf()));
        }
        let keypair = Keypair::generate_ed25519();
        let key_path = path.join("identity.key");
        let encoded = keypair
            .to_protobuf_encoding()
            .map_err(|e| Error::Identity(e.to_string()))?;
        write_synced(&key_path, &encoded, 0o600)?;
        let peer_id = keypair.public().to_peer_id();
        // The config goes last, through a rename: a repo is initialised exactly when it exists.
        let config_path = path.join("config.toml");
        let tmp = path.join("config.toml.tmp");
        write_synced(
            &tmp,
            Config::template(&peer_id.to_string()).as_bytes(),
            0o644,
        )?;
        fs::rename(&tmp, &config_path).map_err(io_at(&config_path))?;
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(io_at(path))?;
        drop(lock);
        Self::open(path)
    }

    /// Opens the repo at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        if !Self::exists(path) {
            return Err(Error::NotInitialised(path.to_path_buf()));
        }
        let lock = RepoLock::acquire(path)?;
        let config_path = path.join("config.toml");
        let text = fs::read_to_string(&config_path).map_err(io_at(&config_path))?;
        let config: Config = toml::from_str(&text).map_err(|e| Error::Config {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;
        let key_path = path.join("identity.key");
        let key = fs::read(&key_path).map_err(io_at(&key_path))?;
        let keypair = Keypair::from_protobuf_encoding(&key)
            .map_err(|e| Error::Identity(format!("{}: {e}", key_path.display())))?;
        let peer_id = keypair.public().to_peer_id().to_string();
        if !config.identity.peer_id.is_empty() && config.identity.peer_id != peer_id {
            return Err(Error::Identity(format!(
                "config says {} but identity.key is {peer_id}",
                config.identity.peer_id
            )));
        }
        let scratch_root = path.join("tmp");
        let scratch = Scratch::open(scratch_root.clone()).map_err(io_at(&scratch_root))?;
        let disk = PackStore::open(&path.join("blocks"), config.store.clone())?;
        let pins = Pins::open(disk.db())?;
        let protector = Arc::new(Protector::new());
        let store = Arc::new(TieredStore::new(
            disk,
            pins.clone(),
            Arc::clone(&protector),
            config.cache.clone(),
            config.store.pack_target_bytes / 2,
        ));
        Ok(Self {
            path: path.to_path_buf(),
            config,
            keypair,
            store,
            pins,
            protector,
            scratch,
            _lock: lock,
        })
    }

    /// Opens the repo, creating it first if there is none; `true` when it was created.
    pub fn open_or_init(path: &Path) -> Result<(Self, bool), Error> {
        if Self::exists(path) {
            Ok((Self::open(path)?, false))
        } else {
            Ok((Self::init(path)?, true))
        }
    }

    /// The repo directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scratch directory under `<repo>/tmp`, removed when dropped.
    pub fn scratch_dir(&self, prefix: &str) -> Result<scratch::Dir, Error> {
        let root = self.path.join("tmp");
        self.scratch.dir(prefix).map_err(io_at(&root))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The node's key pair.
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The block store, as readers and the network see it: reads are counted by the storage
    /// tiers, and a block put here is one that arrived from a peer (on a leecher, the bounded
    /// cache tracks it). The repo's own writers (`add`, `block put`, CAR import) bypass it.
    pub fn store(&self) -> &dyn BlockStore {
        self.store.as_ref()
    }

    /// The storage tiers: their figures, their activation for a role, and holds for readers
    /// (see [`crate::store::tiers`]).
    pub fn tiers(&self) -> &Arc<TieredStore> {
        &self.store
    }

    /// The pins.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    /// Adds a file or directory tree. With `pin`, the root is pinned recursively. Returns the
    /// entries in Kubo's output order. Once this returns, a crash loses none of the blocks;
    /// if it fails, none of the blocks it added remain.
    pub fn add_path(
        &self,
        path: &Path,
        options: &AddOptions,
        pin: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<Added>, Error> {
        let session = self.protector.session();
        let mut sink = Sink::new(self.store.disk(), &session).with_progress(progress);
        match unixfs::add_path(path, options, &mut sink) {
            Ok(added) => {
                let root = added.last().map(|a| a.cid);
                self.commit(root.filter(|_| pin))?;
                Ok(added)
            }
            Err(e) => {
                sink.rollback()?;
                Err(e.into())
            }
        }
    }

    /// Adds the bytes of `reader` as one file (standard input).
    pub fn add_reader(
        &self,
        reader: Box<dyn Read + Send>,
        options: &AddOptions,
        pin: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Added, Error> {
        let session = self.protector.session();
        let mut sink = Sink::new(self.store.disk(), &session).with_progress(progress);
        match unixfs::add_reader(reader, Path::new("-"), options, &mut sink) {
            Ok(added) => {
                self.commit(Some(added.cid).filter(|_| pin))?;
                Ok(added)
            }
            Err(e) => {
                sink.rollback()?;
                Err(e.into())
            }
        }
    }

    /// Makes what was stored durable, then pins `root`, whose DAG the caller just wrote whole
    /// and still protects: no need to walk it again.
    fn commit(&self, root: Option<Cid>) -> Result<(), Error> {
        self.store.flush()?;
        if let Some(root) = root {
            self.pins.add_written(&root)?;
        }
        Ok(())
    }

    /// Imports a CAR v1: every block verified, roots pinned. A bad CAR imports nothing.
    pub fn import_car(&self, reader: impl Read) -> Result<CarImport, Error> {
        let session = self.protector.session();
        let mut new_blocks = Vec::new();
        let result = (|| -> Result<CarImport, Error> {
            let mut car = car::Reader::new(reader)?;
            let mut blocks = 0;
            while let Some(block) = car.next_block()? {
                session.protect(block.cid().hash());
                if self.store.disk().put(&block)? {
                    new_blocks.push(*block.cid().hash());
                }
                blocks += 1;
            }
            let roots = car.roots().to_vec();
            for root in &roots {
                // Pinning walks the DAG: an incomplete one fails here, before anything is kept.
                let mut seen = std::collections::HashSet::new();
                crate::store::dag::walk(self.store.disk(), root, false, &mut seen, &mut |_, _| {
                    Ok(())
                })
                .map_err(pins::Error::from)?;
            }
            self.store.flush()?;
            for root in &roots {
                // Walked complete just above, and still protected by this session.
                self.pins.add_written(root)?;
            }
            Ok(CarImport { roots, blocks })
        })();
        if result.is_err() {
            for hash in &new_blocks {
                self.store.disk().remove(hash)?;
            }
            self.store.flush()?;
        }
        result
    }

    /// Writes the DAG under `root` as a CAR v1; returns the number of blocks.
    pub fn export_car(&self, root: &Cid, out: &mut dyn Write) -> Result<u64, Error> {
        Ok(car::export(self.store.as_ref(), root, out)?)
    }

    /// Stores `data` as one block (sha2-256, CIDv1 with `codec`), as `ipfs block put`.
    pub fn block_put(&self, data: Vec<u8>, codec: u64) -> Result<Cid, Error> {
        if data.len() > block::MAX_BLOCK_SIZE {
            return Err(block::BlockError::TooLarge {
                size: data.len(),
                max: block::MAX_BLOCK_SIZE,
            }
            .into());
        }
        let block = Block::hash(codec, data, false);
        self.store.disk().put(&block)?;
        self.store.flush()?;
        Ok(*block.cid())
    }

    /// Removes one block; refused when it is pinned in any way.
    pub fn block_rm(&self, cid: &Cid) -> Result<(), Error> {
        if let Some(kind) = self.pins.pinned(self.store.disk(), cid.hash())? {
            return Err(Error::Pinned { cid: *cid, kind });
        }
        if !self.store.remove(cid.hash())? {
            return Err(Error::NotFound(*cid));
        }
        self.store.flush()?;
        Ok(())
    }

    /// A tree of the repo's database for one role's local bookkeeping (`local.<name>`).
    pub fn local_tree(&self, name: &str) -> Result<sled::Tree, Error> {
        let tree = self.store.disk().db().open_tree(format!("local.{name}"));
        Ok(tree.map_err(crate::store::Error::from)?)
    }

    /// The repo's key-value database, shared by the parts that keep records beside the
    /// blocks (the replicated state).
    pub fn db(&self) -> &sled::Db {
        self.store.disk().db()
    }

    /// Pins every CID of `cids` recursively (their blocks must be local), durable with one
    /// flush; each one's outcome, in order.
    pub fn pin_add_many(&self, cids: &[Cid]) -> Vec<Result<(), Error>> {
        self.pins
            .add_many(self.store.disk(), &self.protector, cids)
            .into_iter()
            .map(|r| r.map_err(Error::from))
            .collect()
    }

    /// Pins `cid` (recursively or directly); the blocks must be local.
    pub fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<(), Error> {
        Ok(self
            .pins
            .add(self.store.disk(), &self.protector, cid, recursive)?)
    }

    /// Removes every block that is neither pinned nor held by a running write.
    pub fn gc(&self) -> Result<GcStats, Error> {
        let root = self.path.join("tmp");
        let (entries, scratch_bytes) = self.scratch.sweep().map_err(io_at(&root))?;
        if entries > 0 {
            tracing::info!(
                entries,
                bytes = scratch_bytes,
                "removed stale scratch files"
            );
        }
        let mut stats = gc::collect(self.store.disk(), &self.pins, &self.protector)?;
        self.store.forget_missing()?;
        stats.reclaimed_disk_bytes += scratch_bytes;
        Ok(stats)
    }

    /// Counts blocks and bytes.
    pub fn stat(&self) -> Result<StoreStat, Error> {
        Ok(self.store.stat()?)
    }

    /// Re-hashes every block and reports the ones that do not match their key.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let mut report = VerifyReport::default();
        let store = self.store.disk();
        store.for_each_hash(&mut |hash| {
            report.checked += 1;
            let cid = Cid::new_v1(RAW, hash);
            match store.get(&cid) {
                Ok(Some(data)) => match block::hash_with(hash.code(), &data) {
                    Some(actual) if actual == hash => {}
                    Some(_) => report.bad.push((hash, "hash mismatch".into())),
                    None => report
                        .bad
                        .push((hash, format!("unsupported hash 0x{:x}", hash.code()))),
                },
                Ok(None) => report.bad.push((hash, "vanished during verify".into())),
                Err(e) => report.bad.push((hash, e.to_string())),
            }
            Ok(())
        })?;
        Ok(report)
    }

    /// Flushes everything to disk; also done by every mutating call.
    pub fn close(self) -> Result<(), Error> {
        self.store.flush()?;
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_at(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(dir.path()).unwrap();
        match Repo::open(dir.path()) {
            Err(Error::Locked { holder, .. }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                )
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let peer = repo.peer_id();
        drop(repo);
        // Identity persists across opens.
        assert_eq!(Repo::open(dir.path()).unwrap().peer_id(), peer);
    }

    #[test]
    fn open_without_init_and_double_init() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Repo::open(dir.path()),
            Err(Error::NotInitialised(_))
        ));
        drop(Repo::init(dir.path()).unwrap());
        assert!(matches!(
            Repo::init(dir.path()),
            Err(Error::AlreadyInitialised(_))
        ));
    }

    #[test]
    fn failed_add_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("repo")).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("a"), vec![1u8; 300_000]).unwrap();
        // A name that is not UTF-8 fails the add after `a` was stored.
        let bad = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"b\xff");
        std::fs::write(tree.join(bad), b"x").unwrap();
        let err = repo.add_path(&tree, &AddOptions::default(), true, &mut |_| {});
        assert!(matches!(err, Err(Error::Add(AddError::NonUtf8Name { .. }))));
        assert_eq!(repo.stat().unwrap().blocks, 0);
        assert!(repo.pins().stored().unwrap().is_empty());
    }
}
