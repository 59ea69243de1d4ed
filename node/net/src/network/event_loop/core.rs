//! The task that owns the `Swarm`: a `select!` over swarm events and client commands.

use crate::network;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cid::Cid;
use futures::StreamExt;
use ipfsbench_bitswap as bitswap;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{gossipsub, identify, kad, mdns, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::network::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use crate::network::client::Client;
use crate::network::command::{Command, Fetched, PeerInfo, PubsubStats};
use crate::network::config::Config;
use crate::network::keep::Keep;
use crate::network::offences::Offences;
use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::block::Hash;

/// Commands waiting at most; senders wait when it is full.
const COMMAND_QUEUE: usize = 1024;
/// Invalid task messages a peer may relay before it is cut off.
pub(crate) const MAX_INVALID_MESSAGES: u32 = 8;
/// Peers tracked for invalid messages, and peers cut off, at most; past it the oldest entry
/// is forgotten.
const MAX_TRACKED_PEERS: usize = 4096;
/// How often kept peers (bootstrap, trusted) are checked for a redial.
/// Connections announced to [`Client::connected`] subscribers that have not read them yet.
const CONNECTED_QUEUE: usize = 256;
const KEEP_TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// The largest buffer a subscriber may ask for.
pub(crate) const MAX_SUBSCRIBER_QUEUE: usize = 1 << 16;

type DialReply = oneshot::Sender<Result<PeerId, network::error::Error>>;
type ProvidersReply = oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>;

pub(crate) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) repo: Arc<Repo>,
    pub(super) commands: mpsc::Receiver<Command>,
    /// Bootstrap and trusted peers, redialled when they drop.
    pub(super) keep: Keep,
    /// Bootstrap addresses without a peer id: dialled once, at start.
    pub(super) unnamed: Vec<Multiaddr>,
    /// `swarm connect` calls waiting on their own dial, by its connection: another dial to
    /// the same peer (a stale address Kademlia still knows, say) failing does not fail them.
    pub(super) dials: HashMap<ConnectionId, (PeerId, DialReply)>,
    pub(super) wants: HashMap<Hash, (Cid, crate::network::command::Waiters)>,
    /// Received blocks on their way to the store, off this task.
    pub(super) storing: super::storing::Storing,
    /// CIDs whose providers were already looked up for the current wants.
    pub(super) looked_up: HashSet<Hash>,
    pub(super) provider_lookups: HashMap<kad::QueryId, (Cid, Vec<PeerId>)>,
    pub(super) find_providers: HashMap<kad::QueryId, (ProvidersReply, Vec<PeerId>)>,
    /// Provider announcements, paced.
    pub(super) announcer: super::announce::Announcer,
    pub(super) subscriptions:
        HashMap<gossipsub::TopicHash, (String, Vec<super::subscriber::Subscriber>)>,
    /// The sequence number of this node's last published message, when known.
    pub(super) last_seqno: Option<u64>,
    pub(super) connections: HashMap<PeerId, Multiaddr>,
    pub(super) addresses: HashMap<PeerId, Vec<Multiaddr>>,
    pub(super) pubsub_stats: PubsubStats,
    /// Invalid task messages relayed per peer, and the peers cut off for them.
    pub(super) offences: Offences,
    /// What topics with typed messages must carry.
    pub(super) topic_rules: Vec<crate::network::config::TopicRule>,
    /// libp2p's metrics of swarm events.
    pub(super) recorder: libp2p::metrics::Metrics,
    /// Tells subscribers of each newly connected peer.
    pub(super) connected: tokio::sync::broadcast::Sender<PeerId>,
}

/// Sleeps until `at` (never, without one).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A dial to `addr` from a port of its own. Dialing from the listening port (libp2p's default)
/// turns two peers dialing each other at the same moment, as two hosts that find each other
/// by mDNS do, into one TCP simultaneous open where both sides start the handshake as its
/// initiator, and both dials fail; nothing here needs the listening port as the source
/// (hole punching dials on its own).
fn dial_address(addr: Multiaddr) -> DialOpts {
    DialOpts::unknown_peer_id()
        .address(addr)
        .allocate_new_port()
        .build()
}

/// A dial to `peer` at the addresses the behaviours know, from a port of its own (see
/// [`dial_address`]), unless it is connected or being dialed already.
fn dial_peer(peer: PeerId) -> DialOpts {
    DialOpts::peer_id(peer)
        .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
        .allocate_new_port()
        .build()
}

/// `addr` without its trailing `/p2p/<peer>` (a connection dialed to a full address reports
/// it as its remote address).
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        repo: Arc<Repo>,
        config: Config,
        recorder: libp2p::metrics::Metrics,
    ) -> (Client, Self) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let now = tokio::time::Instant::now();
        let mut keep = Keep::default();
        let mut unnamed = Vec::new();
        for addr in &config.bootstrap {
            match peer_of(addr) {
                Some(peer) => {
                    let mut plain = addr.clone();
                    plain.pop();
                    keep.add(peer, Some(plain), now);
                }
                None => unnamed.push(addr.clone()),
            }
        }
        for peer in &config.keep {
            keep.add(*peer, None, now);
        }
        let streams = swarm.behaviour().streams.new_control();
        let storing = super::storing::Storing::start(Arc::clone(&repo));
        let connected = tokio::sync::broadcast::channel(CONNECTED_QUEUE).0;
        (
            Client::new(tx, config.fetch_timeout, streams, connected.clone()),
            Self {
                swarm,
                repo,
                commands: rx,
                keep,
                unnamed,
                dials: HashMap::new(),
                wants: HashMap::new(),
                storing,
                looked_up: HashSet::new(),
                provider_lookups: HashMap::new(),
                find_providers: HashMap::new(),
                announcer: super::announce::Announcer::default(),
                subscriptions: HashMap::new(),
                last_seqno: None,
                connections: HashMap::new(),
                addresses: HashMap::new(),
                pubsub_stats: PubsubStats::default(),
                offences: Offences::new(MAX_INVALID_MESSAGES, MAX_TRACKED_PEERS),
                topic_rules: config.topic_rules,
                recorder,
                connected,
            },
        )
    }

    /// Runs until every client is gone.
    /// Runs until `stop` fires or every client is gone.
    pub(crate) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        for addr in std::mem::take(&mut self.unnamed) {
            if let Err(e) = self.swarm.dial(dial_address(addr.clone())) {
                tracing::warn!(%addr, error = %e, "bootstrap dial failed");
            }
        }
        let mut keep_tick = tokio::time::interval(KEEP_TICK);
        keep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(stored) = self.storing.next() => self.storing.answer(stored),
                _ = keep_tick.tick() => self.redial(),
                _ = sleep_until(self.announcer.due()), if self.announcer.due().is_some() => {
                    self.announcer.start_next(&mut self.swarm.behaviour_mut().kad);
                }
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
            }
        }
        tracing::debug!("network task stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Listeners { reply } => {
                let mut addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
                addrs.extend(self.swarm.external_addresses().cloned());
                let _ = reply.send(addrs);
            }
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::Peers { reply } => {
                let peers = self
                    .connections
                    .iter()
                    .map(|(peer, addr)| PeerInfo {
                        peer: *peer,
                        addr: addr.clone(),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Want {
                cid,
                providers,
                reply,
            } => self.want(cid, providers, reply),
            Command::Cancel { cid } => {
                if let Some((_, waiters)) = self.wants.get_mut(cid.hash()) {
                    waiters.retain(|w| !w.is_closed());
                    if waiters.is_empty() {
                        self.wants.remove(cid.hash());
                        self.looked_up.remove(cid.hash());
                        self.swarm.behaviour_mut().bitswap.cancel(&cid);
                    }
                }
            }
            Command::Provide { cid } => self.provide(cid),
            Command::FindProviders { cid, reply } => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                let query = self.swarm.behaviour_mut().kad.get_providers(key);
                self.find_providers.insert(query, (reply, Vec::new()));
            }
            Command::Publish { topic, data, reply } => self.publish(topic, data, reply),
            Command::Subscribe {
                topic,
                capacity,
                own,
                reply,
            } => self.subscribe(topic, capacity, own, reply),
            Command::Topics { reply } => {
                self.prune_subscriptions();
                let topics = self
                    .subscriptions
                    .values()
                    .map(|(name, _)| name.clone())
                    .collect();
                let _ = reply.send(topics);
            }
            Command::PubsubStats { reply } => {
                let _ = reply.send(self.pubsub_stats);
            }
            Command::TopicPeers { topic, reply } => self.topic_peers(topic, reply),
            Command::CutOff { peer } => {
                self.offences.cut_off(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Stats { reply } => {
                let _ = reply.send(crate::network::observe::stats(
                    &self.swarm,
                    self.subscriptions.len(),
                ));
            }
        }
    }

    /// A `swarm connect`: answered when its own dial ends.
    fn dial(&mut self, addr: Multiaddr, reply: DialReply) {
        let Some(peer) = peer_of(&addr) else {
            let _ = reply.send(Err(network::error::Error::BadPeerAddr(addr.to_string())));
            return;
        };
        if self.offences.is_cut_off(&peer) {
            let _ = reply.send(Err(network::error::Error::Dial {
                addr: addr.to_string(),
                reason: "the peer was cut off".into(),
            }));
            return;
        }
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(peer));
            return;
        }
        let opts = dial_address(addr.clone());
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, (peer, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(network::error::Error::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                }));
            }
        }
    }

    /// A block to fetch, answered when it is local.
    fn want(
        &mut self,
        cid: Cid,
        providers: Vec<PeerId>,
        reply: oneshot::Sender<Result<Fetched, network::error::Error>>,
    ) {
        // A block on its way to the store is answered with it.
        let Some(reply) = self.storing.join(cid.hash(), reply) else {
            return;
        };
        if self.repo.store().has(cid.hash()).unwrap_or(false) {
            let _ = reply.send(Ok(Fetched {
                from: *self.swarm.local_peer_id(),
                links: None,
                data: None,
            }));
            return;
        }
        let entry = self
            .wants
            .entry(*cid.hash())
            .or_insert_with(|| (cid, Vec::new()));
        entry.1.push(reply);
        self.swarm.behaviour_mut().bitswap.want(cid, &providers);
    }

    /// Announces `cid` (see [`announce`]).
    fn provide(&mut self, cid: Cid) {
        let local = *self.swarm.local_peer_id();
        let kad = &mut self.swarm.behaviour_mut().kad;
        self.announcer.provide(kad, local, cid);
    }

    fn redial(&mut self) {
        for (peer, addrs) in self.keep.due(tokio::time::Instant::now()) {
            if self.offences.is_cut_off(&peer) {
                continue;
            }
            for addr in &addrs {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "redial not started");
                self.keep.dial_failed(&peer, tokio::time::Instant::now());
            }
        }
    }

    /// Counts an invalid task message relayed by `peer`; past [`MAX_INVALID_MESSAGES`] the peer
    /// is disconnected and refused from then on.
    pub(super) fn count_invalid(&mut self, peer: PeerId) {
        if self.offences.invalid(peer) {
            self.pubsub_stats.cut_off += 1;
            tracing::warn!(%peer, "peer cut off: it kept sending invalid task messages");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        crate::network::observe::record(&self.recorder, &event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if self.offences.is_cut_off(&peer_id) => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "refusing a peer that was cut off");
                let _ = self.swarm.disconnect_peer_id(peer_id);
                self.answer_dials(peer_id, || {
                    Err(network::error::Error::Dial {
                        addr: peer_id.to_string(),
                        reason: "the peer was cut off for sending invalid messages".into(),
                    })
                });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established.get() == 1 {
                    let _ = self.connected.send(peer_id);
                }
                self.connections
                    .insert(peer_id, without_peer(endpoint.get_remote_address()));
                self.keep.connected(&peer_id);
                // Connected, by this dial or another: every `swarm connect` to it is done.
                self.answer_dials(peer_id, || Ok(peer_id));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connections.remove(&peer_id);
                self.keep
                    .disconnected(&peer_id, tokio::time::Instant::now());
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    self.keep.dial_failed(&peer, tokio::time::Instant::now());
                }
                if let Some((peer, reply)) = self.dials.remove(&connection_id) {
                    let result = if self.swarm.is_connected(&peer) {
                        Ok(peer)
                    } else {
                        Err(network::error::Error::Dial {
                            addr: peer.to_string(),
                            reason: error.to_string(),
                        })
                    };
                    let _ = reply.send(result);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    /// Answers every `swarm connect` waiting on a dial to `peer`.
    fn answer_dials(
        &mut self,
        peer: PeerId,
        result: impl Fn() -> Result<PeerId, network::error::Error>,
    ) {
        let waiting: Vec<ConnectionId> = self
            .dials
            .iter()
            .filter(|(_, (p, _))| *p == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if let Some((_, reply)) = self.dials.remove(&id) {
                let _ = reply.send(result());
            }
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Bitswap(event) => self.on_bitswap(event),
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_message(propagation_source, message_id, message),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for addr in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                self.addresses.insert(peer_id, info.listen_addrs);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    let _ = self.swarm.dial(dial_peer(peer));
                }
            }
            _ => {}
        }
    }

    fn on_bitswap(&mut self, event: bitswap::Event) {
        match event {
            bitswap::Event::Block { peer, cid, data } => {
                let Some((_, waiters)) = self.wants.remove(cid.hash()) else {
                    return;
                };
                self.looked_up.remove(cid.hash());
                self.storing.store(peer, cid, data, waiters);
            }
            bitswap::Event::NotFound { cid } => {
                if !self.wants.contains_key(cid.hash()) {
                    return;
                }
                if self.looked_up.insert(*cid.hash()) {
                    let key = kad::RecordKey::new(&cid.hash().to_bytes());
                    let query = self.swarm.behaviour_mut().kad.get_providers(key);
                    self.provider_lookups.insert(query, (cid, Vec::new()));
                } else {
                    self.fail_want(&cid);
                }
            }
            bitswap::Event::Misbehaved { peer, reason } => {
                tracing::warn!(%peer, %reason, "peer misbehaved on bitswap; disconnected");
            }
        }
    }

    fn fail_want(&mut self, cid: &Cid) {
        if let Some((_, waiters)) = self.wants.remove(cid.hash()) {
            for reply in waiters {
                let _ = reply.send(Err(network::error::Error::NotFound(*cid)));
            }
        }
        self.looked_up.remove(cid.hash());
        self.swarm.behaviour_mut().bitswap.cancel(cid);
    }

    fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        let local = *self.swarm.local_peer_id();
        match result {
            kad::QueryResult::GetProviders(result) => {
                let found: Vec<PeerId> = match result {
                    Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                        providers.into_iter().collect()
                    }
                    Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => Vec::new(),
                    Err(e) => {
                        tracing::debug!(error = %e, "provider lookup failed");
                        Vec::new()
                    }
                };
                if let Some((_, acc)) = self.find_providers.get_mut(&id) {
                    acc.extend(found.iter().copied());
                    if step.last {
                        if let Some((reply, mut acc)) = self.find_providers.remove(&id) {
                            acc.sort();
                            acc.dedup();
                            let with_addrs = acc
                                .into_iter()
                                .map(|p| {
                                    let addrs = if p == local {
                                        self.swarm.listeners().cloned().collect()
                                    } else {
                                        self.addresses.get(&p).cloned().unwrap_or_default()
                                    };
                                    (p, addrs)
                                })
                                .collect();
                            let _ = reply.send(with_addrs);
                        }
                    }
                    return;
                }
                if let Some((cid, acc)) = self.provider_lookups.get_mut(&id) {
                    let cid = *cid;
                    let fresh: Vec<PeerId> = found.into_iter().filter(|p| *p != local).collect();
                    acc.extend(fresh.iter().copied());
                    if !fresh.is_empty() {
                        for peer in &fresh {
                            let _ = self.swarm.dial(dial_peer(*peer));
                        }
                        self.swarm.behaviour_mut().bitswap.want(cid, &fresh);
                    }
                    if step.last {
                        let found_any = self
                            .provider_lookups
                            .remove(&id)
                            .is_some_and(|(_, acc)| !acc.is_empty());
                        if !found_any {
                            self.fail_want(&cid);
                        }
                    }
                }
            }
            kad::QueryResult::StartProviding(result) => {
                self.announcer.finished(&id);
                if let Err(e) = result {
                    tracing::debug!(error = %e, "providing failed");
                }
            }
            _ => {}
        }
    }
}
