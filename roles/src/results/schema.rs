//! The benchmark database's `results` table: one row per finished attempt, written by the
//! worker that ran it. Its columns are declared here and handed to the index
//! (`ipfsbench_core::index::Config::results`); each [`Figure`] a kind measures has its typed
//! column ([`column`]).

use cid::Cid;
use ipfsbench_protocols::task::{Figure, Kind, TaskId};
use ipfsbench_sql::{Cell, ColumnType as T, Field, TableSchema};
use libp2p::PeerId;

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

/// The column of a figure (`MBps` → `mbps`).
pub fn column(figure: Figure) -> &'static str {
    match figure {
        Figure::Bytes => "bytes",
        Figure::Blocks => "blocks",
        Figure::BlocksFetched => "blocks_fetched",
        Figure::Seconds => "seconds",
        Figure::MBps => "mbps",
        Figure::WriteSeconds => "write_seconds",
        Figure::WriteMBps => "write_mbps",
        Figure::ReadSeconds => "read_seconds",
        Figure::ReadMBps => "read_mbps",
        Figure::ExitCode => "exit_code",
        Figure::OutputBytes => "output_bytes",
        Figure::Rows => "rows",
        Figure::DurationMs => "duration_ms",
    }
}

/// The machine a worker runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardware {
    /// The CPU's model name.
    pub cpu_model: String,
    /// CPU cores the worker may use.
    pub cores: i64,
    /// Its memory, bytes.
    pub memory_bytes: i64,
    /// The operating system (`linux`).
    pub os: &'static str,
    /// The CPU architecture (`x86_64`).
    pub arch: &'static str,
}

/// How an attempt ended, as its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It succeeded; its result record is this CID.
    Succeeded {
        /// The result record.
        record: Cid,
    },
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// A finished attempt, as the worker that ran it writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The task.
    pub task: TaskId,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The task kind.
    pub kind: Kind,
    /// The task's parameters.
    pub params: Vec<(String, String)>,
    /// The worker that ran it.
    pub worker: PeerId,
    /// Its machine.
    pub hardware: Hardware,
    /// How it ended.
    pub ended: Ended,
    /// The master that assigned it.
    pub master: Option<PeerId>,
    /// The cluster's name.
    pub cluster: String,
    /// Start, Unix ms.
    pub started_ms: u64,
    /// End, Unix ms.
    pub finished_ms: u64,
    /// What it measured (a succeeded attempt's figures).
    pub figures: Vec<(Figure, f64)>,
}

impl ResultRow {
    /// The row's cells in [`RESULTS`]' order.
    pub fn cells(&self) -> Vec<Cell> {
        let text = |s: &str| Cell::Text(s.to_string());
        let mut sorted = self.params.clone();
        sorted.sort();
        let param_key: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let (outcome, error, record) = match &self.ended {
            Ended::Succeeded { record } => ("succeeded", None, Some(record.to_string())),
            Ended::Failed { error } => ("failed", Some(error.clone()), None),
        };
        let ms = |t: u64| Cell::TimeMs(i64::try_from(t).unwrap_or(i64::MAX));
        let h = &self.hardware;
        let mut cells = vec![
            text(&self.task.to_string()),
            Cell::Int(i64::from(self.attempt)),
            text(self.kind.name()),
            text(&serde_json::Value::Object(params).to_string()),
            text(&param_key.join(",")),
            text(&self.worker.to_string()),
            text(&h.cpu_model),
            Cell::Int(h.cores),
            Cell::Int(h.memory_bytes),
            text(h.os),
            text(h.arch),
            text(outcome),
            error.into(),
            record.into(),
            self.master.map(|m| m.to_string()).into(),
            text(&self.cluster),
            ms(self.started_ms),
            ms(self.finished_ms),
        ];
        for field in &RESULTS.fields[cells.len()..] {
            let figure = Figure::ALL.into_iter().find(|f| column(*f) == field.name);
            let value = figure.and_then(|f| self.figures.iter().find(|(g, _)| *g == f));
            cells.push(match (value, field.ty) {
                (Some((_, v)), T::Int64) if v.is_finite() => Cell::Int(*v as i64),
                (Some((_, v)), T::Float64) => Cell::Float(*v),
                (None, _) if field.name == column(Figure::DurationMs) => {
                    Cell::Float(self.finished_ms.saturating_sub(self.started_ms) as f64)
                }
                _ => Cell::Null,
            });
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ResultRow {
        ResultRow {
            task: TaskId([7; 16]),
            attempt: 2,
            kind: Kind::BenchHash,
            params: vec![("size".into(), "1024".into()), ("algo".into(), "x".into())],
            worker: PeerId::random(),
            hardware: Hardware {
                cpu_model: "Test CPU".into(),
                cores: 2,
                memory_bytes: 1 << 30,
                os: "linux",
                arch: "x86_64",
            },
            ended: Ended::Succeeded {
                record: "bafkqaaa".parse().expect("cid"),
            },
            master: None,
            cluster: "test".into(),
            started_ms: 1_000,
            finished_ms: 1_010,
            figures: vec![(Figure::MBps, 12.5), (Figure::Bytes, 1000.0)],
        }
    }

    #[test]
    fn every_figure_has_its_typed_column() {
        for f in Figure::ALL {
            let name = column(f);
            let i = RESULTS.index(name).expect(name);
            let field = &RESULTS.fields[i];
            assert!(
                matches!(field.ty, T::Int64 | T::Float64),
                "{f}: {:?}",
                field.ty
            );
        }
        // Every column after the attempt's own is a figure's.
        let first = RESULTS.index("duration_ms").expect("duration_ms");
        assert_eq!(RESULTS.fields.len() - first, Figure::ALL.len());
        assert_eq!(
            RESULTS.fields[RESULTS
                .index(ipfsbench_core::index::RESULTS_TIME)
                .expect("time")]
            .ty,
            T::Timestamp
        );
    }

    #[test]
    fn a_row_fills_every_column_with_its_type() {
        let cells = row().cells();
        assert_eq!(cells.len(), RESULTS.fields.len());
        let at = |name: &str| &cells[RESULTS.index(name).expect(name)];
        assert_eq!(at("mbps"), &Cell::Float(12.5));
        assert_eq!(at("bytes"), &Cell::Int(1000));
        assert_eq!(at("duration_ms"), &Cell::Float(10.0));
        assert_eq!(at("param_key"), &Cell::Text("algo=x,size=1024".into()));
        assert_eq!(at("kind"), &Cell::Text("bench.hash".into()));
        assert_eq!(at("outcome"), &Cell::Text("succeeded".into()));
        assert_eq!(at("error"), &Cell::Null);
        assert_eq!(at("master"), &Cell::Null);
        assert_eq!(at("rows"), &Cell::Null);
        assert!(RESULTS.batch(&[cells]).is_ok());

        let mut failed = row();
        failed.ended = Ended::Failed {
            error: "exit 3".into(),
        };
        failed.figures = vec![(Figure::DurationMs, 4.5)];
        let cells = failed.cells();
        let at = |name: &str| &cells[RESULTS.index(name).expect(name)];
        assert_eq!(at("error"), &Cell::Text("exit 3".into()));
        assert_eq!(at("result_cid"), &Cell::Null);
        assert_eq!(at("duration_ms"), &Cell::Float(4.5));
    }

    /// The README documents the schema exactly as the code defines it.
    #[test]
    fn the_readme_documents_the_results_schema() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let table = RESULTS.markdown();
        assert!(
            readme.contains(&table),
            "README.md lacks the results schema:\n{table}"
        );
    }
}
