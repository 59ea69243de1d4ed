//! The service as a node runs it: started on the node's repo and host, stopped with it.

use std::sync::Arc;
use std::time::Duration;

use ipfsbench_core::network::Client;
use ipfsbench_core::repo::Repo;
use tokio::sync::{mpsc, oneshot};

use super::actor::Actor;
use super::command::Command;
use super::handle::Handle;
use crate::master::Master;
use crate::settings::Settings;

/// Calls from the API waiting at most.
const COMMAND_QUEUE: usize = 1024;

/// The running service.
#[derive(Debug)]
pub struct Service {
    commands: mpsc::Sender<Command>,
    members: crate::membership::members::Members,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
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
        let members = settings.members.clone();
        let (actor, inputs) = Actor::new(repo, client, settings, master, state, index);
        let task = tokio::spawn(actor.run(inputs, rx, stopped));
        Self {
            commands,
            members,
            stop,
            task,
        }
    }

    /// A handle for the API.
    pub fn handle(&self) -> Handle {
        Handle {
            commands: self.commands.clone(),
            members: self.members.clone(),
        }
    }

    /// Stops the service: running attempts are dropped (their programs killed), the master's
    /// table flushed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}
