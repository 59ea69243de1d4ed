//! Why a statement did not run.

/// Why a statement did not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not something a caller from outside may run: not a query, more than one statement,
    /// too long, empty.
    #[error("refused: {0}")]
    Refused(String),
    /// DuckDB could not parse, bind or run the query (the message is DuckDB's).
    #[error("{0}")]
    Invalid(String),
    /// The query ran past its time limit and was stopped.
    #[error("the query ran past its time limit of {0:?} and was stopped")]
    Timeout(std::time::Duration),
    /// The engine itself failed (opening, the node's own statements).
    #[error("DuckDB: {0}")]
    Engine(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the caller's SQL is at fault (an API answers 400), not the node (500).
    pub fn is_caller_fault(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::Invalid(_) | Self::Timeout(_))
    }
}
