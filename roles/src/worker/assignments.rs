//! The assignments a worker has taken, remembered until they expire, so that the same
//! assignment arriving again (a peer replaying it, or the network repeating it) never runs a
//! task twice. Together with each assignment's expiry this closes replays for good: a replay
//! before the expiry is remembered here, one after it is refused for being void.

use std::collections::{BTreeSet, HashMap};

use ipfsbench_protocols::task::{Assign, TaskId};

/// Assignments remembered at most; past it the one that expires first is forgotten early.
pub(crate) const MAX_REMEMBERED: usize = 65_536;

/// Why an assignment is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its validity ran out.
    Expired,
    /// This worker already took it.
    Repeated,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    by_attempt: HashMap<(TaskId, u32), u64>,
    by_expiry: BTreeSet<(u64, TaskId, u32)>,
}

impl Taken {
    /// Takes `a` at `now_ms` (Unix milliseconds), or says why not.
    pub(crate) fn take(&mut self, a: &Assign, now_ms: u64) -> Result<(), Refusal> {
        self.forget_expired(now_ms);
        if a.valid_until_unix_ms <= now_ms {
            return Err(Refusal::Expired);
        }
        let key = (a.task, a.attempt);
        if self.by_attempt.contains_key(&key) {
            return Err(Refusal::Repeated);
        }
        if self.by_attempt.len() >= MAX_REMEMBERED {
            if let Some(first) = self.by_expiry.pop_first() {
                self.by_attempt.remove(&(first.1, first.2));
            }
        }
        self.by_attempt.insert(key, a.valid_until_unix_ms);
        self.by_expiry
            .insert((a.valid_until_unix_ms, a.task, a.attempt));
        Ok(())
    }

    fn forget_expired(&mut self, now_ms: u64) {
        while let Some(&(until, task, attempt)) = self.by_expiry.first() {
            if until > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.by_attempt.remove(&(task, attempt));
        }
    }

    /// Assignments remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_attempt.len()
    }

    /// Whether none is remembered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_attempt.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_core::network::PeerId;
    use ipfsbench_protocols::task::{Kind, Spec, WirePeer};

    fn assign(task: TaskId, attempt: u32, until: u64) -> Assign {
        Assign {
            task,
            attempt,
            worker: WirePeer(PeerId::random()),
            lease_ms: 1000,
            valid_until_unix_ms: until,
            spec: Spec::new(Kind::Noop),
        }
    }

    #[test]
    fn replays_are_refused_before_and_after_expiry() {
        let me = PeerId::random();
        let t = TaskId::derive(&me, "a");
        let mut taken = Taken::default();
        assert_eq!(taken.take(&assign(t, 1, 10_000), 1_000), Ok(()));
        assert_eq!(
            taken.take(&assign(t, 1, 10_000), 2_000),
            Err(Refusal::Repeated)
        );
        // A new attempt of the same task is a new assignment.
        assert_eq!(taken.take(&assign(t, 2, 10_000), 2_000), Ok(()));
        // Once void, it is refused for that, and forgotten.
        assert_eq!(
            taken.take(&assign(t, 1, 10_000), 10_000),
            Err(Refusal::Expired)
        );
        assert!(taken.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let me = PeerId::random();
        let mut taken = Taken::default();
        for i in 0..MAX_REMEMBERED + 10 {
            let t = TaskId::derive(&me, &i.to_string());
            taken.take(&assign(t, 1, 1_000_000 + i as u64), 0).unwrap();
        }
        assert_eq!(taken.len(), MAX_REMEMBERED);
    }
}
