//! DuckDB, embedded: the SQL engine of ipfsbench-node's benchmark database.
//!
//! One in-memory DuckDB database per node, sandboxed when it opens: no file access outside
//! the directories the node names (its Parquet partitions, datasets and query cache), no
//! network, no extensions installed or loaded, a memory cap and a thread cap, and the
//! configuration locked so that no query can lift them.
//!
//! - [`Engine::query`] runs SQL that came from outside (the CLI, the API, a task): exactly one
//!   statement, and only a query (`SELECT`, `FROM`, `WITH`...), checked by DuckDB's own
//!   parser before anything runs, calling only functions without side effects ([`allow`]);
//!   it is stopped when it passes its time limit and its answer is cut at a row and a byte
//!   limit. With [`Limits::isolate`] it runs in a child process whose memory and files the
//!   kernel caps ([`worker`](crate::serve_worker)), so no query can exhaust or stop the node.
//! - The node's own statements (views over partitions, tables it loads from Arrow, Parquet it
//!   writes) go through the `*_trusted` calls and [`Engine::write_parquet`].
//!
//! The crate stands alone so that nothing in the project rebuilds it, and it links the
//! prebuilt DuckDB library its build script provides: no C++ is compiled.

pub mod allow;
mod answer;
mod check;
mod engine;
mod schema;
mod worker;

pub use allow::Names;
pub use answer::{row_bytes, Answer, Column, Format, Value};
pub use duckdb::arrow;
pub use engine::{Engine, Limits};
pub use schema::{Cell, ColumnType, Field, TableSchema};
pub use worker::{serve as serve_worker, WORKER_ARG};

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

/// A string as an SQL literal: quoted, quotes doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A name as an SQL identifier: double-quoted, quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
