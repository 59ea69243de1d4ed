//! The handle the API calls the service through: one typed method per call.

use ipfsbench_protocols::task::{Spec, TaskId};
use tokio::sync::{mpsc, oneshot};

use super::command::{Command, Reply};
use super::views::{Error, Finished, MasterView, PeerView, Stats, Submitted};
use crate::master::{State, TaskRecord};

/// The cloneable handle the API uses.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) members: crate::membership::members::Members,
}

impl Handle {
    /// The cluster's members as this node knows them, and what it dropped from others.
    pub fn members(&self) -> &crate::membership::members::Members {
        &self.members
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Submits a task under the idempotency `key`: on a master it enters the table, on other
    /// nodes it is published to the masters.
    pub async fn submit(&self, key: String, spec: Spec) -> Result<Submitted, Error> {
        self.call(|reply| Command::Submit { key, spec, reply })
            .await
    }

    /// Waits until the task is over.
    pub async fn wait(&self, id: TaskId) -> Result<Finished, Error> {
        self.call(|reply| Command::Wait { id, reply }).await
    }

    /// The task's record (masters).
    pub async fn status(&self, id: TaskId) -> Result<TaskRecord, Error> {
        self.call(|reply| Command::Status { id, reply }).await
    }

    /// A page of `limit` records after submission number `after`, in submission order, and
    /// the cursor of the next page (masters).
    pub async fn list(
        &self,
        state: Option<State>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<TaskRecord>, Option<u64>), Error> {
        self.call(|reply| Command::List {
            state,
            after,
            limit,
            reply,
        })
        .await
    }

    /// Cancels the task (masters).
    pub async fn cancel(&self, id: TaskId) -> Result<TaskRecord, Error> {
        self.call(|reply| Command::Cancel { id, reply }).await
    }

    /// The nodes heard from.
    pub async fn peers(&self) -> Result<Vec<PeerView>, Error> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// Which master schedules, as this node knows it.
    pub async fn master(&self) -> Result<MasterView, Error> {
        self.call(|reply| Command::Master { reply }).await
    }

    /// This node's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call(|reply| Command::Stats { reply }).await
    }
}
