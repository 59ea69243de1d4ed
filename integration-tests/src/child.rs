//! Running a child process: captured output, a timeout, wall time and peak RSS.

use std::io::{self, Read};
use std::process::{Command, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sys;

/// How a child process ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Its standard output, if the command had `Stdio::piped()` for it (else empty).
    pub stdout: Vec<u8>,
    /// Its standard error, if the command had `Stdio::piped()` for it (else empty).
    pub stderr: Vec<u8>,
    /// Wall time from spawning to reaping (to within about a millisecond).
    pub elapsed: Duration,
    /// Peak resident set size of the child, in bytes (`ru_maxrss` from `wait4`).
    pub peak_rss_bytes: u64,
}

impl Finished {
    /// Standard output as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy UTF-8).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a child could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// Spawning failed.
    #[error("cannot spawn {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// Waiting for the child failed.
    #[error("cannot wait for {program}: {source}")]
    Wait {
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// The child ran longer than allowed and was killed.
    #[error("{program} did not finish within {after:?} and was killed; its stderr: {stderr}")]
    Timeout {
        /// The program.
        program: String,
        /// The time limit.
        after: Duration,
        /// What it wrote to stderr (when piped).
        stderr: String,
    },
}

/// Spawns `cmd`, reads its piped stdout and stderr, and waits for it, killing it after
/// `timeout`. Configure stdio on `cmd` beforehand: piped streams are captured, others are left
/// as configured (for example a file or `/dev/null`).
///
/// # Errors
///
/// When it cannot be spawned or waited for, or runs out of time.
pub fn run(cmd: &mut Command, timeout: Option<Duration>) -> Result<Finished, ChildError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ChildError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let wait_err = |source| ChildError::Wait {
        program: program.clone(),
        source,
    };
    let mut timed_out = false;
    let (status, peak_rss_bytes) = loop {
        if let Some(done) = sys::try_wait4(child.id()).map_err(wait_err)? {
            break done;
        }
        if !timed_out && timeout.is_some_and(|limit| start.elapsed() > limit) {
            // Not yet reaped, so the pid still names our child.
            let _ = child.kill();
            timed_out = true;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let elapsed = start.elapsed();
    let stdout = collect(stdout).map_err(wait_err)?;
    let stderr = collect(stderr).map_err(wait_err)?;
    if timed_out {
        return Err(ChildError::Timeout {
            program,
            after: timeout.unwrap_or_default(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        });
    }
    Ok(Finished {
        status,
        stdout,
        stderr,
        elapsed,
        peak_rss_bytes,
    })
}

type Reader = io::Result<JoinHandle<io::Result<Vec<u8>>>>;

fn drain(mut stream: impl Read + Send + 'static) -> Reader {
    thread::Builder::new()
        .name("child-output".to_owned())
        .spawn(move || {
            let mut out = Vec::new();
            stream.read_to_end(&mut out)?;
            Ok(out)
        })
}

fn collect(reader: Option<Reader>) -> io::Result<Vec<u8>> {
    match reader {
        None => Ok(Vec::new()),
        Some(handle) => handle?
            .join()
            .map_err(|_| io::Error::other("output reader thread panicked"))?,
    }
}
