//! The handle on a running replica, and what it sends the actor of the replica.

use cid::Cid;
use ipfsbench_protocols::state::{DeltaRef, Op};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use super::db::{Db, DbError, Summary};
use super::error::Error;
use super::status::Status;

/// What a [`Handle`] asks of the actor of the replica.
pub(super) enum Command {
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

/// A handle on a running [`Replica`](super::replica::Replica): writes go through its actor,
/// reads straight to the database.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) tx: mpsc::Sender<Command>,
    db: Db,
    me: PeerId,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl Handle {
    /// A handle on the actor listening on `tx`, reading `db`, writing as `me`.
    pub(super) fn new(
        tx: mpsc::Sender<Command>,
        db: Db,
        me: PeerId,
        changes: tokio::sync::watch::Receiver<u64>,
    ) -> Self {
        Self {
            tx,
            db,
            me,
            changes,
        }
    }

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
