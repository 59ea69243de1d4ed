//! The replicated cluster state: a Merkle-CRDT of keys and values that every node of the
//! cluster holds, converging after partitions.
//!
//! A local change becomes a delta, a DAG-CBOR block linked to the heads it was made on
//! ([`ipfsbench_protocols::state`]); the node stores it, applies it and announces its new
//! heads on the cluster's state topic. A node that hears of a head it lacks fetches it with
//! Bitswap, walks back through its parents to what it has, and applies the deltas in causal
//! order. Concurrent writes to one key resolve by the higher (stamp, writer) pair, stamps
//! from a hybrid logical clock ([`clock`]), so every node picks the same winner.
//!
//! Compaction: a node periodically writes a snapshot (the whole state as blocks, with the
//! version vector it covers) and lets go of the deltas the previous snapshot covered. A node
//! far behind starts from a peer's snapshot instead of walking its history. Tombstones are
//! dropped once they are older than every trusted writer's promise (each announcement says
//! "none of my later deltas carries an older stamp"), so no late delta can bring a removed
//! key back.
//!
//! Only deltas of trusted writers are applied; others are counted and dropped. The one
//! [`Replica`] actor owns the state; reads go straight to the database.

pub mod clock;
pub mod db;
mod replica;
mod snapshots;
#[cfg(test)]
mod swarm_tests;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use cid::Cid;
use ipfsbench_protocols::state::{DeltaRef, StateError};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

pub use db::{Db, DbError, Summary, Version};
pub use ipfsbench_protocols::state::Op;
pub use replica::Replica;

/// How the replica runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster's state topic.
    pub topic: String,
    /// Writers whose deltas are applied (this node always is).
    pub trusted: HashSet<PeerId>,
    /// Announce the heads at least this often, changed or not.
    pub announce_every: Duration,
    /// Write a snapshot once this many deltas were applied since the last one (0: never on
    /// its own; on demand only).
    pub snapshot_every: u64,
    /// How long one delta or snapshot block may take to fetch.
    pub fetch_timeout: Duration,
    /// Deltas fetched but not yet applicable, at most.
    pub max_pending: usize,
    /// Behind a peer by more than this many deltas, start from its snapshot.
    pub catch_up_from_snapshot: u64,
}

impl Config {
    /// The defaults, on `topic`, trusting `trusted`.
    pub fn new(topic: String, trusted: HashSet<PeerId>) -> Self {
        Self {
            topic,
            trusted,
            announce_every: Duration::from_secs(5),
            snapshot_every: 1_000,
            fetch_timeout: Duration::from_secs(10),
            max_pending: 65_536,
            catch_up_from_snapshot: 256,
        }
    }
}

/// Failures of the replicated state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The block store failed.
    #[error("storing a state block: {0}")]
    Store(#[from] ipfsbench_store::store::Error),
    /// Keeping a block from GC failed.
    #[error("keeping a state block: {0}")]
    Keep(#[from] ipfsbench_store::store::pins::Error),
    /// A change breaks a limit (key or value too long, too many).
    #[error("invalid change: {0}")]
    Invalid(#[from] StateError),
    /// The network failed.
    #[error(transparent)]
    Network(#[from] ipfsbench_net::network::Error),
    /// A snapshot could not be fetched or read.
    #[error("snapshot {cid}: {reason}")]
    Snapshot {
        /// Its root.
        cid: Cid,
        /// What went wrong.
        reason: String,
    },
    /// The delta carrying this write (and others batched with it) failed.
    #[error("committing the change: {0}")]
    Commit(std::sync::Arc<Error>),
    /// The replica has stopped.
    #[error("the replicated state has stopped")]
    Stopped,
}

/// What the replica reports of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// Live keys.
    pub live: u64,
    /// Tombstones kept.
    pub tombstones: u64,
    /// The live state's digest, hex.
    pub digest: String,
    /// Heads, as `<cid>` strings.
    pub heads: Vec<String>,
    /// The highest DAG height among the heads.
    pub height: u64,
    /// Writers known, with their highest applied sequence.
    pub writers: Vec<(String, u64)>,
    /// Deltas fetched and waiting for their parents.
    pub pending: usize,
    /// Blocks being fetched.
    pub fetching: usize,
    /// Deltas applied since start.
    pub applied: u64,
    /// Deltas written here since start.
    pub written: u64,
    /// Announcements and deltas of untrusted peers dropped.
    pub dropped_untrusted: u64,
    /// Deltas that broke a rule, dropped.
    pub invalid: u64,
    /// Fetches that failed or timed out.
    pub fetch_failures: u64,
    /// The newest snapshot this node has, if any.
    pub snapshot: Option<String>,
    /// Snapshots loaded from peers.
    pub snapshots_loaded: u64,
    /// Tombstones dropped by compaction since start.
    pub tombstones_collected: u64,
    /// The furthest any trusted writer is known to be ahead of this node: deltas.
    pub lag: u64,
}

enum Command {
    Write {
        ops: Vec<Op>,
        reply: oneshot::Sender<Result<DeltaRef, Error>>,
    },
    Status {
        reply: oneshot::Sender<Result<Status, Error>>,
    },
    Snapshot {
        reply: oneshot::Sender<Result<Cid, Error>>,
    },
    Stop,
}

/// A handle on a running [`Replica`]: writes go through its actor, reads straight to the
/// database.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    db: Db,
    me: PeerId,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Write { .. } => "Write",
            Command::Status { .. } => "Status",
            Command::Snapshot { .. } => "Snapshot",
            Command::Stop => "Stop",
        })
    }
}

impl Handle {
    /// This node's PeerId: the writer of its deltas.
    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// Applies `ops` as one change (batched with others made at the same moment) and
    /// announces it; returns the delta that carries it once it is durable here.
    pub async fn write(&self, ops: Vec<Op>) -> Result<DeltaRef, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Write { ops, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<DeltaRef, Error> {
        self.write(vec![Op {
            key,
            value: Some(value),
        }])
        .await
    }

    /// Removes `key`.
    pub async fn remove(&self, key: Vec<u8>) -> Result<DeltaRef, Error> {
        self.write(vec![Op { key, value: None }]).await
    }

    /// A counter that moves whenever the state changes (a delta applied or written, a
    /// snapshot merged): wait on it to react to changes.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get(key)?)
    }

    /// The live entries under `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), DbError>> {
        self.db.scan(prefix)
    }

    /// The live state's digest and counts.
    pub fn summary(&self) -> Result<Summary, Error> {
        Ok(self.db.summary()?)
    }

    /// What the replica reports of itself.
    pub async fn status(&self) -> Result<Status, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Status { reply })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Writes a snapshot now; its root.
    pub async fn snapshot(&self) -> Result<Cid, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Snapshot { reply })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
