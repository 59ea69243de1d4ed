//! How the index runs.

use std::time::Duration;

use ipfsbench_protocols::index::Table;
use ipfsbench_sql::{ColumnType, Limits, TableSchema};

use super::error::Error;

/// The `results` column that dates a row (a timestamp): partitions record the span of it
/// they hold.
pub const RESULTS_TIME: &str = "finished_at";

/// How the index runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster's index topic.
    pub topic: String,
    /// Nodes whose partitions are merged (this node always is).
    pub trusted: crate::trust::Trust,
    /// The `results` table's columns, declared by the layer that writes results; it has a
    /// [`RESULTS_TIME`] timestamp.
    pub results: TableSchema,
    /// The tables fetched from peers (a leecher may sync only what it asks for).
    pub sync: Vec<Table>,
    /// Write buffered rows at least this often.
    pub flush_every: Duration,
    /// ... or as soon as this many are buffered.
    pub flush_rows: usize,
    /// Announce the manifest's latest sequence this often.
    pub announce_every: Duration,
    /// List this node's content this often (`None`: never).
    pub content_every: Option<Duration>,
    /// Partitions under this many rows are merged...
    pub compact_rows: u64,
    /// ... once there are this many of them.
    pub compact_after: usize,
    /// The query cache's size, at most, bytes.
    pub cache_bytes: u64,
    /// Each query's limits.
    pub limits: Limits,
    /// How long fetching one partition may take.
    pub fetch_timeout: Duration,
}

impl Config {
    /// The defaults, on `topic`, trusting `trusted`, with `results` as the results table,
    /// syncing every table.
    pub fn new(
        topic: String,
        trusted: impl Into<crate::trust::Trust>,
        results: TableSchema,
    ) -> Self {
        Self {
            topic,
            trusted: trusted.into(),
            results,
            sync: Table::ALL.to_vec(),
            flush_every: Duration::from_secs(1),
            flush_rows: 65_536,
            announce_every: Duration::from_secs(1),
            content_every: Some(Duration::from_secs(60)),
            compact_rows: 65_536,
            compact_after: 8,
            cache_bytes: 64 << 20,
            limits: Limits::default(),
            fetch_timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Checks the results schema: named `results`, dated by [`RESULTS_TIME`].
    pub(crate) fn check_results(&self) -> Result<(), Error> {
        if self.results.name != "results" {
            return Err(Error::Schema(format!(
                "named {:?}, not results",
                self.results.name
            )));
        }
        match self
            .results
            .index(RESULTS_TIME)
            .map(|i| &self.results.fields[i])
        {
            Some(f) if f.ty == ColumnType::Timestamp => Ok(()),
            _ => Err(Error::Schema(format!("no {RESULTS_TIME} timestamp column"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_sql::Field;

    #[test]
    fn a_results_schema_needs_its_name_and_time_column() {
        const DATED: &[Field] = &[Field::required(RESULTS_TIME, ColumnType::Timestamp, "t")];
        const UNDATED: &[Field] = &[Field::required(RESULTS_TIME, ColumnType::Text, "t")];
        let config = |name, fields| {
            Config::new(
                String::new(),
                std::collections::HashSet::new(),
                TableSchema { name, fields },
            )
        };
        assert!(config("results", DATED).check_results().is_ok());
        assert!(config("results", UNDATED).check_results().is_err());
        assert!(config("other", DATED).check_results().is_err());
    }
}
