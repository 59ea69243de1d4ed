//! What the role service does as a master: the task table and who leads, the messages bound
//! for masters, scheduling, and the table's changes handed to the cluster state. A master
//! schedules only while it leads ([`super::lead`]); a standby takes submissions into the
//! state and takes the table over when the leader falls silent (see `standby`).

use ipfsbench_core::network::PeerId;
use ipfsbench_core::state::Handle as StateHandle;
use ipfsbench_protocols::task::{self, Heartbeat, Message, Spec};
use ipfsbench_protocols::Role;
use tokio::sync::watch;

use super::gossip::{Effects, Refusals};
use super::lead::{self, Leadership, Lease};
use super::replicate::Replicator;
use super::replicated::{self, ResultEntry, RESULT_PREFIX, TASK_PREFIX};
use super::table::Master;
use crate::cluster::Peers;
use crate::service::command::Reply;
use crate::service::views::{Error, Finished, Submitted};
use crate::settings::Settings;
use crate::submitter::Submitter;
use crate::turn::Turn;

/// The master's part of the service. See the module docs.
#[derive(Debug)]
pub(crate) struct Duty {
    pub(super) me: PeerId,
    pub(super) table: Master,
    /// Which master schedules.
    pub(super) lead: Leadership,
    /// The replicated cluster state, and its change counter as this master last saw it.
    pub(super) state: Option<StateHandle>,
    pub(super) state_seen: Option<watch::Receiver<u64>>,
    /// The table's writes to the state.
    pub(super) replicator: Option<Replicator>,
    /// The pace of refusals of submissions.
    pub(super) refusals: Refusals,
    /// A master that just took over assigns nothing before this: workers tell it first what
    /// they run. Unix ms.
    pub(super) hold_until_ms: u64,
}

impl Duty {
    /// The master of `table`, starting at `now`: its leadership begins from what the state
    /// recorded of the last takeover.
    pub(crate) fn new(
        me: PeerId,
        table: Master,
        settings: &Settings,
        state: Option<StateHandle>,
        now: u64,
    ) -> Self {
        let recorded: Option<Lease> = state.as_ref().and_then(|s| {
            let bytes = s.get(lead::ACTIVE_KEY).ok()??;
            serde_json::from_slice(&bytes).ok()
        });
        let beat = u64::try_from(settings.heartbeat.as_millis()).unwrap_or(u64::MAX);
        let lead = Leadership::new(
            me,
            settings.master.leadership_lease_ms,
            beat.saturating_mul(2),
            recorded.as_ref(),
            now,
        );
        Self {
            me,
            table,
            lead,
            state_seen: state.as_ref().map(StateHandle::changes),
            replicator: state.clone().map(Replicator::start),
            state,
            refusals: Refusals::default(),
            hold_until_ms: 0,
        }
    }

    /// Whether this master leads.
    pub(crate) fn leading(&self) -> bool {
        self.lead.epoch().is_some()
    }

    /// The epoch of this master's leadership, while it leads.
    pub(crate) fn epoch(&self) -> Option<u64> {
        self.lead.epoch()
    }

    /// The task table, while this master leads.
    pub(crate) fn scheduling(&mut self) -> Option<&mut Master> {
        let leading = self.leading();
        Some(&mut self.table).filter(|_| leading)
    }

    /// The task table, while this master leads (to read).
    pub(crate) fn schedules(&self) -> Option<&Master> {
        Some(&self.table).filter(|_| self.leading())
    }

    /// The task table, leading or not: this master's own records.
    pub(crate) fn table(&self) -> &Master {
        &self.table
    }

    /// What this node is, as `cluster master` says it.
    pub(crate) fn this_node(&self) -> &'static str {
        if self.leading() {
            "leading"
        } else {
            "standby"
        }
    }

    /// The master leading at `now` as this one knows it: peer, epoch, when heard.
    pub(crate) fn leader(&self, now: u64) -> Option<(PeerId, u64, u64)> {
        self.lead.active(now)
    }

    /// Whether a master hears `from`'s heartbeat: a master that lists its workers, or
    /// belongs to a cluster, ignores other workers, which then cannot crowd its table
    /// ([`Settings::uses_worker`]).
    pub(crate) fn hears(&self, settings: &Settings, from: &PeerId, hb: &Heartbeat) -> bool {
        hb.role != Role::Worker || settings.uses_worker(from)
    }

    /// A heartbeat the peer table took: the leader renews the leases of `from`'s attempts.
    pub(crate) fn on_heartbeat(&mut self, from: PeerId, hb: &Heartbeat, turn: &mut Turn, now: u64) {
        if let Some(table) = self.scheduling() {
            // Lease renewals live in memory only: nothing to flush.
            match table.on_heartbeat(from, hb, now) {
                Ok(stop) => turn.outbox.extend(stop),
                Err(error) => tracing::error!(%error, "task table"),
            }
        }
    }

    /// Whether `message` is this master's to handle: every message while it leads, and
    /// submissions while it stands by. The rest (outcomes a submitter here waits for) is the
    /// node's.
    pub(crate) fn takes(&self, message: &Message) -> bool {
        self.leading() || matches!(message, Message::Submit(_))
    }

    /// Handles a message it [takes](Self::takes); whether it acted.
    pub(crate) fn on_message(
        &mut self,
        settings: &Settings,
        from: PeerId,
        message: Message,
        turn: &mut Turn,
        now: u64,
    ) -> bool {
        match (message, self.leading()) {
            (message, true) => {
                let mut fx = Effects {
                    outbox: &mut turn.outbox,
                    dirty: &mut turn.dirty,
                    counters: &mut turn.counters,
                    refusals: &mut self.refusals,
                };
                self.table.on_gossip(settings, from, message, now, &mut fx)
            }
            (Message::Submit(submit), false) => {
                self.on_submit_standby(settings, from, submit, turn, now)
            }
            (_, false) => false,
        }
    }

    /// A submission from the API of this node: taken into the table by the leader (the
    /// answer, held until the table is durable, is returned), kept in the state by a
    /// standby. An `exec` task must name a program some worker allows.
    pub(crate) fn submit(
        &mut self,
        peers: &Peers,
        key: String,
        spec: Spec,
        reply: Reply<Submitted>,
        turn: &mut Turn,
        now: u64,
    ) -> Option<(Reply<Submitted>, Result<Submitted, Error>)> {
        if spec.kind == task::Kind::Exec {
            let program = spec.param("program").unwrap_or_default();
            if !Master::programs(peers).contains(program) {
                let _ = reply.send(Err(Error::Refused(format!(
                    "program {program:?} is not on the exec allowlist of any worker in the cluster"
                ))));
                return None;
            }
        }
        if !self.leading() {
            self.submit_standby(self.me, key, spec, reply, now);
            return None;
        }
        let result = self
            .table
            .submit(self.me, &key, spec, now)
            .map(|(record, new)| Submitted {
                id: record.id,
                new,
                record: Some(record),
            })
            .map_err(Error::from);
        turn.dirty |= result.as_ref().is_ok_and(|s| s.new);
        Some((reply, result))
    }

    /// The leader expires leases and assigns what it can (not while it holds after a
    /// takeover); the outcome of every task that ended is published, for whoever submitted
    /// it over pubsub, and wakes callers waiting here.
    pub(crate) fn schedule(
        &mut self,
        peers: &Peers,
        turn: &mut Turn,
        submitter: &mut Submitter,
        now: u64,
    ) {
        if now < self.hold_until_ms || !self.leading() {
            return;
        }
        match self.table.tick(peers, now) {
            Ok(assignments) => {
                turn.dirty |= !assignments.is_empty();
                turn.outbox.extend(assignments);
            }
            Err(error) => tracing::error!(%error, "scheduling"),
        }
        for record in self.table.take_finished() {
            turn.dirty = true;
            let finished = Finished::from(&record);
            turn.outbox.push(Message::Report(record.outcome_report()));
            submitter.wake(&finished);
        }
    }

    /// Hands the table's changes (and finished tasks' outcomes) to the state.
    pub(crate) fn replicate(&mut self) {
        let Some(replicator) = &mut self.replicator else {
            return;
        };
        for record in self.table.take_changed() {
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
}
