//! The master's side of scheduling: the durable task table and the decisions made on it.
//!
//! Every task record lives in a sled database in the repo (`<repo>/tasks`), written on every
//! change; the service flushes it before it acknowledges a submission or publishes what a
//! change decided, so a master restart loses no task and resumes the queue. Records of tasks
//! that are not over are also kept in memory, with the queue in submission order.
//!
//! [`Master`] is plain state: its methods take the time and return the messages to publish,
//! so the scheduling rules are tested without a network.

use crate::master;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{
    Assign, Cancel, Claim, Heartbeat, Kind, Message, Outcome, Progress, Report, Spec, TaskId,
    WirePeer,
};
use ipfsbench_protocols::Role;

use crate::cluster::Peers;

pub(crate) mod gossip;
pub mod lead;
mod record;
pub mod replicated;

pub use record::{Config, Error, State, TaskRecord};

/// The most tasks that may be waiting or running at once; submissions past it are refused.
pub const MAX_ACTIVE_TASKS: usize = 100_000;

/// The most records one [`Master::list`] call returns.
pub const MAX_LIST_PAGE: usize = 10_000;
/// How long an assignment stays valid (at least its lease): workers ignore it afterwards, so
/// a replayed old assignment runs nothing. Allows for clocks this far apart, and is how long
/// workers remember what they took (memory that grows with the task rate). Milliseconds.
pub const ASSIGN_VALIDITY_MS: u64 = 60_000;

/// A worker as the master sees it.
#[derive(Debug, Clone, Copy)]
struct Slots {
    max: usize,
    used: usize,
    /// What the worker's last heartbeat said runs there (zombie attempts included).
    reported: usize,
}

impl Slots {
    fn free(&self) -> usize {
        self.max.saturating_sub(self.used.max(self.reported))
    }
}

/// The master's state.
#[derive(Debug)]
pub struct Master {
    db: sled::Db,
    tasks: sled::Tree,
    /// Submission order: the big-endian `seq` to the task id, so listing pages without
    /// reading the whole table.
    by_seq: sled::Tree,
    config: master::Config,
    active: HashMap<TaskId, TaskRecord>,
    queue: BTreeSet<(u64, TaskId)>,
    next_seq: u64,
    finished: Vec<TaskRecord>,
    /// Records changed since the replicated state last took them.
    changed: HashMap<TaskId, TaskRecord>,
    /// Tasks taken over from another master that are not over and have not been assigned
    /// here since: what workers say they run (or finished) of them is believed.
    adoptable: HashSet<TaskId>,
}

impl Master {
    /// Opens (or creates) the task database under `repo`, and takes back every task that is
    /// not over: queued ones wait again, assigned and running ones get a fresh lease.
    pub fn open(repo: &Path, config: master::Config, now_ms: u64) -> Result<Self, master::Error> {
        let db = ipfsbench_core::store::open_db(
            &repo.join("tasks"),
            sled::Config::new().cache_capacity(config.table_cache_bytes),
        )?;
        let tasks = db.open_tree("tasks")?;
        let by_seq = db.open_tree("tasks_by_seq")?;
        let mut master = Self {
            db,
            tasks,
            by_seq,
            config,
            active: HashMap::new(),
            queue: BTreeSet::new(),
            next_seq: 0,
            finished: Vec::new(),
            changed: HashMap::new(),
            adoptable: HashSet::new(),
        };
        for entry in master.tasks.iter() {
            let (_, value) = entry?;
            let mut record: TaskRecord = serde_json::from_slice(&value)?;
            master.next_seq = master.next_seq.max(record.seq + 1);
            let id = record.id;
            // Tables written before the index existed get it now.
            if master.by_seq.get(record.seq.to_be_bytes())?.is_none() {
                master.by_seq.insert(record.seq.to_be_bytes(), &id.0)?;
            }
            if record.state.is_terminal() {
                continue;
            }
            match record.state {
                State::Queued => {
                    master.queue.insert((record.seq, id));
                }
                _ => record.lease_until_ms = now_ms + master.config.lease_ms,
            }
            master.active.insert(id, record);
        }
        Ok(master)
    }

    fn save(&mut self, record: &TaskRecord) -> Result<(), master::Error> {
        let id = record.id;
        let bytes = serde_json::to_vec(record)?;
        self.tasks.insert(id.0, bytes)?;
        self.changed.insert(id, record.clone());
        Ok(())
    }

    /// Whether records changed since the replicated state last took them.
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    /// Takes the records changed since the last call, for the replicated state.
    pub fn take_changed(&mut self) -> Vec<TaskRecord> {
        self.changed.drain().map(|(_, r)| r).collect()
    }

    /// Makes every change so far durable.
    pub async fn flush(&self) -> Result<(), master::Error> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Takes the records of tasks that ended since the last call.
    pub fn take_finished(&mut self) -> Vec<TaskRecord> {
        std::mem::take(&mut self.finished)
    }

    /// Accepts a submission, or returns the task already submitted under the same key.
    /// Returns the record and whether it is new.
    pub fn submit(
        &mut self,
        submitter: PeerId,
        key: &str,
        spec: Spec,
        now_ms: u64,
    ) -> Result<(TaskRecord, bool), master::Error> {
        let id = TaskId::derive(&submitter, key);
        if let Some(existing) = self.get(&id)? {
            return Ok((existing, false));
        }
        spec.check()
            .map_err(|e| master::Error::Refused(e.to_string()))?;
        if self.active.len() >= MAX_ACTIVE_TASKS {
            return Err(master::Error::Refused(format!(
                "the master already holds {MAX_ACTIVE_TASKS} unfinished tasks"
            )));
        }
        let mut record = self.draft(submitter, key, spec, now_ms);
        record.seq = self.next_seq;
        self.next_seq += 1;
        self.save(&record)?;
        self.by_seq.insert(record.seq.to_be_bytes(), &id.0)?;
        self.queue.insert((record.seq, id));
        self.active.insert(id, record.clone());
        Ok((record, true))
    }

    /// The queued record of a new submission (numbered 0: the table numbers it when it
    /// takes it). The spec is checked by the caller.
    pub fn draft(&self, submitter: PeerId, key: &str, spec: Spec, now_ms: u64) -> TaskRecord {
        let max_attempts = if spec.max_attempts == 0 {
            self.config.max_attempts
        } else {
            spec.max_attempts
        };
        TaskRecord {
            id: TaskId::derive(&submitter, key),
            key: key.to_string(),
            submitter,
            kind: spec.kind,
            inputs: spec.inputs.iter().map(|c| c.0).collect(),
            params: spec.params,
            timeout_secs: spec.timeout_secs,
            max_attempts: max_attempts.max(1),
            target: spec.target.map(|p| p.0),
            state: State::Queued,
            attempt: 0,
            failures: 0,
            worker: None,
            lease_until_ms: 0,
            not_before_ms: 0,
            last_error: None,
            result: None,
            progress_permille: 0,
            seq: 0,
            submitted_ms: now_ms,
            assigned_ms: None,
            started_ms: None,
            finished_ms: None,
            figures: Default::default(),
        }
    }

    /// A task's record, from memory or the database.
    pub fn get(&self, id: &TaskId) -> Result<Option<TaskRecord>, master::Error> {
        if let Some(record) = self.active.get(id) {
            return Ok(Some(record.clone()));
        }
        match self.tasks.get(id.0)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every record in the table, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = Result<TaskRecord, master::Error>> + '_ {
        self.tasks.iter().map(|entry| {
            let (_, value) = entry?;
            Ok(serde_json::from_slice(&value)?)
        })
    }

    /// One page of records in submission order: up to `limit` (at most [`MAX_LIST_PAGE`])
    /// records submitted after the one numbered `after`, optionally only those in `state`.
    /// Returns the page and, when the page is full, the cursor for the next one.
    pub fn list(
        &self,
        state: Option<State>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<TaskRecord>, Option<u64>), master::Error> {
        let limit = limit.min(MAX_LIST_PAGE);
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let mut out = Vec::new();
        if limit == 0 || after == Some(u64::MAX) {
            return Ok((out, None));
        }
        for entry in self.by_seq.range(start.to_be_bytes()..) {
            let (_, id) = entry?;
            let id: [u8; 16] = id.as_ref().try_into().map_err(|_| {
                master::Error::Corrupt("a task index entry is not a task id".into())
            })?;
            let Some(record) = self.get(&TaskId(id))? else {
                return Err(master::Error::Corrupt(format!(
                    "task {} is indexed but has no record",
                    TaskId(id)
                )));
            };
            if state.is_none_or(|s| s == record.state) {
                out.push(record);
                if out.len() == limit {
                    let next = out.last().map(|r| r.seq);
                    return Ok((out, next));
                }
            }
        }
        Ok((out, None))
    }

    /// Whether the task is known and not over (its record is held in memory).
    pub fn is_open(&self, id: &TaskId) -> bool {
        self.active.contains_key(id)
    }

    /// Counts of unfinished tasks by state.
    pub fn counts(&self) -> HashMap<State, usize> {
        let mut counts = HashMap::new();
        for record in self.active.values() {
            *counts.entry(record.state).or_insert(0) += 1;
        }
        counts
    }

    /// Cancels a task. Returns its record and the message that stops its worker, if one runs
    /// it.
    pub fn cancel(
        &mut self,
        id: &TaskId,
        now_ms: u64,
    ) -> Result<(TaskRecord, Option<Message>), master::Error> {
        let Some(mut record) = self.active.remove(id) else {
            return self
                .get(id)?
                .map(|r| (r, None))
                .ok_or(master::Error::NoSuchTask(*id));
        };
        self.queue.remove(&(record.seq, *id));
        let stop = matches!(record.state, State::Assigned | State::Running).then(|| {
            Message::Cancel(Cancel {
                task: *id,
                attempt: record.attempt,
            })
        });
        record.state = State::Cancelled;
        record.finished_ms = Some(now_ms);
        self.save(&record)?;
        self.finished.push(record.clone());
        Ok((record, stop))
    }

    /// A worker's heartbeat renews the leases of the attempts it lists.
    pub fn on_heartbeat(
        &mut self,
        from: PeerId,
        hb: &Heartbeat,
        now_ms: u64,
    ) -> Result<Vec<Message>, master::Error> {
        let mut stop = Vec::new();
        for (task, attempt) in &hb.running {
            self.adopt(*task, *attempt, from, now_ms);
            if let Some(record) = self.active.get_mut(task) {
                if record.attempt == *attempt && record.worker == Some(from) {
                    record.lease_until_ms = now_ms + self.config.lease_ms;
                    continue;
                }
            } else if self.tasks.get(task.0)?.is_none() {
                // Not one of ours: another master's task.
                continue;
            }
            // An attempt this master gave up on (its lease ran out, the task was cancelled
            // or moved on) still runs there: stop it, so it frees the worker.
            stop.push(Message::Cancel(Cancel {
                task: *task,
                attempt: *attempt,
            }));
        }
        Ok(stop)
    }

    /// The record of the current attempt `attempt` of `task` run by `from`, if that is what
    /// it is.
    fn current(&mut self, task: &TaskId, attempt: u32, from: &PeerId) -> Option<&mut TaskRecord> {
        self.active.get_mut(task).filter(|r| {
            r.attempt == attempt
                && r.worker == Some(*from)
                && matches!(r.state, State::Assigned | State::Running)
        })
    }

    /// A worker took or refused an attempt. Returns false when the claim is not about a
    /// current attempt of that worker.
    pub fn on_claim(
        &mut self,
        from: PeerId,
        claim: &Claim,
        now_ms: u64,
    ) -> Result<bool, master::Error> {
        let lease = self.config.lease_ms;
        let base = self.config.backoff_base_ms;
        let Some(record) = self.current(&claim.task, claim.attempt, &from) else {
            return Ok(false);
        };
        if claim.accepted {
            record.state = State::Running;
            record.started_ms = Some(claim.started_unix_ms);
            record.lease_until_ms = now_ms + lease;
        } else {
            // Not a failure of the task: it waits a little and goes to whoever has room.
            record.state = State::Queued;
            record.worker = None;
            record.not_before_ms = now_ms + base;
            record.last_error = Some(format!("refused by {from}: {}", claim.reason));
        }
        let record = record.clone();
        if record.state == State::Queued {
            self.queue.insert((record.seq, claim.task));
        }
        self.save(&record)?;
        Ok(true)
    }

    /// A worker reports how far an attempt got.
    pub fn on_progress(&mut self, from: PeerId, progress: &Progress) -> bool {
        match self.current(&progress.task, progress.attempt, &from) {
            Some(record) => {
                record.progress_permille = progress.permille;
                true
            }
            None => false,
        }
    }

    /// A worker reports how an attempt ended. Returns false when it is not about a current
    /// attempt of that worker.
    pub fn on_report(
        &mut self,
        from: PeerId,
        report: &Report,
        now_ms: u64,
    ) -> Result<bool, master::Error> {
        self.adopt(report.task, report.attempt, from, now_ms);
        if self.current(&report.task, report.attempt, &from).is_none() {
            return Ok(false);
        }
        match &report.outcome {
            Outcome::Done {
                record: cid,
                figures,
            } => {
                if let Some(record) = self.active.get_mut(&report.task) {
                    record.figures = figures.iter().cloned().collect();
                    // The claim may have been lost or overtaken; the report says it too.
                    record.started_ms.get_or_insert(report.started_unix_ms);
                    record.state = State::Succeeded;
                    record.result = Some(cid.0);
                    record.progress_permille = 1000;
                    record.finished_ms = Some(now_ms);
                }
            }
            Outcome::Failed { error } => {
                let error = format!("attempt {} on {from}: {error}", report.attempt);
                self.fail_attempt(&report.task, error, now_ms);
            }
        }
        self.settle(&report.task)?;
        Ok(true)
    }

    /// The answer to a repeated report the master did not take: a `Cancel` of that attempt
    /// when the task is over or has moved on to a later attempt, so the worker stops
    /// repeating it. `None` for tasks this master does not know, and for attempts it never
    /// gave out.
    pub fn stale_report(&self, report: &Report) -> Result<Option<Message>, master::Error> {
        let Some(record) = self.get(&report.task)? else {
            return Ok(None);
        };
        let stale = report.attempt >= 1
            && report.attempt <= record.attempt
            && (record.state.is_terminal() || report.attempt < record.attempt);
        Ok(stale.then_some(Message::Cancel(Cancel {
            task: report.task,
            attempt: report.attempt,
        })))
    }

    /// Counts a failed attempt: the task is queued again after its backoff, or fails when it
    /// is out of attempts.
    fn fail_attempt(&mut self, id: &TaskId, error: String, now_ms: u64) {
        let (base, max) = (self.config.backoff_base_ms, self.config.backoff_max_ms);
        let Some(record) = self.active.get_mut(id) else {
            return;
        };
        record.failures = record.failures.saturating_add(1);
        record.last_error = Some(error);
        record.worker = None;
        if record.failures >= record.max_attempts {
            record.state = State::Failed;
            record.finished_ms = Some(now_ms);
        } else {
            let exp = u32::from(record.failures - 1).min(20);
            record.not_before_ms = now_ms + base.saturating_mul(1 << exp).min(max);
            record.state = State::Queued;
            self.queue.insert((record.seq, *id));
        }
    }

    /// Saves a changed active record; a finished one leaves memory.
    fn settle(&mut self, id: &TaskId) -> Result<(), master::Error> {
        let Some(record) = self.active.get(id).cloned() else {
            return Ok(());
        };
        self.save(&record)?;
        if record.state.is_terminal() {
            if let Some(record) = self.active.remove(id) {
                self.finished.push(record);
            }
        }
        Ok(())
    }

    /// Expires leases, then assigns queued tasks to live workers with room, the roomiest
    /// first. Returns the assignments to publish.
    pub(crate) fn tick(
        &mut self,
        peers: &Peers,
        now_ms: u64,
    ) -> Result<Vec<Message>, master::Error> {
        self.expire_leases(now_ms)?;
        if self.queue.is_empty() {
            return Ok(Vec::new());
        }
        let mut slots = self.slots(peers, now_ms);
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        while let Some(&(seq, id)) = self.queue.first() {
            if slots.values().all(|s| s.free() == 0) {
                break;
            }
            self.queue.remove(&(seq, id));
            let Some(record) = self.active.get(&id) else {
                continue;
            };
            if record.state != State::Queued {
                continue;
            }
            if record.not_before_ms > now_ms {
                skipped.push((seq, id));
                continue;
            }
            let spec = record.spec();
            let Some(worker) = choose(&slots, peers, &spec) else {
                skipped.push((seq, id));
                continue;
            };
            if let Some(s) = slots.get_mut(&worker) {
                s.used += 1;
            }
            let Some(assign) = self.assign(id, worker, spec, now_ms) else {
                continue;
            };
            out.push(Message::Assign(assign));
            if let Err(e) = self.settle(&id) {
                self.queue.extend(skipped);
                return Err(e);
            }
        }
        self.queue.extend(skipped);
        Ok(out)
    }

    /// Fails every attempt whose lease ran out.
    fn expire_leases(&mut self, now_ms: u64) -> Result<(), master::Error> {
        let expired: Vec<TaskId> = self
            .active
            .iter()
            .filter(|(_, r)| {
                matches!(r.state, State::Assigned | State::Running) && r.lease_until_ms <= now_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let worker = self.active.get(&id).and_then(|r| r.worker);
            let error = format!(
                "lease expired: worker {} stopped reporting",
                worker.map(|w| w.to_string()).unwrap_or_default()
            );
            self.fail_attempt(&id, error, now_ms);
            self.settle(&id)?;
        }
        Ok(())
    }

    /// Gives the queued task `id` to `worker`: the assignment to publish.
    fn assign(&mut self, id: TaskId, worker: PeerId, spec: Spec, now_ms: u64) -> Option<Assign> {
        let lease_ms = self.config.lease_ms;
        self.adoptable.remove(&id);
        let record = self.active.get_mut(&id)?;
        record.attempt += 1;
        record.state = State::Assigned;
        record.worker = Some(worker);
        record.assigned_ms = Some(now_ms);
        record.started_ms = None;
        record.lease_until_ms = now_ms + lease_ms;
        Some(Assign {
            task: id,
            attempt: record.attempt,
            worker: WirePeer(worker),
            lease_ms: u32::try_from(lease_ms).unwrap_or(u32::MAX),
            valid_until_unix_ms: now_ms + ASSIGN_VALIDITY_MS.max(lease_ms),
            spec,
        })
    }

    /// The free slots of every live worker.
    fn slots(&self, peers: &Peers, now_ms: u64) -> HashMap<PeerId, Slots> {
        let mut slots: HashMap<PeerId, Slots> = peers
            .iter()
            .filter(|(_, p)| {
                p.role == Role::Worker
                    && p.last_seen_ms + self.config.worker_silence_ms > now_ms
                    && p.capacity.max_concurrent > 0
            })
            .map(|(id, p)| {
                (
                    *id,
                    Slots {
                        max: usize::from(p.capacity.max_concurrent),
                        used: 0,
                        reported: usize::from(p.capacity.running),
                    },
                )
            })
            .collect();
        for record in self.active.values() {
            if !matches!(record.state, State::Assigned | State::Running) {
                continue;
            }
            let Some(worker) = record.worker else {
                continue;
            };
            if let Some(s) = slots.get_mut(&worker) {
                s.used += 1;
            }
        }
        slots
    }

    /// Programs some live worker allows, for checking `exec` submissions.
    pub(crate) fn programs(peers: &Peers) -> HashSet<String> {
        peers
            .iter()
            .filter(|(_, p)| p.role == Role::Worker)
            .flat_map(|(_, p)| p.capacity.programs.iter().cloned())
            .collect()
    }
}

/// The worker with the most free slots that can run `spec`.
fn choose(slots: &HashMap<PeerId, Slots>, peers: &Peers, spec: &Spec) -> Option<PeerId> {
    let program = (spec.kind == Kind::Exec)
        .then(|| spec.param("program"))
        .flatten();
    slots
        .iter()
        .filter(|(id, s)| {
            s.free() > 0
                && spec.target.is_none_or(|t| t.0 == **id)
                && program.is_none_or(|p| {
                    peers
                        .get(id)
                        .is_some_and(|peer| peer.capacity.programs.iter().any(|q| q == p))
                })
        })
        .max_by_key(|(id, s)| (s.free(), **id))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_protocols::task::Capacity;
    use ipfsbench_protocols::task::WireCid;

    /// The scheduling settings of these tests (and the gossip handlers').
    pub(super) fn config() -> master::Config {
        master::Config {
            lease_ms: 1000,
            leadership_lease_ms: 10_000,
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 250,
            worker_silence_ms: 3000,
            table_cache_bytes: 1 << 20,
        }
    }

    /// `id` heard as a worker with `max` slots at `now`.
    pub(super) fn worker(peers: &mut Peers, id: PeerId, max: u16, now: u64) {
        peers.heard(
            id,
            &Heartbeat {
                role: Role::Worker,
                seq: now,
                capacity: Capacity {
                    cores: 2,
                    memory_total_bytes: 0,
                    memory_available_bytes: 0,
                    store_free_bytes: 0,
                    running: 0,
                    max_concurrent: max,
                    hardware: String::new(),
                    programs: vec!["sort".into()],
                    tags: Vec::new(),
                },
                running: Vec::new(),
                leads: None,
            },
            now,
        );
    }

    fn assigned(messages: &[Message]) -> Vec<(TaskId, u32, PeerId)> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Assign(a) => Some((a.task, a.attempt, a.worker.0)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tasks_go_to_the_roomiest_worker_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Master::open(dir.path(), config(), 0).unwrap();
        let me = PeerId::random();
        let (big, small) = (PeerId::random(), PeerId::random());
        let mut peers = Peers::default();
        worker(&mut peers, big, 3, 1);
        worker(&mut peers, small, 1, 1);
        for i in 0..5 {
            m.submit(me, &format!("k{i}"), Spec::new(Kind::Noop), 10)
                .unwrap();
        }
        let out = assigned(&m.tick(&peers, 20).unwrap());
        assert_eq!(out.len(), 4, "only four slots exist");
        assert_eq!(out.iter().filter(|a| a.2 == big).count(), 3);
        assert_eq!(out.iter().filter(|a| a.2 == small).count(), 1);
        let (task, attempt, w) = out[0];
        assert!(m
            .on_claim(
                w,
                &Claim {
                    task,
                    attempt,
                    accepted: true,
                    started_unix_ms: 25,
                    reason: String::new()
                },
                25
            )
            .unwrap());
        // A report from another peer is not taken.
        let done = Report {
            task,
            attempt,
            started_unix_ms: 25,
            outcome: Outcome::Done {
                record: WireCid(
                    "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
                        .parse()
                        .unwrap(),
                ),
                figures: Vec::new(),
            },
        };
        assert!(!m.on_report(PeerId::random(), &done, 30).unwrap());
        // While the attempt is current, a repeat of its report is taken, not answered.
        assert_eq!(m.stale_report(&done).unwrap(), None);
        assert!(m.on_report(w, &done, 30).unwrap());
        assert_eq!(m.get(&task).unwrap().unwrap().state, State::Succeeded);
        // Once the task is over, a repeat is answered by cancelling the attempt.
        assert_eq!(
            m.stale_report(&done).unwrap(),
            Some(Message::Cancel(Cancel { task, attempt }))
        );
        // Attempts never given out, and unknown tasks, get no answer.
        let never = Report {
            attempt: attempt + 1,
            ..done.clone()
        };
        assert_eq!(m.stale_report(&never).unwrap(), None);
        let unknown = Report {
            task: TaskId([9; 16]),
            ..done.clone()
        };
        assert_eq!(m.stale_report(&unknown).unwrap(), None);
        assert_eq!(m.take_finished().len(), 1);
        // The freed slot takes the fifth task.
        assert_eq!(assigned(&m.tick(&peers, 40).unwrap()).len(), 1);
    }

    #[test]
    fn submission_is_idempotent_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let me = PeerId::random();
        let id = {
            let mut m = Master::open(dir.path(), config(), 0).unwrap();
            let (a, new_a) = m.submit(me, "same", Spec::new(Kind::Noop), 1).unwrap();
            let (b, new_b) = m.submit(me, "same", Spec::new(Kind::BenchHash), 2).unwrap();
            assert!(new_a && !new_b);
            assert_eq!(a, b);
            m.submit(me, "other", Spec::new(Kind::Noop), 3).unwrap();
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(m.flush())
                .unwrap();
            a.id
        };
        let m = Master::open(dir.path(), config(), 100).unwrap();
        let record = m.get(&id).unwrap().unwrap();
        assert_eq!(record.state, State::Queued);
        assert_eq!(m.counts().get(&State::Queued), Some(&2));
        assert_eq!(m.list(None, None, 10).unwrap().0.len(), 2);
    }

    #[test]
    fn listing_pages_in_submission_order() {
        let dir = tempfile::tempdir().unwrap();
        let me = PeerId::random();
        let mut ids = Vec::new();
        {
            let mut m = Master::open(dir.path(), config(), 0).unwrap();
            for i in 0..25 {
                let (r, _) = m
                    .submit(me, &format!("k{i}"), Spec::new(Kind::Noop), i)
                    .unwrap();
                ids.push(r.id);
            }
            for id in ids.iter().step_by(3) {
                m.cancel(id, 50).unwrap();
            }
            // A table from before the index: it is rebuilt on open.
            m.db.drop_tree("tasks_by_seq").unwrap();
        }
        let m = Master::open(dir.path(), config(), 100).unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let (page, next) = m.list(None, after, 10).unwrap();
            assert!(page.len() <= 10);
            seen.extend(page.into_iter().map(|r| r.id));
            pages += 1;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        assert_eq!(pages, 3);
        let (cancelled, next) = m.list(Some(State::Cancelled), None, 100).unwrap();
        let expected: Vec<_> = ids.iter().step_by(3).cloned().collect();
        assert_eq!(cancelled.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
        assert_eq!(next, None);
        // Task 24 was cancelled, so the queued ones after 22 are task 23 alone.
        let (page, next) = m.list(Some(State::Queued), Some(22), 5).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].id, ids[23]);
        assert_eq!(next, None);
        // One call never returns more than a page, whatever it asks for.
        assert_eq!(m.list(None, None, usize::MAX).unwrap().0.len(), 25);
        assert!(m.list(None, Some(u64::MAX), 5).unwrap().0.is_empty());
    }

    #[test]
    fn expired_leases_retry_with_backoff_then_fail() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Master::open(dir.path(), config(), 0).unwrap();
        let w = PeerId::random();
        let mut peers = Peers::default();
        let (record, _) = m
            .submit(PeerId::random(), "k", Spec::new(Kind::Noop), 0)
            .unwrap();
        let id: TaskId = record.id;
        let mut now = 0;
        let mut waits = Vec::new();
        for attempt in 1..=3 {
            worker(&mut peers, w, 1, now);
            let out = assigned(&m.tick(&peers, now).unwrap());
            assert_eq!(out, vec![(id, attempt, w)]);
            // The lease runs out without a heartbeat naming the attempt.
            now += 1000;
            worker(&mut peers, w, 1, now);
            assert!(m.tick(&peers, now).unwrap().is_empty());
            let r = m.get(&id).unwrap().unwrap();
            if attempt < 3 {
                assert_eq!(r.state, State::Queued);
                waits.push(r.not_before_ms - now);
                now = r.not_before_ms;
            } else {
                assert_eq!(r.state, State::Failed);
                assert!(r.last_error.unwrap().contains("lease expired"));
            }
        }
        assert_eq!(waits, vec![100, 200], "doubling backoff");
    }

    #[test]
    fn heartbeats_renew_leases_and_cancel_stops_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Master::open(dir.path(), config(), 0).unwrap();
        let w = PeerId::random();
        let mut peers = Peers::default();
        worker(&mut peers, w, 1, 0);
        let (record, _) = m
            .submit(PeerId::random(), "k", Spec::new(Kind::Noop), 0)
            .unwrap();
        let id: TaskId = record.id;
        assert_eq!(assigned(&m.tick(&peers, 0).unwrap()).len(), 1);
        let hb = Heartbeat {
            role: Role::Worker,
            seq: 900,
            capacity: peers.get(&w).unwrap().capacity.clone(),
            running: vec![(id, 1)],
            leads: None,
        };
        assert!(m.on_heartbeat(w, &hb, 900).unwrap().is_empty());
        worker(&mut peers, w, 1, 1500);
        assert!(m.tick(&peers, 1500).unwrap().is_empty());
        assert_eq!(m.get(&id).unwrap().unwrap().state, State::Assigned);
        let (r, stop) = m.cancel(&id, 1600).unwrap();
        assert_eq!(r.state, State::Cancelled);
        assert_eq!(
            stop,
            Some(Message::Cancel(Cancel {
                task: id,
                attempt: 1
            }))
        );
    }

    #[test]
    fn exec_and_targets_only_go_where_they_can_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Master::open(dir.path(), config(), 0).unwrap();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut peers = Peers::default();
        worker(&mut peers, a, 4, 0);
        worker(&mut peers, b, 4, 0);
        let mut on_b = Spec::new(Kind::Noop);
        on_b.target = Some(WirePeer(b));
        let mut exec = Spec::new(Kind::Exec);
        exec.params.push(("program".into(), "gcc".into()));
        m.submit(a, "1", on_b, 0).unwrap();
        m.submit(a, "2", exec, 0).unwrap();
        let out = assigned(&m.tick(&peers, 1).unwrap());
        assert_eq!(out.len(), 1, "nobody offers gcc");
        assert_eq!(out[0].2, b);
        assert!(Master::programs(&peers).contains("sort"));
    }
}
