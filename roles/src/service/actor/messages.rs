//! The cluster's messages as the loop handles them: heartbeats for the peer table, a
//! master's gossip handed to its table, and a worker's assignments, cancels and outcomes.

use std::sync::Arc;

use ipfsbench_core::network::{PeerId, PubsubMessage};
use ipfsbench_protocols::task::{self, Capacity, Heartbeat, Message, Outcome};
use ipfsbench_protocols::Role;

use super::owned::Actor;
use crate::master::gossip::Effects;
use crate::master::lead::Leadership;
use crate::submitter;
use crate::worker::Admission;
use crate::{gossip, system};

impl Actor {
    pub(super) fn heartbeat(&mut self, now: u64) -> Heartbeat {
        let (total, available) = system::memory();
        let worker = self.settings.role == Role::Worker;
        let hb = Heartbeat {
            role: self.settings.role,
            seq: self.seq,
            capacity: Capacity {
                cores: system::cores(),
                memory_total_bytes: total,
                memory_available_bytes: available,
                store_free_bytes: system::free_bytes(self.repo.path()),
                running: u16::try_from(self.attempts.count()).unwrap_or(u16::MAX),
                max_concurrent: if worker {
                    self.settings.max_concurrent
                } else {
                    0
                },
                hardware: self.runner.hardware.clone(),
                programs: if worker {
                    self.settings.programs.keys().cloned().collect()
                } else {
                    Vec::new()
                },
                tags: self.settings.state.tags.clone(),
            },
            running: self.attempts.running().take(task::MAX_RUNNING).collect(),
            leads: self.lead.as_ref().and_then(Leadership::epoch),
        };
        self.seq += 1;
        // This node is in its own table, so `cluster peers` shows it too.
        self.peers.heard(self.me, &hb, now);
        hb
    }

    pub(super) fn on_gossip(&mut self, m: &PubsubMessage, now: u64) {
        let Some((from, messages)) = gossip::decode(m, &self.settings.cluster, &mut self.counters)
        else {
            return;
        };
        for message in messages {
            self.on_message(from, message, now);
        }
    }

    fn on_message(&mut self, from: PeerId, message: Message, now: u64) {
        if let Message::Heartbeat(hb) = &message {
            self.on_heartbeat(from, hb, now);
            return;
        }
        let leading = self.leading();
        let standby = self.master.is_some() && !leading;
        let acted = match (message, self.master.as_mut().filter(|_| leading)) {
            (message, Some(master)) => {
                let mut fx = Effects {
                    outbox: &mut self.outbox,
                    dirty: &mut self.dirty,
                    counters: &mut self.counters,
                    refusals: &mut self.refusals,
                };
                master.on_gossip(&self.settings, from, message, now, &mut fx)
            }
            (Message::Submit(submit), None) if standby => self.on_submit_standby(from, submit, now),
            (message, None) => self.on_gossip_not_master(from, message, now),
        };
        if !acted {
            self.counters.ignored += 1;
        }
    }

    /// Every node keeps the peer table; a master also renews leases. A master that lists its
    /// workers ignores other workers, which then cannot crowd its table.
    fn on_heartbeat(&mut self, from: PeerId, hb: &Heartbeat, now: u64) {
        let workers = &self.settings.trusted_workers;
        if self.master.is_some()
            && hb.role == Role::Worker
            && !workers.is_empty()
            && !workers.contains(&from)
        {
            self.counters.unauthorised += 1;
            return;
        }
        if self.peers.heard(from, hb, now) {
            self.heard_leader(from, hb, now);
            if let Some(master) = self.table() {
                // Lease renewals live in memory only: nothing to flush.
                match master.on_heartbeat(from, hb, now) {
                    Ok(stop) => self.outbox.extend(stop),
                    Err(error) => tracing::error!(%error, "task table"),
                }
            }
        }
    }

    /// A worker's and a submitter's gossip: assignments and cancels from trusted masters,
    /// and masters' outcomes of tasks.
    fn on_gossip_not_master(&mut self, from: PeerId, message: Message, now: u64) -> bool {
        let worker = self.settings.role == Role::Worker;
        let trusted = self.settings.trusted_masters.contains(&from);
        match message {
            Message::Assign(a) if worker && a.worker.0 == self.me => {
                if !trusted {
                    self.counters.unauthorised += 1;
                    tracing::warn!(%from, task = %a.task, "assignment from an untrusted master ignored");
                    return true;
                }
                self.start_attempt(from, a, now)
            }
            Message::Cancel(_) if worker && !trusted => {
                self.counters.unauthorised += 1;
                true
            }
            Message::Cancel(c) if worker => self.attempts.cancel(&c.task, c.attempt),
            Message::Report(r) if trusted => {
                // The master's outcome also acknowledges the worker's report, and a submitter
                // here may be waiting for it (or for the master's refusal).
                self.attempts.acknowledged(&r.task, r.attempt);
                match r.refused() {
                    Some(reason) => self.submitter.refused(r.task, from, reason),
                    None => self.submitter.wake(&submitter::finished_by(&r)),
                }
                true
            }
            _ => false,
        }
    }

    fn start_attempt(&mut self, from: PeerId, a: task::Assign, now: u64) -> bool {
        let claim = match self.attempts.admit(&a, now) {
            Admission::Ignore(why) => {
                tracing::info!(%from, task = %a.task, attempt = a.attempt, ?why, "assignment ignored");
                return false;
            }
            Admission::Running => return true,
            Admission::Refuse(claim) => {
                self.outbox.push(Message::Claim(claim));
                return true;
            }
            Admission::Start(claim) => claim,
        };
        self.outbox.push(Message::Claim(claim));
        let (task, attempt) = (a.task, a.attempt);
        let runner = Arc::clone(&self.runner);
        let done = self.done_tx.clone();
        let out = self.out_tx.clone();
        let meta = crate::worker::Attempt {
            task,
            attempt,
            kind: a.spec.kind,
            params: a.spec.params.clone(),
            master: from,
            started_ms: now,
        };
        let handle = tokio::spawn(async move {
            let outcome = match Arc::clone(&runner).run(a, out).await {
                Ok((cid, figures)) => Outcome::Done {
                    record: task::WireCid(cid),
                    figures,
                },
                Err(e) => {
                    let mut error = e.to_string();
                    error.truncate(task::MAX_TEXT);
                    Outcome::Failed { error }
                }
            };
            runner.record(&meta, &outcome).await;
            let _ = done.send((task, attempt, outcome)).await;
        });
        self.attempts.started(task, attempt, handle.abort_handle());
        true
    }
}
