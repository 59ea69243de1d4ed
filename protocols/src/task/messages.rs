//! The task messages: what to run, and what masters, workers and submitters say about it.

use serde::{Deserialize, Serialize};

use super::error::{limit, Error};
use super::ids::{Kind, TaskId, WireCid, WirePeer};
use super::limits::{MAX_INPUTS, MAX_PARAMS, MAX_SHORT_TEXT};
use crate::role::Role;

/// What to run: the part of a task that travels with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The kind.
    pub kind: Kind,
    /// Input DAGs.
    pub inputs: Vec<WireCid>,
    /// Kind-specific parameters, `key=value`.
    pub params: Vec<(String, String)>,
    /// The longest one attempt may run. Seconds; 0 takes the worker's default.
    pub timeout_secs: u32,
    /// Attempts before the task fails; 0 takes the master's default.
    pub max_attempts: u8,
    /// Run only on this worker, when set.
    pub target: Option<WirePeer>,
}

impl Spec {
    /// A spec of `kind` with no inputs or parameters and default limits.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            inputs: Vec::new(),
            params: Vec::new(),
            timeout_secs: 0,
            max_attempts: 0,
            target: None,
        }
    }

    /// The value of parameter `key`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the spec's limits and that the kind has what it needs.
    pub fn check(&self) -> Result<(), Error> {
        limit(self.inputs.len() <= MAX_INPUTS, "too many inputs")?;
        limit(self.params.len() <= MAX_PARAMS, "too many parameters")?;
        for (k, v) in &self.params {
            limit(
                !k.is_empty() && k.len() <= MAX_SHORT_TEXT && v.len() <= MAX_SHORT_TEXT,
                "parameter too long or empty",
            )?;
        }
        if self.kind.needs_input() && self.inputs.is_empty() {
            return Err(Error::Invalid(format!(
                "task kind {} needs an input CID",
                self.kind
            )));
        }
        if self.kind == Kind::Exec && self.param("program").is_none() {
            return Err(Error::Invalid(
                "task kind exec needs a `program` parameter".into(),
            ));
        }
        Ok(())
    }
}

/// A task submitted to the masters. The task's id is [`TaskId::derive`] of the (signed)
/// sender and `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit {
    /// The idempotency key: the same key from the same submitter is the same task.
    pub key: String,
    /// What to run.
    pub spec: Spec,
}

/// A master gives one attempt of a task to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assign {
    /// The task.
    pub task: TaskId,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The worker that is to run it.
    pub worker: WirePeer,
    /// How long the attempt's lease lasts without a heartbeat naming it. Milliseconds.
    pub lease_ms: u32,
    /// The assignment is void after this (Unix time, milliseconds): a worker ignores it,
    /// so an old assignment replayed by a peer never runs a task again.
    pub valid_until_unix_ms: u64,
    /// What to run.
    pub spec: Spec,
}

/// A worker takes (or refuses) an assigned attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Whether the worker started it.
    pub accepted: bool,
    /// When it started (Unix time, milliseconds), when accepted.
    pub started_unix_ms: u64,
    /// Why not, when refused.
    pub reason: String,
}

/// What a node can take on, as its heartbeat reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// CPU cores.
    pub cores: u16,
    /// Total memory. Bytes.
    pub memory_total_bytes: u64,
    /// Available memory. Bytes.
    pub memory_available_bytes: u64,
    /// Free space where the block store lives. Bytes.
    pub store_free_bytes: u64,
    /// Attempts running now.
    pub running: u16,
    /// The most attempts it runs at once (0 for nodes that run none).
    pub max_concurrent: u16,
    /// The CPU model and platform.
    pub hardware: String,
    /// The programs `exec` tasks may name on this node.
    pub programs: Vec<String>,
    /// Its tags, `key:value`, for pin allocation.
    pub tags: Vec<String>,
}

/// A node's periodic announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node's role.
    pub role: Role,
    /// Increases with every heartbeat of the same process.
    pub seq: u64,
    /// What it can take on.
    pub capacity: Capacity,
    /// The attempts it runs: their leases are renewed.
    pub running: Vec<(TaskId, u32)>,
    /// Set by the master that schedules: the epoch of its leadership. A standby master takes
    /// over when no leader has been heard for its lease; of two leaders, the higher epoch
    /// (then the higher PeerId) keeps scheduling.
    pub leads: Option<u64>,
}

/// How far an attempt has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Done so far, in thousandths.
    pub permille: u16,
    /// What it is doing.
    pub note: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// It succeeded; the result record is this CID.
    Done {
        /// The result record (a JSON file in the worker's store).
        record: WireCid,
        /// Its key figures (at most [`MAX_FIGURES`](crate::task::MAX_FIGURES)), by name: what the cluster's replicated
        /// results keep of the record.
        figures: Vec<(String, f64)>,
    },
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// The end of an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// When it started on the worker (Unix time, milliseconds).
    pub started_unix_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the error of a refusal starts with (see [`Report::refusal`]).
pub const REFUSED: &str = "refused: ";
/// The longest reason a refusal gives. Bytes.
pub const MAX_REFUSAL: usize = 256;

impl Report {
    /// A master's answer to a submission it will not take: the outcome of a task that never
    /// ran (attempt 0, never started), failed with [`REFUSED`] and the reason, cut to
    /// [`MAX_REFUSAL`] bytes. It travels as every outcome does, so a submitter waiting for
    /// the task learns at once; a node that does not know refusals reads a failure.
    pub fn refusal(task: TaskId, reason: &str) -> Report {
        let mut cut = reason.len().min(MAX_REFUSAL);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        Report {
            task,
            attempt: 0,
            started_unix_ms: 0,
            outcome: Outcome::Failed {
                error: format!("{REFUSED}{}", &reason[..cut]),
            },
        }
    }

    /// The reason, when this report is a refusal ([`Report::refusal`]).
    pub fn refused(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Failed { error } if self.attempt == 0 && self.started_unix_ms == 0 => {
                error.strip_prefix(REFUSED)
            }
            _ => None,
        }
    }
}

/// A [`Report`] sent again, because no outcome from the master has acknowledged it (the master
/// may have been down when it was first sent). `round` counts the repetitions, so that each
/// is a new gossipsub message rather than a duplicate of the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    /// The report.
    pub report: Report,
    /// 1 for the first repetition, and so on.
    pub round: u32,
}

/// Stop a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The task.
    pub task: TaskId,
    /// The attempt to stop, when sent to its worker (0 from a submitter to the master).
    pub attempt: u32,
}

/// Every task message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Submitter to masters.
    Submit(Submit),
    /// Master to a worker.
    Assign(Assign),
    /// Worker to the master.
    Claim(Claim),
    /// Every node to every node.
    Heartbeat(Heartbeat),
    /// Worker to the master.
    Progress(Progress),
    /// Worker to the master (and to whoever waits for the result).
    Report(Report),
    /// Submitter to the master, or master to a worker.
    Cancel(Cancel),
    /// Worker to the master: a report not acknowledged yet.
    Repeat(Repeat),
}
