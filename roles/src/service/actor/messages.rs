//! The cluster's messages as the loop handles them: heartbeats for the peer table (and for
//! leadership and leases), then each message handed to the part of the node it concerns:
//! a master's to its table, a worker's assignments and cancels to its attempts, masters'
//! outcomes to the submitter waiting here.

use ipfsbench_core::network::{PeerId, PubsubMessage};
use ipfsbench_core::trust::Refused;
use ipfsbench_protocols::task::{Capacity, Heartbeat, Message};
use ipfsbench_protocols::Role;

use super::owned::Actor;
use crate::master::duty::Duty;
use crate::submitter;
use crate::{gossip, system};

impl Actor {
    /// This node's heartbeat: what it is, and (on a worker) what it runs and can run.
    pub(super) fn heartbeat(&mut self, now: u64) -> Heartbeat {
        let (total, available) = system::memory();
        let mut hb = Heartbeat {
            role: self.settings.role,
            seq: self.seq,
            capacity: Capacity {
                cores: system::cores(),
                memory_total_bytes: total,
                memory_available_bytes: available,
                store_free_bytes: system::free_bytes(self.repo.path()),
                running: 0,
                max_concurrent: 0,
                hardware: self.hardware.clone(),
                programs: Vec::new(),
                tags: self.settings.state.tags.clone(),
            },
            running: Vec::new(),
            leads: self.master.as_ref().and_then(Duty::epoch),
        };
        if let Some(worker) = &self.worker {
            worker.describe(&self.settings, &mut hb);
        }
        self.seq += 1;
        // This node is in its own table, so `cluster peers` shows it too.
        self.peers.heard(self.me, &hb, now);
        hb
    }

    pub(super) fn on_gossip(&mut self, m: &PubsubMessage, now: u64) {
        let counters = &mut self.turn.counters;
        let Some((from, messages)) = gossip::decode(m, &self.settings.cluster, counters) else {
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
        let (settings, turn) = (&self.settings, &mut self.turn);
        let acted = match self.master.as_mut().filter(|m| m.takes(&message)) {
            Some(master) => master.on_message(settings, from, message, turn, now),
            None => self.on_node_message(from, message, now),
        };
        if !acted {
            self.turn.counters.ignored += 1;
        }
    }

    /// Every node keeps the peer table, and hears who leads; a master also renews leases
    /// (and may not hear every worker, see [`Duty::hears`]).
    fn on_heartbeat(&mut self, from: PeerId, hb: &Heartbeat, now: u64) {
        if (self.master.as_ref()).is_some_and(|m| !m.hears(&self.settings, &from, hb)) {
            self.turn.counters.unauthorised += 1;
            self.settings.refuse(from, Refused::Task);
            return;
        }
        if !self.peers.heard(from, hb, now) {
            return;
        }
        let trusted = self.settings.is_master(&from);
        if let Some(epoch) = hb.leads.filter(|_| hb.role == Role::Master && trusted) {
            if let Some(master) = &mut self.master {
                master.heard_leader(from, epoch, now);
            }
            if let Some(worker) = &mut self.worker {
                worker.heard_leader(from, epoch, &mut self.turn, now);
            }
        }
        if let Some(master) = &mut self.master {
            master.on_heartbeat(from, hb, &mut self.turn, now);
        }
    }

    /// What is not a master's: masters' outcomes of tasks (which acknowledge a worker's
    /// report, and which a submitter here may wait for), and a worker's assignments and
    /// cancels.
    fn on_node_message(&mut self, from: PeerId, message: Message, now: u64) -> bool {
        match message {
            Message::Report(r) => {
                if !self.settings.is_master(&from) {
                    return false;
                }
                if let Some(worker) = &mut self.worker {
                    worker.acknowledged(&r.task, r.attempt);
                }
                match r.refused() {
                    Some(reason) => self.submitter.refused(r.task, from, reason),
                    None => self.submitter.wake(&submitter::finished_by(&r)),
                }
                true
            }
            other => self
                .worker
                .as_mut()
                .is_some_and(|w| w.on_message(&self.settings, from, other, &mut self.turn, now)),
        }
    }
}
