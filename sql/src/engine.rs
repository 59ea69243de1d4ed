//! The engine: one sandboxed in-memory database, connections made per call.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use duckdb::arrow::record_batch::RecordBatch;
use duckdb::Connection;

use crate::allow::Names;
use crate::answer::{rows_within, Answer, Collector};
use crate::check::{self, Database};
use crate::error::Error;
use crate::process::{self, Outcome, Request};
use crate::quote::literal;
use crate::schema::TableSchema;

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
    /// Bytes of cells an answer holds at most (text and binary cells count their length,
    /// others 8 bytes): past it the answer is cut, as at the row limit.
    pub max_bytes: usize,
    /// Where queries from outside run: `None` in this process; `Some(program)` in a child
    /// process of `program` (this binary, which hands [`crate::WORKER_ARG`] to
    /// [`crate::serve_worker`]) with its memory and file sizes capped by the kernel, so that
    /// no query, however it allocates or fails inside DuckDB, can take more than
    /// [`Limits::process_bytes`] or stop the caller's process.
    pub isolate: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            threads: 2,
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            max_bytes: 32 << 20,
            isolate: None,
        }
    }
}

impl Limits {
    /// The data a query's child process may map in all (`RLIMIT_DATA`): DuckDB's own
    /// limit, values its functions build outside that limit (a `repeat` result), the
    /// answer four times over (Arrow, cells, JSON) and the process's own 128 MiB.
    pub fn process_bytes(&self) -> u64 {
        self.memory_bytes
            .saturating_add(256 << 20)
            .saturating_add(4 * self.max_bytes as u64)
            .saturating_add(128 << 20)
    }
}

/// The sandboxed database. See the crate docs.
pub struct Engine {
    db: Arc<Database>,
    limits: Limits,
    allowed: Vec<PathBuf>,
    temp: AtomicU64,
    /// The statements that define what queries see (views, by name), in name order: run
    /// here as they are defined, and again in each query's child process.
    definitions: Mutex<BTreeMap<String, String>>,
    /// Query processes running now: at most [`MAX_PROCESSES`].
    processes: (Mutex<usize>, std::sync::Condvar),
}

/// Query processes that may run at once; more wait (within the time limit) for a turn.
pub(crate) const MAX_PROCESSES: usize = 2;

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

/// A query process's turn: gives it back when dropped.
struct Turn<'a>(&'a (Mutex<usize>, std::sync::Condvar));

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let (count, freed) = self.0;
        let mut running = count.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        freed.notify_one();
    }
}

/// Starts `statement` streaming: DuckDB hands its answer over a chunk at a time instead of
/// materialising it whole first. Returns the answer's schema.
fn stream(
    statement: &mut duckdb::Statement<'_>,
) -> Result<duckdb::arrow::datatypes::SchemaRef, Error> {
    let arrow = statement.stream_arrow([]).map_err(query_error)?;
    Ok(arrow.get_schema())
}

/// The next chunk of a streaming statement; an error (out of memory, interrupted) is
/// returned, where duckdb's own iterator would panic.
fn next_batch(statement: &duckdb::Statement<'_>) -> Result<Option<RecordBatch>, Error> {
    Ok(statement
        .step()
        .map_err(query_error)?
        .map(|array| RecordBatch::from(&array)))
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
        let allowed = allowed
            .iter()
            .map(|dir| dir.canonicalize())
            .collect::<Result<Vec<_>, _>>()?;
        let engine = Self {
            db,
            limits,
            allowed,
            temp: AtomicU64::new(0),
            definitions: Mutex::new(BTreeMap::new()),
            processes: (Mutex::new(0), std::sync::Condvar::new()),
        };
        let dirs: Vec<String> = engine
            .allowed
            .iter()
            .map(|dir| literal(&format!("{}/", dir.display())))
            .collect();
        // Parquet files are not cached in DuckDB's memory between queries, and memory
        // freed by a query goes back to the system above 16 MiB, so an idle node stays
        // small after a large query.
        let setup = format!(
            "SET threads = {threads};
             SET memory_limit = '{memory}B';
             SET max_temp_directory_size = '0B';
             SET enable_external_file_cache = false;
             SET allocator_flush_threshold = '16MiB';
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

    /// The directories queries may read.
    pub fn allowed(&self) -> &[PathBuf] {
        &self.allowed
    }

    /// Checks that `sql` is one query that calls nothing with side effects
    /// ([`crate::allow`]), from its parse tree alone: nothing is bound, optimized or run
    /// here (binding folds constants, which can take any amount of memory). Returns the
    /// text that will run; where it runs, it is prepared and checked again before it does.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] or [`Error::Invalid`], with the reason.
    pub fn check(&self, sql: &str) -> Result<String, Error> {
        let text = check::trimmed(sql)?;
        // A text DuckDB cannot serialize (not a query, several statements of which one is
        // not, PIVOT) is refused.
        self.names(text)?.vet()?;
        Ok(text.to_string())
    }

    /// What `sql` names (functions, tables), from DuckDB's parse tree: nothing is bound
    /// or run, so it may name views that are not defined yet.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] when it is not one query DuckDB can serialize, [`Error::Invalid`]
    /// when it does not parse.
    pub fn names(&self, sql: &str) -> Result<Names, Error> {
        if sql.len() > check::MAX_SQL {
            return Err(Error::Refused(format!(
                "the query is {} bytes long; at most {} are accepted",
                sql.len(),
                check::MAX_SQL
            )));
        }
        let connection = self.connect()?;
        // The text as a literal: the function takes a constant, not a parameter.
        let tree: String = connection
            .query_row(
                &format!("SELECT json_serialize_sql({})", literal(sql)),
                [],
                |row| row.get(0),
            )
            .map_err(query_error)?;
        Names::from_serialized(&tree)
    }

    /// Defines (or redefines) `name` with the node's own `statement` (views over its
    /// files): run now, and again in every child process a query from outside runs in.
    ///
    /// # Errors
    ///
    /// When DuckDB refuses the statement; the previous definition then stands.
    pub fn define(&self, name: &str, statement: &str) -> Result<(), Error> {
        let mut definitions = self.definitions.lock().unwrap_or_else(|e| e.into_inner());
        self.execute_trusted(statement)?;
        definitions.insert(name.to_string(), statement.to_string());
        Ok(())
    }

    fn script(&self) -> Vec<String> {
        let definitions = self.definitions.lock().unwrap_or_else(|e| e.into_inner());
        definitions.values().cloned().collect()
    }

    /// Runs `sql` from outside: one query, within the limits (in a child process when
    /// [`Limits::isolate`] names one).
    ///
    /// # Errors
    ///
    /// When it is refused, invalid, runs out of time, or its process fails.
    pub fn query(&self, sql: &str) -> Result<Answer, Error> {
        let text = self.check(sql)?;
        if let Some(program) = &self.limits.isolate {
            let _turn = self.turn()?;
            return match process::run(program, self.request(text, None))? {
                Outcome::Answer(answer) => Ok(answer),
                Outcome::Written { .. } => {
                    Err(Error::Engine("the query's process wrote a file".into()))
                }
            };
        }
        let text = check::read_only(&self.db, &text)?;
        self.query_here(&text)
    }

    /// [`Engine::query`] of checked text, in this process.
    pub(crate) fn query_here(&self, text: &str) -> Result<Answer, Error> {
        // Not wrapped in a LIMIT: DuckDB would gather every row up to it before the first
        // one streams out; the answer stops reading at its limits instead.
        self.answer(text)
    }

    /// Waits (within the time limit) until fewer than [`MAX_PROCESSES`] queries run in
    /// processes; the turn ends when the guard drops.
    fn turn(&self) -> Result<Turn<'_>, Error> {
        let (count, freed) = &self.processes;
        let running = count.lock().unwrap_or_else(|e| e.into_inner());
        let (mut running, waited) = freed
            .wait_timeout_while(running, self.limits.timeout, |n| *n >= MAX_PROCESSES)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && *running >= MAX_PROCESSES {
            return Err(Error::Timeout(self.limits.timeout));
        }
        *running += 1;
        Ok(Turn(&self.processes))
    }

    fn request(&self, sql: String, parquet: Option<PathBuf>) -> Request {
        Request {
            allowed: self.allowed.clone(),
            memory_bytes: self.limits.memory_bytes,
            threads: self.limits.threads,
            timeout_ms: u64::try_from(self.limits.timeout.as_millis()).unwrap_or(u64::MAX),
            max_rows: self.limits.max_rows,
            max_bytes: self.limits.max_bytes,
            process_bytes: self.limits.process_bytes(),
            script: self.script(),
            sql,
            parquet,
        }
    }

    /// Runs `sql` from outside and writes its answer as Parquet to `dest` (a file under an
    /// allowed directory): at most `limit` rows (and the row limit), and at most
    /// [`Limits::max_bytes`] of cells; returns the rows written and whether rows were cut.
    ///
    /// # Errors
    ///
    /// As [`Engine::query`], or when the file cannot be written.
    pub fn query_to_parquet(
        &self,
        sql: &str,
        dest: &Path,
        limit: Option<usize>,
    ) -> Result<(u64, bool), Error> {
        let text = self.check(sql)?;
        let limit = limit
            .unwrap_or(self.limits.max_rows)
            .min(self.limits.max_rows);
        if let Some(program) = &self.limits.isolate {
            let mut request = self.request(text, Some(dest.to_path_buf()));
            request.max_rows = limit;
            let _turn = self.turn()?;
            return match process::run(program, request)? {
                Outcome::Written { rows, truncated } => Ok((rows, truncated)),
                Outcome::Answer(_) => {
                    Err(Error::Engine("the query's process wrote no file".into()))
                }
            };
        }
        let text = check::read_only(&self.db, &text)?;
        self.parquet_here(&text, dest, limit)
    }

    /// [`Engine::query_to_parquet`] of checked text, in this process: the answer's rows
    /// are taken within the limits, then written from a temporary table.
    pub(crate) fn parquet_here(
        &self,
        text: &str,
        dest: &Path,
        limit: usize,
    ) -> Result<(u64, bool), Error> {
        let connection = self.connect()?;
        let n = self.temp.fetch_add(1, Ordering::Relaxed);
        let table = format!("answer_{n}");
        let written = self.deadline(&connection, || {
            connection
                .execute_batch(&format!(
                    "CREATE TEMP TABLE {table} AS SELECT * FROM (\n{text}\n) LIMIT 0"
                ))
                .map_err(query_error)?;
            // Read as it streams, to the limits (see `query_here`).
            let mut statement = connection.prepare(text).map_err(query_error)?;
            let _schema = stream(&mut statement)?;
            let mut appender = connection.appender(&table).map_err(engine_error)?;
            let (mut rows, mut bytes, mut truncated) = (0usize, 0usize, false);
            while let Some(batch) = next_batch(&statement)? {
                let fit = rows_within(&batch, &mut bytes, self.limits.max_bytes)
                    .min(limit.saturating_sub(rows));
                if fit > 0 {
                    appender
                        .append_record_batch(batch.slice(0, fit))
                        .map_err(engine_error)?;
                    rows += fit;
                }
                if fit < batch.num_rows() {
                    truncated = true;
                    break;
                }
            }
            drop(appender);
            connection
                .execute_batch(&format!(
                    "COPY {table} TO {} (FORMAT parquet, COMPRESSION zstd)",
                    literal(&dest.display().to_string())
                ))
                .map_err(query_error)?;
            Ok((rows as u64, truncated))
        });
        let _ = connection.execute_batch(&format!("DROP TABLE IF EXISTS {table}"));
        written
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
            let schema = stream(&mut statement)?;
            let mut answer = Collector::new(&schema, self.limits.max_rows, self.limits.max_bytes);
            while let Some(batch) = next_batch(&statement)? {
                if !answer.push(&batch).map_err(Error::Engine)? {
                    break;
                }
            }
            Ok(answer.finish())
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
