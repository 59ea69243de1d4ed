//! A result record: what a worker adds to its store for each attempt that succeeded (a JSON
//! file, pinned there, fetched by any peer by its CID) and the figures it measured.

use std::collections::BTreeMap;

use ipfsbench_protocols::task::{Figure, MAX_FIGURES};
use serde::{Deserialize, Serialize};

/// One succeeded attempt, as its record says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultRecord {
    /// The task's id.
    pub task: String,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The task kind (`bench.hash`).
    pub kind: String,
    /// The inputs' CIDs.
    pub inputs: Vec<String>,
    /// The task's parameters (of a repeated one, the last).
    pub params: BTreeMap<String, String>,
    /// The outputs' CIDs.
    pub outputs: Vec<String>,
    /// What the kind measured.
    pub metrics: Metrics,
    /// The worker's peer id.
    pub worker: String,
    /// The worker's machine, described.
    pub hardware: String,
    /// Start, Unix ms.
    pub started_unix_ms: u64,
    /// End, Unix ms.
    pub finished_unix_ms: u64,
    /// How long it ran, ms.
    pub duration_ms: u64,
}

/// What a kind measured: each [`Figure`] it has, and what else it tells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Metrics {
    /// Bytes hashed, stored, fetched or answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Blocks written, or in the fetched DAGs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u64>,
    /// Blocks that came over the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks_fetched: Option<u64>,
    /// The measured phase, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Its throughput, MB/s.
    #[serde(rename = "MBps", skip_serializing_if = "Option::is_none")]
    pub mbps: Option<f64>,
    /// `bench.store`: writing, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_seconds: Option<f64>,
    /// `bench.store`: write throughput, MB/s.
    #[serde(rename = "WriteMBps", skip_serializing_if = "Option::is_none")]
    pub write_mbps: Option<f64>,
    /// `bench.store`: reading back, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_seconds: Option<f64>,
    /// `bench.store`: read throughput, MB/s.
    #[serde(rename = "ReadMBps", skip_serializing_if = "Option::is_none")]
    pub read_mbps: Option<f64>,
    /// `exec`: the program's exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `exec`: bytes of output files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// `sql`: rows in the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// `bench.hash`: the hash function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// `exec`: the program's name on the worker's allowlist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// `exec`: the start of its standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// `exec`: the start of its standard error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// `sql`: whether the answer was cut at the row limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// `sql`: the answer's columns, `name TYPE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// `bench.fetch`, `dag.stat`: each input's own figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<InputMetrics>>,
}

/// One input of a `bench.fetch` or `dag.stat` task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InputMetrics {
    /// The input's CID.
    pub cid: String,
    /// Blocks in its DAG.
    pub blocks: u64,
    /// Bytes in its DAG.
    pub bytes: u64,
    /// Blocks that came over the network.
    pub blocks_fetched: u64,
    /// `bench.fetch`: the fetch, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// `bench.fetch`: its throughput, MB/s, when blocks came over the network.
    #[serde(rename = "MBps", skip_serializing_if = "Option::is_none")]
    pub mbps: Option<f64>,
}

impl Metrics {
    /// The value of `figure`, if measured (`DurationMs` is the record's, not a metric).
    pub fn figure(&self, figure: Figure) -> Option<f64> {
        let int = |v: Option<u64>| v.map(|v| v as f64);
        match figure {
            Figure::Bytes => int(self.bytes),
            Figure::Blocks => int(self.blocks),
            Figure::BlocksFetched => int(self.blocks_fetched),
            Figure::Seconds => self.seconds,
            Figure::MBps => self.mbps,
            Figure::WriteSeconds => self.write_seconds,
            Figure::WriteMBps => self.write_mbps,
            Figure::ReadSeconds => self.read_seconds,
            Figure::ReadMBps => self.read_mbps,
            Figure::ExitCode => self.exit_code.map(f64::from),
            Figure::OutputBytes => int(self.output_bytes),
            Figure::Rows => int(self.rows),
            Figure::DurationMs => None,
        }
    }
}

impl ResultRecord {
    /// Its key figures, as a report carries them: every finite figure measured, then the
    /// duration; at most [`MAX_FIGURES`].
    pub fn figures(&self) -> Vec<(Figure, f64)> {
        let mut out: Vec<(Figure, f64)> = Figure::ALL
            .into_iter()
            .filter_map(|f| Some((f, self.metrics.figure(f).filter(|v| v.is_finite())?)))
            .take(MAX_FIGURES - 1)
            .collect();
        out.push((Figure::DurationMs, self.duration_ms as f64));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_with_its_figures() {
        let record = ResultRecord {
            task: "t".into(),
            attempt: 1,
            kind: "bench.fetch".into(),
            inputs: vec!["bafy".into()],
            params: BTreeMap::from([("size".into(), "1".into())]),
            outputs: Vec::new(),
            metrics: Metrics {
                bytes: Some(10),
                mbps: Some(f64::NAN),
                seconds: Some(0.5),
                inputs: Some(vec![InputMetrics {
                    cid: "bafy".into(),
                    bytes: 10,
                    ..InputMetrics::default()
                }]),
                ..Metrics::default()
            },
            worker: "w".into(),
            hardware: "cpu".into(),
            started_unix_ms: 1,
            finished_unix_ms: 3,
            duration_ms: 2,
        };
        let json: serde_json::Value = serde_json::to_value(&record).unwrap();
        // The names people and scripts read.
        assert_eq!(json["Metrics"]["Bytes"], 10);
        assert_eq!(json["Metrics"]["Inputs"][0]["Cid"], "bafy");
        assert_eq!(json["StartedUnixMs"], 1);
        assert!(json["Metrics"].get("Rows").is_none());
        let back: ResultRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.metrics.bytes, record.metrics.bytes);
        // Not-finite figures are left out; the duration comes last.
        assert_eq!(
            record.figures(),
            vec![
                (Figure::Bytes, 10.0),
                (Figure::Seconds, 0.5),
                (Figure::DurationMs, 2.0)
            ]
        );
    }
}
