//! The figures task kinds measure, by the names they carry in result records and reports.

use std::fmt;

/// A figure a task kind measures. Reports carry figures by [`Figure::name`] so that a newer
/// worker's figure an older node does not know still travels; these are the ones with a
/// meaning (and a column in the benchmark database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Figure {
    /// Bytes hashed, stored, fetched or answered.
    Bytes,
    /// Blocks written, or in the fetched DAGs.
    Blocks,
    /// Blocks that came over the network.
    BlocksFetched,
    /// The measured phase (hashing, fetching, running), seconds.
    Seconds,
    /// The measured phase's throughput, MB/s (10^6 bytes).
    MBps,
    /// `bench.store`: writing, seconds.
    WriteSeconds,
    /// `bench.store`: write throughput, MB/s.
    WriteMBps,
    /// `bench.store`: reading back, seconds.
    ReadSeconds,
    /// `bench.store`: read throughput, MB/s.
    ReadMBps,
    /// `exec`: the program's exit code.
    ExitCode,
    /// `exec`: bytes of output files.
    OutputBytes,
    /// `sql`: rows in the answer.
    Rows,
    /// How long the attempt ran, milliseconds.
    DurationMs,
}

impl Figure {
    /// Every figure.
    pub const ALL: [Figure; 13] = [
        Figure::Bytes,
        Figure::Blocks,
        Figure::BlocksFetched,
        Figure::Seconds,
        Figure::MBps,
        Figure::WriteSeconds,
        Figure::WriteMBps,
        Figure::ReadSeconds,
        Figure::ReadMBps,
        Figure::ExitCode,
        Figure::OutputBytes,
        Figure::Rows,
        Figure::DurationMs,
    ];

    /// Its name in result records and reports (`MBps`).
    pub fn name(self) -> &'static str {
        match self {
            Figure::Bytes => "Bytes",
            Figure::Blocks => "Blocks",
            Figure::BlocksFetched => "BlocksFetched",
            Figure::Seconds => "Seconds",
            Figure::MBps => "MBps",
            Figure::WriteSeconds => "WriteSeconds",
            Figure::WriteMBps => "WriteMBps",
            Figure::ReadSeconds => "ReadSeconds",
            Figure::ReadMBps => "ReadMBps",
            Figure::ExitCode => "ExitCode",
            Figure::OutputBytes => "OutputBytes",
            Figure::Rows => "Rows",
            Figure::DurationMs => "DurationMs",
        }
    }

    /// The figure called `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Figure;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for f in Figure::ALL {
            assert_eq!(Figure::from_name(f.name()), Some(f));
        }
        let mut names: Vec<_> = Figure::ALL.iter().map(|f| f.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Figure::ALL.len());
        assert_eq!(Figure::from_name("Algorithm"), None);
    }
}
