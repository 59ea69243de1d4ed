//! What the loop answers about itself and the cluster: the peer table as the API shows it,
//! counters, which master leads, and task records as this node knows them.

use std::collections::HashMap;

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::TaskId;
use ipfsbench_protocols::Role;

use super::owned::Actor;
use crate::master::duty::Duty;
use crate::master::{reads, Master, TaskRecord};
use crate::service::views::{CapacityView, Error, MasterView, PeerView, Stats};

impl Actor {
    /// The task table, while this node is a master that leads.
    pub(super) fn scheduling(&mut self) -> Option<&mut Master> {
        self.master.as_mut().and_then(Duty::scheduling)
    }

    /// A task's record on a node that does not schedule (see [`reads::read_task`]).
    pub(super) fn read_task(&self, id: &TaskId) -> Result<Option<TaskRecord>, Error> {
        let table = self.master.as_ref().map(Duty::table);
        reads::read_task(self.state.as_ref(), table, id)
    }

    pub(super) fn peer_views(&self, now: u64) -> Vec<PeerView> {
        let writers = self.settings.state_writers(self.me);
        let mut list: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(id, p)| PeerView {
                trusted: writers.contains(id),
                member: self
                    .settings
                    .members
                    .grant(id)
                    .map(|g| g.name().to_string()),
                dropped: self.settings.members.trust().refused(id),
                peer: id.to_string(),
                role: p.role,
                this_node: *id == self.me,
                capacity: CapacityView::from(&p.capacity),
                running: p.running,
                last_heartbeat_ms_ago: now.saturating_sub(p.last_seen_ms),
                leads: p.leads,
            })
            .collect();
        list.sort_by(|a, b| (a.role as u8, &a.peer).cmp(&(b.role as u8, &b.peer)));
        list
    }

    pub(super) fn stats(&self) -> Stats {
        let tasks: HashMap<String, usize> = self
            .master
            .as_ref()
            .and_then(Duty::schedules)
            .map(|m| {
                m.counts()
                    .into_iter()
                    .map(|(s, n)| (format!("{s:?}").to_lowercase(), n))
                    .collect()
            })
            .unwrap_or_default();
        let (running, completed) = self.worker.as_ref().map_or((0, 0), |w| w.counts());
        Stats {
            role: self.settings.role,
            messages: self.turn.counters,
            rejected_by_host: 0,
            lagged: 0,
            cut_off_peers: 0,
            running,
            completed,
            tasks,
        }
    }

    /// Which master leads, as this node knows it.
    pub(super) fn master_view(&self, now: u64) -> MasterView {
        let heard = self
            .master
            .as_ref()
            .and_then(|m| m.leader(now))
            .or_else(|| self.leader_heard(now));
        let this_node = match &self.master {
            Some(master) => master.this_node().to_string(),
            None => self.settings.role.to_string(),
        };
        MasterView {
            active: heard.map(|(peer, _, _)| peer.to_string()),
            epoch: heard.map(|(_, epoch, _)| epoch),
            this_node,
        }
    }

    /// The leader last heard in the peer table (on nodes that are not masters, and masters
    /// that heard none themselves).
    fn leader_heard(&self, now: u64) -> Option<(PeerId, u64, u64)> {
        let lease = self.settings.master.leadership_lease_ms;
        self.peers
            .iter()
            .filter(|(_, p)| p.role == Role::Master && now.saturating_sub(p.last_seen_ms) < lease)
            .filter_map(|(id, p)| p.leads.map(|e| (*id, e, p.last_seen_ms)))
            .max_by_key(|(id, e, _)| (*e, *id))
    }
}
