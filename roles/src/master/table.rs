//! The durable task table and the scheduling rules applied to it: submission, assignment by
//! capacity, leases, retries and cancellation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{
    Assign, Cancel, Claim, Heartbeat, Kind, Message, Outcome, Progress, Report, Spec, TaskId,
    WirePeer,
};
use ipfsbench_protocols::Role;

use super::record::{Config, Error, State, TaskRecord};
use crate::cluster::Peers;

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
    pub(super) db: sled::Db,
    pub(super) tasks: sled::Tree,
    /// Submission order: the big-endian `seq` to the task id, so listing pages without
    /// reading the whole table.
    pub(super) by_seq: sled::Tree,
    pub(super) config: Config,
    pub(super) active: HashMap<TaskId, TaskRecord>,
    pub(super) queue: BTreeSet<(u64, TaskId)>,
    pub(super) next_seq: u64,
    pub(super) finished: Vec<TaskRecord>,
    /// Records changed since the replicated state last took them.
    pub(super) changed: HashMap<TaskId, TaskRecord>,
    /// Tasks taken over from another master that are not over and have not been assigned
    /// here since: what workers say they run (or finished) of them is believed.
    pub(super) adoptable: HashSet<TaskId>,
}

impl Master {
    /// Opens (or creates) the task database under `repo`, and takes back every task that is
    /// not over: queued ones wait again, assigned and running ones get a fresh lease.
    pub fn open(repo: &Path, config: Config, now_ms: u64) -> Result<Self, Error> {
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

    pub(super) fn save(&mut self, record: &TaskRecord) -> Result<(), Error> {
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
    pub async fn flush(&self) -> Result<(), Error> {
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
    ) -> Result<(TaskRecord, bool), Error> {
        let id = TaskId::derive(&submitter, key);
        if let Some(existing) = self.get(&id)? {
            return Ok((existing, false));
        }
        spec.check().map_err(|e| Error::Refused(e.to_string()))?;
        if self.active.len() >= MAX_ACTIVE_TASKS {
            return Err(Error::Refused(format!(
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
    pub fn get(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        if let Some(record) = self.active.get(id) {
            return Ok(Some(record.clone()));
        }
        match self.tasks.get(id.0)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every record in the table, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = Result<TaskRecord, Error>> + '_ {
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
    ) -> Result<(Vec<TaskRecord>, Option<u64>), Error> {
        let limit = limit.min(MAX_LIST_PAGE);
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let mut out = Vec::new();
        if limit == 0 || after == Some(u64::MAX) {
            return Ok((out, None));
        }
        for entry in self.by_seq.range(start.to_be_bytes()..) {
            let (_, id) = entry?;
            let id: [u8; 16] = id
                .as_ref()
                .try_into()
                .map_err(|_| Error::Corrupt("a task index entry is not a task id".into()))?;
            let Some(record) = self.get(&TaskId(id))? else {
                return Err(Error::Corrupt(format!(
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
    ) -> Result<(TaskRecord, Option<Message>), Error> {
        let Some(mut record) = self.active.remove(id) else {
            return self
                .get(id)?
                .map(|r| (r, None))
                .ok_or(Error::NoSuchTask(*id));
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
    ) -> Result<Vec<Message>, Error> {
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
    pub fn on_claim(&mut self, from: PeerId, claim: &Claim, now_ms: u64) -> Result<bool, Error> {
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
    pub fn on_report(&mut self, from: PeerId, report: &Report, now_ms: u64) -> Result<bool, Error> {
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
    pub fn stale_report(&self, report: &Report) -> Result<Option<Message>, Error> {
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
    fn settle(&mut self, id: &TaskId) -> Result<(), Error> {
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
    pub(crate) fn tick(&mut self, peers: &Peers, now_ms: u64) -> Result<Vec<Message>, Error> {
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
    fn expire_leases(&mut self, now_ms: u64) -> Result<(), Error> {
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
pub(super) mod tests;
