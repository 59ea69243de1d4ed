//! The engine: one sandboxed in-memory database, connections made per call.

#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use duckdb::arrow::record_batch::RecordBatch;
use duckdb::Connection;

use crate::check::{self, Database};
use crate::{literal, Answer, Error, TableSchema};

/// What one query may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// DuckDB's memory limit for the whole database, bytes.
    pub memory_bytes: u64,
    /// DuckDB's worker threads.
    pub threads: u16,
    /// How long one query may run before it is stopped.
    pub timeout: Duration,
    /// Rows an answer holds at most.
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            threads: 2,
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
        }
    }
}

/// The sandboxed database. See the crate docs.
pub struct Engine {
    db: Arc<Database>,
    limits: Limits,
    temp: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .finish()
    }
}

fn engine_error(e: duckdb::Error) -> Error {
    Error::Engine(e.to_string())
}

fn query_error(e: duckdb::Error) -> Error {
    Error::Invalid(e.to_string())
}

impl Engine {
    /// Opens a database that may read and write files only under `allowed` (directories
    /// that exist), within `limits`.
    ///
    /// # Errors
    ///
    /// When a directory cannot be resolved or DuckDB refuses a setting.
    pub fn open(allowed: &[PathBuf], limits: Limits) -> Result<Self, Error> {
        let db = Arc::new(Database::open()?);
        let engine = Self {
            db,
            limits,
            temp: AtomicU64::new(0),
        };
        let mut dirs = Vec::new();
        for dir in allowed {
            let dir = dir.canonicalize()?;
            dirs.push(literal(&format!("{}/", dir.display())));
        }
        let setup = format!(
            "SET threads = {threads};
             SET memory_limit = '{memory}B';
             SET max_temp_directory_size = '0B';
             SET autoinstall_known_extensions = false;
             SET autoload_known_extensions = false;
             SET allow_community_extensions = false;
             SET allowed_directories = [{dirs}];
             SET enable_external_access = false;
             SET lock_configuration = true;",
            threads = engine.limits.threads.max(1),
            memory = engine.limits.memory_bytes,
            dirs = dirs.join(", "),
        );
        engine
            .connect()?
            .execute_batch(&setup)
            .map_err(engine_error)?;
        Ok(engine)
    }

    /// The limits it runs queries within.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn connect(&self) -> Result<Connection, Error> {
        // SAFETY: the database is open while `self.db` lives, and every connection is
        // dropped within the call that made it, while `self` is borrowed.
        unsafe { Connection::open_from_raw(self.db.raw) }.map_err(engine_error)
    }

    /// Checks that `sql` is one read-only query; returns the text that will run.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] or [`Error::Invalid`], with the reason.
    pub fn check(&self, sql: &str) -> Result<String, Error> {
        check::read_only(&self.db, sql)
    }

    /// Runs `sql` from outside: one query, within the limits.
    ///
    /// # Errors
    ///
    /// When it is refused, invalid, or runs out of time.
    pub fn query(&self, sql: &str) -> Result<Answer, Error> {
        let text = self.check(sql)?;
        // One row past the limit tells whether the answer was cut.
        let limited = format!(
            "SELECT * FROM (\n{text}\n) LIMIT {}",
            self.limits.max_rows.saturating_add(1)
        );
        self.answer(&limited)
    }

    /// Runs `sql` from outside and writes its answer (at most `limit` rows) as Parquet to
    /// `dest` (a file under an allowed directory).
    ///
    /// # Errors
    ///
    /// As [`Engine::query`], or when the file cannot be written.
    pub fn query_to_parquet(
        &self,
        sql: &str,
        dest: &Path,
        limit: Option<usize>,
    ) -> Result<(), Error> {
        let text = self.check(sql)?;
        let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        let copy = format!(
            "COPY (SELECT * FROM (\n{text}\n){limit}) TO {} (FORMAT parquet, COMPRESSION zstd)",
            literal(&dest.display().to_string())
        );
        let connection = self.connect()?;
        self.deadline(&connection, || {
            connection.execute_batch(&copy).map_err(query_error)
        })
    }

    /// Runs one of the node's own queries (not checked) and returns its answer, within the
    /// time and row limits.
    ///
    /// # Errors
    ///
    /// When DuckDB fails or time runs out.
    pub fn answer(&self, sql: &str) -> Result<Answer, Error> {
        let connection = self.connect()?;
        self.deadline(&connection, || {
            let mut statement = connection.prepare(sql).map_err(query_error)?;
            let arrow = statement.query_arrow([]).map_err(query_error)?;
            let schema = arrow.get_schema();
            let mut batches = Vec::new();
            let mut rows = 0;
            for batch in arrow {
                rows += batch.num_rows();
                batches.push(batch);
                if rows > self.limits.max_rows {
                    break;
                }
            }
            Answer::from_batches(&schema, &batches, self.limits.max_rows).map_err(Error::Engine)
        })
    }

    /// Runs the node's own statements (views, tables, conversions): trusted text, not
    /// checked, within the time limit.
    ///
    /// # Errors
    ///
    /// When DuckDB refuses them or time runs out.
    pub fn execute_trusted(&self, sql: &str) -> Result<(), Error> {
        let connection = self.connect()?;
        self.deadline(&connection, || {
            connection.execute_batch(sql).map_err(query_error)
        })
    }

    /// Replaces table `name` (of `schema`'s columns) with the rows of `batches`.
    ///
    /// # Errors
    ///
    /// When a batch does not fit the table.
    pub fn load_table(
        &self,
        name: &str,
        schema: &TableSchema,
        batches: Vec<RecordBatch>,
    ) -> Result<(), Error> {
        let connection = self.connect()?;
        let table = crate::ident(name);
        let staging = crate::ident(&format!("{name}__loading"));
        connection
            .execute_batch(&format!(
                "CREATE OR REPLACE TABLE {staging} {}",
                schema.columns_sql()
            ))
            .map_err(engine_error)?;
        {
            let mut appender = connection
                .appender(&format!("{name}__loading"))
                .map_err(engine_error)?;
            for batch in batches {
                appender.append_record_batch(batch).map_err(engine_error)?;
            }
        }
        connection
            .execute_batch(&format!(
                "BEGIN; DROP TABLE IF EXISTS {table}; ALTER TABLE {staging} RENAME TO {table}; COMMIT;"
            ))
            .map_err(engine_error)
    }

    /// Writes `batches` (rows of `schema`) as one Parquet file at `dest`, which must be
    /// under an allowed directory; returns the rows written.
    ///
    /// # Errors
    ///
    /// When a batch does not fit the schema or the file cannot be written.
    pub fn write_parquet(
        &self,
        schema: &TableSchema,
        batches: Vec<RecordBatch>,
        dest: &Path,
    ) -> Result<u64, Error> {
        let connection = self.connect()?;
        let n = self.temp.fetch_add(1, Ordering::Relaxed);
        let name = format!("write_{n}");
        connection
            .execute_batch(&format!(
                "CREATE TEMP TABLE {name} {}",
                schema.columns_sql()
            ))
            .map_err(engine_error)?;
        let mut rows = 0;
        {
            let mut appender = connection.appender(&name).map_err(engine_error)?;
            for batch in batches {
                rows += batch.num_rows() as u64;
                appender.append_record_batch(batch).map_err(engine_error)?;
            }
        }
        connection
            .execute_batch(&format!(
                "COPY {name} TO {} (FORMAT parquet, COMPRESSION zstd); DROP TABLE {name};",
                literal(&dest.display().to_string())
            ))
            .map_err(engine_error)?;
        Ok(rows)
    }

    /// Runs `work` on `connection`, interrupting it when the time limit passes.
    fn deadline<T>(
        &self,
        connection: &Connection,
        work: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let handle = connection.interrupt_handle();
        let fired = Arc::new(AtomicBool::new(false));
        let (done, wait) = mpsc::sync_channel::<()>(1);
        let timeout = self.limits.timeout;
        let watchdog = {
            let fired = Arc::clone(&fired);
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                    fired.store(true, Ordering::SeqCst);
                    handle.interrupt();
                }
            })
        };
        let out = work();
        drop(done);
        let _ = watchdog.join();
        if fired.load(Ordering::SeqCst) && out.is_err() {
            return Err(Error::Timeout(timeout));
        }
        out
    }
}
