//! What the loop owns, made with the channels it reads besides gossip and the API's calls.

use std::sync::Arc;

use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::state::Handle as StateHandle;
use ipfsbench_protocols::task::{Message, Outcome, TaskId};
use ipfsbench_protocols::Role;
use tokio::sync::mpsc;

use crate::cluster::Peers;
use crate::master::{self, Master, TaskRecord};
use crate::service::command::Reply;
use crate::service::views::{Error, Submitted};
use crate::settings::Settings;
use crate::submitter::Submitter;
use crate::turn::Turn;
use crate::{clock, system, worker};

/// Attempt outcomes and worker messages waiting for the loop, at most.
const INTERNAL_QUEUE: usize = 1024;

/// A reply held until the master's changes are durable.
pub(super) enum Ack {
    Submitted(Reply<Submitted>, Result<Submitted, Error>),
    Record(Reply<TaskRecord>, Result<TaskRecord, Error>),
}

/// What the loop owns: what every node keeps, and the part of its role (a master's table
/// and leadership, a worker's attempts), which the loop hands the inputs they concern.
pub(in crate::service) struct Actor {
    pub(super) me: PeerId,
    pub(super) repo: Arc<Repo>,
    pub(super) client: Client,
    pub(super) settings: Settings,
    pub(super) peers: Peers,
    /// What this turn publishes and whether the table must be flushed; the counters.
    pub(super) turn: Turn,
    pub(super) acks: Vec<Ack>,
    pub(super) submitter: Submitter,
    pub(super) seq: u64,
    /// The machine as heartbeats describe it.
    pub(super) hardware: String,
    /// The replicated cluster state, where every node reads the task table.
    pub(super) state: Option<StateHandle>,
    /// On a master: its table and leadership.
    pub(super) master: Option<master::duty::Duty>,
    /// On a worker: its attempts.
    pub(super) worker: Option<worker::Duty>,
}

/// The receiving ends of the loop's internal channels, made with it. (Gossip it subscribes
/// to itself.)
pub(in crate::service) struct Inputs {
    pub(super) done: mpsc::Receiver<(TaskId, u32, Outcome)>,
    pub(super) out: mpsc::Receiver<Message>,
}

impl Actor {
    /// The loop of the node whose repo and host these are, and the receiving ends of its
    /// internal channels.
    pub(in crate::service) fn new(
        repo: Arc<Repo>,
        client: Client,
        settings: Settings,
        table: Option<Master>,
        state: Option<StateHandle>,
        index: Option<ipfsbench_core::index::Handle>,
    ) -> (Self, Inputs) {
        let me = repo.peer_id();
        let hardware = system::hardware();
        let (done_tx, done) = mpsc::channel(INTERNAL_QUEUE);
        let (out_tx, out) = mpsc::channel(INTERNAL_QUEUE);
        let master = table
            .map(|t| master::duty::Duty::new(me, t, &settings, state.clone(), clock::now_ms()));
        let worker = (settings.role == Role::Worker).then(|| {
            let parts = worker::Parts {
                repo: Arc::clone(&repo),
                client: client.clone(),
                hardware: hardware.clone(),
                index,
                done_tx,
                out_tx,
            };
            worker::Duty::new(&settings, parts)
        });
        let actor = Self {
            me,
            repo,
            client,
            settings,
            peers: Peers::default(),
            turn: Turn::default(),
            acks: Vec::new(),
            submitter: Submitter::default(),
            seq: 0,
            hardware,
            state,
            master,
            worker,
        };
        (actor, Inputs { done, out })
    }
}
