//! Starting the host: the transports, the behaviours and the event loop's task; and stopping it.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{noise, tcp, Multiaddr, PeerId};

use ipfsbench_store::repo::Repo;

use super::client::Client;
use super::config::Config;
use super::error::Error;
use super::{behaviour, blocks, event_loop, muxer};
use libp2p::pnet::PreSharedKey as SwarmKey;

/// Starts the host on the tokio runtime; returns its client and the host itself, which ends
/// at [`Host::shutdown`] or when every [`Client`] is dropped.
pub fn spawn(repo: Arc<Repo>, config: Config) -> Result<(Client, Host), Error> {
    let key = repo.keypair().clone();
    let blocks = block_source(&repo, config.serve_blocks);
    let agent_version = format!("ipfsbench-node/{}", env!("CARGO_PKG_VERSION"));
    let (kad_server, relay_server) = (config.kad_server, config.relay_server);
    let rules = config.topic_rules.clone();
    let mdns = config.mdns;
    let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());
    check_private(&config)?;
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
        listen(&mut swarm, addr)?;
    }
    let (client, event_loop) = event_loop::EventLoop::new(swarm, repo, config, recorder);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(event_loop.run(stopped));
    Ok((client, Host { stop, task }))
}

/// What Bitswap serves: the repo's blocks, or none.
fn block_source(repo: &Arc<Repo>, serve: bool) -> Arc<dyn ipfsbench_bitswap::BlockSource> {
    if serve {
        Arc::new(blocks::RepoBlocks(Arc::clone(repo)))
    } else {
        Arc::new(blocks::NoBlocks)
    }
}

/// A private network (swarm key) listens on TCP only.
fn check_private(config: &Config) -> Result<(), Error> {
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
    Ok(())
}

/// Starts listening on `addr`.
fn listen<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut libp2p::Swarm<B>,
    addr: &Multiaddr,
) -> Result<(), Error> {
    swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    Ok(())
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
