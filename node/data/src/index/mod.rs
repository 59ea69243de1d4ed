//! The benchmark database: every node's results and content as Parquet partitions that are
//! content (UnixFS files with CIDs), synced between peers, queried with SQL through the
//! embedded DuckDB ([`ipfsbench_sql`]).
//!
//! - Rows a node produces are buffered and written as a partition every `flush_every` (or
//!   at `flush_rows`): Parquet written by DuckDB from Arrow, added to the store (kept from
//!   GC), numbered in the node's manifest, announced on the cluster's index topic.
//! - Small partitions are merged into larger ones in the background; the merged entry names
//!   the partitions it replaces, and every reader drops those.
//! - A node that hears a trusted peer announce a sequence it lacks asks that peer for its
//!   manifest after what it has (`/ipfsbench/index-sync/1.0.0`), fetches the partitions of
//!   the tables it syncs with Bitswap, checks each (CID, size, columns, rows) and merges
//!   them. Announcements and partitions of untrusted peers are dropped and counted; a peer
//!   whose partition fails its check is not asked again for a while.
//! - The `results` and `content` views read the live partitions of every trusted node; a
//!   query's answer is cached as Parquet under a key of its text and the CIDs of everything
//!   the views read, so a repeated query over unchanged data is answered from the cache and
//!   a changed input is never answered stale.
//!
//! One actor ([`actor`]) owns the manifests and the views; queries read the engine directly.

mod actor;
mod content;
pub mod schema;
mod spool;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use cid::Cid;
use ipfsbench_protocols::index::Table;
use ipfsbench_sql::{Answer, Cell, Engine, Limits, TableSchema};
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub use content::check_name as check_dataset_name;
use ipfsbench_net::network::Client;
use ipfsbench_store::repo::Repo;
pub use schema::{ResultRow, CONTENT, RESULTS};
use spool::Spool;
pub use spool::MAX_PARTITION_BYTES;

/// How the index runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster's index topic.
    pub topic: String,
    /// Nodes whose partitions are merged (this node always is).
    pub trusted: HashSet<PeerId>,
    /// The tables fetched from peers (a leecher may sync only what it asks for).
    pub sync: Vec<Table>,
    /// Write buffered rows at least this often.
    pub flush_every: Duration,
    /// ... or as soon as this many are buffered.
    pub flush_rows: usize,
    /// Announce the manifest's latest sequence this often.
    pub announce_every: Duration,
    /// List this node's content this often (`None`: never).
    pub content_every: Option<Duration>,
    /// Partitions under this many rows are merged...
    pub compact_rows: u64,
    /// ... once there are this many of them.
    pub compact_after: usize,
    /// The query cache's size, at most, bytes.
    pub cache_bytes: u64,
    /// Each query's limits.
    pub limits: Limits,
    /// How long fetching one partition may take.
    pub fetch_timeout: Duration,
}

impl Config {
    /// The defaults, on `topic`, trusting `trusted`, syncing every table.
    pub fn new(topic: String, trusted: HashSet<PeerId>) -> Self {
        Self {
            topic,
            trusted,
            sync: Table::ALL.to_vec(),
            flush_every: Duration::from_secs(1),
            flush_rows: 65_536,
            announce_every: Duration::from_secs(1),
            content_every: Some(Duration::from_secs(60)),
            compact_rows: 65_536,
            compact_after: 8,
            cache_bytes: 64 << 20,
            limits: Limits::default(),
            fetch_timeout: Duration::from_secs(60),
        }
    }
}

/// Failures of the index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// DuckDB refused or failed.
    #[error(transparent)]
    Sql(#[from] ipfsbench_sql::Error),
    /// A file could not be read or written.
    #[error("index files: {0}")]
    Io(#[from] std::io::Error),
    /// The repo failed.
    #[error("storing a partition: {0}")]
    Repo(#[from] ipfsbench_store::repo::Error),
    /// The network failed.
    #[error(transparent)]
    Network(#[from] ipfsbench_net::network::Error),
    /// A peer's partition failed its check.
    #[error("partition {cid} rejected: {reason}")]
    Rejected {
        /// The partition.
        cid: Cid,
        /// Why.
        reason: String,
    },
    /// A peer broke the protocol (an oversized or malformed manifest).
    #[error("peer {peer}: {reason}")]
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
    /// A dataset could not be read.
    #[error("dataset: {0}")]
    Dataset(String),
    /// Something on disk does not decode.
    #[error("corrupt index file: {0}")]
    Corrupt(String),
    /// The index has stopped.
    #[error("the benchmark database has stopped")]
    Stopped,
}

impl Error {
    /// Whether the caller (their SQL, their file) is at fault: an API answers 400.
    pub fn is_caller_fault(&self) -> bool {
        match self {
            Self::Sql(e) => e.is_caller_fault(),
            Self::Dataset(_) => true,
            _ => false,
        }
    }
}

/// What the index reports of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// Live partitions in the views, by table name.
    pub partitions: BTreeMap<String, u64>,
    /// Rows in them, by table name.
    pub rows: BTreeMap<String, u64>,
    /// Nodes whose partitions are in the views.
    pub nodes: u64,
    /// This node's latest manifest sequence.
    pub latest: u64,
    /// Rows buffered, not yet written.
    pub pending: u64,
    /// Counters.
    pub counters: BTreeMap<String, u64>,
}

/// Counters kept by the index.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rows_written: AtomicU64,
    pub(crate) partitions_written: AtomicU64,
    pub(crate) partitions_compacted: AtomicU64,
    pub(crate) partitions_fetched: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dropped_untrusted: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) manifests_served: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("RowsWritten".into(), get(&self.rows_written)),
            ("PartitionsWritten".into(), get(&self.partitions_written)),
            (
                "PartitionsCompacted".into(),
                get(&self.partitions_compacted),
            ),
            ("PartitionsFetched".into(), get(&self.partitions_fetched)),
            ("BytesFetched".into(), get(&self.bytes_fetched)),
            ("Rejected".into(), get(&self.rejected)),
            ("DroppedUntrusted".into(), get(&self.dropped_untrusted)),
            ("CacheHits".into(), get(&self.cache_hits)),
            ("CacheMisses".into(), get(&self.cache_misses)),
            ("ManifestsServed".into(), get(&self.manifests_served)),
        ])
    }
}

/// What the actor and the callers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The SQL engine, opened at first use (see [`Shared::engine`]).
    engine: OnceLock<Engine>,
    /// What opening the engine takes, and the statements that define the views.
    setup: Mutex<EngineSetup>,
    pub(crate) spool: Spool,
    pub(crate) repo: Arc<Repo>,
    pub(crate) client: Client,
    pub(crate) counters: Counters,
    /// This node's manifest and those of the trusted nodes it synced, read by the
    /// manifest server.
    pub(crate) manifests: RwLock<std::collections::HashMap<PeerId, spool::Manifest>>,
    /// The digest of everything the views read (partitions, loaded tables, datasets).
    pub(crate) inputs: Mutex<BTreeMap<String, String>>,
    pub(crate) cache_bytes: u64,
}

/// What opening the engine takes, and the views to define in it.
#[derive(Debug)]
pub(crate) struct EngineSetup {
    allowed: Vec<std::path::PathBuf>,
    limits: Limits,
    views: Vec<String>,
}

impl Shared {
    /// The SQL engine, opened at the first use with the views as they stand: a node whose
    /// database is not used (an idle one, a leecher that never queries) keeps DuckDB's
    /// pages out of memory.
    pub(crate) fn engine(&self) -> Result<&Engine, Error> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let setup = self.setup.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let engine = Engine::open(&setup.allowed, setup.limits.clone())?;
        for (i, sql) in setup.views.iter().enumerate() {
            engine.define(&format!("view:{i}"), sql)?;
        }
        Ok(self.engine.get_or_init(|| engine))
    }

    /// Sets the statements that define the views, running them now if the engine is open.
    pub(crate) fn define_views(&self, views: Vec<String>) -> Result<(), Error> {
        let mut setup = self.setup.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = self.engine.get() {
            for (i, sql) in views.iter().enumerate() {
                engine.define(&format!("view:{i}"), sql)?;
            }
        }
        setup.views = views;
        Ok(())
    }

    fn inputs_digest(&self) -> [u8; 32] {
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut h = Sha256::new();
        for (k, v) in inputs.iter() {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        h.finalize().into()
    }

    /// Keeps `cid`'s blocks from GC and cache eviction.
    pub(crate) fn keep(&self, cid: &Cid) -> Result<(), Error> {
        self.repo
            .pins()
            .keep(cid)
            .map_err(|e| Error::Corrupt(e.to_string()))
    }

    /// Adds the file `tmp` to the store as one UnixFS file, kept, and moves it to where
    /// `place` says for its CID; returns the CID and the size. `tmp` is gone either way.
    pub(crate) fn store_file(
        &self,
        tmp: &std::path::Path,
        place: impl FnOnce(&Spool, &Cid) -> PathBuf,
    ) -> Result<(Cid, u64), Error> {
        let stored = (|| {
            let added = self.repo.add_path(
                tmp,
                &ipfsbench_store::unixfs::AddOptions::default(),
                false,
                &mut |_| {},
            )?;
            let Some(cid) = added.last().map(|a| a.cid) else {
                return Err(Error::Corrupt(format!(
                    "adding {} gave no root",
                    tmp.display()
                )));
            };
            self.keep(&cid)?;
            let bytes = std::fs::metadata(tmp)?.len();
            std::fs::rename(tmp, place(&self.spool, &cid))?;
            Ok((cid, bytes))
        })();
        if stored.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        stored
    }

    pub(crate) fn set_input(&self, name: &str, version: String) {
        let mut inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        inputs.insert(name.to_string(), version);
    }
}

pub(crate) enum Command {
    Append { table: Table, rows: Vec<Vec<Cell>> },
    Flush(oneshot::Sender<Result<(), Error>>),
    Status(oneshot::Sender<Status>),
    Labels(BTreeMap<Cid, (Option<String>, Option<String>)>),
}

/// The running index: its actor and manifest server.
#[derive(Debug)]
pub struct Index {
    handle: Handle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A cloneable handle to the index.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl Index {
    /// Opens `<repo>/index` and starts the actor, the manifest server and the subscription.
    ///
    /// # Errors
    ///
    /// When the directories cannot be opened. (The engine opens at its first use.)
    pub fn start(repo: Arc<Repo>, client: Client, config: Config) -> Result<Self, Error> {
        let spool = Spool::open(&repo.path().join("index"))?;
        let setup = EngineSetup {
            allowed: spool.allowed(),
            limits: config.limits.clone(),
            views: Vec::new(),
        };
        let shared = Arc::new(Shared {
            engine: OnceLock::new(),
            setup: Mutex::new(setup),
            spool,
            repo,
            client: client.clone(),
            counters: Counters::default(),
            manifests: RwLock::new(std::collections::HashMap::new()),
            inputs: Mutex::new(BTreeMap::new()),
            cache_bytes: config.cache_bytes,
        });
        let (tx, rx) = mpsc::channel(256);
        let handle = Handle {
            commands: tx,
            shared: Arc::clone(&shared),
        };
        let config_topic = config.topic.clone();
        let actor = actor::Actor::open(Arc::clone(&shared), config)?;
        let server = tokio::spawn(sync::serve(Arc::clone(&shared)));
        let topic = config_topic;
        let actor = tokio::spawn(async move {
            match client.subscribe(topic).await {
                Ok(announcements) => actor.run(rx, announcements).await,
                Err(e) => tracing::error!("the benchmark database cannot subscribe: {e}"),
            }
        });
        Ok(Self {
            handle,
            tasks: vec![actor, server],
        })
    }

    /// A handle for callers.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Writes what is buffered, then stops.
    pub async fn shutdown(self) {
        let _ = self.handle.flush().await;
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Handle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.repo.peer_id()
    }

    /// Buffers result rows; they are written at the next flush.
    pub async fn append_results(&self, rows: &[ResultRow]) -> Result<(), Error> {
        let rows = rows.iter().map(ResultRow::cells).collect();
        self.commands
            .send(Command::Append {
                table: Table::Results,
                rows,
            })
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Writes the buffered rows now.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Flush(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// What the index holds.
    pub async fn status(&self) -> Result<Status, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Names and tags of roots (the cluster pinset's), for the `content` rows.
    pub async fn set_labels(
        &self,
        labels: BTreeMap<Cid, (Option<String>, Option<String>)>,
    ) -> Result<(), Error> {
        self.commands
            .send(Command::Labels(labels))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Replaces table `name` with `rows` unless `version` is what it already holds: the
    /// rows are written as a Parquet file and the view `name` reads it.
    pub async fn load_table(
        &self,
        schema: &'static TableSchema,
        version: String,
        rows: impl FnOnce() -> Vec<Vec<Cell>> + Send + 'static,
    ) -> Result<(), Error> {
        let key = format!("table:{}", schema.name);
        let current = {
            let inputs = self.shared.inputs.lock().unwrap_or_else(|e| e.into_inner());
            inputs.get(&key).cloned()
        };
        if current.as_deref() == Some(version.as_str()) {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let batch = schema.batch(&rows())?;
            content::load_table(&shared, schema, &version, batch)?;
            shared.set_input(&key, version);
            Ok(())
        })
        .await
        .map_err(|_| Error::Stopped)?
    }

    /// Answers `sql` (one read-only query) over the views; from the cache when the same
    /// text was answered over the same inputs, unless `cache` is false.
    pub async fn query(&self, sql: String, cache: bool) -> Result<Answer, Error> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || actor::query(&shared, &sql, cache))
            .await
            .map_err(|_| Error::Stopped)?
    }

    /// What `sql` names (tables, functions), from DuckDB's parse tree; nothing is bound.
    ///
    /// # Errors
    ///
    /// When it is not one query that parses.
    pub async fn names(&self, sql: String) -> Result<ipfsbench_sql::Names, Error> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || Ok(shared.engine()?.names(&sql)?))
            .await
            .map_err(|_| Error::Stopped)?
    }

    /// The engine, for the node's own statements (opened now if it was not yet).
    ///
    /// # Errors
    ///
    /// When the engine cannot be opened.
    pub fn engine(&self) -> Result<&Engine, Error> {
        self.shared.engine()
    }

    /// Makes dataset `name` (the Parquet file `cid`) queryable as `datasets."name"`,
    /// fetching it first if it is not here.
    pub async fn mount_dataset(&self, name: &str, cid: Cid) -> Result<(), Error> {
        content::mount_dataset(&self.shared, name, cid).await
    }

    /// Stores the table at `file` (CSV or Parquet, by `format`) as a Parquet UnixFS file,
    /// kept from GC; returns its CID, rows and columns.
    pub async fn import_dataset(
        &self,
        file: PathBuf,
        format: DatasetFormat,
    ) -> Result<Dataset, Error> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || content::import_dataset(&shared, &file, format))
            .await
            .map_err(|_| Error::Stopped)?
    }

    /// A scratch path under the index (for uploads before they are imported).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.shared.spool.scratch(name)
    }

    /// Writes the answer of `sql` over the datasets and views (within the engine's row and
    /// byte limits) as a Parquet file, adds it to the store (kept) and returns its CID and
    /// rows, and whether rows were cut at a limit.
    pub async fn query_to_content(&self, sql: String) -> Result<(Dataset, bool), Error> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || content::query_to_content(&shared, &sql))
            .await
            .map_err(|_| Error::Stopped)?
    }
}

/// A dataset file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// CSV with a header.
    Csv,
    /// Parquet.
    Parquet,
}

/// A stored dataset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dataset {
    /// The Parquet file's CID.
    pub cid: String,
    /// Its rows.
    pub rows: u64,
    /// Its bytes.
    pub bytes: u64,
    /// Its columns and their types.
    pub columns: Vec<(String, String)>,
}
