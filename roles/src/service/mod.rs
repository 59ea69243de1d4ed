//! The role service: one task per node that owns the role's state (the master's task table,
//! the worker's attempts, the submitter's waiters, the cluster's peer table), fed by the
//! cluster's gossipsub topics, timers and the API's calls over a bounded channel.
//!
//! Each turn of its loop takes one input and then whatever else is ready (up to a batch),
//! applies them, makes the master's changes durable with one flush, and only then answers
//! callers and publishes what was decided: a group commit (see [`actor`]).
//!
//! The API talks to it through a [`Handle`], whose typed methods are the service's only
//! entry points.

mod actor;
mod replicate;
mod views;

use crate::service;
use std::sync::Arc;
use std::time::Duration;

use ipfsbench_core::network::Client;
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::task::{Spec, TaskId};
use tokio::sync::{mpsc, oneshot};

pub use views::{CapacityView, Error, Finished, MasterView, PeerView, Stats, Submitted};

use crate::master::{Master, State, TaskRecord};
use crate::settings::Settings;

/// Calls from the API waiting at most.
const COMMAND_QUEUE: usize = 1024;

/// Where the service answers a call.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, service::Error>>;

/// Calls from the API.
#[derive(Debug)]
pub(crate) enum Command {
    Submit {
        key: String,
        spec: Spec,
        reply: Reply<Submitted>,
    },
    Wait {
        id: TaskId,
        reply: Reply<Finished>,
    },
    Status {
        id: TaskId,
        reply: Reply<TaskRecord>,
    },
    List {
        state: Option<State>,
        after: Option<u64>,
        limit: usize,
        reply: Reply<(Vec<TaskRecord>, Option<u64>)>,
    },
    Cancel {
        id: TaskId,
        reply: Reply<TaskRecord>,
    },
    Peers {
        reply: Reply<Vec<PeerView>>,
    },
    Stats {
        reply: Reply<Stats>,
    },
    Master {
        reply: Reply<MasterView>,
    },
}

/// The running service.
#[derive(Debug)]
pub struct Service {
    commands: mpsc::Sender<Command>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The cloneable handle the API uses.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
}

impl Handle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, service::Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| service::Error::Stopped)?;
        rx.await.map_err(|_| service::Error::Stopped)?
    }

    /// Submits a task under the idempotency `key`: on a master it enters the table, on other
    /// nodes it is published to the masters.
    pub async fn submit(&self, key: String, spec: Spec) -> Result<Submitted, service::Error> {
        self.call(|reply| Command::Submit { key, spec, reply })
            .await
    }

    /// Waits until the task is over.
    pub async fn wait(&self, id: TaskId) -> Result<Finished, service::Error> {
        self.call(|reply| Command::Wait { id, reply }).await
    }

    /// The task's record (masters).
    pub async fn status(&self, id: TaskId) -> Result<TaskRecord, service::Error> {
        self.call(|reply| Command::Status { id, reply }).await
    }

    /// A page of `limit` records after submission number `after`, in submission order, and
    /// the cursor of the next page (masters).
    pub async fn list(
        &self,
        state: Option<State>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<TaskRecord>, Option<u64>), service::Error> {
        self.call(|reply| Command::List {
            state,
            after,
            limit,
            reply,
        })
        .await
    }

    /// Cancels the task (masters).
    pub async fn cancel(&self, id: TaskId) -> Result<TaskRecord, service::Error> {
        self.call(|reply| Command::Cancel { id, reply }).await
    }

    /// The nodes heard from.
    pub async fn peers(&self) -> Result<Vec<PeerView>, service::Error> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// Which master schedules, as this node knows it.
    pub async fn master(&self) -> Result<MasterView, service::Error> {
        self.call(|reply| Command::Master { reply }).await
    }

    /// This node's counters.
    pub async fn stats(&self) -> Result<Stats, service::Error> {
        self.call(|reply| Command::Stats { reply }).await
    }
}

impl Service {
    /// Starts the service for a node whose repo and host are running. `master` is the opened
    /// task table, required for (and only for) masters; `state` the replicated cluster state,
    /// where the table is replicated and read by every node.
    pub fn start(
        repo: Arc<Repo>,
        client: Client,
        settings: Settings,
        master: Option<Master>,
        state: Option<ipfsbench_core::state::Handle>,
        index: Option<ipfsbench_core::index::Handle>,
    ) -> Self {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let (stop, stopped) = oneshot::channel();
        let (actor, inputs) = actor::Actor::new(repo, client, settings, master, state, index);
        let task = tokio::spawn(actor.run(inputs, rx, stopped));
        Self {
            commands,
            stop,
            task,
        }
    }

    /// A handle for the API.
    pub fn handle(&self) -> Handle {
        Handle {
            commands: self.commands.clone(),
        }
    }

    /// Stops the service: running attempts are dropped (their programs killed), the master's
    /// table flushed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}
