//! The child's side of a query from outside ([`crate::process`] has the whole picture): reads
//! the request on stdin, caps its own memory and files, opens its own in-memory database, runs
//! the node's definitions and the query, and answers on stdout as JSON.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::time::Duration;

use crate::engine::{Engine, Limits};
use crate::error::Error;
use crate::process::{file_bytes, Fault, Outcome, Reply, Request, MAX_REQUEST};

/// The child's side: reads a request from stdin, answers on stdout; returns the exit code.
/// The binary calls it when its first argument is [`crate::WORKER_ARG`].
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
