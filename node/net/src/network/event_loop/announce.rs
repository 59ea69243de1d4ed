//! Provider announcements, paced. Each one is a Kademlia query (closest peers, then an
//! `ADD_PROVIDER` to each), several streams on every peer it reaches: under a burst of new
//! keys (a worker finishing hundreds of tasks a second, each with a result record) starting
//! them all at once would spend the cluster's CPU on announcements rather than on the work.
//!
//! A key is recorded locally at once (lookups that reach this node find it), and its query
//! starts when a slot is free and the pace allows: at most [`MAX_QUERIES`] in flight, one
//! started every [`PACE`]. Keys waiting are bounded ([`MAX_WAITING`]); past that a key keeps
//! only its local record and Kademlia's periodic republication announces it.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use cid::Cid;
use libp2p::kad::store::RecordStore as _;
use libp2p::{kad, PeerId};
use tokio::time::Instant;

use crate::network::providers::ProviderStore;

/// Announcement queries in flight at once.
const MAX_QUERIES: usize = 32;
/// Time between two announcement queries started (100 a second).
pub(super) const PACE: Duration = Duration::from_millis(10);
/// Keys waiting for their query at most.
const MAX_WAITING: usize = 8192;

/// Keys waiting to be announced and the queries under way.
#[derive(Debug, Default)]
pub(super) struct Announcer {
    waiting: VecDeque<Cid>,
    queries: HashSet<kad::QueryId>,
    /// When the next query may start.
    next: Option<Instant>,
}

impl Announcer {
    /// Announces `cid`: records it locally now, and queues its query.
    pub(super) fn provide(
        &mut self,
        kad: &mut kad::Behaviour<ProviderStore>,
        local: PeerId,
        cid: Cid,
    ) {
        let key = kad::RecordKey::new(&cid.hash().to_bytes());
        let record = kad::ProviderRecord::new(key, local, Vec::new());
        if let Err(e) = kad.store_mut().add_provider(record) {
            tracing::warn!(%cid, error = %e, "cannot provide");
            return;
        }
        if self.waiting.len() < MAX_WAITING {
            self.waiting.push_back(cid);
        }
        // else: the periodic republication announces it.
    }

    /// When the next query may start, if one waits and a slot is free.
    pub(super) fn due(&self) -> Option<Instant> {
        if self.waiting.is_empty() || self.queries.len() >= MAX_QUERIES {
            return None;
        }
        Some(self.next.unwrap_or_else(Instant::now))
    }

    /// Starts the next waiting query (call at [`Announcer::due`]).
    pub(super) fn start_next(&mut self, kad: &mut kad::Behaviour<ProviderStore>) {
        if self.queries.len() >= MAX_QUERIES {
            return;
        }
        let Some(cid) = self.waiting.pop_front() else {
            return;
        };
        let now = Instant::now();
        // Pace from the later of now and the slot: a quiet spell does not bank a burst.
        self.next = Some(self.next.map_or(now, |n| n.max(now)) + PACE);
        match kad.start_providing(kad::RecordKey::new(&cid.hash().to_bytes())) {
            Ok(query) => {
                self.queries.insert(query);
            }
            Err(e) => tracing::warn!(%cid, error = %e, "cannot provide"),
        }
    }

    /// A query ended; whether it was an announcement.
    pub(super) fn finished(&mut self, query: &kad::QueryId) -> bool {
        self.queries.remove(query)
    }
}
