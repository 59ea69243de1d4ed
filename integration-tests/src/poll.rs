//! Waiting for a condition across processes: polls instead of sleeps, bounded.

use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it holds.
///
/// # Panics
///
/// After `secs` seconds, naming `what` it waited for.
pub fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
