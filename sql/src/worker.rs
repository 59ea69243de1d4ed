//! Queries from outside in a child process: the caller's process never runs them.
//!
//! DuckDB bounds what its buffer manager holds, but not everything a query can allocate (a
//! `repeat('x', 3900000000)` builds its value outside that limit), and some failures inside
//! it end the process instead of returning an error. So a query from outside runs in a child
//! process of this binary (started with [`WORKER_ARG`]): the child opens its own in-memory
//! database, runs the node's definitions (views over its files), checks and runs the query
//! within the limits, and writes the answer to its stdout as JSON. The kernel bounds it:
//! `RLIMIT_DATA` caps the memory it maps ([`crate::Limits::process_bytes`]), `RLIMIT_FSIZE`
//! the files it writes, `RLIMIT_CORE` leaves no core dump. The parent reads at most a
//! bounded answer, kills the child at the time limit, and turns a child that died into an
//! error naming its limits. Nothing the child did survives it.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Answer, Engine, Error, Limits};

/// The first argument that makes this binary a query's child process.
pub const WORKER_ARG: &str = "__ipfsbench-sql-worker";

/// Longest request read by a child (the definitions name every partition file).
const MAX_REQUEST: u64 = 64 << 20;

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

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Done(Outcome),
    Failed { kind: Fault, message: String },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Fault {
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
    let mut command = Command::new(program);
    command
        .arg(WORKER_ARG)
        .current_dir(
            request
                .allowed
                .first()
                .map_or(Path::new("/"), PathBuf::as_path),
        )
        .env_clear();
    // Where DuckDB's library is found, when the binary was started that way.
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        command.env("LD_LIBRARY_PATH", path);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Engine(format!(
                "starting the query's process {}: {e}",
                program.display()
            ))
        })?;
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
            // A panic's message is on the line after "panicked at"; otherwise the last
            // line says most.
            let lines: Vec<&str> = errors.lines().filter(|l| !l.trim().is_empty()).collect();
            let said = lines
                .iter()
                .position(|l| l.contains("panicked at"))
                .and_then(|i| lines.get(i + 1))
                .or(lines.last());
            let detail = said.map(|l| format!(", {l}")).unwrap_or_default();
            Err(Error::Invalid(if status.signal() == Some(libc::SIGXFSZ) {
                format!(
                    "the query's answer grew past the {} MiB a file it writes may \
                         have, and it was stopped ({status}); nothing else was affected",
                    file_bytes(request_max_bytes) >> 20
                )
            } else {
                format!(
                    "the query stopped the process it ran in ({status}{detail}): it may \
                         need more than the {process_mib} MiB a query may use; nothing else \
                         was affected"
                )
            }))
        }
    }
}

/// The child's side: reads a request from stdin, answers on stdout; returns the exit code.
/// The binary calls it when its first argument is [`WORKER_ARG`].
pub fn serve() -> i32 {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_REQUEST).read_to_end(&mut body) {
        eprintln!("reading the request: {e}");
        return 2;
    }
    let reply = match serde_json::from_slice::<Request>(&body) {
        Ok(request) => {
            drop(body);
            match answer(request) {
                Ok(outcome) => Reply::Done(outcome),
                Err(e) => Reply::Failed {
                    kind: Fault::from(&e),
                    message: e.to_string(),
                },
            }
        }
        Err(e) => Reply::Failed {
            kind: Fault::Engine,
            message: format!("a bad request: {e}"),
        },
    };
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &reply)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("writing the answer: {e}");
            3
        }
    }
}

fn answer(request: Request) -> Result<Outcome, Error> {
    limit(libc::RLIMIT_DATA, request.process_bytes)?;
    limit(libc::RLIMIT_CORE, 0)?;
    limit(libc::RLIMIT_FSIZE, file_bytes(request.max_bytes))?;
    let limits = Limits {
        memory_bytes: request.memory_bytes,
        threads: request.threads,
        timeout: Duration::from_millis(request.timeout_ms),
        max_rows: request.max_rows,
        max_bytes: request.max_bytes,
        isolate: None,
    };
    let engine = Engine::open(&request.allowed, limits)?;
    for statement in &request.script {
        engine.execute_trusted(statement)?;
    }
    match &request.parquet {
        None => engine.query(&request.sql).map(Outcome::Answer),
        Some(dest) => engine
            .query_to_parquet(&request.sql, dest, None)
            .map(|(rows, truncated)| Outcome::Written { rows, truncated }),
    }
}

/// The largest file a child may write: a Parquet answer holds at most the answer's cells,
/// compressed, plus its metadata.
fn file_bytes(max_bytes: usize) -> u64 {
    (max_bytes as u64).saturating_mul(2) + (16 << 20)
}

/// Sets the soft and hard limit of `resource` for this process.
fn limit(resource: libc::__rlimit_resource_t, bytes: u64) -> Result<(), Error> {
    let value = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: `value` is a valid rlimit that lives through the call.
    if unsafe { libc::setrlimit(resource, &value) } != 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    Ok(())
}
