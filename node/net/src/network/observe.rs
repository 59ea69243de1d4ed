//! What the host reports of itself: swarm events recorded for metrics, and the counters
//! behind `stats/bitswap` and the Bitswap metrics.

use cid::Cid;
use libp2p::metrics::Recorder;
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};

use super::behaviour::{Behaviour, BehaviourEvent};

/// Most wantlist entries a [`NetStats`] lists.
pub const MAX_LISTED_WANTS: usize = 1_000;

/// The host's counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct NetStats {
    /// Bitswap's counters.
    pub bitswap: ipfsbench_bitswap::Stats,
    /// Blocks this node wants now.
    pub wants: usize,
    /// The first [`MAX_LISTED_WANTS`] of them.
    pub wantlist: Vec<Cid>,
    /// Peers connected now.
    pub peers: Vec<PeerId>,
    /// Topics this node is subscribed to.
    pub topics: usize,
}

/// Reads the counters off the swarm.
pub(super) fn stats(swarm: &Swarm<Behaviour>, topics: usize) -> NetStats {
    let bitswap = &swarm.behaviour().bitswap;
    let wants: Vec<Cid> = bitswap.wants().copied().collect();
    NetStats {
        bitswap: bitswap.stats().clone(),
        wants: wants.len(),
        wantlist: wants.into_iter().take(MAX_LISTED_WANTS).collect(),
        peers: swarm.connected_peers().copied().collect(),
        topics,
    }
}

/// Records `event` with libp2p's metrics (connections, identify, Kademlia, gossipsub, ping,
/// relay, DCUtR).
pub(super) fn record(metrics: &libp2p::metrics::Metrics, event: &SwarmEvent<BehaviourEvent>) {
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::RelayServer(e)) => metrics.record(e),
        SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => metrics.record(e),
        SwarmEvent::Behaviour(_) => {}
        other => metrics.record(other),
    }
}
