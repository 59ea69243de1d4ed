//! [`Attempts`]: the worker's bookkeeping of the attempts it runs and of the reports it
//! repeats until a master acknowledges them. Plain state that the service drives, with the
//! time passed in, so its rules are tested without a network.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ipfsbench_protocols::task::{Assign, Claim, Message, Outcome, Repeat, Report, TaskId};

use super::assignments::{self, Refusal};

/// Reports a worker keeps until a master acknowledges them; past it, new ones are sent once.
pub(crate) const MAX_UNACKED: usize = 4096;
/// How many times a worker repeats a report before it gives up on it.
pub(crate) const MAX_REPEATS: u32 = 30;
/// The shortest wait before a report is repeated. Milliseconds.
pub(crate) const MIN_REPEAT_MS: u64 = 2000;
/// Acknowledged reports kept to send again to a master that takes over, at most.
pub(crate) const MAX_RECENT: usize = 1024;
/// How long an acknowledged report is kept for that. Milliseconds.
pub(crate) const RECENT_MS: u64 = 60_000;

/// An attempt running here.
#[derive(Debug)]
struct Running {
    attempt: u32,
    started_ms: u64,
    abort: Option<tokio::task::AbortHandle>,
}

impl Running {
    fn stop(&self) {
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }
}

/// A report waiting for its acknowledgement.
#[derive(Debug)]
struct Unacked {
    report: Report,
    sent_ms: u64,
    repeats: u32,
}

/// What to do with an assignment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Run it: publish the claim, start the attempt, then call [`Attempts::started`].
    Start(Claim),
    /// Refuse it (at capacity): publish the claim.
    Refuse(Claim),
    /// The attempt already runs here: nothing to do.
    Running,
    /// Void or taken before: ignore it.
    Ignore(Refusal),
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Attempts {
    max_concurrent: u16,
    /// How long a report waits for its acknowledgement before it is repeated. Milliseconds.
    repeat_after_ms: u64,
    running: HashMap<TaskId, Running>,
    taken: assignments::Taken,
    /// Reports no master acknowledged yet (by the task's outcome, or by cancelling the
    /// attempt). They are repeated, so that a report sent while the master was down still
    /// arrives once it is back.
    unacked: HashMap<TaskId, Unacked>,
    /// Reports a master acknowledged lately, with when: a master that takes over may not have
    /// heard of them through the cluster state yet.
    recent: VecDeque<(u64, Report)>,
    /// Attempts that succeeded here.
    completed: u64,
}

impl Attempts {
    /// A worker running up to `max_concurrent` attempts, heartbeating every `heartbeat`.
    pub(crate) fn new(max_concurrent: u16, heartbeat: Duration) -> Self {
        let five_beats = u64::try_from(5 * heartbeat.as_millis()).unwrap_or(u64::MAX);
        Self {
            max_concurrent,
            repeat_after_ms: five_beats.max(MIN_REPEAT_MS),
            running: HashMap::new(),
            taken: assignments::Taken::default(),
            unacked: HashMap::new(),
            recent: VecDeque::new(),
            completed: 0,
        }
    }

    /// Decides on an assignment from a trusted master, at `now_ms`.
    pub(crate) fn admit(&mut self, a: &Assign, now_ms: u64) -> Admission {
        if let Err(why) = self.taken.take(a, now_ms) {
            return Admission::Ignore(why);
        }
        if let Some(r) = self.running.get(&a.task) {
            if r.attempt >= a.attempt {
                return Admission::Running;
            }
            // A newer attempt of the same task replaces the old one here.
            r.stop();
            self.running.remove(&a.task);
        }
        let accepted = self.running.len() < usize::from(self.max_concurrent);
        let claim = Claim {
            task: a.task,
            attempt: a.attempt,
            accepted,
            started_unix_ms: if accepted { now_ms } else { 0 },
            reason: if accepted {
                String::new()
            } else {
                format!("at capacity ({} running)", self.max_concurrent)
            },
        };
        if !accepted {
            return Admission::Refuse(claim);
        }
        self.running.insert(
            a.task,
            Running {
                attempt: a.attempt,
                started_ms: now_ms,
                abort: None,
            },
        );
        Admission::Start(claim)
    }

    /// The admitted attempt runs as the task that `abort` stops.
    pub(crate) fn started(&mut self, task: TaskId, attempt: u32, abort: tokio::task::AbortHandle) {
        match self.running.get_mut(&task).filter(|r| r.attempt == attempt) {
            Some(r) => r.abort = Some(abort),
            None => abort.abort(),
        }
    }

    /// An attempt ended: the report to send, which is kept until acknowledged. `None` when
    /// the attempt was stopped or replaced meanwhile.
    pub(crate) fn finished(
        &mut self,
        task: TaskId,
        attempt: u32,
        outcome: Outcome,
        now_ms: u64,
    ) -> Option<Report> {
        let r = self.running.get(&task).filter(|r| r.attempt == attempt)?;
        if matches!(outcome, Outcome::Done { .. }) {
            self.completed += 1;
        }
        let report = Report {
            task,
            attempt,
            started_unix_ms: r.started_ms,
            outcome,
        };
        self.running.remove(&task);
        if self.unacked.len() < MAX_UNACKED {
            self.unacked.insert(
                task,
                Unacked {
                    report: report.clone(),
                    sent_ms: now_ms,
                    repeats: 0,
                },
            );
        }
        Some(report)
    }

    /// A trusted master cancels `attempt`: it acknowledges the report, or stops the attempt.
    /// Whether it concerned anything here.
    pub(crate) fn cancel(&mut self, task: &TaskId, attempt: u32) -> bool {
        if self.acknowledged(task, attempt) {
            return true;
        }
        match self.running.get(task).filter(|r| r.attempt == attempt) {
            Some(r) => {
                r.stop();
                self.running.remove(task);
                true
            }
            None => false,
        }
    }

    /// A trusted master acknowledged the report of `attempt` (by its outcome); whether one
    /// waited.
    pub(crate) fn acknowledged(&mut self, task: &TaskId, attempt: u32) -> bool {
        if self
            .unacked
            .get(task)
            .is_some_and(|u| u.report.attempt == attempt)
        {
            if let Some(u) = self.unacked.remove(task) {
                if self.recent.len() == MAX_RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back((u.sent_ms, u.report));
            }
            return true;
        }
        false
    }

    /// A new master leads: every report of the last [`RECENT_MS`], acknowledged or not, is
    /// sent again, so that the new master learns of attempts the old one took but the cluster
    /// state had not heard of.
    pub(crate) fn resend(&mut self, now_ms: u64) -> Vec<Message> {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > RECENT_MS)
        {
            self.recent.pop_front();
        }
        let recent = self.recent.iter().map(|(_, r)| r.clone());
        let unacked = self.unacked.values_mut().map(|u| {
            u.sent_ms = now_ms;
            u.report.clone()
        });
        recent
            .chain(unacked)
            .map(|report| {
                Message::Repeat(Repeat {
                    report,
                    // A new round, so that gossipsub does not take it for the last one.
                    round: u32::try_from(now_ms / 1000).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// The reports to send again: those no master acknowledged in time. Those repeated
    /// [`MAX_REPEATS`] times are given up.
    pub(crate) fn repeats(&mut self, now_ms: u64) -> Vec<Message> {
        let wait = self.repeat_after_ms;
        let mut messages = Vec::new();
        self.unacked.retain(|_, u| {
            if now_ms.saturating_sub(u.sent_ms) < wait {
                return true;
            }
            if u.repeats >= MAX_REPEATS {
                tracing::warn!(task = %u.report.task, "no master acknowledged the report; giving up");
                return false;
            }
            u.repeats += 1;
            u.sent_ms = now_ms;
            messages.push(Message::Repeat(Repeat {
                report: u.report.clone(),
                round: u.repeats,
            }));
            true
        });
        messages
    }

    /// The attempts running here: task and attempt.
    pub(crate) fn running(&self) -> impl Iterator<Item = (TaskId, u32)> + '_ {
        self.running.iter().map(|(t, r)| (*t, r.attempt))
    }

    /// How many attempts succeeded here.
    pub(crate) fn completed(&self) -> u64 {
        self.completed
    }

    /// How many attempts run here.
    pub(crate) fn count(&self) -> usize {
        self.running.len()
    }

    /// Stops every attempt (the service is stopping).
    pub(crate) fn stop_all(&mut self) {
        for (_, r) in self.running.drain() {
            r.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_core::network::PeerId;
    use ipfsbench_protocols::task::{Kind, Spec, WireCid, WirePeer};

    const T0: u64 = 1_700_000_000_000;

    fn assign(task: TaskId, attempt: u32) -> Assign {
        Assign {
            task,
            attempt,
            worker: WirePeer(PeerId::random()),
            lease_ms: 10_000,
            valid_until_unix_ms: T0 + 300_000,
            spec: Spec::new(Kind::Noop),
        }
    }

    fn done() -> Outcome {
        Outcome::Done {
            record: WireCid(cid::Cid::default()),
            figures: Vec::new(),
        }
    }

    #[test]
    fn capacity_bounds_what_starts_and_newer_attempts_replace_older() {
        let me = PeerId::random();
        let (a, b) = (TaskId::derive(&me, "a"), TaskId::derive(&me, "b"));
        let mut w = Attempts::new(1, Duration::from_millis(200));
        let Admission::Start(claim) = w.admit(&assign(a, 1), T0) else {
            panic!("not started");
        };
        assert!(claim.accepted && claim.started_unix_ms == T0);
        match w.admit(&assign(b, 1), T0 + 1) {
            Admission::Refuse(c) => assert!(!c.accepted && c.reason.contains("at capacity")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            w.admit(&assign(a, 1), T0 + 2),
            Admission::Ignore(Refusal::Repeated)
        );
        assert!(matches!(
            w.admit(&assign(a, 2), T0 + 3),
            Admission::Start(_)
        ));
        assert_eq!(w.running().collect::<Vec<_>>(), vec![(a, 2)]);
        // The replaced attempt's end reports nothing.
        assert!(w.finished(a, 1, done(), T0 + 4).is_none());
        assert!(w.finished(a, 2, done(), T0 + 5).is_some());
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn reports_repeat_until_acknowledged_then_give_up() {
        let me = PeerId::random();
        let t = TaskId::derive(&me, "t");
        let mut w = Attempts::new(2, Duration::from_millis(200));
        assert!(matches!(w.admit(&assign(t, 1), T0), Admission::Start(_)));
        let report = w.finished(t, 1, done(), T0 + 100).unwrap();
        assert_eq!(report.started_unix_ms, T0);
        // Not before the wait (five heartbeats, at least 2 s).
        assert!(w.repeats(T0 + 100 + MIN_REPEAT_MS - 1).is_empty());
        let mut now = T0 + 100;
        for round in 1..=MAX_REPEATS {
            now += MIN_REPEAT_MS;
            let sent = w.repeats(now);
            assert!(
                matches!(&sent[..], [Message::Repeat(r)] if r.round == round),
                "{sent:?}"
            );
        }
        assert!(w.repeats(now + MIN_REPEAT_MS).is_empty(), "given up");

        let u = TaskId::derive(&me, "u");
        assert!(matches!(w.admit(&assign(u, 1), now), Admission::Start(_)));
        w.finished(u, 1, done(), now).unwrap();
        assert!(
            w.cancel(&u, 1),
            "a cancel of the attempt acknowledges its report"
        );
        assert!(w.repeats(now + 10 * MIN_REPEAT_MS).is_empty());
        assert!(!w.acknowledged(&u, 1));
    }

    #[test]
    fn a_cancel_stops_the_running_attempt() {
        let me = PeerId::random();
        let t = TaskId::derive(&me, "t");
        let mut w = Attempts::new(1, Duration::from_secs(1));
        assert!(matches!(w.admit(&assign(t, 1), T0), Admission::Start(_)));
        assert!(!w.cancel(&t, 2), "another attempt");
        assert!(w.cancel(&t, 1));
        assert_eq!(w.count(), 0);
        assert!(w.finished(t, 1, done(), T0 + 1).is_none());
    }
}
