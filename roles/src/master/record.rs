//! A task as the master records it, its states, and the master's settings and errors.

use ipfsbench_protocols::task::{Kind, Spec, TaskId, WireCid, WirePeer};
use serde::{Deserialize, Serialize};

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for a worker (or for its retry backoff to pass).
    Queued,
    /// Given to a worker that has not confirmed yet.
    Assigned,
    /// A worker runs it.
    Running,
    /// Done; the result is set.
    Succeeded,
    /// Out of attempts; the last error is set.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl State {
    /// Whether the task is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => State::Queued,
            "assigned" => State::Assigned,
            "running" => State::Running,
            "succeeded" => State::Succeeded,
            "failed" => State::Failed,
            "cancelled" => State::Cancelled,
            other => {
                return Err(format!(
                "unknown task state {other:?} (queued, assigned, running, succeeded, failed, cancelled)"
            ))
            }
        })
    }
}

/// Everything the master knows of a task: what `task status` shows and what survives a
/// restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskRecord {
    /// The task id.
    pub id: String,
    /// The submitter's idempotency key.
    pub key: String,
    /// Who submitted it.
    pub submitter: String,
    /// Its kind.
    pub kind: String,
    /// Input CIDs.
    pub inputs: Vec<String>,
    /// Parameters, in order.
    pub params: Vec<(String, String)>,
    /// The longest one attempt may run; 0 leaves it to the worker. Seconds.
    pub timeout_secs: u32,
    /// Failed attempts allowed before the task fails.
    pub max_attempts: u8,
    /// The worker it must run on, if any.
    pub target: Option<String>,
    /// Where it is.
    pub state: State,
    /// The number of the latest assignment (0 before the first).
    pub attempt: u32,
    /// Attempts that failed (or whose lease expired).
    pub failures: u8,
    /// The worker of the latest assignment.
    pub worker: Option<String>,
    /// When the latest assignment's lease ends unless renewed. Unix ms.
    pub lease_until_ms: u64,
    /// The task is not assigned again before this (retry backoff). Unix ms.
    pub not_before_ms: u64,
    /// The latest error.
    pub last_error: Option<String>,
    /// The result record's CID, once succeeded.
    pub result: Option<String>,
    /// The latest progress report, in thousandths.
    pub progress_permille: u16,
    /// Submission order.
    pub seq: u64,
    /// When it was submitted. Unix ms.
    pub submitted_ms: u64,
    /// When the latest attempt was assigned. Unix ms.
    pub assigned_ms: Option<u64>,
    /// When the latest attempt started on its worker (the worker's clock). Unix ms.
    pub started_ms: Option<u64>,
    /// When it ended. Unix ms.
    pub finished_ms: Option<u64>,
}

impl TaskRecord {
    /// The task's id, parsed.
    pub(crate) fn task_id(&self) -> Result<TaskId, MasterError> {
        self.id
            .parse()
            .map_err(|e: ipfsbench_protocols::task::BadTaskId| MasterError::Corrupt(e.to_string()))
    }

    /// The spec an assignment carries, rebuilt from the record.
    pub(crate) fn spec(&self) -> Result<Spec, MasterError> {
        let corrupt = |e: &dyn std::fmt::Display| MasterError::Corrupt(format!("{}: {e}", self.id));
        let kind: Kind = self.kind.parse().map_err(|e| corrupt(&e))?;
        let mut spec = Spec::new(kind);
        for input in &self.inputs {
            spec.inputs
                .push(WireCid(input.parse().map_err(|e| corrupt(&e))?));
        }
        spec.params = self.params.clone();
        spec.timeout_secs = self.timeout_secs;
        spec.max_attempts = self.max_attempts;
        spec.target = match &self.target {
            Some(t) => Some(WirePeer(t.parse().map_err(|e| corrupt(&e))?)),
            None => None,
        };
        Ok(spec)
    }
}

/// Master failures.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The task database failed.
    #[error("task database: {0}")]
    Db(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("corrupt task record: {0}")]
    Corrupt(String),
    /// The submission is refused.
    #[error("{0}")]
    Refused(String),
    /// No such task.
    #[error("no task {0}")]
    NoSuchTask(TaskId),
}

/// How the master schedules.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// How long an attempt stays leased without a heartbeat naming it. Milliseconds.
    pub lease_ms: u64,
    /// Failed attempts before a task fails, unless it says otherwise.
    pub max_attempts: u8,
    /// The wait before the first retry, doubled per further retry. Milliseconds.
    pub backoff_base_ms: u64,
    /// The longest wait before a retry. Milliseconds.
    pub backoff_max_ms: u64,
    /// A worker silent for this long gets no new work. Milliseconds.
    pub worker_silence_ms: u64,
    /// Memory the task table's page cache may use. Bytes.
    pub table_cache_bytes: u64,
}
