//! A hybrid logical clock: stamps are milliseconds since the Unix epoch in the high 48 bits
//! and a counter in the low 16, so they follow wall time, never go backwards, and move past
//! every stamp the node has seen from others.

/// Bits of the counter.
const COUNTER_BITS: u32 = 16;

/// The stamp of wall time `ms` with counter 0.
pub fn from_millis(ms: u64) -> u64 {
    ms << COUNTER_BITS
}

/// The wall-time milliseconds of `stamp`.
pub fn millis(stamp: u64) -> u64 {
    stamp >> COUNTER_BITS
}

/// The clock: the last stamp given or seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    last: u64,
}

impl Clock {
    /// A clock that gives only stamps above `floor` (the last one it may have given before).
    pub fn starting_after(floor: u64) -> Self {
        Self { last: floor }
    }

    /// A new stamp, above every stamp given or seen, at wall time `now_ms` or later.
    pub fn tick(&mut self, now_ms: u64) -> u64 {
        self.last = from_millis(now_ms).max(self.last.saturating_add(1));
        self.last
    }

    /// Takes in a stamp seen from another node.
    pub fn observe(&mut self, stamp: u64) {
        self.last = self.last.max(stamp);
    }

    /// The last stamp given or seen: every later stamp is above it.
    pub fn last(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_go_up() {
        let mut c = Clock::default();
        let a = c.tick(1_000);
        let b = c.tick(1_000);
        assert!(b > a);
        assert_eq!(millis(a), 1_000);
        // The wall clock stepped back: the stamps still go up.
        let d = c.tick(900);
        assert!(d > b);
        // A stamp from a node whose clock runs ahead pulls this one forward.
        c.observe(from_millis(5_000));
        assert!(c.tick(1_001) > from_millis(5_000));
        let mut restarted = Clock::starting_after(from_millis(7_000));
        assert!(restarted.tick(10) > from_millis(7_000));
    }
}
