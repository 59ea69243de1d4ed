//! What the kinds share: the error an attempt fails with, the `size` parameter, stopping.

use std::sync::atomic::{AtomicBool, Ordering};

use ipfsbench_protocols::task::Spec;
use rand::RngCore;

/// The largest `size` a benchmark task may ask for. Bytes.
pub(crate) const MAX_BENCH_BYTES: u64 = 16 << 30;

/// An attempt that failed, with the reason the master records.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RunError(pub(crate) String);

/// Any error as an attempt's failure.
pub(crate) fn fail(e: impl std::fmt::Display) -> RunError {
    RunError(e.to_string())
}

/// The `size` parameter in bytes, or `default`.
pub(crate) fn size_param(spec: &Spec, default: u64) -> Result<u64, RunError> {
    let size = match spec.param("size") {
        None => default,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| RunError(format!("size: {v:?} is not a number of bytes")))?,
    };
    if size == 0 || size > MAX_BENCH_BYTES {
        return Err(RunError(format!(
            "size must be between 1 and {MAX_BENCH_BYTES} bytes"
        )));
    }
    Ok(size)
}

/// `len` random bytes.
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut buf);
    buf
}

/// Fails once the attempt was stopped (cancelled, timed out, aborted): the blocking
/// benchmark loops ask between steps.
pub(crate) fn check_stop(stop: &AtomicBool) -> Result<(), RunError> {
    if stop.load(Ordering::Relaxed) {
        return Err(RunError("stopped".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_protocols::task::Kind;

    #[test]
    fn sizes_are_checked() {
        let mut spec = Spec::new(Kind::BenchHash);
        assert_eq!(size_param(&spec, 7).unwrap(), 7);
        spec.params.push(("size".into(), "0".into()));
        assert!(size_param(&spec, 7).is_err());
        spec.params[0].1 = "lots".into();
        assert!(size_param(&spec, 7).is_err());
    }
}
