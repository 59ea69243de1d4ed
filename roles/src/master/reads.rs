//! The task table as any node reads it from the replicated state: the records the leader
//! wrote there, the submissions standbys left, and, on a master, its own records where they
//! got further (a master restarting has changes the state may not have heard of yet).

use std::collections::HashMap;

use ipfsbench_core::state::Handle as StateHandle;
use ipfsbench_protocols::task::TaskId;

use super::record::{State, TaskRecord};
use super::replicated::{self, SUBMIT_PREFIX, TASK_PREFIX};
use super::table::{Master, MAX_LIST_PAGE};
use crate::service::views::Error;

/// Every record under `prefix` in the state that decodes.
pub(crate) fn read_all(state: Option<&StateHandle>, prefix: &str) -> Vec<TaskRecord> {
    let Some(state) = state else {
        return Vec::new();
    };
    state
        .scan(prefix.as_bytes())
        .filter_map(|kv| {
            let (key, value) = kv.ok()?;
            let record = serde_json::from_slice(&value);
            if record.is_err() {
                tracing::warn!(key = %String::from_utf8_lossy(&key), "a task record in the state does not decode");
            }
            record.ok()
        })
        .collect()
}

/// A task's record on a node that does not schedule: the state's copy (taken by the
/// leader, or left by a standby), or `table`'s own when that got further.
pub(crate) fn read_task(
    state: Option<&StateHandle>,
    table: Option<&Master>,
    id: &TaskId,
) -> Result<Option<TaskRecord>, Error> {
    let mut found: Option<TaskRecord> = None;
    if let Some(state) = state {
        for prefix in [TASK_PREFIX, SUBMIT_PREFIX] {
            let value = state
                .get(&replicated::key(prefix, id))
                .map_err(|e| Error::Refused(e.to_string()))?;
            if let Some(v) = value {
                found = Some(
                    serde_json::from_slice(&v)
                        .map_err(|e| Error::Refused(format!("task {id} in the state: {e}")))?,
                );
                break;
            }
        }
    }
    if let Some(mine) = table.map(|m| m.get(id)).transpose()?.flatten() {
        if found
            .as_ref()
            .is_none_or(|theirs| mine.progress() > theirs.progress())
        {
            found = Some(mine);
        }
    }
    Ok(found)
}

/// A page of records from the state, in submission order (see [`Master::list`]), with
/// `table`'s own where they got further.
pub(crate) fn list(
    state_handle: Option<&StateHandle>,
    table: Option<&Master>,
    state: Option<State>,
    after: Option<u64>,
    limit: usize,
) -> (Vec<TaskRecord>, Option<u64>) {
    let limit = limit.min(MAX_LIST_PAGE);
    // Submissions standbys keep first: the leader's record replaces them once it has one.
    let mut merged: HashMap<TaskId, TaskRecord> = read_all(state_handle, SUBMIT_PREFIX)
        .into_iter()
        .chain(read_all(state_handle, TASK_PREFIX))
        .map(|r| (r.id, r))
        .collect();
    if let Some(master) = table {
        // This master's own records, where they got further than the state's copy.
        for mine in master.records().filter_map(Result::ok) {
            let further = merged
                .get(&mine.id)
                .is_none_or(|theirs| mine.progress() > theirs.progress());
            if further {
                merged.insert(mine.id, mine);
            }
        }
    }
    let mut all: Vec<TaskRecord> = merged
        .into_values()
        .filter(|r| state.is_none_or(|s| s == r.state))
        .filter(|r| after.is_none_or(|a| r.seq > a))
        .collect();
    all.sort_by_key(|r| (r.seq, r.submitted_ms));
    let full = all.len() > limit;
    all.truncate(limit);
    let next = if full {
        all.last().map(|r| r.seq)
    } else {
        None
    };
    (all, next)
}
