//! The service's loop and the state it owns. Inputs are decoded and authorised at the edge
//! ([`crate::gossip`]), then handed to the part of the node they concern: the master's table
//! ([`crate::master`]), the worker's attempts ([`crate::worker`]), the submitter's waiters
//! ([`crate::submitter`]) and the cluster's peer table ([`crate::cluster`]).

mod reads;
mod standby;

use crate::service;
use std::sync::Arc;
use std::time::Duration;

use ipfsbench_core::network::{Client, PeerId, PubsubMessage};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::state::Handle as StateHandle;
use ipfsbench_protocols::task::{
    self, Capacity, Heartbeat, Message, Outcome, Spec, Submit, TaskId, Topic,
};
use ipfsbench_protocols::Role;
use tokio::sync::{mpsc, oneshot};

use super::replicate::Replicator;
use super::{Command, Finished, Reply, Submitted};
use crate::cluster::{Counters, Peers};
use crate::master::gossip::{Effects, Refusals};
use crate::master::lead::Leadership;
use crate::master::{Master, TaskRecord};
use crate::settings::Settings;
use crate::submitter::{self, Submitter};
use crate::worker::{Admission, Attempts, Runner};
use crate::clock::now_ms;
use crate::{gossip, system};

/// Inputs taken in one turn, at most.
const BATCH: usize = 256;
/// Task messages buffered per topic between the host and the service.
const GOSSIP_QUEUE: usize = 8192;
/// How often the master looks at leases and the queue without other cause. Milliseconds.
const SCHEDULE_TICK_MS: u64 = 50;
/// Attempt outcomes and worker messages waiting for the loop, at most.
const INTERNAL_QUEUE: usize = 1024;

/// A reply held until the master's changes are durable.
enum Ack {
    Submitted(Reply<Submitted>, Result<Submitted, service::Error>),
    Record(Reply<TaskRecord>, Result<TaskRecord, service::Error>),
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

/// What the loop owns.
pub(super) struct Actor {
    me: PeerId,
    repo: Arc<Repo>,
    client: Client,
    settings: Settings,
    master: Option<Master>,
    peers: Peers,
    counters: Counters,
    attempts: Attempts,
    runner: Arc<Runner>,
    submitter: Submitter,
    done_tx: mpsc::Sender<(TaskId, u32, Outcome)>,
    out_tx: mpsc::Sender<Message>,
    /// Messages to publish at the end of the turn.
    outbox: Vec<Message>,
    acks: Vec<Ack>,
    /// The master's table changed this turn and must be flushed.
    dirty: bool,
    /// The pace of refusals of submissions (masters).
    refusals: Refusals,
    seq: u64,
    /// The replicated cluster state, and its change counter as this loop last saw it.
    state: Option<StateHandle>,
    state_seen: Option<tokio::sync::watch::Receiver<u64>>,
    replicator: Option<Replicator>,
    /// Which master schedules (masters).
    lead: Option<Leadership>,
    /// The leader last heard, its epoch first (workers).
    leader_seen: Option<(u64, PeerId)>,
    /// A master that just took over assigns nothing before this: workers tell it first what
    /// they run. Unix ms.
    hold_until_ms: u64,
}

/// The receiving ends of the loop's internal channels, made with it. (Gossip it subscribes
/// to itself.)
pub(super) struct Inputs {
    done: mpsc::Receiver<(TaskId, u32, Outcome)>,
    out: mpsc::Receiver<Message>,
}

impl Actor {
    pub(super) fn new(
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

    /// Runs until `stopped` fires (or the service is dropped).
    pub(super) async fn run(
        mut self,
        inputs: Inputs,
        mut commands: mpsc::Receiver<Command>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let Inputs { mut done, mut out } = inputs;
        self.start_leadership(now_ms());
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
        self.attempts.stop_all();
        if let Some(master) = &self.master {
            if let Err(e) = master.flush().await {
                tracing::error!(error = %e, "flushing the task table");
            }
        }
    }

    /// Subscribes to every cluster topic, merging them into one receiver.
    async fn subscribe(&self) -> Result<mpsc::Receiver<PubsubMessage>, service::Error> {
        let (tx, rx) = mpsc::channel(GOSSIP_QUEUE);
        for topic in Topic::ALL {
            let mut sub = self
                .client
                .subscribe_with_capacity(topic.name(&self.settings.cluster), GOSSIP_QUEUE)
                .await
                .map_err(service::Error::from)?;
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
        let now = now_ms();
        match input {
            Input::Gossip(m) => self.on_gossip(&m, now),
            Input::Command(c) => self.on_command(c, now),
            Input::Done(task, attempt, outcome) => {
                if let Some(report) = self.attempts.finished(task, attempt, outcome, now) {
                    self.outbox.push(Message::Report(report));
                }
            }
            Input::Out(m) => self.outbox.push(m),
            Input::Heartbeat => {
                let hb = self.heartbeat(now);
                self.outbox.push(Message::Heartbeat(hb));
                let repeats = self.attempts.repeats(now);
                self.outbox.extend(repeats);
            }
            Input::Tick => {}
        }
    }

    fn heartbeat(&mut self, now: u64) -> Heartbeat {
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
                running: u16::try_from(self.attempts.count()).unwrap_or(u16::MAX),
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
                tags: self.settings.state.tags.clone(),
            },
            running: self.attempts.running().take(task::MAX_RUNNING).collect(),
            leads: self.lead.as_ref().and_then(Leadership::epoch),
        };
        self.seq += 1;
        // This node is in its own table, so `cluster peers` shows it too.
        self.peers.heard(self.me, &hb, now);
        hb
    }

    fn on_gossip(&mut self, m: &PubsubMessage, now: u64) {
        let Some((from, messages)) = gossip::decode(m, &self.settings.cluster, &mut self.counters)
        else {
            return;
        };
        for message in messages {
            self.on_message(from, message, now);
        }
    }

    fn on_message(&mut self, from: PeerId, message: Message, now: u64) {
        if let Message::Heartbeat(hb) = &message {
            self.on_heartbeat(from, hb, now);
            return;
        }
        let leading = self.leading();
        let standby = self.master.is_some() && !leading;
        let acted = match (message, self.master.as_mut().filter(|_| leading)) {
            (message, Some(master)) => {
                let mut fx = Effects {
                    outbox: &mut self.outbox,
                    dirty: &mut self.dirty,
                    counters: &mut self.counters,
                    refusals: &mut self.refusals,
                };
                master.on_gossip(&self.settings, from, message, now, &mut fx)
            }
            (Message::Submit(submit), None) if standby => self.on_submit_standby(from, submit, now),
            (message, None) => self.on_gossip_not_master(from, message, now),
        };
        if !acted {
            self.counters.ignored += 1;
        }
    }

    /// Every node keeps the peer table; a master also renews leases. A master that lists its
    /// workers ignores other workers, which then cannot crowd its table.
    fn on_heartbeat(&mut self, from: PeerId, hb: &Heartbeat, now: u64) {
        let workers = &self.settings.trusted_workers;
        if self.master.is_some()
            && hb.role == Role::Worker
            && !workers.is_empty()
            && !workers.contains(&from)
        {
            self.counters.unauthorised += 1;
            return;
        }
        if self.peers.heard(from, hb, now) {
            self.heard_leader(from, hb, now);
            if let Some(master) = self.table() {
                // Lease renewals live in memory only: nothing to flush.
                match master.on_heartbeat(from, hb, now) {
                    Ok(stop) => self.outbox.extend(stop),
                    Err(error) => tracing::error!(%error, "task table"),
                }
            }
        }
    }

    /// A worker's and a submitter's gossip: assignments and cancels from trusted masters,
    /// and masters' outcomes of tasks.
    fn on_gossip_not_master(&mut self, from: PeerId, message: Message, now: u64) -> bool {
        let worker = self.settings.role == Role::Worker;
        let trusted = self.settings.trusted_masters.contains(&from);
        match message {
            Message::Assign(a) if worker && a.worker.0 == self.me => {
                if !trusted {
                    self.counters.unauthorised += 1;
                    tracing::warn!(%from, task = %a.task, "assignment from an untrusted master ignored");
                    return true;
                }
                self.start_attempt(from, a, now)
            }
            Message::Cancel(_) if worker && !trusted => {
                self.counters.unauthorised += 1;
                true
            }
            Message::Cancel(c) if worker => self.attempts.cancel(&c.task, c.attempt),
            Message::Report(r) if trusted => {
                // The master's outcome also acknowledges the worker's report, and a submitter
                // here may be waiting for it (or for the master's refusal).
                self.attempts.acknowledged(&r.task, r.attempt);
                match r.refused() {
                    Some(reason) => self.submitter.refused(r.task, from, reason),
                    None => self.submitter.wake(&submitter::finished_by(&r)),
                }
                true
            }
            _ => false,
        }
    }

    fn start_attempt(&mut self, from: PeerId, a: task::Assign, now: u64) -> bool {
        let claim = match self.attempts.admit(&a, now) {
            Admission::Ignore(why) => {
                tracing::info!(%from, task = %a.task, attempt = a.attempt, ?why, "assignment ignored");
                return false;
            }
            Admission::Running => return true,
            Admission::Refuse(claim) => {
                self.outbox.push(Message::Claim(claim));
                return true;
            }
            Admission::Start(claim) => claim,
        };
        self.outbox.push(Message::Claim(claim));
        let (task, attempt) = (a.task, a.attempt);
        let runner = Arc::clone(&self.runner);
        let done = self.done_tx.clone();
        let out = self.out_tx.clone();
        let meta = crate::worker::Attempt {
            task,
            attempt,
            kind: a.spec.kind,
            params: a.spec.params.clone(),
            master: from,
            started_ms: now,
        };
        let handle = tokio::spawn(async move {
            let outcome = match Arc::clone(&runner).run(a, out).await {
                Ok((cid, figures)) => Outcome::Done {
                    record: task::WireCid(cid),
                    figures,
                },
                Err(e) => {
                    let mut error = e.to_string();
                    error.truncate(task::MAX_TEXT);
                    Outcome::Failed { error }
                }
            };
            runner.record(&meta, &outcome).await;
            let _ = done.send((task, attempt, outcome)).await;
        });
        self.attempts.started(task, attempt, handle.abort_handle());
        true
    }

    fn on_command(&mut self, command: Command, now: u64) {
        match command {
            Command::Submit { key, spec, reply } => self.submit(key, spec, reply, now),
            Command::Wait { id, reply } => self.wait(id, reply),
            Command::Status { id, reply } => {
                // The leader's own table first; the state for the rest (tasks another master
                // ran, on the other side of a partition).
                let mine = self.table().map(|m| m.get(&id)).transpose();
                let result = match mine {
                    Ok(Some(Some(record))) => Ok(Some(record)),
                    Ok(_) => self.read_task(&id),
                    Err(e) => Err(e.into()),
                };
                let result = match result {
                    Ok(None) if self.master.is_none() && self.state.is_none() => {
                        Err(self.not_master())
                    }
                    other => other.and_then(|r| r.ok_or(service::Error::NotFound(id))),
                };
                let _ = reply.send(result);
            }
            Command::List {
                state,
                after,
                limit,
                reply,
            } => {
                let result = match self.table() {
                    Some(m) => m.list(state, after, limit).map_err(service::Error::from),
                    None => Ok(self.list_from_state(state, after, limit)),
                };
                let _ = reply.send(result);
            }
            Command::Cancel { id, reply } => {
                let refusal = self.not_master();
                let result = match self.table() {
                    None => Err(refusal),
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
                let _ = reply.send(Ok(self.peer_views(now)));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::Master { reply } => {
                let _ = reply.send(Ok(self.master_view(now)));
            }
        }
    }

    fn submit(&mut self, key: String, spec: Spec, reply: Reply<Submitted>, now: u64) {
        if self.master.is_some() && spec.kind == task::Kind::Exec {
            let program = spec.param("program").unwrap_or_default();
            if !Master::programs(&self.peers).contains(program) {
                let _ = reply.send(Err(service::Error::Refused(format!(
                    "program {program:?} is not on the exec allowlist of any worker in the cluster"
                ))));
                return;
            }
        }
        if self.master.is_some() && !self.leading() {
            self.submit_standby(self.me, key, spec, reply, now);
            return;
        }
        let Some(master) = &mut self.master else {
            // Not a master: the submission goes to the masters over pubsub; the id is known
            // here because it derives from this node and the key.
            let id = TaskId::derive(&self.me, &key);
            let message = Message::Submit(Submit { key, spec });
            match message.check() {
                Ok(()) => {
                    let submitted = Submitted {
                        id,
                        new: true,
                        record: None,
                    };
                    self.submitter.send(reply, submitted, message);
                }
                Err(e) => {
                    let _ = reply.send(Err(service::Error::Refused(e.to_string())));
                }
            }
            return;
        };
        let result = master
            .submit(self.me, &key, spec, now)
            .map(|(record, new)| Submitted {
                id: record.id,
                new,
                record: Some(record),
            })
            .map_err(service::Error::from);
        self.dirty |= result.as_ref().is_ok_and(|s| s.new);
        self.acks.push(Ack::Submitted(reply, result));
    }

    fn wait(&mut self, id: TaskId, reply: Reply<Finished>) {
        if !self.leading() {
            if let Ok(Some(r)) = self.read_task(&id) {
                if r.state.is_terminal() {
                    let _ = reply.send(Ok(Finished::from(&r)));
                    return;
                }
            }
        }
        if let Some(master) = self.master.as_ref().filter(|_| self.leading()) {
            match master.get(&id) {
                Ok(Some(r)) if r.state.is_terminal() => {
                    let _ = reply.send(Ok(Finished::from(&r)));
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let _ = reply.send(Err(service::Error::NotFound(id)));
                    return;
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
            }
        }
        self.submitter.wait(id, reply);
    }

    fn not_master(&self) -> service::Error {
        if self.master.is_some() {
            let active = self.master_view(now_ms()).active;
            return service::Error::WrongRole(format!(
                "this master stands by; the master that schedules is {}",
                active.as_deref().unwrap_or("not heard yet")
            ));
        }
        service::Error::WrongRole(format!(
            "this node is a {}: tasks are changed by the master that schedules; ask its API",
            self.settings.role
        ))
    }

    /// The master expires leases and assigns what it can; the outcome of every task that
    /// ended is published, for whoever submitted it over pubsub (it trusts only masters for
    /// that), and wakes callers waiting here.
    fn schedule(&mut self) {
        let now = now_ms();
        self.lead_tick(now);
        let hold = now < self.hold_until_ms;
        let Some(master) = self.master.as_mut().filter(|_| !hold) else {
            return;
        };
        if self.lead.as_ref().and_then(Leadership::epoch).is_none() {
            return;
        }
        match master.tick(&self.peers, now) {
            Ok(assignments) => {
                self.dirty |= !assignments.is_empty();
                self.outbox.extend(assignments);
            }
            Err(error) => tracing::error!(%error, "scheduling"),
        }
        for record in master.take_finished() {
            self.dirty = true;
            let finished = Finished::from(&record);
            self.outbox.push(Message::Report(record.outcome_report()));
            self.submitter.wake(&finished);
        }
    }

    /// Flushes the master's changes, then answers and publishes.
    async fn commit(&mut self) {
        let changed = self.master.as_ref().is_some_and(Master::has_changes);
        let mut saved = true;
        if std::mem::take(&mut self.dirty) || changed {
            if let Some(master) = &self.master {
                if let Err(error) = master.flush().await {
                    saved = false;
                    tracing::error!(%error, "flushing the task table");
                    let why = format!("the task table could not be saved: {error}");
                    for ack in self.acks.drain(..) {
                        match ack {
                            Ack::Submitted(r, _) => {
                                let _ = r.send(Err(service::Error::Refused(why.clone())));
                            }
                            Ack::Record(r, _) => {
                                let _ = r.send(Err(service::Error::Refused(why.clone())));
                            }
                        }
                    }
                }
            }
        }
        if saved {
            // What the table made durable goes to the cluster state.
            self.replicate();
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
        for (reply, submitted, message) in self.submitter.take_sends() {
            let result = match message.encode() {
                Ok(bytes) => self
                    .client
                    .publish(message.topic().name(&self.settings.cluster), bytes)
                    .await
                    .map(|()| submitted)
                    .map_err(service::Error::from),
                Err(e) => Err(service::Error::Refused(e.to_string())),
            };
            let _ = reply.send(result);
        }
        // What the turn says goes out as one payload per topic (one signature for all).
        let packed = task::pack(std::mem::take(&mut self.outbox));
        for (message, error) in packed.refused {
            tracing::error!(%error, ?message, "task message not sent");
        }
        for (topic, bytes) in packed.payloads {
            let topic = topic.name(&self.settings.cluster);
            if let Err(error) = self.client.publish(topic, bytes).await {
                tracing::warn!(%error, "publishing task messages");
            }
        }
    }
}
