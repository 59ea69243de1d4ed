//! What this machine offers: cores, memory, free disk and a hardware description, read from
//! the OS each time a heartbeat is built.

use std::path::Path;

/// Memory totals from `/proc/meminfo` (zeros where it does not exist).
pub(crate) fn memory() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// CPU cores this process may use.
pub(crate) fn cores() -> u16 {
    std::thread::available_parallelism()
        .map(|n| u16::try_from(n.get()).unwrap_or(u16::MAX))
        .unwrap_or(1)
}

/// Bytes free for unprivileged users on the file system holding `path`.
pub(crate) fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is a writable statvfs;
    // the struct is read only when the call reports success.
    #[allow(unsafe_code)]
    unsafe {
        if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return 0;
        }
        let stat = stat.assume_init();
        stat.f_bavail.saturating_mul(stat.f_frsize)
    }
}

/// The CPU model, e.g. `AMD EPYC 7B13`.
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The CPU model and platform, e.g. `AMD EPYC 7B13 (x86_64, linux, 2 cores)`.
pub(crate) fn hardware() -> String {
    let model = cpu_model();
    format!(
        "{model} ({}, {}, {} cores)",
        std::env::consts::ARCH,
        std::env::consts::OS,
        cores()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_read_this_machine() {
        let (total, available) = memory();
        assert!(total > 0 && available <= total);
        assert!(cores() >= 1);
        assert!(free_bytes(Path::new("/")) > 0);
        assert!(hardware().contains(std::env::consts::ARCH));
    }
}
