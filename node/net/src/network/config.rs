//! The host's settings, and the rules for topics that carry typed messages.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use crate::metrics::Metrics;
use libp2p::pnet::PreSharedKey as SwarmKey;

/// What a family of gossipsub topics carries: a message that is not well formed is rejected
/// at the edge (not delivered, not forwarded) and counts against the peer that relayed it,
/// which is cut off past a limit. Such topics use content-hash message ids, so a replayed
/// message is a duplicate.
#[derive(Debug, Clone, Copy)]
pub struct TopicRule {
    /// The topics whose names start with this...
    pub prefix: &'static str,
    /// ...and end with this. The first rule that applies to a topic is its rule.
    pub suffix: &'static str,
    /// Whether a payload is well formed.
    pub valid: fn(&[u8]) -> bool,
}

impl TopicRule {
    /// Whether this rule applies to `topic`.
    pub fn applies(&self, topic: &str) -> bool {
        topic.starts_with(self.prefix) && topic.ends_with(self.suffix)
    }
}

/// How the host runs: what its role decided, and where it listens and dials.
#[derive(Debug, Clone)]
pub struct Config {
    /// Answer Kademlia queries (a DHT server) rather than only ask them.
    pub kad_server: bool,
    /// Relay other peers' connections (circuit relay v2 server).
    pub relay_server: bool,
    /// Answer other peers' Bitswap wants from this node's blocks.
    pub serve_blocks: bool,
    /// Rules for the topics that carry typed messages.
    pub topic_rules: Vec<TopicRule>,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (`.../p2p/<peer id>`), also added to Kademlia, and redialled
    /// whenever they drop.
    pub bootstrap: Vec<Multiaddr>,
    /// More peers to keep connected (the ones the role trusts), at the addresses Kademlia
    /// and identify learn for them.
    pub keep: Vec<PeerId>,
    /// Find peers on the LAN by mDNS.
    pub mdns: bool,
    /// How long a block fetch may take before it fails.
    pub fetch_timeout: Duration,
    /// A private network's pre-shared key: only peers holding it can connect, over TCP only.
    pub swarm_key: Option<SwarmKey>,
    /// Where the swarm's events and the transport's bytes are counted.
    pub metrics: Metrics,
}
