//! Leadership as a master's part of the service follows it: a master that hears a leader
//! with a higher epoch steps down and hands its open tasks over through the state; a standby
//! takes submissions into the state (the leader takes them from there), and takes the table
//! over from the state when no leader has been heard for the lease.

use ipfsbench_core::network::PeerId;
use ipfsbench_core::trust::Refused;
use ipfsbench_protocols::task::{Message, Report, Spec, Submit, TaskId};

use super::duty::Duty;
use super::gossip::not_a_submitter;
use super::lead::{self, Change, Lease};
use super::reads::{read_all, read_task};
use super::record::TaskRecord;
use super::replicated::{self, SUBMIT_PREFIX, TASK_PREFIX};
use crate::service::command::Reply;
use crate::service::views::{Error, Submitted};
use crate::settings::Settings;
use crate::turn::Turn;

impl Duty {
    /// A trusted master `from` says it leads with `epoch`: of two leaders the lower steps
    /// down, and what it held goes to the leader, which takes what it does not know (tasks
    /// submitted on this side while the two were apart).
    pub(crate) fn heard_leader(&mut self, from: PeerId, epoch: u64, now: u64) {
        if self.lead.heard(from, epoch, now) != Change::SteppedDown {
            return;
        }
        tracing::warn!(%from, epoch, "another master leads: this one stands by");
        let open = self.table.step_down();
        if let Some(r) = &mut self.replicator {
            for record in open {
                if let Ok(v) = serde_json::to_vec(&record) {
                    r.stage(replicated::key(SUBMIT_PREFIX, &record.id), Some(v));
                }
            }
        }
    }

    /// Leadership's timer, and the leader's look at submissions left in the state. Whether
    /// this master took over just now (it then says so at once, with a heartbeat).
    pub(crate) fn lead_tick(&mut self, settings: &Settings, turn: &mut Turn, now: u64) -> bool {
        let took_over = match self.lead.tick(now) {
            Change::TookOver(epoch) => {
                self.take_over(settings, epoch, turn, now);
                true
            }
            Change::None | Change::SteppedDown => false,
        };
        if self.leading() && self.state_changed() {
            self.take_submissions(turn);
        }
        took_over
    }

    fn state_changed(&mut self) -> bool {
        let Some(rx) = self.state_seen.as_mut() else {
            return false;
        };
        if !rx.has_changed().unwrap_or(false) {
            return false;
        }
        rx.borrow_and_update();
        true
    }

    /// This master leads from now: it takes the task table from the state (and the
    /// submissions standbys left there), records the takeover, and waits a few heartbeats
    /// for workers to tell what they run before it assigns anything.
    fn take_over(&mut self, settings: &Settings, epoch: u64, turn: &mut Turn, now: u64) {
        let records: Vec<TaskRecord> = read_all(self.state.as_ref(), TASK_PREFIX);
        let open = match self.table.take_over(records, now) {
            Ok(open) => {
                tracing::info!(epoch, open, "this master leads");
                open
            }
            Err(error) => {
                tracing::error!(%error, "taking over the task table");
                0
            }
        };
        self.take_submissions(turn);
        let lease = Lease {
            peer: self.me,
            epoch,
            since_ms: now,
        };
        if let (Some(r), Ok(v)) = (&mut self.replicator, serde_json::to_vec(&lease)) {
            r.stage(lead::ACTIVE_KEY.to_vec(), Some(v));
        }
        if open > 0 {
            // Tasks not over may run on workers the state has not heard of yet.
            let beat = u64::try_from(settings.heartbeat.as_millis()).unwrap_or(u64::MAX);
            self.hold_until_ms = now + beat.saturating_mul(5) / 2;
        }
        turn.dirty = true;
    }

    fn take_submissions(&mut self, turn: &mut Turn) {
        let now = crate::clock::now_ms();
        let submissions: Vec<TaskRecord> = read_all(self.state.as_ref(), SUBMIT_PREFIX);
        for record in submissions {
            let id = record.id;
            match self.table.take_submission(record, now) {
                Ok(_) => {
                    turn.dirty = true;
                    if let Some(r) = &mut self.replicator {
                        r.stage(replicated::key(SUBMIT_PREFIX, &id), None);
                    }
                }
                Err(error) => tracing::error!(%error, %id, "taking a submission"),
            }
        }
    }

    /// A submission over pubsub that reached a master that does not lead: taken into the
    /// state when no leader is heard (the leader takes it itself otherwise).
    pub(super) fn on_submit_standby(
        &mut self,
        settings: &Settings,
        from: PeerId,
        submit: Submit,
        turn: &mut Turn,
        now: u64,
    ) -> bool {
        let leader = self.lead.active(now);
        if !settings.may_submit(&from) {
            turn.counters.unauthorised += 1;
            settings.refuse(from, Refused::Submission);
            // The leader refuses it, when there is one.
            if leader.is_none() && self.refusals.allow(from, now) {
                let task = TaskId::derive(&from, &submit.key);
                let reason = not_a_submitter(&from);
                turn.outbox
                    .push(Message::Report(Report::refusal(task, &reason)));
            }
            return true;
        }
        if leader.is_some() {
            return true;
        }
        let (tx, _rx) = tokio::sync::oneshot::channel();
        self.submit_standby(from, submit.key, submit.spec, tx, now);
        true
    }

    /// A submission to a standby master: the state keeps it until the leader takes it.
    pub(super) fn submit_standby(
        &mut self,
        submitter: PeerId,
        key: String,
        spec: Spec,
        reply: Reply<Submitted>,
        now: u64,
    ) {
        if let Err(e) = spec.check() {
            let _ = reply.send(Err(Error::Refused(e.to_string())));
            return;
        }
        let id = TaskId::derive(&submitter, &key);
        if let Ok(Some(record)) = read_task(self.state.as_ref(), Some(&self.table), &id) {
            let _ = reply.send(Ok(Submitted {
                id,
                new: false,
                record: Some(record),
            }));
            return;
        }
        let record = self.table.draft(submitter, &key, spec, now);
        let (Some(state), Ok(value)) = (&self.state, serde_json::to_vec(&record)) else {
            let _ = reply.send(Err(Error::Refused(
                "this standby master has no cluster state to keep the submission in".into(),
            )));
            return;
        };
        // Acknowledged once the state holds it durably, off the loop.
        let state = state.clone();
        tokio::spawn(async move {
            let written = state.put(replicated::key(SUBMIT_PREFIX, &id), value).await;
            let _ = reply.send(
                written
                    .map(|_| Submitted {
                        id,
                        new: true,
                        record: Some(record),
                    })
                    .map_err(|e| Error::Refused(format!("keeping the submission: {e}"))),
            );
        });
    }
}
