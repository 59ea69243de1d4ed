//! The role service: one task per node that owns the role's state (the master's task table,
//! the worker's running attempts, the cluster's peer table), fed by the cluster's gossipsub
//! topics, a timer and the API's commands over a bounded channel.
//!
//! Each turn of its loop takes one input and then whatever else is ready (up to
//! [`BATCH`]), applies them, makes the master's changes durable with one flush, and only then
//! answers submitters and publishes what was decided: a group commit.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipfsbench_core::config::TasksConfig;
use ipfsbench_core::network::{Client, PeerId, PubsubMessage};
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::task::{
    self, Cancel, Capacity, Claim, Heartbeat, Message, Outcome, Repeat, Report, Spec, Submit,
    TaskId, Topic,
};
use ipfsbench_protocols::Role;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::{Counters, Peers};
use crate::master::{Master, MasterConfig, MasterError, State, TaskRecord};
use crate::worker::Runner;
use crate::{now_ms, system};

/// Inputs taken in one turn, at most.
const BATCH: usize = 256;
/// Commands from the API waiting at most.
const COMMAND_QUEUE: usize = 1024;
/// Task messages buffered per topic between the host and the service.
const GOSSIP_QUEUE: usize = 8192;
/// Callers waiting for tasks to finish, at most.
pub const MAX_WAITERS: usize = 10_000;
/// How often the master looks at leases and the queue without other cause. Milliseconds.
const SCHEDULE_TICK_MS: u64 = 50;
/// Reports a worker keeps until a master acknowledges them; past it, new ones are sent once.
const MAX_UNACKED: usize = 4096;
/// How many times a worker repeats a report before it gives up on it.
const MAX_REPEATS: u32 = 30;
/// The shortest wait before a report is repeated. Milliseconds.
const MIN_REPEAT_MS: u64 = 2000;

/// The role service's settings, checked and typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's role.
    pub role: Role,
    /// The cluster name.
    pub cluster: String,
    /// Masters whose assignments this worker runs.
    pub trusted_masters: HashSet<PeerId>,
    /// Peers this master takes submissions from over pubsub.
    pub submitters: HashSet<PeerId>,
    /// Workers this master uses; empty means any peer announcing itself as a worker.
    pub trusted_workers: HashSet<PeerId>,
    /// Attempts run at once (workers).
    pub max_concurrent: u16,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Scheduling settings (masters).
    pub master: MasterConfig,
    /// The longest one attempt may run.
    pub default_timeout: Duration,
    /// Programs `exec` may run: name to path.
    pub programs: std::collections::BTreeMap<String, PathBuf>,
    /// The most bytes an `exec` task may write.
    pub output_cap: u64,
}

/// A configuration the service cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A PeerId in the configuration does not parse.
    #[error("tasks.{field}: {value:?} is not a PeerId")]
    BadPeer {
        /// The config key.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// The cluster name is not usable in a topic.
    #[error("tasks.cluster: {0:?} must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
    BadCluster(String),
    /// An `exec` program is not an absolute path.
    #[error("tasks.exec_programs.{name}: {path:?} must be an absolute path")]
    BadProgram {
        /// The program's name.
        name: String,
        /// Its path.
        path: String,
    },
    /// A duration of zero.
    #[error("tasks.{0} must be greater than 0")]
    Zero(&'static str),
}

impl Settings {
    /// Checks `config` for a node of `role`.
    pub fn new(role: Role, config: &TasksConfig) -> Result<Self, SettingsError> {
        let peers = |field: &'static str, list: &[String]| {
            list.iter()
                .map(|v| {
                    v.parse::<PeerId>().map_err(|_| SettingsError::BadPeer {
                        field,
                        value: v.clone(),
                    })
                })
                .collect::<Result<HashSet<_>, _>>()
        };
        if !task::valid_cluster_name(&config.cluster) {
            return Err(SettingsError::BadCluster(config.cluster.clone()));
        }
        for (field, value) in [
            ("heartbeat_ms", config.heartbeat_ms),
            ("lease_ms", config.lease_ms),
            ("timeout_secs", u64::from(config.timeout_secs)),
        ] {
            if value == 0 {
                return Err(SettingsError::Zero(field));
            }
        }
        let mut programs = std::collections::BTreeMap::new();
        for (name, path) in &config.exec_programs {
            let p = PathBuf::from(path);
            if !p.is_absolute() {
                return Err(SettingsError::BadProgram {
                    name: name.clone(),
                    path: path.clone(),
                });
            }
            programs.insert(name.clone(), p);
        }
        let max_concurrent = match config.max_concurrent_tasks {
            0 => system::cores(),
            n => n,
        };
        Ok(Self {
            role,
            cluster: config.cluster.clone(),
            trusted_masters: peers("trusted_masters", &config.trusted_masters)?,
            submitters: peers("submitters", &config.submitters)?,
            trusted_workers: peers("trusted_workers", &config.trusted_workers)?,
            max_concurrent,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            master: MasterConfig {
                lease_ms: config.lease_ms,
                max_attempts: config.max_attempts.max(1),
                backoff_base_ms: config.backoff_base_ms,
                backoff_max_ms: config.backoff_max_ms.max(config.backoff_base_ms),
                worker_silence_ms: (3 * config.heartbeat_ms).max(1000),
                table_cache_bytes: config.table_cache_bytes,
            },
            default_timeout: Duration::from_secs(u64::from(config.timeout_secs)),
            programs,
            output_cap: config.exec_output_max_bytes,
        })
    }
}

/// How a task ended, as a waiting submitter learns it.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The task.
    pub id: TaskId,
    /// Its final state.
    pub state: State,
    /// The result record's CID, when it succeeded.
    pub result: Option<String>,
    /// The last error, when it did not.
    pub error: Option<String>,
}

impl From<&TaskRecord> for Finished {
    fn from(r: &TaskRecord) -> Self {
        Self {
            id: r.id.parse().unwrap_or(TaskId([0; 16])),
            state: r.state,
            result: r.result.clone(),
            error: r.last_error.clone(),
        }
    }
}

/// A submission's answer: the task's id, whether it is new, and its record when this node is
/// the master.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The task id.
    pub id: TaskId,
    /// False when the same key was submitted before.
    pub new: bool,
    /// The record (masters only).
    pub record: Option<TaskRecord>,
}

/// A node of the cluster as `cluster peers` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerView {
    /// Its PeerId.
    pub peer: String,
    /// Its role.
    pub role: Role,
    /// Whether it is this node.
    pub this_node: bool,
    /// Its capacity as last announced.
    pub capacity: CapacityView,
    /// Attempts it runs.
    pub running: usize,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms_ago: u64,
}

/// A capacity, for JSON.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapacityView {
    /// CPU cores.
    pub cores: u16,
    /// Total memory. Bytes.
    pub memory_total_bytes: u64,
    /// Available memory. Bytes.
    pub memory_available_bytes: u64,
    /// Free space of the store. Bytes.
    pub store_free_bytes: u64,
    /// The most attempts it runs at once.
    pub max_concurrent: u16,
    /// CPU and platform.
    pub hardware: String,
    /// Programs `exec` may run there.
    pub programs: Vec<String>,
}

impl From<&Capacity> for CapacityView {
    fn from(c: &Capacity) -> Self {
        Self {
            cores: c.cores,
            memory_total_bytes: c.memory_total_bytes,
            memory_available_bytes: c.memory_available_bytes,
            store_free_bytes: c.store_free_bytes,
            max_concurrent: c.max_concurrent,
            hardware: c.hardware.clone(),
            programs: c.programs.clone(),
        }
    }
}

/// Counters of this node, with the host's count of rejected gossip.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    /// This node's role.
    pub role: Role,
    /// Task message counters.
    pub messages: Counters,
    /// Gossip on task topics the host rejected before it reached the service (did not decode
    /// or broke a limit).
    pub rejected_by_host: u64,
    /// Gossip this node's subscribers had no room for: dropped.
    pub lagged: u64,
    /// Peers the host disconnected for relaying invalid task messages.
    pub cut_off_peers: u64,
    /// Attempts running here.
    pub running: usize,
    /// Unfinished tasks by state (masters).
    pub tasks: HashMap<String, usize>,
}

/// What the service can fail at, as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request this node's role does not serve.
    #[error("{0}")]
    WrongRole(String),
    /// A refused request.
    #[error("{0}")]
    Refused(String),
    /// No such task.
    #[error("no task {0}")]
    NotFound(TaskId),
    /// The master's database failed.
    #[error(transparent)]
    Master(MasterError),
    /// The network failed.
    #[error("network: {0}")]
    Network(String),
    /// The service has stopped.
    #[error("the role service has stopped")]
    Stopped,
}

impl From<MasterError> for ServiceError {
    fn from(e: MasterError) -> Self {
        match e {
            MasterError::Refused(m) => ServiceError::Refused(m),
            MasterError::NoSuchTask(id) => ServiceError::NotFound(id),
            other => ServiceError::Master(other),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, ServiceError>>;

/// Requests from the API.
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
}

/// A handle to the running service.
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
    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ServiceError::Stopped)?;
        rx.await.map_err(|_| ServiceError::Stopped)?
    }
}

impl Service {
    /// Starts the service for a node whose repo and host are running. `master` is the opened
    /// task table, required for (and only for) masters.
    pub fn start(
        repo: Arc<Repo>,
        client: Client,
        settings: Settings,
        master: Option<Master>,
    ) -> Self {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let (stop, stopped) = oneshot::channel();
        let me = repo.peer_id();
        let runner = Arc::new(Runner {
            repo: Arc::clone(&repo),
            client: client.clone(),
            peer: me,
            hardware: system::hardware(),
            programs: settings.programs.clone(),
            output_cap: settings.output_cap,
            default_timeout: settings.default_timeout,
        });
        let (done_tx, done_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel(1024);
        let actor = Actor {
            me,
            repo,
            client,
            settings,
            master,
            peers: Peers::default(),
            counters: Counters::default(),
            running: HashMap::new(),
            taken: crate::assignments::Taken::default(),
            unacked: HashMap::new(),
            runner,
            done_tx,
            out_tx,
            waiters: HashMap::new(),
            n_waiters: 0,
            outbox: Vec::new(),
            acks: Vec::new(),
            sends: Vec::new(),
            dirty: false,
            seq: 0,
        };
        let task = tokio::spawn(actor.run(rx, done_rx, out_rx, stopped));
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

/// An attempt running here.
#[derive(Debug)]
struct Running {
    attempt: u32,
    started_ms: u64,
    abort: tokio::task::AbortHandle,
}

/// A reply held until the master's changes are durable.
enum Ack {
    Submitted(Reply<Submitted>, Result<Submitted, ServiceError>),
    Record(Reply<TaskRecord>, Result<TaskRecord, ServiceError>),
}

struct Actor {
    me: PeerId,
    repo: Arc<Repo>,
    client: Client,
    settings: Settings,
    master: Option<Master>,
    peers: Peers,
    counters: Counters,
    running: HashMap<TaskId, Running>,
    /// Assignments this worker took, so a replayed one runs nothing.
    taken: crate::assignments::Taken,
    runner: Arc<Runner>,
    done_tx: mpsc::Sender<(TaskId, u32, Outcome)>,
    out_tx: mpsc::Sender<Message>,
    waiters: HashMap<TaskId, Vec<Reply<Finished>>>,
    n_waiters: usize,
    /// A worker's reports that no master has acknowledged yet (by the task's outcome, or by
    /// cancelling the attempt). They are repeated, so that a report sent while the master was
    /// down still arrives once it is back.
    unacked: HashMap<TaskId, Unacked>,
    outbox: Vec<Message>,
    acks: Vec<Ack>,
    sends: Vec<(Reply<Submitted>, Submitted, Message)>,
    dirty: bool,
    seq: u64,
}

/// A report waiting for its acknowledgement.
struct Unacked {
    report: Report,
    sent_ms: u64,
    repeats: u32,
}

/// One input of the loop.
enum Input {
    Gossip(PubsubMessage),
    Command(Command),
    Done(TaskId, u32, Outcome),
    Out(Message),
    Heartbeat,
    Tick,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut done: mpsc::Receiver<(TaskId, u32, Outcome)>,
        mut out: mpsc::Receiver<Message>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut gossip = match self.subscribe().await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::error!(error = %e, "role service cannot subscribe to its topics");
                return;
            }
        };
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_millis(SCHEDULE_TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                _ = &mut stopped => break,
                Some(m) = gossip.recv() => Input::Gossip(m),
                Some(c) = commands.recv() => Input::Command(c),
                Some((t, a, o)) = done.recv() => Input::Done(t, a, o),
                Some(m) = out.recv() => Input::Out(m),
                _ = heartbeat.tick() => Input::Heartbeat,
                _ = tick.tick() => Input::Tick,
            };
            self.handle(first);
            for _ in 0..BATCH {
                let next = if let Ok(m) = gossip.try_recv() {
                    Input::Gossip(m)
                } else if let Ok(c) = commands.try_recv() {
                    Input::Command(c)
                } else if let Ok((t, a, o)) = done.try_recv() {
                    Input::Done(t, a, o)
                } else if let Ok(m) = out.try_recv() {
                    Input::Out(m)
                } else {
                    break;
                };
                self.handle(next);
            }
            self.schedule();
            self.commit().await;
        }
        for (_, r) in self.running.drain() {
            r.abort.abort();
        }
        if let Some(master) = &self.master {
            if let Err(e) = master.flush().await {
                tracing::error!(error = %e, "flushing the task table");
            }
        }
    }

    /// Subscribes to every cluster topic, merging them into one receiver.
    async fn subscribe(&self) -> Result<mpsc::Receiver<PubsubMessage>, ServiceError> {
        let (tx, rx) = mpsc::channel(GOSSIP_QUEUE);
        for topic in Topic::ALL {
            let mut sub = self
                .client
                .subscribe_with_capacity(topic.name(&self.settings.cluster), GOSSIP_QUEUE)
                .await
                .map_err(|e| ServiceError::Network(e.to_string()))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = sub.recv().await {
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(rx)
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Gossip(m) => self.on_gossip(m),
            Input::Command(c) => self.on_command(c),
            Input::Done(task, attempt, outcome) => {
                if let Some(r) = self.running.get(&task).filter(|r| r.attempt == attempt) {
                    let started_unix_ms = r.started_ms;
                    self.running.remove(&task);
                    let report = Report {
                        task,
                        attempt,
                        started_unix_ms,
                        outcome,
                    };
                    if self.unacked.len() < MAX_UNACKED {
                        self.unacked.insert(
                            task,
                            Unacked {
                                report: report.clone(),
                                sent_ms: now_ms(),
                                repeats: 0,
                            },
                        );
                    }
                    self.outbox.push(Message::Report(report));
                }
            }
            Input::Out(m) => self.outbox.push(m),
            Input::Heartbeat => {
                let hb = self.heartbeat();
                self.outbox.push(Message::Heartbeat(hb));
                self.repeat_reports(now_ms());
            }
            Input::Tick => {}
        }
    }

    /// Sends again the reports no master acknowledged within a few heartbeats; forgets those
    /// repeated [`MAX_REPEATS`] times.
    fn repeat_reports(&mut self, now: u64) {
        let wait = (5 * self.settings.heartbeat.as_millis() as u64).max(MIN_REPEAT_MS);
        let mut messages = Vec::new();
        self.unacked.retain(|_, u| {
            if now.saturating_sub(u.sent_ms) < wait {
                return true;
            }
            if u.repeats >= MAX_REPEATS {
                tracing::warn!(task = %u.report.task, "no master acknowledged the report; giving up");
                return false;
            }
            u.repeats += 1;
            u.sent_ms = now;
            messages.push(Message::Repeat(Repeat {
                report: u.report.clone(),
                round: u.repeats,
            }));
            true
        });
        self.outbox.extend(messages);
    }

    /// A trusted master acknowledged a report of `attempt`.
    fn acknowledged(&mut self, task: &TaskId, attempt: u32) {
        if self
            .unacked
            .get(task)
            .is_some_and(|u| u.report.attempt == attempt)
        {
            self.unacked.remove(task);
        }
    }

    /// A master takes a worker's report (first sent or repeated). A report that does not end
    /// the task (a failed attempt that will be retried) is acknowledged by cancelling the
    /// attempt; one that ends it, by the outcome published for it. A repeated report that
    /// comes too late is answered the same way, so that the worker stops repeating it.
    fn on_report(&mut self, from: PeerId, report: &Report, now: u64, repeated: bool) -> bool {
        let Some(master) = &mut self.master else {
            return false;
        };
        let ack = Message::Cancel(Cancel {
            task: report.task,
            attempt: report.attempt,
        });
        match master.on_report(from, report, now) {
            Ok(true) => {
                self.dirty = true;
                if master.is_open(&report.task) {
                    self.outbox.push(ack);
                }
                true
            }
            Ok(false) if repeated => match master.stale_report(report) {
                Ok(Some(stop)) => {
                    self.outbox.push(stop);
                    true
                }
                _ => false,
            },
            Ok(false) => false,
            Err(error) => {
                tracing::error!(%error, "task table");
                false
            }
        }
    }

    fn heartbeat(&mut self) -> Heartbeat {
        let (total, available) = system::memory();
        let worker = self.settings.role == Role::Worker;
        let hb = Heartbeat {
            role: self.settings.role,
            seq: self.seq,
            capacity: Capacity {
                cores: system::cores(),
                memory_total_bytes: total,
                memory_available_bytes: available,
                store_free_bytes: system::free_bytes(self.repo.path()),
                running: u16::try_from(self.running.len()).unwrap_or(u16::MAX),
                max_concurrent: if worker {
                    self.settings.max_concurrent
                } else {
                    0
                },
                hardware: self.runner.hardware.clone(),
                programs: if worker {
                    self.settings.programs.keys().cloned().collect()
                } else {
                    Vec::new()
                },
            },
            running: self
                .running
                .iter()
                .map(|(t, r)| (*t, r.attempt))
                .take(task::MAX_RUNNING)
                .collect(),
        };
        self.seq += 1;
        // This node is in its own table, so `cluster peers` shows it too.
        self.peers.heard(self.me, &hb, now_ms());
        hb
    }

    fn on_gossip(&mut self, m: PubsubMessage) {
        let Some(from) = m.from else {
            self.counters.malformed += 1;
            return;
        };
        let message = match Message::decode(&m.data) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%from, %error, "task message dropped");
                self.counters.malformed += 1;
                return;
            }
        };
        if Topic::parse(&m.topic, &self.settings.cluster) != Some(message.topic()) {
            self.counters.malformed += 1;
            return;
        }
        self.counters.received += 1;
        let now = now_ms();
        let role = self.settings.role;
        let acted = match message {
            Message::Heartbeat(hb) => {
                let workers = &self.settings.trusted_workers;
                if self.master.is_some()
                    && hb.role == Role::Worker
                    && !workers.is_empty()
                    && !workers.contains(&from)
                {
                    // Not a worker this master uses: it gets no work, and cannot crowd the
                    // peer table.
                    self.counters.unauthorised += 1;
                } else if self.peers.heard(from, &hb, now) {
                    if let Some(master) = &mut self.master {
                        // Lease renewals live in memory only: nothing to flush.
                        match master.on_heartbeat(from, &hb, now) {
                            Ok(stop) => self.outbox.extend(stop),
                            Err(error) => tracing::error!(%error, "task table"),
                        }
                    }
                }
                true
            }
            Message::Submit(Submit { key, spec }) => match &mut self.master {
                Some(_) if !self.settings.submitters.contains(&from) => {
                    self.counters.unauthorised += 1;
                    tracing::debug!(%from, "submission from a peer not listed as a submitter");
                    true
                }
                Some(master) => {
                    match master.submit(from, &key, spec, now) {
                        Ok(_) => self.dirty = true,
                        Err(error) => tracing::info!(%from, %error, "submission refused"),
                    }
                    true
                }
                None => false,
            },
            Message::Assign(a) => {
                if role != Role::Worker || a.worker.0 != self.me {
                    false
                } else if !self.settings.trusted_masters.contains(&from) {
                    self.counters.unauthorised += 1;
                    tracing::warn!(%from, task = %a.task, "assignment from an untrusted master ignored");
                    true
                } else if let Err(why) = self.taken.take(&a, now_ms()) {
                    tracing::info!(%from, task = %a.task, attempt = a.attempt, ?why, "assignment ignored");
                    false
                } else {
                    self.start_attempt(a);
                    true
                }
            }
            Message::Cancel(c) => {
                if role == Role::Worker {
                    if !self.settings.trusted_masters.contains(&from) {
                        self.counters.unauthorised += 1;
                        true
                    } else if self
                        .unacked
                        .get(&c.task)
                        .is_some_and(|u| u.report.attempt == c.attempt)
                    {
                        // The master took the report, or no longer wants it.
                        self.acknowledged(&c.task, c.attempt);
                        true
                    } else if let Some(r) =
                        self.running.get(&c.task).filter(|r| r.attempt == c.attempt)
                    {
                        r.abort.abort();
                        self.running.remove(&c.task);
                        true
                    } else {
                        false
                    }
                } else if let Some(master) = &mut self.master {
                    // A submitter may cancel what it submitted.
                    match master.get(&c.task) {
                        Ok(Some(r)) if r.submitter == from.to_string() => {
                            if let Ok((_, stop)) = master.cancel(&c.task, now) {
                                self.outbox.extend(stop);
                                self.dirty = true;
                            }
                            true
                        }
                        Ok(Some(_)) => {
                            self.counters.unauthorised += 1;
                            true
                        }
                        _ => false,
                    }
                } else {
                    false
                }
            }
            Message::Claim(c) => match &mut self.master {
                Some(master) => {
                    let taken = master.on_claim(from, &c, now).unwrap_or(false);
                    self.dirty |= taken;
                    taken
                }
                None => false,
            },
            Message::Progress(p) => match &mut self.master {
                Some(master) => master.on_progress(from, &p),
                None => false,
            },
            Message::Report(r) => match &mut self.master {
                Some(_) => self.on_report(from, &r, now, false),
                None if self.settings.trusted_masters.contains(&from) => {
                    // The master's outcome also acknowledges the worker's report.
                    self.acknowledged(&r.task, r.attempt);
                    // A master's word that a task is over: a submitter here may be waiting.
                    let finished = match &r.outcome {
                        Outcome::Done { record } => Finished {
                            id: r.task,
                            state: State::Succeeded,
                            result: Some(record.0.to_string()),
                            error: None,
                        },
                        Outcome::Failed { error } => Finished {
                            id: r.task,
                            state: State::Failed,
                            result: None,
                            error: Some(error.clone()),
                        },
                    };
                    self.wake(finished);
                    true
                }
                // A worker's report is for its master.
                None => false,
            },
            Message::Repeat(Repeat { report, .. }) => match &self.master {
                Some(_) => self.on_report(from, &report, now, true),
                None => false,
            },
        };
        if !acted {
            self.counters.ignored += 1;
        }
    }

    fn start_attempt(&mut self, a: task::Assign) {
        if let Some(r) = self.running.get(&a.task) {
            if r.attempt >= a.attempt {
                // The same assignment again, or an older one replayed.
                return;
            }
            // A newer attempt of the same task replaces the old one here.
            r.abort.abort();
            self.running.remove(&a.task);
        }
        if self.running.len() >= usize::from(self.settings.max_concurrent) {
            self.outbox.push(Message::Claim(Claim {
                task: a.task,
                attempt: a.attempt,
                accepted: false,
                started_unix_ms: 0,
                reason: format!("at capacity ({} running)", self.settings.max_concurrent),
            }));
            return;
        }
        let (task, attempt, started_ms) = (a.task, a.attempt, now_ms());
        self.outbox.push(Message::Claim(Claim {
            task,
            attempt,
            accepted: true,
            started_unix_ms: started_ms,
            reason: String::new(),
        }));
        let runner = Arc::clone(&self.runner);
        let done = self.done_tx.clone();
        let out = self.out_tx.clone();
        let handle = tokio::spawn(async move {
            let outcome = match runner.run(a, out).await {
                Ok(cid) => Outcome::Done {
                    record: task::WireCid(cid),
                },
                Err(e) => {
                    let mut error = e.to_string();
                    error.truncate(task::MAX_TEXT);
                    Outcome::Failed { error }
                }
            };
            let _ = done.send((task, attempt, outcome)).await;
        });
        self.running.insert(
            task,
            Running {
                attempt,
                started_ms,
                abort: handle.abort_handle(),
            },
        );
    }

    fn on_command(&mut self, command: Command) {
        let now = now_ms();
        match command {
            Command::Submit { key, spec, reply } => {
                let Some(master) = &mut self.master else {
                    // Not a master: the submission goes to the masters over pubsub; the id is
                    // known here because it derives from this node and the key.
                    let id = TaskId::derive(&self.me, &key);
                    let message = Message::Submit(Submit { key, spec });
                    match message.check() {
                        // Answered once it is published (or failed to be).
                        Ok(()) => self.sends.push((
                            reply,
                            Submitted {
                                id,
                                new: true,
                                record: None,
                            },
                            message,
                        )),
                        Err(e) => {
                            let _ = reply.send(Err(ServiceError::Refused(e.to_string())));
                        }
                    }
                    return;
                };
                if spec.kind == task::Kind::Exec {
                    let program = spec.param("program").unwrap_or_default();
                    if !Master::programs(&self.peers).contains(program) {
                        let _ = reply.send(Err(ServiceError::Refused(format!(
                            "program {program:?} is not on the exec allowlist of any worker in the cluster"
                        ))));
                        return;
                    }
                }
                let result = master
                    .submit(self.me, &key, spec, now)
                    .map(|(record, new)| Submitted {
                        id: record.id.parse().unwrap_or(TaskId([0; 16])),
                        new,
                        record: Some(record),
                    })
                    .map_err(ServiceError::from);
                self.dirty |= result.as_ref().is_ok_and(|s| s.new);
                self.acks.push(Ack::Submitted(reply, result));
            }
            Command::Wait { id, reply } => {
                if let Some(master) = &self.master {
                    match master.get(&id) {
                        Ok(Some(r)) if r.state.is_terminal() => {
                            let _ = reply.send(Ok(Finished::from(&r)));
                            return;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            let _ = reply.send(Err(ServiceError::NotFound(id)));
                            return;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.into()));
                            return;
                        }
                    }
                }
                if self.n_waiters >= MAX_WAITERS {
                    let _ = reply.send(Err(ServiceError::Refused(format!(
                        "{MAX_WAITERS} callers already wait for tasks"
                    ))));
                    return;
                }
                self.n_waiters += 1;
                self.waiters.entry(id).or_default().push(reply);
            }
            Command::Status { id, reply } => {
                let result = self
                    .need_master()
                    .and_then(|m| m.get(&id)?.ok_or(ServiceError::NotFound(id)));
                let _ = reply.send(result);
            }
            Command::List {
                state,
                after,
                limit,
                reply,
            } => {
                let result = self
                    .need_master()
                    .and_then(|m| m.list(state, after, limit).map_err(ServiceError::from));
                let _ = reply.send(result);
            }
            Command::Cancel { id, reply } => {
                let result = match &mut self.master {
                    None => Err(self.not_master()),
                    Some(master) => match master.cancel(&id, now) {
                        Ok((record, stop)) => {
                            self.outbox.extend(stop);
                            self.dirty = true;
                            Ok(record)
                        }
                        Err(e) => Err(e.into()),
                    },
                };
                self.acks.push(Ack::Record(reply, result));
            }
            Command::Peers { reply } => {
                let mut list: Vec<PeerView> = self
                    .peers
                    .iter()
                    .map(|(id, p)| PeerView {
                        peer: id.to_string(),
                        role: p.role,
                        this_node: *id == self.me,
                        capacity: CapacityView::from(&p.capacity),
                        running: p.running,
                        last_heartbeat_ms_ago: now.saturating_sub(p.last_seen_ms),
                    })
                    .collect();
                list.sort_by(|a, b| (a.role as u8, &a.peer).cmp(&(b.role as u8, &b.peer)));
                let _ = reply.send(Ok(list));
            }
            Command::Stats { reply } => {
                let tasks = self
                    .master
                    .as_ref()
                    .map(|m| {
                        m.counts()
                            .into_iter()
                            .map(|(s, n)| (format!("{s:?}").to_lowercase(), n))
                            .collect()
                    })
                    .unwrap_or_default();
                let stats = Stats {
                    role: self.settings.role,
                    messages: self.counters,
                    rejected_by_host: 0,
                    lagged: 0,
                    cut_off_peers: 0,
                    running: self.running.len(),
                    tasks,
                };
                let _ = reply.send(Ok(stats));
            }
        }
    }

    fn not_master(&self) -> ServiceError {
        ServiceError::WrongRole(format!(
            "this node is a {}: task records are kept by masters; ask a master's API",
            self.settings.role
        ))
    }

    fn need_master(&self) -> Result<&Master, ServiceError> {
        self.master.as_ref().ok_or_else(|| self.not_master())
    }

    fn wake(&mut self, finished: Finished) {
        if let Some(waiters) = self.waiters.remove(&finished.id) {
            self.n_waiters -= waiters.len();
            for w in waiters {
                let _ = w.send(Ok(finished.clone()));
            }
        }
    }

    /// The master expires leases and assigns what it can.
    fn schedule(&mut self) {
        let Some(master) = &mut self.master else {
            return;
        };
        match master.tick(&self.peers, now_ms()) {
            Ok(assignments) => {
                self.dirty |= !assignments.is_empty();
                self.outbox.extend(assignments);
            }
            Err(error) => tracing::error!(%error, "scheduling"),
        }
        for record in master.take_finished() {
            self.dirty = true;
            let finished = Finished::from(&record);
            // Whoever submitted it over pubsub learns the outcome from the master, the only
            // peer it trusts for that.
            let outcome = match finished.result.as_deref().map(str::parse) {
                Some(Ok(cid)) => Outcome::Done {
                    record: task::WireCid(cid),
                },
                _ => {
                    let mut error = match record.state {
                        State::Cancelled => "cancelled".to_string(),
                        _ => finished.error.clone().unwrap_or_default(),
                    };
                    error.truncate(task::MAX_TEXT);
                    Outcome::Failed { error }
                }
            };
            self.outbox.push(Message::Report(Report {
                task: finished.id,
                attempt: record.attempt,
                started_unix_ms: record.started_ms.unwrap_or(0),
                outcome,
            }));
            self.wake(finished);
        }
    }

    /// Flushes the master's changes, then answers and publishes.
    async fn commit(&mut self) {
        if self.dirty {
            if let Some(master) = &self.master {
                if let Err(error) = master.flush().await {
                    tracing::error!(%error, "flushing the task table");
                    for ack in self.acks.drain(..) {
                        match ack {
                            Ack::Submitted(r, _) => {
                                let _ = r.send(Err(ServiceError::Refused(format!(
                                    "the task table could not be saved: {error}"
                                ))));
                            }
                            Ack::Record(r, _) => {
                                let _ = r.send(Err(ServiceError::Refused(format!(
                                    "the task table could not be saved: {error}"
                                ))));
                            }
                        }
                    }
                }
            }
            self.dirty = false;
        }
        for ack in self.acks.drain(..) {
            match ack {
                Ack::Submitted(r, result) => {
                    let _ = r.send(result);
                }
                Ack::Record(r, result) => {
                    let _ = r.send(result);
                }
            }
        }
        for (reply, submitted, message) in std::mem::take(&mut self.sends) {
            let result = match message.encode() {
                Ok(bytes) => self
                    .client
                    .publish(message.topic().name(&self.settings.cluster), bytes)
                    .await
                    .map(|()| submitted)
                    .map_err(|e| ServiceError::Network(e.to_string())),
                Err(e) => Err(ServiceError::Refused(e.to_string())),
            };
            let _ = reply.send(result);
        }
        for message in std::mem::take(&mut self.outbox) {
            let bytes = match message.encode() {
                Ok(b) => b,
                Err(error) => {
                    tracing::error!(%error, "task message not sent");
                    continue;
                }
            };
            let topic = message.topic().name(&self.settings.cluster);
            if let Err(error) = self.client.publish(topic, bytes).await {
                tracing::warn!(%error, "publishing a task message");
            }
        }
    }
}
