//! Each finished attempt as a row of the benchmark database's `results` table, written by
//! the worker that ran it: the task, the hardware, the outcome and every figure the kind
//! measures in its typed column.

use ipfsbench_core::index::{schema::figure_column, ResultRow};
use ipfsbench_protocols::task::{Kind, Outcome, TaskId};
use libp2p::PeerId;

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

/// This machine, read once.
#[derive(Debug, Clone)]
pub(crate) struct Hardware {
    pub(crate) cpu_model: String,
    pub(crate) cores: i64,
    pub(crate) memory_bytes: i64,
}

impl Hardware {
    pub(crate) fn probe() -> Self {
        Self {
            cpu_model: system::cpu_model(),
            cores: i64::from(system::cores()),
            memory_bytes: i64::try_from(system::memory().0).unwrap_or(i64::MAX),
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
    let params: serde_json::Map<String, serde_json::Value> = attempt
        .params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let mut sorted = attempt.params.clone();
    sorted.sort();
    let param_key = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let (outcome_name, error, result_cid, figures) = match outcome {
        Outcome::Done { record, figures } => {
            let figures = figures
                .iter()
                .filter_map(|(name, v)| Some((figure_column(name)?, *v)))
                .collect();
            ("succeeded", None, Some(record.0.to_string()), figures)
        }
        Outcome::Failed { error } => ("failed", Some(error.clone()), None, Vec::new()),
    };
    ResultRow {
        task_id: attempt.task.to_string(),
        attempt: i64::from(attempt.attempt),
        kind: attempt.kind.to_string(),
        params: serde_json::Value::Object(params).to_string(),
        param_key,
        worker: worker.to_string(),
        cpu_model: hardware.cpu_model.clone(),
        cores: hardware.cores,
        memory_bytes: hardware.memory_bytes,
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        outcome: outcome_name.into(),
        error,
        result_cid,
        master: Some(attempt.master.to_string()),
        cluster: cluster.into(),
        started_ms: i64::try_from(attempt.started_ms).unwrap_or(0),
        finished_ms: i64::try_from(finished_ms).unwrap_or(0),
        figures,
    }
}
