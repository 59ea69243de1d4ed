//! The few OS calls the pack store makes that `std` does not offer: early writeback
//! (`sync_file_range`) and the free space of a file system (`fstatvfs`); and the daemon's cap
//! on the C allocator's arenas (`mallopt`).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// Caps glibc's malloc arenas at one per core, at least two (glibc's default is eight per
/// core). Elsewhere it does nothing.
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt sets one allocator parameter and reads no memory of ours.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

fn range(file: &File, offset: u64, len: u64, flags: libc::c_uint) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is valid for the lifetime of `file`; the call reads no memory
    // of ours and only schedules or awaits writeback of the given byte range.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "sync_file_range");
    }
}

/// Starts writing the range to disk without waiting. A hint for throughput: errors are
/// ignored here because the `fdatasync` of a flush reports any that matter.
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
    range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE);
}

/// Waits until the range is on disk (data only; `fdatasync` still follows).
pub(super) fn wait_writeback(file: &File, offset: u64, len: u64) {
    range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
}

/// Bytes an unprivileged process may still write on the file system holding `file`.
pub(super) fn free_bytes(file: &File) -> std::io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: the descriptor is valid for the lifetime of `file`, and `st` is a properly
    // sized, writable statvfs that the call fills in.
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it initialised the struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
