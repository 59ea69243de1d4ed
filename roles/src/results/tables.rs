//! The replicated state as SQL tables: `pins` (the cluster pinset) and `tasks` (the task
//! records), loaded into the engine when the state changed since the last query. The state
//! stays the CRDT's; these are read-only copies.

use ipfsbench_core::index::Handle as Index;
use ipfsbench_core::state::Handle as State;
use ipfsbench_sql::{Cell, ColumnType as T, Field, TableSchema};

use crate::master::replicated::TASK_PREFIX;
use crate::master::TaskRecord;
use crate::pinset::Pin;

/// The cluster pinset.
pub const PINS: TableSchema = TableSchema {
    name: "pins",
    fields: &[
        Field::required("cid", T::Text, "what is pinned"),
        Field::required("name", T::Text, "its name"),
        Field::optional(
            "replication_min",
            T::Int64,
            "least copies (null: everywhere)",
        ),
        Field::optional(
            "replication_max",
            T::Int64,
            "most copies (null: everywhere)",
        ),
        Field::required(
            "allocations",
            T::Text,
            "peers that hold it, comma-separated",
        ),
        Field::required(
            "tags",
            T::Text,
            "tags every holder must have, comma-separated",
        ),
        Field::required("metadata", T::Text, "its metadata, a JSON object"),
        Field::required("added_at", T::Timestamp, "when it was added"),
        Field::optional("expire_at", T::Timestamp, "when it stops being kept"),
        Field::required("under_replicated", T::Bool, "fewer holders than asked"),
    ],
};

/// The cluster's task records.
pub const TASKS: TableSchema = TableSchema {
    name: "tasks",
    fields: &[
        Field::required("id", T::Text, "the task id"),
        Field::required("kind", T::Text, "its kind"),
        Field::required(
            "state",
            T::Text,
            "queued, assigned, running, succeeded, failed, cancelled",
        ),
        Field::required("params", T::Text, "parameters, `k=v` comma-separated"),
        Field::optional("worker", T::Text, "the worker of the latest attempt"),
        Field::required("attempt", T::Int64, "the latest attempt's number"),
        Field::required("failures", T::Int64, "attempts that failed"),
        Field::required("submitted_at", T::Timestamp, "when it was submitted"),
        Field::optional(
            "started_at",
            T::Timestamp,
            "when the latest attempt started",
        ),
        Field::optional("finished_at", T::Timestamp, "when it ended"),
        Field::optional("result_cid", T::Text, "the result record"),
        Field::optional("error", T::Text, "the latest error"),
    ],
};

fn ms(v: u64) -> Cell {
    Cell::TimeMs(i64::try_from(v).unwrap_or(i64::MAX))
}

fn pin_row(pin: Pin) -> Vec<Cell> {
    let join = |items: Vec<String>| Cell::Text(items.join(","));
    vec![
        Cell::Text(pin.cid.to_string()),
        Cell::Text(pin.name),
        pin.replication_factor_min.map(i64::from).into(),
        pin.replication_factor_max.map(i64::from).into(),
        join(pin.allocations.iter().map(ToString::to_string).collect()),
        join(pin.tags),
        Cell::Text(serde_json::to_string(&pin.metadata).unwrap_or_default()),
        ms(pin.added_at_ms),
        pin.expire_at_ms.map_or(Cell::Null, ms),
        Cell::Bool(pin.under_replicated),
    ]
}

fn task_row(r: TaskRecord) -> Vec<Cell> {
    let state = serde_json::to_value(r.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vec![
        Cell::Text(r.id.to_string()),
        Cell::Text(r.kind.to_string()),
        Cell::Text(state),
        Cell::Text(params.join(",")),
        r.worker.map(|w| w.to_string()).into(),
        Cell::Int(i64::from(r.attempt)),
        Cell::Int(i64::from(r.failures)),
        ms(r.submitted_ms),
        r.started_ms.map_or(Cell::Null, ms),
        r.finished_ms.map_or(Cell::Null, ms),
        r.result.map(|c| c.to_string()).into(),
        r.last_error.into(),
    ]
}

/// Loads `pins` and `tasks` from the state into the engine, unless the state is unchanged
/// since they were loaded.
pub(crate) async fn refresh(
    index: &Index,
    state: &State,
) -> Result<(), ipfsbench_core::index::Error> {
    let version = match state.summary() {
        Ok(s) => s
            .digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        Err(_) => String::new(),
    };
    let pins_state = state.clone();
    index
        .load_table(&PINS, version.clone(), move || {
            pins_state
                .scan(b"pin/")
                .filter_map(Result::ok)
                .filter_map(|(_, v)| serde_json::from_slice::<Pin>(&v).ok())
                .map(pin_row)
                .collect()
        })
        .await?;
    let tasks_state = state.clone();
    index
        .load_table(&TASKS, version, move || {
            tasks_state
                .scan(TASK_PREFIX.as_bytes())
                .filter_map(Result::ok)
                .filter_map(|(_, v)| serde_json::from_slice::<TaskRecord>(&v).ok())
                .map(task_row)
                .collect()
        })
        .await
}
