//! What the loop answers about itself: the peer table as the API shows it, and counters.

use std::collections::HashMap;

use super::owned::Actor;
use crate::service::views::{CapacityView, PeerView, Stats};

impl Actor {
    pub(super) fn peer_views(&self, now: u64) -> Vec<PeerView> {
        let writers = self.settings.state_writers(self.me);
        let mut list: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(id, p)| PeerView {
                trusted: writers.contains(id),
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
        let leading = self.leading();
        let tasks: HashMap<String, usize> = self
            .master
            .as_ref()
            .filter(|_| leading)
            .map(|m| {
                m.counts()
                    .into_iter()
                    .map(|(s, n)| (format!("{s:?}").to_lowercase(), n))
                    .collect()
            })
            .unwrap_or_default();
        Stats {
            role: self.settings.role,
            messages: self.counters,
            rejected_by_host: 0,
            lagged: 0,
            cut_off_peers: 0,
            running: self.attempts.count(),
            completed: self.attempts.completed(),
            tasks,
        }
    }
}
