//! Each finished attempt as a row of the benchmark database's `results` table, written by
//! the worker that ran it: the task, the hardware, the outcome and every figure the kind
//! measures in its typed column.

use ipfsbench_protocols::task::{Figure, Kind, Outcome, TaskId};
use libp2p::PeerId;

use crate::results::schema::{Ended, Hardware, ResultRow};
use crate::system;

/// What the worker knows of an attempt before it runs.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) task: TaskId,
    pub(crate) attempt: u32,
    pub(crate) kind: Kind,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) master: PeerId,
    pub(crate) started_ms: u64,
}

impl Hardware {
    /// This machine, read once.
    pub(crate) fn probe() -> Self {
        Self {
            cpu_model: system::cpu_model(),
            cores: i64::from(system::cores()),
            memory_bytes: i64::try_from(system::memory().0).unwrap_or(i64::MAX),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// The row of `attempt`, which ended with `outcome` at `finished_ms` on `worker`.
pub(crate) fn row(
    attempt: &Attempt,
    outcome: &Outcome,
    finished_ms: u64,
    worker: PeerId,
    hardware: &Hardware,
    cluster: &str,
) -> ResultRow {
    let (ended, figures) = match outcome {
        Outcome::Done { record, figures } => (
            Ended::Succeeded { record: record.0 },
            figures
                .iter()
                .filter_map(|(name, v)| Some((Figure::from_name(name)?, *v)))
                .collect(),
        ),
        Outcome::Failed { error } => (
            Ended::Failed {
                error: error.clone(),
            },
            Vec::new(),
        ),
    };
    ResultRow {
        task: attempt.task,
        attempt: attempt.attempt,
        kind: attempt.kind,
        params: attempt.params.clone(),
        worker,
        hardware: hardware.clone(),
        ended,
        master: Some(attempt.master),
        cluster: cluster.into(),
        started_ms: attempt.started_ms,
        finished_ms,
        figures,
    }
}
