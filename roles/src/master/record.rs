//! A task as the master records it, its states, and the master's settings and errors.

use cid::Cid;
use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Kind, Outcome, Report, Spec, TaskId, WireCid, WirePeer, MAX_TEXT};
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

impl State {
    /// Its name, as the API and `task ls` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Assigned => "assigned",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskRecord {
    /// The task id.
    #[serde(with = "crate::text")]
    pub id: TaskId,
    /// The submitter's idempotency key.
    pub key: String,
    /// Who submitted it.
    #[serde(with = "crate::text")]
    pub submitter: PeerId,
    /// Its kind.
    #[serde(with = "crate::text")]
    pub kind: Kind,
    /// Input CIDs.
    #[serde(with = "crate::text::list")]
    pub inputs: Vec<Cid>,
    /// Parameters, in order.
    pub params: Vec<(String, String)>,
    /// The longest one attempt may run; 0 leaves it to the worker. Seconds.
    pub timeout_secs: u32,
    /// Failed attempts allowed before the task fails.
    pub max_attempts: u8,
    /// The worker it must run on, if any.
    #[serde(with = "crate::text::option")]
    pub target: Option<PeerId>,
    /// Where it is.
    pub state: State,
    /// The number of the latest assignment (0 before the first).
    pub attempt: u32,
    /// Attempts that failed (or whose lease expired).
    pub failures: u8,
    /// The worker of the latest assignment.
    #[serde(with = "crate::text::option")]
    pub worker: Option<PeerId>,
    /// When the latest assignment's lease ends unless renewed. Unix ms.
    pub lease_until_ms: u64,
    /// The task is not assigned again before this (retry backoff). Unix ms.
    pub not_before_ms: u64,
    /// The latest error.
    pub last_error: Option<String>,
    /// The result record's CID, once succeeded.
    #[serde(with = "crate::text::option")]
    pub result: Option<Cid>,
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
    /// The key figures the worker reported with its result, by name.
    #[serde(default)]
    pub figures: std::collections::BTreeMap<String, f64>,
}

impl TaskRecord {
    /// How far the task got, for choosing between two copies of its record: the attempt,
    /// then the state (queued, assigned, running, over).
    pub(crate) fn progress(&self) -> (u32, u8) {
        let state = match self.state {
            State::Queued => 0,
            State::Assigned => 1,
            State::Running => 2,
            _ => 3,
        };
        (self.attempt, state)
    }

    /// The report a master publishes when the task is over: its outcome, for whoever
    /// submitted it over pubsub, and the acknowledgement of its worker's report.
    pub(crate) fn outcome_report(&self) -> Report {
        let outcome = match self.result {
            Some(cid) => Outcome::Done {
                record: WireCid(cid),
                figures: self.figures.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            },
            None => {
                let mut error = match self.state {
                    State::Cancelled => "cancelled".to_string(),
                    _ => self.last_error.clone().unwrap_or_default(),
                };
                error.truncate(MAX_TEXT);
                Outcome::Failed { error }
            }
        };
        Report {
            task: self.id,
            attempt: self.attempt,
            started_unix_ms: self.started_ms.unwrap_or(0),
            outcome,
        }
    }

    /// The spec an assignment carries, rebuilt from the record.
    pub(crate) fn spec(&self) -> Spec {
        let mut spec = Spec::new(self.kind);
        spec.inputs = self.inputs.iter().copied().map(WireCid).collect();
        spec.params = self.params.clone();
        spec.timeout_secs = self.timeout_secs;
        spec.max_attempts = self.max_attempts;
        spec.target = self.target.map(WirePeer);
        spec
    }
}

/// Master failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The task database failed.
    #[error("task database: {0}")]
    Db(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("corrupt task record: {0}")]
    Corrupt(String),
    /// A record could not be read or written as JSON.
    #[error("corrupt task record: {0}")]
    Json(#[from] serde_json::Error),
    /// The submission is refused.
    #[error("{0}")]
    Refused(String),
    /// No such task.
    #[error("no task {0}")]
    NoSuchTask(TaskId),
}

/// How the master schedules.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long an attempt stays leased without a heartbeat naming it. Milliseconds.
    pub lease_ms: u64,
    /// How long the leading master may be silent before a standby takes over. Milliseconds.
    pub leadership_lease_ms: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_written_as_it_is_parsed() {
        for state in [
            State::Queued,
            State::Assigned,
            State::Running,
            State::Succeeded,
            State::Failed,
            State::Cancelled,
        ] {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json.as_str(), Some(state.as_str()));
            assert_eq!(state.as_str().parse::<State>(), Ok(state));
        }
    }
}
