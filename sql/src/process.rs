//! Queries from outside in a child process: the caller's process never runs them.
//!
//! DuckDB bounds what its buffer manager holds, but not everything a query can allocate (a
//! `repeat('x', 3900000000)` builds its value outside that limit), and some failures inside
//! it end the process instead of returning an error. So a query from outside runs in a child
//! process of this binary (started with [`WORKER_ARG`]; its side is [`crate::serve_worker`]):
//! the child opens its own in-memory database, runs the node's definitions (views over its
//! files), checks and runs the query within the limits, and writes the answer to its stdout
//! as JSON. The kernel bounds it: `RLIMIT_DATA` caps the memory it maps
//! ([`crate::Limits::process_bytes`]), `RLIMIT_FSIZE` the files it writes, `RLIMIT_CORE`
//! leaves no core dump. The parent reads at most a bounded answer, kills the child at the
//! time limit, and turns a child that died into an error naming its limits. Nothing the
//! child did survives it.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::error::Error;

/// The first argument that makes this binary a query's child process.
pub const WORKER_ARG: &str = "__ipfsbench-sql-worker";

/// Longest request read by a child (the definitions name every partition file).
pub(crate) const MAX_REQUEST: u64 = 64 << 20;

/// What the parent asks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) allowed: Vec<PathBuf>,
    pub(crate) memory_bytes: u64,
    pub(crate) threads: u16,
    pub(crate) timeout_ms: u64,
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) process_bytes: u64,
    /// The node's definitions, run first.
    pub(crate) script: Vec<String>,
    /// The query, already checked by the parent (and checked again here).
    pub(crate) sql: String,
    /// Write the answer there as Parquet instead of answering it.
    pub(crate) parquet: Option<PathBuf>,
}

/// What the child answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome {
    Answer(Answer),
    Written { rows: u64, truncated: bool },
}

/// The child's reply: the outcome, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done(Outcome),
    Failed { kind: Fault, message: String },
}

/// Which [`Error`] the child's failure was.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Fault {
    Refused,
    Invalid,
    Timeout,
    Engine,
}

impl From<&Error> for Fault {
    fn from(e: &Error) -> Self {
        match e {
            Error::Refused(_) => Self::Refused,
            Error::Invalid(_) => Self::Invalid,
            Error::Timeout(_) => Self::Timeout,
            Error::Engine(_) | Error::Io(_) => Self::Engine,
        }
    }
}

/// Runs `request` in a child process of `program`.
pub(crate) fn run(program: &Path, request: Request) -> Result<Outcome, Error> {
    let timeout = Duration::from_millis(request.timeout_ms);
    // Room for the answer's cells rendered as JSON, escapes and all.
    let max_reply = (request.max_bytes as u64).saturating_mul(8) + (4 << 20);
    let process_mib = request.process_bytes >> 20;
    let request_max_bytes = request.max_bytes;
    let body = serde_json::to_vec(&request).map_err(|e| Error::Engine(e.to_string()))?;
    let dir = request
        .allowed
        .first()
        .map_or(Path::new("/"), PathBuf::as_path);
    let mut child = spawn(program, dir)?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Engine("the query's process has no pipes".into()));
    };
    let (done, finished) = mpsc::sync_channel(1);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = stdout.take(max_reply + 1).read_to_end(&mut out);
        let _ = done.send(());
        read.map(|_| out)
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.take(16 << 10).read_to_string(&mut text);
        text
    });
    // The child reads its whole request before it writes anything.
    let sent = stdin.write_all(&body);
    drop(stdin);
    // The child stops itself at the time limit; this is for one that cannot.
    let late = finished
        .recv_timeout(timeout + Duration::from_secs(10))
        .is_err();
    if late {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let out = reader
        .join()
        .map_err(|_| Error::Engine("reading the query's answer failed".into()))??;
    let errors = errors.join().unwrap_or_default();
    if late {
        return Err(Error::Timeout(timeout));
    }
    if out.len() as u64 > max_reply {
        return Err(Error::Engine(format!(
            "the query's process answered more than {max_reply} bytes"
        )));
    }
    match serde_json::from_slice::<Reply>(&out) {
        Ok(Reply::Done(outcome)) if status.success() => Ok(outcome),
        Ok(Reply::Failed { kind, message }) => Err(match kind {
            Fault::Refused => Error::Refused(message),
            Fault::Invalid => Error::Invalid(message),
            Fault::Timeout => Error::Timeout(timeout),
            Fault::Engine => Error::Engine(message),
        }),
        _ => {
            sent?;
            Err(died(status, &errors, request_max_bytes, process_mib))
        }
    }
}

/// Starts `program` as a query's child process in `dir`, with piped stdin, stdout and stderr
/// and nothing of this process's environment but where DuckDB's library is found.
fn spawn(program: &Path, dir: &Path) -> Result<Child, Error> {
    let mut command = Command::new(program);
    command.arg(WORKER_ARG).current_dir(dir).env_clear();
    // Where DuckDB's library is found, when the binary was started that way.
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        command.env("LD_LIBRARY_PATH", path);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Engine(format!(
                "starting the query's process {}: {e}",
                program.display()
            ))
        })
}

/// The error of a child that ended without a reply: what it wrote last (a panic's message),
/// and which of its limits it may have met.
fn died(status: ExitStatus, errors: &str, max_bytes: usize, process_mib: u64) -> Error {
    // A panic's message is on the line after "panicked at"; otherwise the last
    // line says most.
    let lines: Vec<&str> = errors.lines().filter(|l| !l.trim().is_empty()).collect();
    let said = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .and_then(|i| lines.get(i + 1))
        .or(lines.last());
    let detail = said.map(|l| format!(", {l}")).unwrap_or_default();
    Error::Invalid(if status.signal() == Some(libc::SIGXFSZ) {
        format!(
            "the query's answer grew past the {} MiB a file it writes may \
                 have, and it was stopped ({status}); nothing else was affected",
            file_bytes(max_bytes) >> 20
        )
    } else {
        format!(
            "the query stopped the process it ran in ({status}{detail}): it may \
                 need more than the {process_mib} MiB a query may use; nothing else \
                 was affected"
        )
    })
}

/// The largest file a child may write: a Parquet answer holds at most the answer's cells,
/// compressed, plus its metadata.
pub(crate) fn file_bytes(max_bytes: usize) -> u64 {
    (max_bytes as u64).saturating_mul(2) + (16 << 20)
}
