//! The running index and the handle its callers hold.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cid::Cid;
use ipfsbench_net::network::Client;
use ipfsbench_protocols::index::Table;
use ipfsbench_sql::{Answer, Cell, Engine, TableSchema};
use ipfsbench_store::repo::Repo;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use super::command::Command;
use super::config::Config;
use super::dataset::{Dataset, DatasetFormat};
use super::error::Error;
use super::shared::Shared;
use super::spool::Spool;
use super::status::Status;
use super::{actor, content, sync};

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
    pub(super) shared: Arc<Shared>,
}

impl Index {
    /// Opens `<repo>/index` and starts the actor, the manifest server and the subscription.
    ///
    /// # Errors
    ///
    /// When the directories cannot be opened. (The engine opens at its first use.)
    pub fn start(repo: Arc<Repo>, client: Client, config: Config) -> Result<Self, Error> {
        config.check_results()?;
        let spool = Spool::open(&repo.path().join("index"), config.results)?;
        let shared = Arc::new(Shared::new(
            spool,
            repo,
            client.clone(),
            config.limits.clone(),
            config.cache_bytes,
        ));
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

    /// Buffers result rows, each its cells in the order of the `results` schema the index
    /// was started with; they are written at the next flush.
    pub async fn append_results(&self, rows: Vec<Vec<Cell>>) -> Result<(), Error> {
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
