//! The loop's side of the replicated task table and of leadership: a master schedules only
//! while it leads ([`crate::master::lead`]); every change of its table goes to the cluster
//! state, with each finished task's outcome; a standby master takes submissions into the
//! state and answers reads from it, and takes the table over when the leader falls silent.
//! Nodes that are not masters answer task reads from the state too.

use std::collections::HashMap;

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Heartbeat, Message, Report, Spec, Submit, TaskId};
use ipfsbench_protocols::Role;

use super::owned::Actor;
use crate::master::lead::{self, Change, Leadership, Lease};
use crate::master::replicated::{self, ResultEntry, RESULT_PREFIX, SUBMIT_PREFIX, TASK_PREFIX};
use crate::master::{Master, State, TaskRecord, MAX_LIST_PAGE};
use crate::service::command::Reply;
use crate::service::views::{Error, MasterView, Submitted};

impl Actor {
    /// The task table, while this master leads.
    pub(super) fn table(&mut self) -> Option<&mut Master> {
        let leading = self.lead.as_ref().is_some_and(|l| l.epoch().is_some());
        self.master.as_mut().filter(|_| leading)
    }

    /// Whether this node is a master that leads.
    pub(super) fn leading(&self) -> bool {
        self.lead.as_ref().is_some_and(|l| l.epoch().is_some())
    }

    /// The leadership of a master starting: what the state recorded of the last takeover.
    pub(super) fn start_leadership(&mut self, now: u64) {
        if self.master.is_none() {
            return;
        }
        let recorded: Option<Lease> = self.state.as_ref().and_then(|s| {
            let bytes = s.get(lead::ACTIVE_KEY).ok()??;
            serde_json::from_slice(&bytes).ok()
        });
        let beat = u64::try_from(self.settings.heartbeat.as_millis()).unwrap_or(u64::MAX);
        self.lead = Some(Leadership::new(
            self.me,
            self.settings.master.leadership_lease_ms,
            beat.saturating_mul(2),
            recorded.as_ref(),
            now,
        ));
    }

    /// A heartbeat saying `from` leads: masters follow leadership, workers send again the
    /// reports of late attempts to a new leader (the old one may have fallen silent before
    /// the state heard them).
    pub(super) fn heard_leader(&mut self, from: PeerId, hb: &Heartbeat, now: u64) {
        let Some(epoch) = hb.leads else {
            return;
        };
        if hb.role != Role::Master || !self.settings.trusted_masters.contains(&from) {
            return;
        }
        if let Some(lead) = &mut self.lead {
            if lead.heard(from, epoch, now) == Change::SteppedDown {
                tracing::warn!(%from, epoch, "another master leads: this one stands by");
                if let Some(master) = &mut self.master {
                    // What this master held goes to the leader, which takes what it does not
                    // know: tasks submitted on this side while the two were apart.
                    let open = master.step_down();
                    if let Some(r) = &mut self.replicator {
                        for record in open {
                            if let Ok(v) = serde_json::to_vec(&record) {
                                r.stage(replicated::key(SUBMIT_PREFIX, &record.id), Some(v));
                            }
                        }
                    }
                }
            }
        }
        if self.settings.role == Role::Worker {
            let newer = self.leader_seen.is_none_or(|seen| (epoch, from) > seen);
            if newer {
                let changed = self.leader_seen.is_some_and(|(_, p)| p != from);
                self.leader_seen = Some((epoch, from));
                if changed {
                    let again = self.attempts.resend(now);
                    tracing::info!(%from, epoch, reports = again.len(), "a new master leads");
                    self.outbox.extend(again);
                }
            }
        }
    }

    /// Leadership's timer, and the leader's look at submissions left in the state.
    pub(super) fn lead_tick(&mut self, now: u64) {
        let change = self.lead.as_mut().map_or(Change::None, |l| l.tick(now));
        if let Change::TookOver(epoch) = change {
            self.take_over(epoch, now);
        }
        if self.leading() && self.state_changed() {
            self.take_submissions();
        }
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
    /// submissions standbys left there), records the takeover, says so at once, and waits
    /// a few heartbeats for workers to tell what they run before it assigns anything.
    fn take_over(&mut self, epoch: u64, now: u64) {
        let records: Vec<TaskRecord> = self.read_all(TASK_PREFIX);
        let Some(master) = &mut self.master else {
            return;
        };
        let open = match master.take_over(records, now) {
            Ok(open) => {
                tracing::info!(epoch, open, "this master leads");
                open
            }
            Err(error) => {
                tracing::error!(%error, "taking over the task table");
                0
            }
        };
        self.take_submissions();
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
            let beat = u64::try_from(self.settings.heartbeat.as_millis()).unwrap_or(u64::MAX);
            self.hold_until_ms = now + beat.saturating_mul(5) / 2;
        }
        let hb = self.heartbeat(now);
        self.outbox.push(Message::Heartbeat(hb));
        self.dirty = true;
    }

    fn take_submissions(&mut self) {
        let now = crate::clock::now_ms();
        let submissions: Vec<TaskRecord> = self.read_all(SUBMIT_PREFIX);
        let Some(master) = &mut self.master else {
            return;
        };
        for record in submissions {
            let id = record.id;
            match master.take_submission(record, now) {
                Ok(_) => {
                    self.dirty = true;
                    if let Some(r) = &mut self.replicator {
                        r.stage(replicated::key(SUBMIT_PREFIX, &id), None);
                    }
                }
                Err(error) => tracing::error!(%error, %id, "taking a submission"),
            }
        }
    }

    /// Every record under `prefix` in the state that decodes.
    fn read_all(&self, prefix: &str) -> Vec<TaskRecord> {
        let Some(state) = &self.state else {
            return Vec::new();
        };
        state
            .scan(prefix.as_bytes())
            .filter_map(|kv| {
                let (key, value) = kv.ok()?;
                let record = serde_json::from_slice(&value);
                if record.is_err() {
                    tracing::warn!(key = %String::from_utf8_lossy(&key), "a task record in the state does not decode");
                }
                record.ok()
            })
            .collect()
    }

    /// Hands the table's changes (and finished tasks' outcomes) to the state.
    pub(super) fn replicate(&mut self) {
        let (Some(master), Some(replicator)) = (&mut self.master, &mut self.replicator) else {
            return;
        };
        for record in master.take_changed() {
            let id = record.id;
            if let Ok(v) = serde_json::to_vec(&record) {
                replicator.stage(replicated::key(TASK_PREFIX, &id), Some(v));
            }
            if record.state.is_terminal() {
                let entry = ResultEntry::new(&record, self.me);
                if let Ok(v) = serde_json::to_vec(&entry) {
                    replicator.stage(replicated::key(RESULT_PREFIX, &id), Some(v));
                }
            }
        }
        replicator.send();
    }

    /// A submission over pubsub that reached a master that does not lead: taken into the
    /// state when no leader is heard (the leader takes it itself otherwise).
    pub(super) fn on_submit_standby(&mut self, from: PeerId, submit: Submit, now: u64) -> bool {
        let leader = self.lead.as_ref().and_then(|l| l.active(now));
        if !self.settings.submitters.contains(&from) {
            self.counters.unauthorised += 1;
            // The leader refuses it, when there is one.
            if leader.is_none() && self.refusals.allow(from, now) {
                let task = TaskId::derive(&from, &submit.key);
                let reason = crate::master::gossip::not_a_submitter(&from);
                self.outbox
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
        let Some(master) = &self.master else {
            return;
        };
        if let Err(e) = spec.check() {
            let _ = reply.send(Err(Error::Refused(e.to_string())));
            return;
        }
        let id = TaskId::derive(&submitter, &key);
        if let Ok(Some(record)) = self.read_task(&id) {
            let _ = reply.send(Ok(Submitted {
                id,
                new: false,
                record: Some(record),
            }));
            return;
        }
        let record = master.draft(submitter, &key, spec, now);
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

    /// A task's record on a node that does not schedule: the state's copy (taken by the
    /// leader, or left by a standby), or this master's own when that got further (a master
    /// restarting has changes the state may not have heard of yet).
    pub(super) fn read_task(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        let mut found: Option<TaskRecord> = None;
        if let Some(state) = &self.state {
            for prefix in [TASK_PREFIX, SUBMIT_PREFIX] {
                let value = state
                    .get(&replicated::key(prefix, id))
                    .map_err(|e| Error::Refused(e.to_string()))?;
                if let Some(v) = value {
                    found = Some(
                        serde_json::from_slice(&v)
                            .map_err(|e| Error::Refused(format!("task {id} in the state: {e}")))?,
                    );
                    break;
                }
            }
        }
        if let Some(mine) = self
            .master
            .as_ref()
            .map(|m| m.get(id))
            .transpose()?
            .flatten()
        {
            if found
                .as_ref()
                .is_none_or(|theirs| mine.progress() > theirs.progress())
            {
                found = Some(mine);
            }
        }
        Ok(found)
    }

    /// A page of records from the state, in submission order (see [`Master::list`]).
    pub(super) fn list_from_state(
        &self,
        state: Option<State>,
        after: Option<u64>,
        limit: usize,
    ) -> (Vec<TaskRecord>, Option<u64>) {
        let limit = limit.min(MAX_LIST_PAGE);
        // Submissions standbys keep first: the leader's record replaces them once it has one.
        let mut merged: HashMap<TaskId, TaskRecord> = self
            .read_all(SUBMIT_PREFIX)
            .into_iter()
            .chain(self.read_all(TASK_PREFIX))
            .map(|r| (r.id, r))
            .collect();
        if let Some(master) = &self.master {
            // This master's own records, where they got further than the state's copy.
            for mine in master.records().filter_map(Result::ok) {
                let further = merged
                    .get(&mine.id)
                    .is_none_or(|theirs| mine.progress() > theirs.progress());
                if further {
                    merged.insert(mine.id, mine);
                }
            }
        }
        let mut all: Vec<TaskRecord> = merged
            .into_values()
            .filter(|r| state.is_none_or(|s| s == r.state))
            .filter(|r| after.is_none_or(|a| r.seq > a))
            .collect();
        all.sort_by_key(|r| (r.seq, r.submitted_ms));
        let full = all.len() > limit;
        all.truncate(limit);
        let next = if full {
            all.last().map(|r| r.seq)
        } else {
            None
        };
        (all, next)
    }

    /// Which master leads, as this node knows it.
    pub(super) fn master_view(&self, now: u64) -> MasterView {
        let heard = self
            .lead
            .as_ref()
            .and_then(|l| l.active(now))
            .or_else(|| self.leader_heard(now));
        let this_node = match (&self.lead, self.leading()) {
            (Some(_), true) => "leading".to_string(),
            (Some(_), false) => "standby".to_string(),
            (None, _) => self.settings.role.to_string(),
        };
        MasterView {
            active: heard.map(|(peer, _, _)| peer.to_string()),
            epoch: heard.map(|(_, epoch, _)| epoch),
            this_node,
        }
    }

    /// On nodes that are not masters: the leader last heard in the peer table.
    fn leader_heard(&self, now: u64) -> Option<(PeerId, u64, u64)> {
        let lease = self.settings.master.leadership_lease_ms;
        self.peers
            .iter()
            .filter(|(_, p)| p.role == Role::Master && now.saturating_sub(p.last_seen_ms) < lease)
            .filter_map(|(id, p)| p.leads.map(|e| (*id, e, p.last_seen_ms)))
            .max_by_key(|(id, e, _)| (*e, *id))
    }
}
