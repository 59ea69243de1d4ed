//! The engine's records: a block we want, a want a peer sent us, what waits to be sent to a
//! peer, and a connected peer.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use cid::Cid;
use libp2p::swarm::ConnectionId;
use libp2p::PeerId;

use super::message::{Entry, Payload, Presence, WantType};

/// One block we fetch.
#[derive(Debug)]
pub(super) struct Want {
    pub(super) priority: i32,
    /// Peers believed to have it (hints from the caller).
    pub(super) providers: Vec<PeerId>,
    /// Providers we dialed for this want.
    pub(super) dialed: HashSet<PeerId>,
    /// The peer asked for the block, and when we give up on it.
    pub(super) block_peer: Option<(PeerId, Instant)>,
    /// Peers sent want-have that have not answered, and until when we wait for them
    /// (a peer silent past `want_timeout` no longer holds off [`Event::NotFound`]).
    pub(super) asked: HashMap<PeerId, Instant>,
    /// Peers that answered HAVE.
    pub(super) haves: HashSet<PeerId>,
    /// Peers that answered DONT_HAVE (or could not be dialed).
    pub(super) dont_have: HashSet<PeerId>,
    /// Peers whose want-block timed out (not asked for the block again until a rebroadcast).
    pub(super) timed_out: HashSet<PeerId>,
    /// Every peer sent a want for it (they get a CANCEL when it is done).
    pub(super) sent_to: HashSet<PeerId>,
    /// Waiting in `starved` for a peer with a free want-block slot.
    pub(super) starved: bool,
    pub(super) not_found_sent: bool,
}

impl Want {
    pub(super) fn new(priority: i32) -> Self {
        Want {
            priority,
            providers: Vec::new(),
            dialed: HashSet::new(),
            block_peer: None,
            asked: HashMap::new(),
            haves: HashSet::new(),
            dont_have: HashSet::new(),
            timed_out: HashSet::new(),
            sent_to: HashSet::new(),
            starved: false,
            not_found_sent: false,
        }
    }

    pub(super) fn excluded(&self, peer: &PeerId) -> bool {
        self.dont_have.contains(peer) || self.timed_out.contains(peer)
    }

    /// Forgets everything about `peer`; returns whether it was the block peer.
    pub(super) fn forget(&mut self, peer: &PeerId) -> bool {
        self.asked.remove(peer);
        self.haves.remove(peer);
        self.dont_have.remove(peer);
        self.timed_out.remove(peer);
        self.sent_to.remove(peer);
        if self.block_peer.is_some_and(|(p, _)| p == *peer) {
            self.block_peer = None;
            true
        } else {
            false
        }
    }
}

/// A want a peer has sent us.
#[derive(Debug, Clone, Copy)]
pub(super) struct LedgerEntry {
    pub(super) want_type: WantType,
    pub(super) send_dont_have: bool,
    /// Whether the CID sits in the peer's task queue.
    pub(super) queued: bool,
}

/// What we will send a peer at the next flush.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) entries: Vec<Entry>,
    /// Position of each CID in `entries`: a newer entry replaces an unsent older one.
    pub(super) index: HashMap<Cid, usize>,
    pub(super) presences: Vec<Presence>,
    pub(super) blocks: Vec<Payload>,
    pub(super) block_bytes: usize,
    /// Entries dropped for being over [`MAX_OUTBOX_ENTRIES`].
    pub(super) dropped_entries: u64,
}

/// Wantlist entries waiting for a peer whose connection does not drain; past it new entries
/// are dropped (a lost want-block is recovered by the want timeout).
pub(super) const MAX_OUTBOX_ENTRIES: usize = 65536;

impl Outbox {
    pub(super) fn push_entry(&mut self, entry: Entry) {
        match self.index.entry(entry.cid) {
            MapEntry::Occupied(o) => self.entries[*o.get()] = entry,
            MapEntry::Vacant(_) if self.entries.len() >= MAX_OUTBOX_ENTRIES => {
                self.dropped_entries += 1;
            }
            MapEntry::Vacant(v) => {
                v.insert(self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.presences.is_empty() && self.blocks.is_empty()
    }
}

#[derive(Debug)]
pub(super) struct Connection {
    pub(super) id: ConnectionId,
    pub(super) queued_messages: usize,
    pub(super) queued_bytes: usize,
}

/// A connected peer.
#[derive(Debug, Default)]
pub(super) struct Peer {
    /// Open connections; we send on the first.
    pub(super) connections: Vec<Connection>,
    /// False once the peer is known to speak a version without want-have (before 1.2.0).
    pub(super) no_have: bool,
    /// True once the peer refused every Bitswap protocol.
    pub(super) unsupported: bool,
    /// Want-blocks outstanding to it.
    pub(super) in_flight: usize,
    pub(super) ledger: HashMap<Cid, LedgerEntry>,
    /// Ledger CIDs to answer, in arrival order (may hold stale CIDs; see `serve`).
    pub(super) tasks: VecDeque<Cid>,
    pub(super) outbox: Outbox,
    /// Bytes of blocks being read for it (counted against its send credit).
    pub(super) reading: usize,
}

impl Peer {
    pub(super) fn usable(&self) -> bool {
        !self.unsupported && !self.connections.is_empty()
    }

    pub(super) fn supports_have(&self) -> bool {
        !self.no_have
    }
}
