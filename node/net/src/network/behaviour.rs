//! The composed libp2p behaviour of a node, each part built by a named function.

use crate::network;
use std::sync::Arc;
use std::time::Duration;

use ipfsbench_bitswap as bitswap;
use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify, kad, mdns, ping, relay, PeerId,
    StreamProtocol,
};
use sha2::{Digest, Sha256};

use super::providers::ProviderStore;

/// Kademlia on the public IPFS DHT protocol.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// Identify's protocol version, as Kubo announces it.
pub(crate) const PROTOCOL_VERSION: &str = "/ipfs/0.1.0";
/// Gossipsub's largest message: Go's default, so Kubo accepts what we send.
pub const MAX_PUBSUB_MESSAGE: usize = 1 << 20;

/// Connections established at once, in all.
pub(crate) const MAX_CONNECTIONS: u32 = 1024;
/// Connections established with one peer at once (TCP, QUIC, a relayed one and a direct
/// one after hole punching, with room for a redial racing a closing connection).
pub(crate) const MAX_CONNECTIONS_PER_PEER: u32 = 8;
/// Connections being set up at once, each way.
pub(crate) const MAX_PENDING_CONNECTIONS: u32 = 128;

/// Everything a node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First, so a connection over the limits is refused before any other part sees it.
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<ProviderStore>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    pub(crate) bitswap: bitswap::Behaviour,
    /// Plain streams for request-response protocols run outside the event loop (the
    /// benchmark database's index sync).
    pub(crate) streams: libp2p_stream::Behaviour,
}

pub(crate) struct Parts<'a> {
    pub(crate) key: &'a Keypair,
    pub(crate) kad_server: bool,
    pub(crate) relay_server: bool,
    pub(crate) rules: Vec<super::config::TopicRule>,
    pub(crate) mdns: bool,
    pub(crate) agent_version: String,
    pub(crate) blocks: Arc<dyn bitswap::BlockSource>,
}

impl Behaviour {
    pub(crate) fn new(
        parts: Parts<'_>,
        relay_client: relay::client::Behaviour,
    ) -> Result<Self, network::error::Error> {
        let peer_id = parts.key.public().to_peer_id();
        Ok(Self {
            limits: connection_limits(),
            relay_client,
            relay_server: Toggle::from(
                parts
                    .relay_server
                    .then(|| relay::Behaviour::new(peer_id, relay::Config::default())),
            ),
            identify: identify(parts.key, parts.agent_version),
            ping: ping::Behaviour::new(ping::Config::new()),
            kad: kademlia(peer_id, parts.kad_server),
            gossipsub: gossipsub(parts.key, parts.rules)?,
            mdns: Toggle::from(if parts.mdns {
                Some(
                    mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                        .map_err(|e| network::error::Error::Setup(format!("mDNS: {e}")))?,
                )
            } else {
                None
            }),
            autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
            dcutr: dcutr::Behaviour::new(peer_id),
            bitswap: bitswap::Behaviour::new(bitswap::Config::default(), parts.blocks),
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}

fn connection_limits() -> connection_limits::Behaviour {
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(MAX_CONNECTIONS))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
            .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS)),
    )
}

fn identify(key: &Keypair, agent_version: String) -> identify::Behaviour {
    identify::Behaviour::new(
        identify::Config::new(PROTOCOL_VERSION.to_string(), key.public())
            .with_agent_version(agent_version),
    )
}

/// Masters and workers serve the DHT; leechers only query it.
fn kademlia(peer_id: PeerId, server: bool) -> kad::Behaviour<ProviderStore> {
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(Duration::from_secs(30));
    let mut kad = kad::Behaviour::with_config(peer_id, ProviderStore::new(peer_id), config);
    kad.set_mode(Some(if server {
        kad::Mode::Server
    } else {
        kad::Mode::Client
    }));
    kad
}

/// Signed messages and strict validation. Message ids: on topics with a rule the sha2-256 of
/// the author and content, so a replayed message is a duplicate; on other topics Go's
/// `from ‖ seqno`, which is what Kubo expects. Every message is validated by the event loop
/// before it is forwarded.
fn gossipsub(
    key: &Keypair,
    rules: Vec<super::config::TopicRule>,
) -> Result<gossipsub::Behaviour, network::error::Error> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_PUBSUB_MESSAGE)
        .message_id_fn(move |m: &gossipsub::Message| {
            if rules.iter().any(|r| r.applies(m.topic.as_str())) {
                let mut h = Sha256::new();
                h.update(m.source.map(|p| p.to_bytes()).unwrap_or_default());
                h.update(&m.data);
                return gossipsub::MessageId::from(h.finalize().to_vec());
            }
            let mut id = m.source.map(|p| p.to_bytes()).unwrap_or_default();
            id.extend_from_slice(&m.sequence_number.unwrap_or(0).to_be_bytes());
            gossipsub::MessageId::from(id)
        })
        .build()
        .map_err(|e| network::error::Error::Setup(format!("gossipsub config: {e}")))?;
    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| network::error::Error::Setup(format!("gossipsub: {e}")))
}
