//! What the loop owns, made with the channels it reads besides gossip and the API's calls.

use std::sync::Arc;

use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::state::Handle as StateHandle;
use ipfsbench_protocols::task::{Message, Outcome, TaskId};
use tokio::sync::mpsc;

use crate::cluster::{Counters, Peers};
use crate::master::gossip::Refusals;
use crate::master::lead::Leadership;
use crate::master::{Master, TaskRecord};
use crate::service::command::Reply;
use crate::service::replicate::Replicator;
use crate::service::views::{Error, Submitted};
use crate::settings::Settings;
use crate::submitter::Submitter;
use crate::system;
use crate::worker::{Attempts, Runner};

/// Attempt outcomes and worker messages waiting for the loop, at most.
const INTERNAL_QUEUE: usize = 1024;

/// A reply held until the master's changes are durable.
pub(super) enum Ack {
    Submitted(Reply<Submitted>, Result<Submitted, Error>),
    Record(Reply<TaskRecord>, Result<TaskRecord, Error>),
}

/// What the loop owns.
pub(in crate::service) struct Actor {
    pub(super) me: PeerId,
    pub(super) repo: Arc<Repo>,
    pub(super) client: Client,
    pub(super) settings: Settings,
    pub(super) master: Option<Master>,
    pub(super) peers: Peers,
    pub(super) counters: Counters,
    pub(super) attempts: Attempts,
    pub(super) runner: Arc<Runner>,
    pub(super) submitter: Submitter,
    pub(super) done_tx: mpsc::Sender<(TaskId, u32, Outcome)>,
    pub(super) out_tx: mpsc::Sender<Message>,
    /// Messages to publish at the end of the turn.
    pub(super) outbox: Vec<Message>,
    pub(super) acks: Vec<Ack>,
    /// The master's table changed this turn and must be flushed.
    pub(super) dirty: bool,
    /// The pace of refusals of submissions (masters).
    pub(super) refusals: Refusals,
    pub(super) seq: u64,
    /// The replicated cluster state, and its change counter as this loop last saw it.
    pub(super) state: Option<StateHandle>,
    pub(super) state_seen: Option<tokio::sync::watch::Receiver<u64>>,
    pub(super) replicator: Option<Replicator>,
    /// Which master schedules (masters).
    pub(super) lead: Option<Leadership>,
    /// The leader last heard, its epoch first (workers).
    pub(super) leader_seen: Option<(u64, PeerId)>,
    /// A master that just took over assigns nothing before this: workers tell it first what
    /// they run. Unix ms.
    pub(super) hold_until_ms: u64,
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
        master: Option<Master>,
        state: Option<StateHandle>,
        index: Option<ipfsbench_core::index::Handle>,
    ) -> (Self, Inputs) {
        let me = repo.peer_id();
        let is_master = master.is_some();
        let runner = Arc::new(Runner {
            repo: Arc::clone(&repo),
            client: client.clone(),
            peer: me,
            hardware: system::hardware(),
            programs: settings.programs.clone(),
            output_cap: settings.output_cap,
            default_timeout: settings.default_timeout,
            index,
            machine: crate::worker::Hardware::probe(),
            cluster: settings.cluster.clone(),
            sql_lock: tokio::sync::Mutex::new(()),
        });
        let (done_tx, done) = mpsc::channel(INTERNAL_QUEUE);
        let (out_tx, out) = mpsc::channel(INTERNAL_QUEUE);
        let actor = Self {
            me,
            repo,
            client,
            attempts: Attempts::new(settings.max_concurrent, settings.heartbeat),
            settings,
            master,
            peers: Peers::default(),
            counters: Counters::default(),
            runner,
            submitter: Submitter::default(),
            done_tx,
            out_tx,
            outbox: Vec::new(),
            acks: Vec::new(),
            dirty: false,
            refusals: Refusals::default(),
            seq: 0,
            state_seen: state.as_ref().map(StateHandle::changes),
            // Only masters write to the state from here (their table).
            replicator: state.clone().filter(|_| is_master).map(Replicator::start),
            state,
            lead: None,
            leader_seen: None,
            hold_until_ms: 0,
        };
        (actor, Inputs { done, out })
    }
}
