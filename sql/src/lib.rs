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
mod error;
mod process;
mod quote;
mod schema;
mod worker;

pub use allow::Names;
pub use answer::{row_bytes, Answer, Column, Format, Value};
pub use duckdb::arrow;
pub use engine::{Engine, Limits};
pub use error::Error;
pub use process::WORKER_ARG;
pub use quote::{ident, literal};
pub use schema::{Cell, ColumnType, Field, TableSchema};
pub use worker::serve as serve_worker;
