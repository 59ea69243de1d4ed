//! The libp2p host: one task owns the `Swarm` ([`event_loop`]); everything else talks to it
//! through a cloneable [`Client`] over a bounded command channel.
//!
//! Transports: TCP and QUIC, noise, yamux ([`muxer`]: no stream window larger than a frame
//! yamux decodes), DNS, relay client. Protocols: identify, ping, Kademlia (`/ipfs/kad/1.0.0`),
//! gossipsub, mDNS (optional), AutoNAT, relay server (masters), DCUtR and Bitswap
//! (`ipfsbench_bitswap`).

mod behaviour;
mod blocks;
mod client;
mod command;
mod event_loop;
mod keep;
mod muxer;
mod observe;
mod offences;
pub mod ping;
mod providers;

use std::sync::Arc;
use std::time::Duration;

use libp2p::{noise, tcp};

pub use behaviour::MAX_PUBSUB_MESSAGE;
pub use client::{Client, DagProgress, PeerInfo, PubsubMessage, PubsubStats};
pub use libp2p::pnet::PreSharedKey as SwarmKey;
pub use libp2p::{Multiaddr, PeerId};
pub use observe::{NetStats, MAX_LISTED_WANTS};

use ipfsbench_store::repo::Repo;

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
    pub metrics: crate::metrics::Metrics,
}

impl Error {
    /// A store failure, keeping its source.
    pub fn store(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// Failures of the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Building the swarm failed.
    #[error("network setup: {0}")]
    Setup(String),
    /// An address to listen on was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A multiaddr to dial lacks `/p2p/<peer id>` or is malformed.
    #[error("invalid peer address {0}: it must end with /p2p/<peer id>")]
    BadPeerAddr(String),
    /// Dialling failed.
    #[error("dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No peer provided a block before the timeout.
    #[error("block {cid} not found on the network within {secs} s")]
    Timeout {
        /// The block.
        cid: cid::Cid,
        /// The timeout.
        secs: u64,
    },
    /// Every peer asked said it does not have the block and no provider was found.
    #[error("block {0} not found: no connected peer or provider has it")]
    NotFound(cid::Cid),
    /// Publishing failed.
    #[error("pubsub: {0}")]
    Publish(#[from] libp2p::gossipsub::PublishError),
    /// Subscribing failed.
    #[error("pubsub: {0}")]
    Subscribe(#[from] libp2p::gossipsub::SubscriptionError),
    /// Storing or reading a fetched block failed. Shared: one failure answers every caller
    /// waiting for the block.
    #[error("storing a fetched block: {0}")]
    Store(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The host has stopped.
    #[error("the network task has stopped")]
    Stopped,
}

/// Starts the host on the tokio runtime; returns its client and the host itself, which ends
/// at [`Host::shutdown`] or when every [`Client`] is dropped.
pub fn spawn(repo: Arc<Repo>, config: Config) -> Result<(Client, Host), Error> {
    let key = repo.keypair().clone();
    let blocks: Arc<dyn ipfsbench_bitswap::BlockSource> = if config.serve_blocks {
        Arc::new(blocks::RepoBlocks(Arc::clone(&repo)))
    } else {
        Arc::new(blocks::NoBlocks)
    };
    let agent_version = format!("ipfsbench-node/{}", env!("CARGO_PKG_VERSION"));
    let (kad_server, relay_server) = (config.kad_server, config.relay_server);
    let rules = config.topic_rules.clone();
    let mdns = config.mdns;
    let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());
    if config.swarm_key.is_some() {
        if let Some(addr) = config.listen.iter().find(|a| !private_transport(a)) {
            return Err(Error::Listen {
                addr: addr.clone(),
                reason: "a private network (swarm key) runs over TCP only: QUIC and other \
                         transports cannot carry its key, so listen on /tcp/ addresses"
                    .into(),
            });
        }
    }
    let behaviour = |key: &libp2p::identity::Keypair, relay_client| {
        behaviour::Behaviour::new(
            behaviour::Parts {
                key,
                kad_server,
                relay_server,
                rules,
                mdns,
                agent_version,
                blocks,
            },
            relay_client,
        )
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    };
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(120));
    // The transports differ (a private network has TCP alone, under its handshake); what
    // follows them is the same, but of a different type in each case: hence a macro.
    macro_rules! finish {
        ($transports:expr, $registry:expr) => {
            $transports
                .with_dns()
                .map_err(|e| setup(&e))?
                .with_relay_client(noise::Config::new, muxer::Config::default)
                .map_err(|e| setup(&e))?
                .with_bandwidth_metrics($registry)
                .with_behaviour(behaviour)
                .map_err(|e| setup(&e))?
                .with_swarm_config(idle)
                .build()
        };
    }
    let builder = libp2p::SwarmBuilder::with_existing_identity(key).with_tokio();
    let mut swarm = config.metrics.register_bandwidth(|registry| {
        Ok::<_, Error>(match config.swarm_key {
            None => finish!(
                builder
                    .with_tcp(
                        tcp::Config::default().nodelay(true),
                        noise::Config::new,
                        muxer::Config::default,
                    )
                    .map_err(|e| setup(&e))?
                    .with_quic(),
                registry
            ),
            Some(psk) => finish!(
                builder
                    .with_other_transport(|key| private_tcp(key, psk))
                    .map_err(|e| setup(&e))?,
                registry
            ),
        })
    })?;
    let recorder = config.metrics.register(libp2p::metrics::Metrics::new);
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    }
    let (client, event_loop) = event_loop::EventLoop::new(swarm, repo, config, recorder);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(event_loop.run(stopped));
    Ok((client, Host { stop, task }))
}

/// Whether `addr` can carry a private network: TCP (possibly behind DNS), not QUIC or a
/// relayed circuit's own transport.
fn private_transport(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
        && !addr
            .iter()
            .any(|p| matches!(p, Protocol::Udp(_) | Protocol::QuicV1 | Protocol::Quic))
}

/// TCP with the private network's handshake under noise and yamux, as Kubo's private swarms.
fn private_tcp(
    key: &libp2p::identity::Keypair,
    psk: SwarmKey,
) -> Result<
    impl libp2p::Transport<
            Output = (PeerId, libp2p::core::muxing::StreamMuxerBox),
            Error = impl std::error::Error + Send + Sync + 'static,
            Dial = impl Send,
            ListenerUpgrade = impl Send,
        > + Send
        + Unpin
        + 'static,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::core::upgrade::Version;
    use libp2p::Transport as _;
    let noise = noise::Config::new(key)?;
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |socket, _| libp2p::pnet::PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(muxer::Config::default())
            .map(|(peer, conn), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(conn))),
    )
}

/// The running host: the task that owns the swarm.
#[derive(Debug)]
pub struct Host {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Host {
    /// Stops the host, whoever still holds a [`Client`] (their calls then fail with
    /// [`Error::Stopped`]), and waits for it to end, at most 10 s.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}
