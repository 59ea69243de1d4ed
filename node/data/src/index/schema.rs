//! The benchmark database's tables: `results` (one row per finished attempt, written by the
//! worker that ran it) and `content` (one row per root a node holds, written by that node).

use ipfsbench_sql::{Cell, ColumnType as T, Field, TableSchema};

/// One row per finished attempt.
pub const RESULTS: TableSchema = TableSchema {
    name: "results",
    fields: &[
        Field::required("task_id", T::Text, "the task's id"),
        Field::required("attempt", T::Int64, "the attempt's number, from 1"),
        Field::required("kind", T::Text, "the task kind (`bench.fetch`, `exec`...)"),
        Field::required("params", T::Text, "the parameters as a JSON object"),
        Field::required(
            "param_key",
            T::Text,
            "the parameters as sorted `k=v` pairs, for grouping",
        ),
        Field::required("worker", T::Text, "the worker's peer id"),
        Field::required("cpu_model", T::Text, "the worker's CPU model"),
        Field::required("cores", T::Int64, "CPU cores the worker may use"),
        Field::required("memory_bytes", T::Int64, "the worker's memory"),
        Field::required("os", T::Text, "operating system"),
        Field::required("arch", T::Text, "CPU architecture"),
        Field::required("outcome", T::Text, "`succeeded` or `failed`"),
        Field::optional("error", T::Text, "why it failed"),
        Field::optional("result_cid", T::Text, "the result record's CID"),
        Field::optional("master", T::Text, "the master that assigned it"),
        Field::required("cluster", T::Text, "the cluster's name"),
        Field::required("started_at", T::Timestamp, "when the attempt started"),
        Field::required("finished_at", T::Timestamp, "when it ended"),
        Field::required("duration_ms", T::Float64, "how long it ran, milliseconds"),
        Field::optional("bytes", T::Int64, "bytes hashed, stored or fetched"),
        Field::optional("blocks", T::Int64, "blocks written or in the fetched DAGs"),
        Field::optional(
            "blocks_fetched",
            T::Int64,
            "blocks that came over the network",
        ),
        Field::optional(
            "seconds",
            T::Float64,
            "the measured phase (hash, fetch), seconds",
        ),
        Field::optional("mbps", T::Float64, "its throughput, MB/s"),
        Field::optional("write_seconds", T::Float64, "bench.store: writing, seconds"),
        Field::optional(
            "write_mbps",
            T::Float64,
            "bench.store: write throughput, MB/s",
        ),
        Field::optional(
            "read_seconds",
            T::Float64,
            "bench.store: reading back, seconds",
        ),
        Field::optional(
            "read_mbps",
            T::Float64,
            "bench.store: read throughput, MB/s",
        ),
        Field::optional("exit_code", T::Int64, "exec: the program's exit code"),
        Field::optional("output_bytes", T::Int64, "exec: bytes of output files"),
        Field::optional("rows", T::Int64, "sql: rows in the result"),
    ],
};

/// One row per root a node holds.
pub const CONTENT: TableSchema = TableSchema {
    name: "content",
    fields: &[
        Field::required("node", T::Text, "the holder's peer id"),
        Field::required("cid", T::Text, "the root's CID"),
        Field::optional(
            "size",
            T::Int64,
            "file size (files), or the DAG's cumulative size",
        ),
        Field::required(
            "unixfs_type",
            T::Text,
            "`file`, `directory`, `raw` or `other`",
        ),
        Field::required(
            "pin",
            T::Text,
            "`recursive`, `direct` or `kept` (the node's own)",
        ),
        Field::optional("name", T::Text, "the cluster pin's name"),
        Field::optional(
            "tags",
            T::Text,
            "the cluster pin's metadata, `k=v` comma-separated",
        ),
        Field::optional("added_at", T::Timestamp, "when this node first listed it"),
        Field::optional(
            "last_accessed_at",
            T::Timestamp,
            "when it was last read here",
        ),
        Field::optional("access_count", T::Int64, "reads of it here"),
        Field::required("tier", T::Text, "where it is kept: `disk` or `cache`"),
        Field::required("listed_at", T::Timestamp, "when this row was written"),
    ],
};

/// A finished attempt, as the worker that ran it writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultRow {
    /// The task's id.
    pub task_id: String,
    /// The attempt's number.
    pub attempt: i64,
    /// The task kind.
    pub kind: String,
    /// Parameters, a JSON object.
    pub params: String,
    /// Parameters as sorted `k=v` pairs.
    pub param_key: String,
    /// The worker.
    pub worker: String,
    /// Hardware.
    pub cpu_model: String,
    /// See `cpu_model`.
    pub cores: i64,
    /// See `cpu_model`.
    pub memory_bytes: i64,
    /// See `cpu_model`.
    pub os: String,
    /// See `cpu_model`.
    pub arch: String,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The result record.
    pub result_cid: Option<String>,
    /// The master that assigned it.
    pub master: Option<String>,
    /// The cluster.
    pub cluster: String,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub finished_ms: i64,
    /// Figures by column name (`bytes`, `mbps`...); names that are not columns are dropped.
    pub figures: Vec<(&'static str, f64)>,
}

impl ResultRow {
    /// The row's cells in [`RESULTS`]' order.
    pub fn cells(&self) -> Vec<Cell> {
        let text = |s: &str| Cell::Text(s.to_string());
        let mut cells = vec![
            text(&self.task_id),
            Cell::Int(self.attempt),
            text(&self.kind),
            text(&self.params),
            text(&self.param_key),
            text(&self.worker),
            text(&self.cpu_model),
            Cell::Int(self.cores),
            Cell::Int(self.memory_bytes),
            text(&self.os),
            text(&self.arch),
            text(&self.outcome),
            self.error.clone().into(),
            self.result_cid.clone().into(),
            self.master.clone().into(),
            text(&self.cluster),
            Cell::TimeMs(self.started_ms),
            Cell::TimeMs(self.finished_ms),
            Cell::Float((self.finished_ms - self.started_ms) as f64),
        ];
        for field in &RESULTS.fields[cells.len()..] {
            let figure = self.figures.iter().find(|(n, _)| *n == field.name);
            cells.push(match (figure, field.ty) {
                (Some((_, v)), T::Int64) if v.is_finite() => Cell::Int(*v as i64),
                (Some((_, v)), T::Float64) => Cell::Float(*v),
                _ => Cell::Null,
            });
        }
        if let Some((_, ms)) = self.figures.iter().find(|(n, _)| *n == "duration_ms") {
            cells[18] = Cell::Float(*ms);
        }
        cells
    }
}

/// The column a figure of a result record goes to (`MBps` → `mbps`), if it has one.
pub fn figure_column(name: &str) -> Option<&'static str> {
    const COLUMNS: [(&str, &str); 13] = [
        ("Bytes", "bytes"),
        ("Blocks", "blocks"),
        ("BlocksFetched", "blocks_fetched"),
        ("Seconds", "seconds"),
        ("MBps", "mbps"),
        ("WriteSeconds", "write_seconds"),
        ("WriteMBps", "write_mbps"),
        ("ReadSeconds", "read_seconds"),
        ("ReadMBps", "read_mbps"),
        ("ExitCode", "exit_code"),
        ("OutputBytes", "output_bytes"),
        ("Rows", "rows"),
        ("DurationMs", "duration_ms"),
    ];
    COLUMNS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_find_their_columns() {
        assert_eq!(figure_column("MBps"), Some("mbps"));
        assert_eq!(figure_column("WriteMBps"), Some("write_mbps"));
        assert_eq!(figure_column("BlocksFetched"), Some("blocks_fetched"));
        assert_eq!(figure_column("DurationMs"), Some("duration_ms"));
        assert_eq!(figure_column("ReadSeconds"), Some("read_seconds"));
        assert_eq!(figure_column("ExitCode"), Some("exit_code"));
        assert_eq!(figure_column("Bytes"), Some("bytes"));
        assert_eq!(figure_column("Algorithm"), None);
    }

    #[test]
    fn a_row_fills_every_column() {
        let row = ResultRow {
            figures: vec![("mbps", 12.5), ("bytes", 1000.0)],
            finished_ms: 10,
            ..ResultRow::default()
        };
        let cells = row.cells();
        assert_eq!(cells.len(), RESULTS.fields.len());
        assert_eq!(
            cells[RESULTS.index("mbps").expect("column")],
            Cell::Float(12.5)
        );
        assert_eq!(
            cells[RESULTS.index("bytes").expect("column")],
            Cell::Int(1000)
        );
        assert_eq!(
            cells[RESULTS.index("duration_ms").expect("column")],
            Cell::Float(10.0)
        );
        assert!(RESULTS.batch(&[cells]).is_ok());
    }
}

#[cfg(test)]
mod readme {
    use super::{CONTENT, RESULTS};

    /// The README documents the schemas exactly as the code defines them.
    #[test]
    fn the_readme_documents_both_schemas() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        for schema in [&RESULTS, &CONTENT] {
            let table = schema.markdown();
            assert!(
                readme.contains(&table),
                "README.md lacks the {} schema as the code defines it:\n{table}",
                schema.name
            );
        }
    }
}
