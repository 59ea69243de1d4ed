//! The per-node half of Bitswap: our wants and how they are spread over peers, each peer's
//! ledger of wants we serve, and the accounting that keeps every queue bounded.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cid::Cid;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{
    behaviour::{ConnectionClosed, ConnectionEstablished, DialFailure},
    CloseConnection, ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;
use multihash::Multihash;

use super::config::{BlockSource, Config, Event, Stats};
use super::handler::{Handler, HandlerConfig, HandlerIn, HandlerOut, Received};
use super::message::{Entry, PresenceType, WantType};
use super::serving::{self, Server};
use super::state::{Connection, Peer, Want};

/// The Bitswap network behaviour. See the [module docs](super).
pub struct Behaviour {
    pub(super) config: Config,
    /// What we serve from, and the blocks being read for peers.
    pub(super) server: Server,
    pub(super) wants: HashMap<Cid, Want>,
    /// Wanted CIDs by multihash: a block under another CID version/codec still matches.
    pub(super) by_hash: HashMap<Multihash<64>, Cid>,
    pub(super) peers: HashMap<PeerId, Peer>,
    pub(super) dialing: HashSet<PeerId>,
    /// Wants with candidate peers that are all at `max_wants_in_flight`.
    pub(super) starved: VecDeque<Cid>,
    /// Set when a want-block slot was freed: `starved` is retried at the next poll.
    pub(super) slot_freed: bool,
    pub(super) events: VecDeque<ToSwarm<Event, HandlerIn>>,
    pub(super) stats: Stats,
    pub(super) next_priority: i32,
    pub(super) round_robin: usize,
    pub(super) tick: Option<tokio::time::Interval>,
    pub(super) next_rebroadcast: Option<Instant>,
}

impl Behaviour {
    /// A behaviour serving from `source`. Must be polled inside a tokio runtime (timers).
    pub fn new(config: Config, source: Arc<dyn BlockSource>) -> Self {
        Behaviour {
            config,
            server: Server::new(source),
            wants: HashMap::new(),
            by_hash: HashMap::new(),
            peers: HashMap::new(),
            dialing: HashSet::new(),
            starved: VecDeque::new(),
            slot_freed: false,
            events: VecDeque::new(),
            stats: Stats::default(),
            next_priority: i32::MAX,
            round_robin: 0,
            tick: None,
            next_rebroadcast: None,
        }
    }

    /// Start fetching `cid`. `providers`: peers believed to have it (e.g. from Kademlia, or
    /// peers that had the parent block); may be empty. Idempotent per CID: a second call only
    /// adds providers (they are asked afresh, even if they said DONT_HAVE before, and dialed
    /// when not connected).
    pub fn want(&mut self, cid: Cid, providers: &[PeerId]) {
        let max_providers = self.config.max_providers_per_want;
        let full = self.wants.len() >= self.config.max_wants;
        match self.wants.entry(cid) {
            MapEntry::Occupied(mut o) => {
                let want = o.get_mut();
                if !providers.is_empty() {
                    want.not_found_sent = false;
                }
                for p in providers {
                    want.dont_have.remove(p);
                    want.timed_out.remove(p);
                    want.dialed.remove(p);
                    if !want.providers.contains(p) && want.providers.len() < max_providers {
                        want.providers.push(*p);
                    }
                }
            }
            MapEntry::Vacant(v) => {
                if full {
                    tracing::warn!(%cid, max = self.config.max_wants, "too many wants, refusing");
                    self.stats.wants_refused += 1;
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::NotFound { cid }));
                    return;
                }
                let mut want = Want::new(self.next_priority);
                self.next_priority = self.next_priority.saturating_sub(1).max(1);
                for p in providers {
                    if !want.providers.contains(p) && want.providers.len() < max_providers {
                        want.providers.push(*p);
                    }
                }
                v.insert(want);
                self.by_hash.entry(*cid.hash()).or_insert(cid);
            }
        }
        self.schedule(cid);
        self.maybe_not_found(cid);
    }

    /// Stop fetching (sends CANCEL to peers asked).
    pub fn cancel(&mut self, cid: &Cid) {
        if let Some(want) = self.remove_want(cid) {
            for peer in &want.sent_to {
                if let Some(p) = self.peers.get_mut(peer) {
                    p.outbox.push_entry(Entry::cancel(*cid));
                }
            }
        }
    }

    /// Whether `cid` is being fetched.
    pub fn is_wanted(&self, cid: &Cid) -> bool {
        self.wants.contains_key(cid)
    }

    /// The CIDs being fetched.
    pub fn wants(&self) -> impl Iterator<Item = &Cid> {
        self.wants.keys()
    }

    /// Peers a want for `cid` has been sent to.
    pub fn peers_asked(&self, cid: &Cid) -> Vec<PeerId> {
        self.wants
            .get(cid)
            .map(|w| w.sent_to.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Peers that answered HAVE for `cid`.
    pub fn peers_having(&self, cid: &Cid) -> Vec<PeerId> {
        self.wants
            .get(cid)
            .map(|w| w.haves.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Entries `peer` keeps in its wantlist with us.
    pub fn ledger_len(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.ledger.len())
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Writes raw bytes to `peer`'s first connection (tests of misbehaving peers).
    #[cfg(test)]
    pub(crate) fn send_raw(&mut self, peer: &PeerId, raw: Vec<u8>) {
        if let Some(conn) = self.peers.get(peer).and_then(|p| p.connections.first()) {
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id: *peer,
                handler: libp2p::swarm::NotifyHandler::One(conn.id),
                event: HandlerIn::SendRaw(raw),
            });
        }
    }

    fn remove_want(&mut self, cid: &Cid) -> Option<Want> {
        let want = self.wants.remove(cid)?;
        if self.by_hash.get(cid.hash()) == Some(cid) {
            self.by_hash.remove(cid.hash());
        }
        if let Some((peer, _)) = want.block_peer {
            self.release_slot(&peer);
        }
        Some(want)
    }

    pub(super) fn release_slot(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
        self.slot_freed = true;
    }

    /// Sends the want-block to the best candidate when nobody has it yet, want-have to every
    /// connected peer not asked yet, and dials hinted providers that are not connected.
    pub(super) fn schedule(&mut self, cid: Cid) {
        let now = Instant::now();
        self.ask_for_block(cid, now);
        let Some(want) = self.wants.get_mut(&cid) else {
            return;
        };

        let block_peer = want.block_peer.map(|(p, _)| p);
        for (id, peer) in self.peers.iter_mut() {
            if !peer.usable()
                || !peer.supports_have()
                || Some(*id) == block_peer
                || want.sent_to.contains(id)
                || want.dont_have.contains(id)
            {
                continue;
            }
            peer.outbox
                .push_entry(Entry::want(cid, WantType::Have, want.priority, true));
            want.sent_to.insert(*id);
            want.asked.insert(*id, now + self.config.want_timeout);
        }

        for p in &want.providers {
            if self.peers.contains_key(p)
                || want.dialed.contains(p)
                || want.dont_have.contains(p)
                || self.dialing.contains(p)
                || self.dialing.len() >= self.config.max_pending_dials
            {
                continue;
            }
            want.dialed.insert(*p);
            self.dialing.insert(*p);
            self.events.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(*p).build(),
            });
        }
    }

    /// Sends the want-block for `cid` to the least-loaded usable peer believed to have it,
    /// unless one is out already; when every such peer is at its cap, the want waits.
    fn ask_for_block(&mut self, cid: Cid, now: Instant) {
        let Some(want) = self.wants.get_mut(&cid) else {
            return;
        };
        if want.block_peer.is_some() {
            return;
        }
        let mut candidates: Vec<PeerId> = Vec::new();
        for p in want.haves.iter().chain(want.providers.iter()) {
            if !candidates.contains(p)
                && !want.excluded(p)
                && self.peers.get(p).is_some_and(Peer::usable)
            {
                candidates.push(*p);
            }
        }
        if !candidates.is_empty() {
            let offset = self.round_robin % candidates.len();
            self.round_robin = self.round_robin.wrapping_add(1);
            candidates.rotate_left(offset);
            let cap = self.config.max_wants_in_flight;
            let best = candidates
                .iter()
                .filter_map(|p| self.peers.get(p).map(|s| (*p, s.in_flight)))
                .filter(|(_, n)| *n < cap)
                .min_by_key(|(_, n)| *n);
            match best {
                Some((peer, _)) => {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.in_flight += 1;
                        p.outbox.push_entry(Entry::want(
                            cid,
                            WantType::Block,
                            want.priority,
                            p.supports_have(),
                        ));
                    }
                    want.block_peer = Some((peer, now + self.config.want_timeout));
                    want.asked.remove(&peer);
                    want.sent_to.insert(peer);
                }
                None => {
                    if !want.starved {
                        want.starved = true;
                        self.starved.push_back(cid);
                    }
                }
            }
        }
    }

    /// Emits [`Event::NotFound`] when nobody is left to ask for `cid`.
    pub(super) fn maybe_not_found(&mut self, cid: Cid) {
        let Some(want) = self.wants.get_mut(&cid) else {
            return;
        };
        if want.not_found_sent
            || want.block_peer.is_some()
            || want.starved
            || !want.asked.is_empty()
        {
            return;
        }
        let pending = want.haves.iter().chain(want.providers.iter()).any(|p| {
            self.dialing.contains(p)
                || (!want.excluded(p) && self.peers.get(p).is_some_and(Peer::usable))
        });
        if pending {
            return;
        }
        want.not_found_sent = true;
        tracing::debug!(%cid, "no connected peer has the block");
        self.events
            .push_back(ToSwarm::GenerateEvent(Event::NotFound { cid }));
    }

    /// A peer left (last connection closed) or turned out not to speak Bitswap.
    fn peer_gone(&mut self, peer: PeerId) {
        let affected: Vec<Cid> = self
            .wants
            .iter_mut()
            .filter_map(|(cid, w)| {
                let was_block_peer = w.forget(&peer);
                w.dialed.remove(&peer);
                (was_block_peer || w.block_peer.is_none()).then_some(*cid)
            })
            .collect();
        self.slot_freed = true;
        for cid in affected {
            self.schedule(cid);
            self.maybe_not_found(cid);
        }
    }

    fn on_received(&mut self, peer: PeerId, connection: ConnectionId, received: Received) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.stats.unverifiable_blocks += received.unverifiable as u64;

        // Serving side: update the peer's ledger.
        let max = self.config.max_wantlist_entries;
        let ledger = match self.peers.get_mut(&peer) {
            Some(p) => serving::update_ledger(p, max, received.full, received.wantlist),
            None => Ok(()),
        };
        if let Err(reason) = ledger {
            self.misbehaved(peer, connection, reason);
            return;
        }

        // Fetching side.
        for (cid, data) in received.blocks {
            let wanted = if self.wants.contains_key(&cid) {
                Some(cid)
            } else {
                self.by_hash.get(cid.hash()).copied()
            };
            match wanted {
                Some(wanted) => self.complete(wanted, peer, data),
                None => self.stats.unwanted_blocks += 1,
            }
        }
        for presence in received.presences {
            let cid = presence.cid;
            let Some(want) = self.wants.get_mut(&cid) else {
                continue;
            };
            want.asked.remove(&peer);
            match presence.kind {
                PresenceType::Have => {
                    want.haves.insert(peer);
                    want.dont_have.remove(&peer);
                    if want.block_peer.is_none() {
                        self.schedule(cid);
                    }
                }
                PresenceType::DontHave => {
                    want.haves.remove(&peer);
                    want.dont_have.insert(peer);
                    if want.block_peer.is_some_and(|(p, _)| p == peer) {
                        want.block_peer = None;
                        self.release_slot(&peer);
                        self.schedule(cid);
                    }
                    self.maybe_not_found(cid);
                }
            }
        }
    }

    /// A wanted block arrived from `from`.
    fn complete(&mut self, cid: Cid, from: PeerId, data: bytes::Bytes) {
        let Some(want) = self.remove_want(&cid) else {
            return;
        };
        for peer in want.sent_to.iter().filter(|p| **p != from) {
            if let Some(p) = self.peers.get_mut(peer) {
                p.outbox.push_entry(Entry::cancel(cid));
            }
        }
        self.stats.blocks_received += 1;
        self.stats.bytes_received += data.len() as u64;
        self.events.push_back(ToSwarm::GenerateEvent(Event::Block {
            peer: from,
            cid,
            data,
        }));
    }

    fn misbehaved(&mut self, peer: PeerId, connection: ConnectionId, reason: String) {
        tracing::info!(%peer, %reason, "closing connection to misbehaving bitswap peer");
        self.stats.misbehaviours += 1;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.ledger.clear();
            p.tasks.clear();
        }
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(connection),
        });
        self.events
            .push_back(ToSwarm::GenerateEvent(Event::Misbehaved { peer, reason }));
    }

    fn handler_config(&self) -> HandlerConfig {
        HandlerConfig {
            max_message_bytes: self.config.max_message_bytes,
            max_inbound_streams: self.config.max_inbound_streams.max(1),
            max_outbound_queue: self.config.max_outbound_queue.max(1),
        }
    }

    fn tick_period(&self) -> Duration {
        (self.config.want_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::new(self.handler_config()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::new(self.handler_config()))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) => {
                self.dialing.remove(&peer_id);
                let peer = self.peers.entry(peer_id).or_default();
                peer.connections.push(Connection {
                    id: connection_id,
                    queued_messages: 0,
                    queued_bytes: 0,
                });
                if peer.connections.len() == 1 {
                    // A new peer: forget what an earlier connection said, send it our wants.
                    let cids: Vec<Cid> = self.wants.keys().copied().collect();
                    for cid in cids {
                        if let Some(w) = self.wants.get_mut(&cid) {
                            w.forget(&peer_id);
                        }
                        self.schedule(cid);
                    }
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                if let Some(peer) = self.peers.get_mut(&peer_id) {
                    peer.connections.retain(|c| c.id != connection_id);
                }
                if remaining_established == 0 {
                    let in_flight = self.peers.remove(&peer_id).map_or(0, |p| p.in_flight);
                    tracing::trace!(%peer_id, in_flight, "bitswap peer disconnected");
                    self.peer_gone(peer_id);
                }
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer_id),
                error,
                ..
            }) => {
                if matches!(error, DialError::DialPeerConditionFalse(_)) {
                    // Someone else is dialing it: their outcome will be reported too.
                    return;
                }
                if !self.dialing.remove(&peer_id) || self.peers.contains_key(&peer_id) {
                    return;
                }
                let affected: Vec<Cid> = self
                    .wants
                    .iter_mut()
                    .filter(|(_, w)| w.providers.contains(&peer_id))
                    .map(|(cid, w)| {
                        w.dont_have.insert(peer_id);
                        *cid
                    })
                    .collect();
                for cid in affected {
                    self.schedule(cid);
                    self.maybe_not_found(cid);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            HandlerOut::Received(received) => self.on_received(peer_id, connection_id, received),
            HandlerOut::Sent {
                credit,
                messages,
                dropped,
            } => {
                self.stats.messages_dropped += dropped as u64;
                if let Some(conn) = self
                    .peers
                    .get_mut(&peer_id)
                    .and_then(|p| p.connections.iter_mut().find(|c| c.id == connection_id))
                {
                    conn.queued_bytes = conn.queued_bytes.saturating_sub(credit);
                    conn.queued_messages = conn.queued_messages.saturating_sub(messages);
                }
            }
            HandlerOut::Negotiated(version) => {
                if !version.supports_have() {
                    if let Some(p) = self.peers.get_mut(&peer_id) {
                        p.no_have = true;
                    }
                    // Its want-haves were never sent: it will not answer them.
                    let affected: Vec<Cid> = self
                        .wants
                        .iter_mut()
                        .filter_map(|(cid, w)| w.asked.remove(&peer_id).map(|_| *cid))
                        .collect();
                    for cid in affected {
                        self.maybe_not_found(cid);
                    }
                }
            }
            HandlerOut::Unsupported => {
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    if !p.unsupported {
                        p.unsupported = true;
                        p.in_flight = 0;
                        self.peer_gone(peer_id);
                    }
                }
            }
            HandlerOut::InboundRefused => self.stats.inbound_streams_refused += 1,
            HandlerOut::Misbehaved(reason) => self.misbehaved(peer_id, connection_id, reason),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }

        let period = self.tick_period();
        let tick = self.tick.get_or_insert_with(|| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        // Poll until pending so the timer's waker is registered for the next tick.
        let mut fired = false;
        while tick.poll_tick(cx).is_ready() {
            fired = true;
        }
        if fired {
            self.on_tick(Instant::now());
        }

        if std::mem::take(&mut self.slot_freed) {
            for _ in 0..self.starved.len() {
                let Some(cid) = self.starved.pop_front() else {
                    break;
                };
                if let Some(w) = self.wants.get_mut(&cid) {
                    w.starved = false;
                    self.schedule(cid);
                    self.maybe_not_found(cid);
                }
            }
        }

        self.server.poll_reads(cx, &mut self.peers, &mut self.stats);
        if self
            .server
            .serve(&self.config, &mut self.peers, &mut self.stats)
        {
            cx.waker().wake_by_ref();
        }
        serving::flush(
            &self.config,
            &mut self.peers,
            &mut self.stats,
            &mut self.events,
        );

        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}
