//! How the task table meets the replicated cluster state: the keys it writes there (every
//! record under `task/<id>`, every finished task's outcome under `result/<id>`, submissions
//! taken by a standby under `submit/<id>`), and what a master does when it takes over
//! scheduling from another: it takes the records from the state, believes the workers about
//! what they run and what they finished, and queues the rest.

use std::collections::BTreeMap;

use cid::Cid;
use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Kind, TaskId};
use serde::{Deserialize, Serialize};

use super::record::{Error, State, TaskRecord};
use super::table::Master;

/// Where task records live in the state.
pub const TASK_PREFIX: &str = "task/";
/// Where finished tasks' outcomes live.
pub const RESULT_PREFIX: &str = "result/";
/// Where a standby master leaves the submissions it takes, for the scheduling master.
pub const SUBMIT_PREFIX: &str = "submit/";

/// The state key of task `id`'s record under `prefix`.
pub fn key(prefix: &str, id: &TaskId) -> Vec<u8> {
    format!("{prefix}{id}").into_bytes()
}

/// A finished task as the cluster remembers it: what `cluster results` lists, on any node,
/// after the master that ran it is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultEntry {
    /// The task.
    #[serde(with = "crate::text")]
    pub id: TaskId,
    /// Its kind.
    #[serde(with = "crate::text")]
    pub kind: Kind,
    /// How it ended: succeeded, failed or cancelled.
    pub state: State,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// The worker of its last attempt.
    #[serde(with = "crate::text::option")]
    pub worker: Option<PeerId>,
    /// Attempts made.
    pub attempts: u32,
    /// The result record, when it succeeded.
    #[serde(with = "crate::text::option")]
    pub result: Option<Cid>,
    /// Why it failed.
    pub error: Option<String>,
    /// The worker's key figures, by name.
    pub figures: BTreeMap<String, f64>,
    /// When it was submitted, started and ended. Unix ms.
    pub submitted_ms: u64,
    /// When its last attempt started.
    pub started_ms: Option<u64>,
    /// When it ended.
    pub finished_ms: Option<u64>,
    /// The master that recorded it.
    #[serde(with = "crate::text")]
    pub master: PeerId,
}

impl ResultEntry {
    /// The entry of a finished record, as master `master` recorded it.
    pub fn new(record: &TaskRecord, master: PeerId) -> Self {
        Self {
            id: record.id,
            kind: record.kind,
            state: record.state,
            params: record.params.clone(),
            worker: record.worker,
            attempts: record.attempt,
            result: record.result,
            error: (record.state != State::Succeeded)
                .then(|| record.last_error.clone())
                .flatten(),
            figures: record.figures.clone(),
            submitted_ms: record.submitted_ms,
            started_ms: record.started_ms,
            finished_ms: record.finished_ms,
            master,
        }
    }
}

impl Master {
    /// Stops scheduling: the tasks not over leave memory (their records stay in the table),
    /// for the master that leads now. Returns them, to hand to that master (it may not know
    /// those submitted here while the two did not hear each other).
    pub fn step_down(&mut self) -> Vec<TaskRecord> {
        self.queue.clear();
        self.adoptable.clear();
        self.active.drain().map(|(_, r)| r).collect()
    }

    /// Takes over the cluster's task table from the replicated state: each record replaces
    /// this table's copy unless this copy got further, tasks not over are held (queued ones
    /// queued, assigned and running ones with a fresh lease) and may be adopted from what
    /// workers say. Returns how many tasks are not over.
    pub fn take_over(
        &mut self,
        records: impl IntoIterator<Item = TaskRecord>,
        now_ms: u64,
    ) -> Result<usize, Error> {
        self.step_down();
        for theirs in records {
            let id = theirs.id;
            let mine = self.get(&id)?;
            let mut record = match mine {
                Some(mine) if mine.progress() > theirs.progress() => {
                    // This table got further (the state missed its last change): keep it,
                    // and tell the state.
                    self.changed.insert(id, mine.clone());
                    mine
                }
                Some(mine) if mine.seq == theirs.seq => theirs,
                _ => self.number(theirs)?,
            };
            if !record.state.is_terminal() {
                self.hold(&mut record, now_ms);
            }
            self.tasks.insert(id.0, serde_json::to_vec(&record)?)?;
        }
        for entry in self.tasks.iter() {
            let (_, value) = entry?;
            let mut record: TaskRecord = serde_json::from_slice(&value)?;
            if !record.state.is_terminal() && !self.active.contains_key(&record.id) {
                // Known here but not in the state: it was never replicated; it is still ours.
                self.changed.insert(record.id, record.clone());
                self.hold(&mut record, now_ms);
            }
        }
        Ok(self.active.len())
    }

    /// Takes a task left in the state: a standby's submission, or a task not over handed on
    /// by a master that stepped down (queued, or running on a worker that goes on with it:
    /// held with a fresh lease, and adoptable). Returns false when the task is known.
    pub fn take_submission(&mut self, record: TaskRecord, now_ms: u64) -> Result<bool, Error> {
        if self.get(&record.id)?.is_some() {
            return Ok(false);
        }
        let mut record = self.number(record)?;
        if record.state.is_terminal() {
            record.state = State::Queued;
        }
        self.save(&record)?;
        self.hold(&mut record, now_ms);
        Ok(true)
    }

    /// Gives `record` this table's next submission number (and indexes it).
    fn number(&mut self, mut record: TaskRecord) -> Result<TaskRecord, Error> {
        let free = match self.by_seq.get(record.seq.to_be_bytes())? {
            None => true,
            Some(id) => id.as_ref() == record.id.0,
        };
        if !free {
            record.seq = self.next_seq;
            self.changed.insert(record.id, record.clone());
        }
        self.next_seq = self.next_seq.max(record.seq + 1);
        self.by_seq.insert(record.seq.to_be_bytes(), &record.id.0)?;
        Ok(record)
    }

    /// Holds a task that is not over in memory: queued, or leased anew.
    fn hold(&mut self, record: &mut TaskRecord, now_ms: u64) {
        if record.state == State::Queued {
            self.queue.insert((record.seq, record.id));
        } else {
            record.lease_until_ms = now_ms + self.config.lease_ms;
        }
        self.adoptable.insert(record.id);
        self.active.insert(record.id, record.clone());
    }

    /// A worker says it runs (or finished) attempt `attempt` of a task taken over from
    /// another master: when that attempt is newer than any the record knows (the other
    /// master made it and fell silent before the state heard), the record follows the
    /// worker, so the attempt is neither run again nor lost.
    pub(super) fn adopt(&mut self, task: TaskId, attempt: u32, worker: PeerId, now_ms: u64) {
        if !self.adoptable.contains(&task) {
            return;
        }
        let lease = self.config.lease_ms;
        let Some(record) = self.active.get_mut(&task) else {
            return;
        };
        // An attempt the record knows of was settled by the master that made it.
        if attempt <= record.attempt {
            return;
        }
        tracing::info!(%task, attempt, %worker, "adopting an attempt made under another master");
        record.attempt = attempt;
        record.worker = Some(worker);
        record.state = State::Running;
        record.lease_until_ms = now_ms + lease;
        let seq = record.seq;
        let record = record.clone();
        self.queue.remove(&(seq, task));
        self.changed.insert(task, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_protocols::task::{Heartbeat, Outcome, Report, Spec, WireCid};

    const T0: u64 = 1_700_000_000_000;

    fn table(dir: &std::path::Path) -> Master {
        Master::open(dir, super::super::table::tests::config(), T0).unwrap()
    }

    fn heartbeat(running: Vec<(TaskId, u32)>) -> Heartbeat {
        Heartbeat {
            role: ipfsbench_protocols::Role::Worker,
            seq: 0,
            capacity: Default::default(),
            running,
            leads: None,
        }
    }

    #[test]
    fn a_standby_takes_over_running_queued_and_finished_tasks() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut active = table(a.path());
        let me = PeerId::random();
        let (w1, w2) = (PeerId::random(), PeerId::random());
        let mut ids = Vec::new();
        for key in ["done", "running", "queued", "stale"] {
            let (r, _) = active.submit(me, key, Spec::new(Kind::Noop), T0).unwrap();
            ids.push(r.id);
        }
        let replicated: Vec<TaskRecord> = active.take_changed();
        assert_eq!(replicated.len(), 4);
        let mut state: BTreeMap<TaskId, TaskRecord> =
            replicated.into_iter().map(|r| (r.id, r)).collect();
        for (id, st, worker) in [(ids[0], State::Succeeded, w1), (ids[1], State::Running, w1)] {
            let r = state.get_mut(&id).unwrap();
            r.state = st;
            r.attempt = 1;
            r.worker = Some(worker);
        }
        // The standby's table knows nothing; it takes the state's.
        let mut standby = table(b.path());
        assert_eq!(standby.take_over(state.values().cloned(), T0).unwrap(), 3);
        assert_eq!(
            standby.get(&ids[0]).unwrap().unwrap().state,
            State::Succeeded
        );
        assert_eq!(standby.counts().get(&State::Queued), Some(&2));
        // The old master had assigned "stale" to w2 without the state hearing of it: w2's
        // heartbeat says so, and the standby follows it instead of assigning it again.
        standby
            .on_heartbeat(w2, &heartbeat(vec![(ids[3], 1)]), T0 + 1)
            .unwrap();
        let stale = standby.get(&ids[3]).unwrap().unwrap();
        assert_eq!(
            (stale.state, stale.attempt, stale.worker),
            (State::Running, 1, Some(w2))
        );
        // A report of an attempt the state never heard of completes the task once.
        let report = Report {
            task: ids[2],
            attempt: 1,
            started_unix_ms: T0,
            outcome: Outcome::Done {
                record: WireCid(Cid::default()),
                figures: vec![("Seconds".into(), 0.5)],
            },
        };
        assert!(standby.on_report(w1, &report, T0 + 2).unwrap());
        let done = standby.get(&ids[2]).unwrap().unwrap();
        assert_eq!(done.state, State::Succeeded);
        assert_eq!(done.figures.get("Seconds"), Some(&0.5));
        assert!(!standby.on_report(w1, &report, T0 + 3).unwrap());
        // The finished task's entry for the state.
        let entry = ResultEntry::new(&done, me);
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["State"], "succeeded");
        assert_eq!(json["Figures"]["Seconds"], 0.5);
    }

    #[test]
    fn a_table_that_got_further_keeps_its_record_and_tells_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = table(dir.path());
        let me = PeerId::random();
        let (mut r, _) = t.submit(me, "k", Spec::new(Kind::Noop), T0).unwrap();
        let behind = r.clone();
        r.state = State::Succeeded;
        r.attempt = 1;
        t.tasks
            .insert(r.id.0, serde_json::to_vec(&r).unwrap())
            .unwrap();
        t.take_changed();
        assert_eq!(t.take_over([behind], T0).unwrap(), 0);
        assert_eq!(t.get(&r.id).unwrap().unwrap().state, State::Succeeded);
        let told = t.take_changed();
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].state, State::Succeeded);
    }

    #[test]
    fn submissions_left_by_a_standby_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = table(dir.path());
        let other = PeerId::random();
        let draft = t.draft(other, "k", Spec::new(Kind::Noop), T0);
        assert!(t.take_submission(draft.clone(), T0).unwrap());
        assert!(!t.take_submission(draft, T0).unwrap());
        assert_eq!(t.counts().get(&State::Queued), Some(&1));
    }
}
