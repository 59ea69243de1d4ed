//! What the role service does as a worker: it takes the assignments and cancels of trusted
//! masters, runs each attempt it admits on its own task, reports the outcome (again until a
//! master acknowledges it) and says in its heartbeats what it runs and what it can run.

use ipfsbench_core::trust::Refused;
use std::sync::Arc;

use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::task::{self, Assign, Heartbeat, Message, Outcome, TaskId};
use tokio::sync::mpsc;

use super::attempts::{Admission, Attempts};
use super::rows::Attempt;
use super::runner::Runner;
use crate::results::schema::Hardware;
use crate::settings::Settings;
use crate::turn::Turn;

/// The worker's part of the service. See the module docs.
#[derive(Debug)]
pub(crate) struct Duty {
    me: PeerId,
    attempts: Attempts,
    runner: Arc<Runner>,
    /// Where a finished attempt's outcome goes, back to the loop.
    done_tx: mpsc::Sender<(TaskId, u32, Outcome)>,
    /// Where a running attempt's messages (progress) go, back to the loop.
    out_tx: mpsc::Sender<Message>,
    /// The leader last heard, its epoch first.
    leader_seen: Option<(u64, PeerId)>,
}

/// What a worker is made of besides its settings.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) repo: Arc<Repo>,
    pub(crate) client: Client,
    /// The machine as heartbeats describe it.
    pub(crate) hardware: String,
    pub(crate) index: Option<ipfsbench_core::index::Handle>,
    pub(crate) done_tx: mpsc::Sender<(TaskId, u32, Outcome)>,
    pub(crate) out_tx: mpsc::Sender<Message>,
}

impl Duty {
    /// The worker of the node whose repo and host `parts` holds.
    pub(crate) fn new(settings: &Settings, parts: Parts) -> Self {
        let me = parts.repo.peer_id();
        let runner = Arc::new(Runner {
            repo: parts.repo,
            client: parts.client,
            peer: me,
            hardware: parts.hardware,
            programs: settings.programs.clone(),
            output_cap: settings.output_cap,
            default_timeout: settings.default_timeout,
            index: parts.index,
            machine: Hardware::probe(),
            cluster: settings.cluster.clone(),
            sql_lock: tokio::sync::Mutex::new(()),
        });
        Self {
            me,
            attempts: Attempts::new(settings.max_concurrent, settings.heartbeat),
            runner,
            done_tx: parts.done_tx,
            out_tx: parts.out_tx,
            leader_seen: None,
        }
    }

    /// What a worker says in its heartbeat `hb`: what runs here, and what it can run.
    pub(crate) fn describe(&self, settings: &Settings, hb: &mut Heartbeat) {
        hb.capacity.running = u16::try_from(self.attempts.count()).unwrap_or(u16::MAX);
        hb.capacity.max_concurrent = settings.max_concurrent;
        hb.capacity.programs = settings.programs.keys().cloned().collect();
        hb.running = self.attempts.running().take(task::MAX_RUNNING).collect();
    }

    /// Attempts running here, and attempts that succeeded here.
    pub(crate) fn counts(&self) -> (usize, u64) {
        (self.attempts.count(), self.attempts.completed())
    }

    /// A worker's gossip besides outcomes: assignments to it and cancels, which only trusted
    /// masters may send. Whether it concerned this worker.
    pub(crate) fn on_message(
        &mut self,
        settings: &Settings,
        from: PeerId,
        message: Message,
        turn: &mut Turn,
        now: u64,
    ) -> bool {
        let trusted = settings.is_master(&from);
        match message {
            Message::Assign(a) if a.worker.0 == self.me => {
                if !trusted {
                    turn.counters.unauthorised += 1;
                    settings.refuse(from, Refused::Assignment);
                    tracing::warn!(%from, task = %a.task, "assignment from an untrusted master ignored");
                    return true;
                }
                self.start_attempt(from, a, turn, now)
            }
            Message::Cancel(_) if !trusted => {
                turn.counters.unauthorised += 1;
                settings.refuse(from, Refused::Assignment);
                true
            }
            Message::Cancel(c) => self.attempts.cancel(&c.task, c.attempt),
            _ => false,
        }
    }

    /// A trusted master's outcome of a task, which acknowledges this worker's report of it.
    pub(crate) fn acknowledged(&mut self, task: &TaskId, attempt: u32) {
        self.attempts.acknowledged(task, attempt);
    }

    /// An attempt ended: its report, unless the attempt was over before.
    pub(crate) fn finished(
        &mut self,
        task: TaskId,
        attempt: u32,
        outcome: Outcome,
        now: u64,
    ) -> Option<Message> {
        let report = self.attempts.finished(task, attempt, outcome, now)?;
        Some(Message::Report(report))
    }

    /// The reports due again, with each heartbeat.
    pub(crate) fn repeats(&mut self, now: u64) -> Vec<Message> {
        self.attempts.repeats(now)
    }

    /// A trusted master leads with `epoch`: a new leader gets again the reports of late
    /// attempts (the old one may have fallen silent before the state heard them).
    pub(crate) fn heard_leader(&mut self, from: PeerId, epoch: u64, turn: &mut Turn, now: u64) {
        let newer = self.leader_seen.is_none_or(|seen| (epoch, from) > seen);
        if newer {
            let changed = self.leader_seen.is_some_and(|(_, p)| p != from);
            self.leader_seen = Some((epoch, from));
            if changed {
                let again = self.attempts.resend(now);
                tracing::info!(%from, epoch, reports = again.len(), "a new master leads");
                turn.outbox.extend(again);
            }
        }
    }

    /// The service stops: running attempts are dropped (their programs killed).
    pub(crate) fn stop(&mut self) {
        self.attempts.stop_all();
    }

    fn start_attempt(&mut self, from: PeerId, a: Assign, turn: &mut Turn, now: u64) -> bool {
        let claim = match self.attempts.admit(&a, now) {
            Admission::Ignore(why) => {
                tracing::info!(%from, task = %a.task, attempt = a.attempt, ?why, "assignment ignored");
                return false;
            }
            Admission::Running => return true,
            Admission::Refuse(claim) => {
                turn.outbox.push(Message::Claim(claim));
                return true;
            }
            Admission::Start(claim) => claim,
        };
        turn.outbox.push(Message::Claim(claim));
        let (task, attempt) = (a.task, a.attempt);
        let runner = Arc::clone(&self.runner);
        let done = self.done_tx.clone();
        let out = self.out_tx.clone();
        let meta = Attempt {
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
}
