//! `bench.hash`: sha2-256 throughput over `size` bytes (default 256 MiB) of random data.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::common::{check_stop, random_bytes, RunError};
use crate::results::record::Metrics;

/// sha2-256 over `size` bytes of random data, 1 MiB at a time.
pub(crate) fn run(size: u64, stop: &AtomicBool) -> Result<Metrics, RunError> {
    use sha2::{Digest, Sha256};
    let buf = random_bytes(1 << 20);
    let clock = Instant::now();
    let mut left = size;
    let mut digest = Sha256::new();
    while left > 0 {
        check_stop(stop)?;
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        digest.update(&buf[..n]);
        left -= n as u64;
    }
    let _ = digest.finalize();
    let seconds = clock.elapsed().as_secs_f64();
    Ok(Metrics {
        algorithm: Some("sha2-256".into()),
        bytes: Some(size),
        seconds: Some(seconds),
        mbps: Some(size as f64 / 1e6 / seconds.max(1e-9)),
        ..Metrics::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_measures_what_it_says_and_stops_when_told() {
        let m = run(4 << 20, &AtomicBool::new(false)).unwrap();
        assert_eq!(m.bytes, Some(4 << 20));
        assert!(m.mbps.unwrap() > 0.0);
        assert!(run(16 << 30, &AtomicBool::new(true)).is_err());
    }
}
