//! What a master does with the cluster's task messages (heartbeats aside, which every node
//! takes): submissions from listed submitters, claims, progress and reports from its
//! workers, cancels from the submitter of a task. Each handler says whether it acted; what
//! to publish goes to the outbox, and `dirty` asks for a flush before anything is published.
//!
//! A submission the master will not take (from a peer it does not list, or one its table
//! refuses) is answered at once with a refusal ([`Report::refusal`]), so that its submitter
//! is not left waiting. Refusals are small (a fixed reason of at most
//! [`ipfsbench_protocols::task::MAX_REFUSAL`] bytes, batched with the turn's other reports) and paced
//! ([`Refusals`]): a flood of submissions draws a bounded trickle back.

use ipfsbench_core::trust::Refused;
use std::collections::HashMap;

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Cancel, Message, Report, Submit, TaskId};

use super::table::Master;
use crate::cluster::Counters;
use crate::settings::Settings;

/// What handling one message may change besides the master.
#[derive(Debug)]
pub(crate) struct Effects<'a> {
    /// Messages to publish once the changes are durable.
    pub(crate) outbox: &'a mut Vec<Message>,
    /// Set when the table changed and must be flushed.
    pub(crate) dirty: &'a mut bool,
    /// The service's counters.
    pub(crate) counters: &'a mut Counters,
    /// The pace of refusals.
    pub(crate) refusals: &'a mut Refusals,
}

impl Effects<'_> {
    /// Refuses `from`'s submission of `task` for `reason`, if the pace allows.
    fn refuse(&mut self, from: PeerId, task: TaskId, reason: &str, now: u64) {
        if self.refusals.allow(from, now) {
            self.outbox
                .push(Message::Report(Report::refusal(task, reason)));
        }
    }
}

/// Refusals sent in one second, at most.
pub(crate) const REFUSALS_PER_SECOND: u32 = 128;
/// Refusals sent to one peer in one second, at most.
pub(crate) const REFUSALS_PER_PEER: u32 = 32;

/// How many refusals went out this second, in all and to each peer (at most
/// [`REFUSALS_PER_SECOND`] peers are ever counted).
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    second: u64,
    sent: u32,
    to: HashMap<PeerId, u32>,
}

impl Refusals {
    /// Whether a refusal to `peer` may go out at `now_ms` (and counts it if so).
    pub(crate) fn allow(&mut self, peer: PeerId, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        if second != self.second {
            self.second = second;
            self.sent = 0;
            self.to.clear();
        }
        if self.sent >= REFUSALS_PER_SECOND {
            return false;
        }
        let to = self.to.entry(peer).or_default();
        if *to >= REFUSALS_PER_PEER {
            return false;
        }
        *to += 1;
        self.sent += 1;
        true
    }
}

/// Why a master refuses the submissions of `from`, a peer it does not list.
pub(crate) fn not_a_submitter(from: &PeerId) -> String {
    format!(
        "this master does not take submissions from {from} (not in its tasks.submitters, \
         and no member granted submitter or master)"
    )
}

impl Master {
    /// Handles `message` from `from` at `now`; whether it concerned this master.
    pub(crate) fn on_gossip(
        &mut self,
        settings: &Settings,
        from: PeerId,
        message: Message,
        now: u64,
        fx: &mut Effects<'_>,
    ) -> bool {
        match message {
            Message::Submit(Submit { key, spec }) => {
                let task = TaskId::derive(&from, &key);
                if !settings.may_submit(&from) {
                    fx.counters.unauthorised += 1;
                    settings.refuse(from, Refused::Submission);
                    tracing::debug!(%from, "submission from a peer not listed as a submitter");
                    fx.refuse(from, task, &not_a_submitter(&from), now);
                    return true;
                }
                match self.submit(from, &key, spec, now) {
                    Ok(_) => *fx.dirty = true,
                    Err(error) => {
                        tracing::info!(%from, %error, "submission refused");
                        fx.refuse(from, task, &error.to_string(), now);
                    }
                }
                true
            }
            Message::Cancel(c) => self.cancel_by_submitter(from, &c, now, fx),
            Message::Claim(c) => {
                let taken = self.on_claim(from, &c, now).unwrap_or(false);
                *fx.dirty |= taken;
                taken
            }
            Message::Progress(p) => self.on_progress(from, &p),
            Message::Report(r) => self.take_report(from, &r, now, false, fx),
            Message::Repeat(r) => self.take_report(from, &r.report, now, true, fx),
            Message::Assign(_) | Message::Heartbeat(_) => false,
        }
    }

    /// A submitter may cancel what it submitted.
    fn cancel_by_submitter(
        &mut self,
        from: PeerId,
        c: &Cancel,
        now: u64,
        fx: &mut Effects<'_>,
    ) -> bool {
        match self.get(&c.task) {
            Ok(Some(r)) if r.submitter == from => {
                if let Ok((_, stop)) = self.cancel(&c.task, now) {
                    fx.outbox.extend(stop);
                    *fx.dirty = true;
                }
                true
            }
            Ok(Some(_)) => {
                fx.counters.unauthorised += 1;
                true
            }
            _ => false,
        }
    }

    /// A worker's report (first sent or repeated). A report that does not end the task (a
    /// failed attempt that will be retried) is acknowledged by cancelling the attempt; one
    /// that ends it, by the outcome published for it. A repeated report that comes too late
    /// is answered the same way, so that the worker stops repeating it.
    fn take_report(
        &mut self,
        from: PeerId,
        report: &Report,
        now: u64,
        repeated: bool,
        fx: &mut Effects<'_>,
    ) -> bool {
        match self.on_report(from, report, now) {
            Ok(true) => {
                *fx.dirty = true;
                if self.is_open(&report.task) {
                    fx.outbox.push(Message::Cancel(Cancel {
                        task: report.task,
                        attempt: report.attempt,
                    }));
                }
                true
            }
            Ok(false) if repeated => match self.stale_report(report) {
                Ok(Some(stop)) => {
                    fx.outbox.push(stop);
                    true
                }
                _ => false,
            },
            Ok(false) => false,
            Err(error) => {
                tracing::error!(%error, "task table");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Peers;
    use crate::config::TasksConfig;
    use crate::master::record::State;
    use ipfsbench_protocols::task::{Claim, Kind, Outcome, Spec};
    use ipfsbench_protocols::Role;

    const T0: u64 = 1_700_000_000_000;

    fn master(dir: &std::path::Path) -> Master {
        Master::open(dir, super::super::table::tests::config(), T0).unwrap()
    }

    fn submit(key: &str) -> Message {
        Message::Submit(Submit {
            key: key.into(),
            spec: Spec::new(Kind::Noop),
        })
    }

    #[test]
    fn gossip_submissions_and_cancels_need_the_right_peer() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = master(dir.path());
        let mut settings =
            Settings::new(Role::Master, &TasksConfig::default(), &Default::default()).unwrap();
        let (listed, stranger) = (PeerId::random(), PeerId::random());
        settings.submitters.insert(listed);
        let (mut outbox, mut dirty, mut counters) = (Vec::new(), false, Counters::default());
        let mut refusals = Refusals::default();
        let mut fx = Effects {
            outbox: &mut outbox,
            dirty: &mut dirty,
            counters: &mut counters,
            refusals: &mut refusals,
        };
        assert!(m.on_gossip(&settings, stranger, submit("a"), T0, &mut fx));
        assert_eq!(fx.counters.unauthorised, 1);
        assert!(!*fx.dirty);
        let refused = TaskId::derive(&stranger, "a");
        assert!(m.get(&refused).unwrap().is_none());
        // The stranger is told at once, with a refusal of the task it would have made.
        match fx.outbox.pop() {
            Some(Message::Report(r)) => {
                assert_eq!(r.task, refused);
                assert!(r.refused().unwrap().contains("tasks.submitters"), "{r:?}");
            }
            other => panic!("no refusal: {other:?}"),
        }

        assert!(m.on_gossip(&settings, listed, submit("b"), T0, &mut fx));
        assert!(*fx.dirty);
        let id = TaskId::derive(&listed, "b");
        assert_eq!(m.get(&id).unwrap().unwrap().state, State::Queued);

        // Only the submitter may cancel it.
        let cancel = Message::Cancel(Cancel {
            task: id,
            attempt: 0,
        });
        assert!(m.on_gossip(&settings, stranger, cancel.clone(), T0 + 1, &mut fx));
        assert_eq!(fx.counters.unauthorised, 2);
        assert_eq!(m.get(&id).unwrap().unwrap().state, State::Queued);
        assert!(m.on_gossip(&settings, listed, cancel, T0 + 2, &mut fx));
        assert_eq!(m.get(&id).unwrap().unwrap().state, State::Cancelled);
    }

    #[test]
    fn refusals_are_paced_per_peer_and_in_all() {
        let mut r = Refusals::default();
        let flood = PeerId::random();
        let sent = (0..1_000).filter(|_| r.allow(flood, T0)).count();
        assert_eq!(sent, REFUSALS_PER_PEER as usize, "one peer's flood");
        // Others still get theirs, up to the total of the second.
        let others = (0..1_000)
            .filter(|_| r.allow(PeerId::random(), T0 + 999))
            .count();
        assert_eq!(others, (REFUSALS_PER_SECOND - REFUSALS_PER_PEER) as usize);
        assert!(r.to.len() <= REFUSALS_PER_SECOND as usize);
        // The next second starts afresh.
        assert!(r.allow(flood, T0 + 1_000));
    }

    #[test]
    fn a_failed_attempt_that_will_be_retried_is_acknowledged_by_a_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = master(dir.path());
        let settings =
            Settings::new(Role::Master, &TasksConfig::default(), &Default::default()).unwrap();
        let me = PeerId::random();
        let worker = PeerId::random();
        let mut peers = Peers::default();
        super::super::table::tests::worker(&mut peers, worker, 1, T0);
        let (record, _) = m.submit(me, "k", Spec::new(Kind::Noop), T0).unwrap();
        let assigned = m.tick(&peers, T0 + 1).unwrap();
        assert_eq!(assigned.len(), 1);
        let (mut outbox, mut dirty, mut counters) = (Vec::new(), false, Counters::default());
        let mut refusals = Refusals::default();
        let mut fx = Effects {
            outbox: &mut outbox,
            dirty: &mut dirty,
            counters: &mut counters,
            refusals: &mut refusals,
        };
        let claim = Message::Claim(Claim {
            task: record.id,
            attempt: 1,
            accepted: true,
            started_unix_ms: T0 + 2,
            reason: String::new(),
        });
        assert!(m.on_gossip(&settings, worker, claim, T0 + 2, &mut fx));
        let failed = Report {
            task: record.id,
            attempt: 1,
            started_unix_ms: T0 + 2,
            outcome: Outcome::Failed {
                error: "boom".into(),
            },
        };
        assert!(m.on_gossip(
            &settings,
            worker,
            Message::Report(failed.clone()),
            T0 + 3,
            &mut fx
        ));
        assert!(matches!(
            fx.outbox.last(),
            Some(Message::Cancel(c)) if c.task == record.id && c.attempt == 1
        ));
        assert_eq!(m.get(&record.id).unwrap().unwrap().state, State::Queued);
        // The same report from another peer is not about its attempt.
        assert!(!m.on_gossip(&settings, me, Message::Report(failed), T0 + 4, &mut fx));
    }
}
