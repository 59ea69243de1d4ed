//! The serving half of the engine: each peer's ledger of the wants it sent, answered in
//! arrival order within bounded queues, and what is flushed to each peer.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};

use cid::Cid;
use libp2p::swarm::{NotifyHandler, ToSwarm};
use libp2p::PeerId;

use super::config::{BlockSource, Config, Event, Stats};
use super::handler::HandlerIn;
use super::message::{Entry, Message, Payload, Presence, PresenceType, WantType, ENTRY_SIZE_HINT};
use super::state::{LedgerEntry, Outbox, Peer};

/// Takes a peer's wantlist into its ledger, within the ledger's bound of `max` entries.
pub(super) fn update_ledger(
    p: &mut Peer,
    max: usize,
    full: bool,
    wantlist: Vec<Entry>,
) -> Result<(), String> {
    if full {
        p.ledger.clear();
    }
    for e in wantlist {
        if e.cancel {
            p.ledger.remove(&e.cid);
            continue;
        }
        let len = p.ledger.len();
        match p.ledger.entry(e.cid) {
            MapEntry::Occupied(mut o) => {
                let entry = o.get_mut();
                // A want-block is never downgraded to a want-have.
                if e.want_type == WantType::Block {
                    entry.want_type = WantType::Block;
                }
                entry.send_dont_have = e.send_dont_have;
                if !entry.queued {
                    entry.queued = true;
                    p.tasks.push_back(e.cid);
                }
            }
            MapEntry::Vacant(v) => {
                if len >= max {
                    return Err(format!("wantlist exceeds {max} entries"));
                }
                v.insert(LedgerEntry {
                    want_type: e.want_type,
                    send_dont_have: e.send_dont_have,
                    queued: true,
                });
                p.tasks.push_back(e.cid);
            }
        }
    }
    // Cancelled entries leave stale CIDs in the task queue: keep it within bounds.
    if p.tasks.len() > 2 * max {
        let ledger = &p.ledger;
        p.tasks.retain(|c| ledger.get(c).is_some_and(|e| e.queued));
        let mut seen = HashSet::new();
        p.tasks.retain(|c| seen.insert(*c));
    }
    Ok(())
}

/// The serving half of the engine: where blocks are read from, and the reads under way.
pub(super) struct Server {
    source: Arc<dyn BlockSource>,
    /// Blocks being read for peers, off the swarm's task.
    reads: FuturesUnordered<BoxFuture<'static, Read>>,
}

impl Server {
    /// Serves from `source`.
    pub(super) fn new(source: Arc<dyn BlockSource>) -> Self {
        Server {
            source,
            reads: FuturesUnordered::new(),
        }
    }

    /// Answers queued ledger entries while the peer's send credit lasts. Blocks are read off
    /// the swarm's task ([`Config::max_reads_in_flight`] at once) and go out when read
    /// ([`Server::poll_reads`]). Returns whether work remains that credit would allow (so
    /// poll again soon).
    pub(super) fn serve(
        &mut self,
        config: &Config,
        peers: &mut HashMap<PeerId, Peer>,
        stats: &mut Stats,
    ) -> bool {
        let mut more = false;
        let small = config.small_block_bytes;
        for (id, p) in peers.iter_mut() {
            let Some((queued_bytes, queued_messages)) = p
                .connections
                .first()
                .map(|c| (c.queued_bytes, c.queued_messages))
            else {
                continue;
            };
            let mut budget = config.max_served_per_poll;
            loop {
                if p.tasks.is_empty() {
                    break;
                }
                let credit_left = queued_bytes + p.outbox.block_bytes + p.reading
                    < config.max_outbound_bytes
                    && queued_messages < config.max_outbound_queue;
                if !credit_left || self.reads.len() >= config.max_reads_in_flight {
                    break;
                }
                if budget == 0 {
                    more = true;
                    break;
                }
                budget -= 1;
                let Some(cid) = p.tasks.pop_front() else {
                    break;
                };
                let Some(entry) = p.ledger.get_mut(&cid) else {
                    continue;
                };
                if !entry.queued {
                    continue;
                }
                entry.queued = false;
                let entry = *entry;
                match answer(self.source.as_ref(), small, p, stats, cid, entry) {
                    Answer::Done => {
                        p.ledger.remove(&cid);
                    }
                    Answer::Waits => {}
                    Answer::Read(size) => {
                        // Counted against the peer's credit until it is read.
                        p.reading += size;
                        let source = Arc::clone(&self.source);
                        let peer = *id;
                        self.reads.push(
                            tokio::task::spawn_blocking(move || source.get(&cid))
                                .map(move |data| Read {
                                    peer,
                                    cid,
                                    entry,
                                    size,
                                    data: data.ok().flatten(),
                                })
                                .boxed(),
                        );
                    }
                }
            }
        }
        more
    }

    /// Takes in the blocks read for peers: each goes to its peer's outbox, unless the peer
    /// cancelled the want or left meanwhile. Returns whether any was read.
    pub(super) fn poll_reads(
        &mut self,
        cx: &mut Context<'_>,
        peers: &mut HashMap<PeerId, Peer>,
        stats: &mut Stats,
    ) -> bool {
        let mut any = false;
        while let Poll::Ready(Some(read)) = self.reads.poll_next_unpin(cx) {
            any = true;
            let Some(p) = peers.get_mut(&read.peer) else {
                continue;
            };
            p.reading = p.reading.saturating_sub(read.size);
            if !p.ledger.contains_key(&read.cid) {
                continue;
            }
            match read.data {
                Some(data) => {
                    push_block(p, stats, read.cid, data);
                    p.ledger.remove(&read.cid);
                }
                None if read.entry.send_dont_have => {
                    dont_have(p, stats, read.cid);
                    p.ledger.remove(&read.cid);
                }
                // Gone meanwhile: the want stays in the ledger.
                None => {}
            }
        }
        any
    }
}

/// Turns each peer's outbox into messages for its first connection.
pub(super) fn flush(
    config: &Config,
    peers: &mut HashMap<PeerId, Peer>,
    stats: &mut Stats,
    events: &mut VecDeque<ToSwarm<Event, HandlerIn>>,
) {
    let max = config.max_send_message_bytes;
    for (id, p) in peers.iter_mut() {
        if p.outbox.is_empty() {
            continue;
        }
        let Some(conn) = p.connections.first_mut() else {
            p.outbox = Outbox::default();
            continue;
        };
        if conn.queued_messages >= config.max_outbound_queue {
            // Wait for the handler to drain; the outbox is bounded by the wants and
            // ledger it derives from.
            continue;
        }
        let outbox = std::mem::take(&mut p.outbox);
        stats.entries_dropped += outbox.dropped_entries;
        let mut messages: Vec<(Message, usize)> = Vec::new();
        let mut current = Message::default();
        let mut size = 0usize;
        let mut credit = 0usize;
        let mut push = |msg: &mut Message, size: &mut usize, credit: &mut usize| {
            messages.push((std::mem::take(msg), std::mem::take(credit)));
            *size = 0;
        };
        for e in outbox.entries {
            if size + ENTRY_SIZE_HINT > max && !current.is_empty() {
                push(&mut current, &mut size, &mut credit);
            }
            size += ENTRY_SIZE_HINT;
            current.wantlist.push(e);
        }
        for pr in outbox.presences {
            if size + ENTRY_SIZE_HINT > max && !current.is_empty() {
                push(&mut current, &mut size, &mut credit);
            }
            size += ENTRY_SIZE_HINT;
            current.presences.push(pr);
        }
        for b in outbox.blocks {
            let len = b.data.len() + 40;
            if size + len > max && !current.is_empty() {
                push(&mut current, &mut size, &mut credit);
            }
            size += len;
            credit += b.data.len();
            current.blocks.push(b);
        }
        if !current.is_empty() {
            push(&mut current, &mut size, &mut credit);
        }
        for (message, credit) in messages {
            conn.queued_messages += 1;
            conn.queued_bytes += credit;
            events.push_back(ToSwarm::NotifyHandler {
                peer_id: *id,
                handler: NotifyHandler::One(conn.id),
                event: HandlerIn::Send { message, credit },
            });
        }
    }
}

/// Queues `data` for `p`, counting it as sent.
fn push_block(p: &mut Peer, stats: &mut Stats, cid: Cid, data: Vec<u8>) {
    stats.blocks_sent += 1;
    stats.bytes_sent += data.len() as u64;
    p.outbox.block_bytes += data.len();
    p.outbox.blocks.push(Payload::new(&cid, data));
}

/// Queues a DONT_HAVE for `cid`.
fn dont_have(p: &mut Peer, stats: &mut Stats, cid: Cid) {
    p.outbox.presences.push(Presence {
        cid,
        kind: PresenceType::DontHave,
    });
    stats.dont_haves_sent += 1;
}

/// A block read for a peer off the swarm's task.
struct Read {
    peer: PeerId,
    cid: Cid,
    entry: LedgerEntry,
    /// The block's size as counted against the peer's credit.
    size: usize,
    data: Option<Vec<u8>>,
}

/// What answering a ledger entry came to.
enum Answer {
    /// Answered (HAVE or DONT_HAVE queued): the entry leaves the ledger.
    Done,
    /// Not held and no DONT_HAVE asked for: the entry stays.
    Waits,
    /// The block of this size is to be read and sent.
    Read(usize),
}

/// Answers one ledger entry: the block (to be read), HAVE, or DONT_HAVE when asked for.
fn answer(
    source: &dyn BlockSource,
    small: usize,
    p: &mut Peer,
    stats: &mut Stats,
    cid: Cid,
    entry: LedgerEntry,
) -> Answer {
    match (entry.want_type, source.size(&cid)) {
        (WantType::Block, Some(size)) => return Answer::Read(size),
        (WantType::Have, Some(size)) if size <= small => return Answer::Read(size),
        (WantType::Have, Some(_)) => {
            p.outbox.presences.push(Presence {
                cid,
                kind: PresenceType::Have,
            });
            stats.haves_sent += 1;
            return Answer::Done;
        }
        (_, None) => {}
    }
    if entry.send_dont_have {
        dont_have(p, stats, cid);
        Answer::Done
    } else {
        Answer::Waits
    }
}
