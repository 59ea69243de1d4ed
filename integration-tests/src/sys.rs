//! The few libc calls the harness needs that `std` does not offer.
//!
//! `unsafe` is allowed here because these are foreign function calls: `wait4` to obtain one
//! child's resource usage (its peak RSS), `sync`, and `setns` to open sockets in a network
//! namespace. Each call is wrapped in a safe function.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Reaps the child `pid` if it has exited (`wait4` with `WNOHANG`), returning its exit status
/// and peak resident set size in bytes; `None` while it still runs.
pub fn try_wait4(pid: u32) -> io::Result<Option<(ExitStatus, u64)>> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both out-pointers point to live, writable locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        match reaped {
            0 => return Ok(None),
            -1 => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
            _ => break,
        }
    }
    // Linux reports ru_maxrss in KiB.
    let peak_rss = u64::try_from(usage.ru_maxrss)
        .unwrap_or(0)
        .saturating_mul(1024);
    Ok(Some((ExitStatus::from_raw(status), peak_rss)))
}

/// Flushes all dirty file data of the system to disk (`sync(2)`).
pub fn sync_all() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// Sends SIGTERM to process `pid` (a polite stop request).
pub fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Bytes free for unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &std::path::Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `statvfs` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a live, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Moves the calling thread (only it: a network namespace is per thread) into the network
/// namespace that `ns` is an open file of (`/run/netns/<name>`), with `setns(2)`. Sockets the
/// thread creates afterwards belong to that namespace, whichever thread uses them later.
pub fn enter_net_namespace(ns: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns takes a file descriptor that `ns` keeps open for the call, and a flag.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
