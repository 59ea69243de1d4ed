//! The daemon: a repo, the libp2p host and the HTTP API, run together until shut down.
//!
//! [`Daemon::start`] binds everything (listeners can use port 0) and writes `<repo>/api` with
//! the API's address; [`Daemon::shutdown`] stops the API, then the host, flushes the store,
//! removes the `api` file and releases the repo lock.

use crate::repo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use tokio::sync::oneshot;

use crate::api;
use crate::network::{self, Client};
use crate::repo::Repo;
use ipfsbench_protocols::Role;

/// Everything the daemon needs, after the config file and flags are merged.
#[derive(Debug, Clone)]
pub struct Options {
    /// The role, as the storage tiers' report names it.
    pub role: Role,
    /// How the storage tiers keep fetched blocks: all of them, or a bounded cache that (unless
    /// configured otherwise) serves nothing to other peers.
    pub cache_mode: crate::store::tiers::Mode,
    /// Answer Kademlia queries (masters and workers) or only ask them (leechers).
    pub kad_server: bool,
    /// Relay other peers' connections (masters).
    pub relay_server: bool,
    /// Rules for the gossip topics that carry typed messages.
    pub topic_rules: Vec<network::TopicRule>,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start, and again whenever they drop.
    pub bootstrap: Vec<Multiaddr>,
    /// More peers kept connected: the ones the role trusts.
    pub keep: Vec<libp2p::PeerId>,
    /// mDNS on or off.
    pub mdns: bool,
    /// The API address.
    pub api: SocketAddr,
    /// Browser origins allowed to call the API besides its own (`*`: any).
    pub api_allowed_origins: Vec<String>,
    /// Host names the API answers to besides IP literals and `localhost`.
    pub api_allowed_hosts: Vec<String>,
    /// Block fetch timeout.
    pub fetch_timeout: Duration,
    /// Where the HTTP gateway listens (`/ipfs/<cid>`), if anywhere.
    pub gateway: Option<SocketAddr>,
    /// The private network's key, if the node runs in one.
    pub swarm_key: Option<network::SwarmKey>,
    /// The bearer token the API requires; required when the API is not on loopback.
    pub api_token: Option<String>,
}

impl Options {
    /// A node of `role` with its API on `api`: listening nowhere, dialling nobody, mDNS off,
    /// a 60 s fetch timeout, no browser origins or host names beyond the API's own, and
    /// neither a DHT server nor a relay, nor rules for typed topics (what a role decides is
    /// set by whoever knows the role).
    pub fn new(role: Role, api: SocketAddr) -> Self {
        Self {
            role,
            cache_mode: crate::store::tiers::Mode::KeepAll,
            kad_server: false,
            relay_server: false,
            topic_rules: Vec::new(),
            listen: Vec::new(),
            bootstrap: Vec::new(),
            keep: Vec::new(),
            mdns: false,
            api,
            fetch_timeout: Duration::from_secs(60),
            api_allowed_origins: Vec::new(),
            api_allowed_hosts: Vec::new(),
            gateway: None,
            swarm_key: None,
            api_token: None,
        }
    }
}

/// Daemon failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repo failed.
    #[error(transparent)]
    Repo(#[from] repo::Error),
    /// The host failed.
    #[error(transparent)]
    Network(#[from] network::Error),
    /// The storage tiers could not start.
    #[error("storage tiers: {0}")]
    Tiers(#[from] crate::store::tiers::Error),
    /// The API could not bind or serve.
    #[error("API on {addr}: {source}")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The gateway could not bind.
    #[error("gateway on {addr}: {source}")]
    Gateway {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The API would be reachable from other hosts without a token, or the token is weak.
    #[error("API on {addr}: {reason}")]
    ApiToken {
        /// The address.
        addr: SocketAddr,
        /// What is wrong.
        reason: String,
    },
    /// The `api` file could not be written or removed.
    #[error("{}: {source}", path.display())]
    ApiFile {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    repo: Arc<Repo>,
    client: Client,
    network: network::Host,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    api_addr: SocketAddr,
    stop_api: oneshot::Sender<()>,
    gateway: Option<crate::gateway::Server>,
    metrics: crate::metrics::Metrics,
    sampler: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Starts the host and the API on `repo`.
    pub async fn start(repo: Repo, options: Options) -> Result<Self, Error> {
        let (daemon, ()) =
            Self::start_with(repo, options, |_, _| (axum::Router::new(), ())).await?;
        Ok(daemon)
    }

    /// Starts the host and the API on `repo`; `extend` is called once the host runs and
    /// returns routes served beside the API's own (the roles' task and cluster calls), and
    /// what else it started, handed back beside the daemon.
    pub async fn start_with<T>(
        repo: Repo,
        options: Options,
        extend: impl FnOnce(&Arc<Repo>, &Client) -> (axum::Router, T),
    ) -> Result<(Self, T), Error> {
        check_token(options.api, options.api_token.as_deref())?;
        let repo = Arc::new(repo);
        repo.tiers().activate(options.cache_mode, options.role)?;
        let metrics = crate::metrics::Metrics::new();
        let (client, network) = network::spawn(
            Arc::clone(&repo),
            network::Config {
                kad_server: options.kad_server,
                relay_server: options.relay_server,
                serve_blocks: repo.tiers().serves_blocks(),
                topic_rules: options.topic_rules,
                listen: options.listen,
                bootstrap: options.bootstrap,
                keep: options.keep,
                mdns: options.mdns,
                fetch_timeout: options.fetch_timeout,
                swarm_key: options.swarm_key,
                metrics: metrics.clone(),
            },
        )?;
        let listener = api::bind(options.api).await.map_err(|source| Error::Api {
            addr: options.api,
            source,
        })?;
        let api_addr = listener.local_addr().map_err(|source| Error::Api {
            addr: options.api,
            source,
        })?;
        crate::network::register_metrics(&metrics, Arc::clone(&repo), client.clone());
        let sampler = tokio::spawn(crate::metrics::sample_forever(metrics.clone()));
        let (stop_api, stopped) = oneshot::channel::<()>();
        let state = api::State::new(Arc::clone(&repo), client.clone(), metrics.clone());
        let access = api::Access::new(
            api_addr.port(),
            &options.api_allowed_origins,
            &options.api_allowed_hosts,
        )
        .with_token(options.api_token.clone());
        let gateway = match options.gateway {
            Some(addr) => Some(
                crate::gateway::Server::start(addr, state.clone(), options.fetch_timeout)
                    .await
                    .map_err(|source| Error::Gateway { addr, source })?,
            ),
            None => None,
        };
        let (extra, extended) = extend(&repo, &client);
        let api = tokio::spawn(api::serve(listener, state, access, extra, async {
            let _ = stopped.await;
        }));
        let api_file = repo.path().join("api");
        std::fs::write(&api_file, api_multiaddr(api_addr)).map_err(|source| Error::ApiFile {
            path: api_file.clone(),
            source,
        })?;
        // Like Kubo, `<repo>/gateway` holds the gateway's URL.
        let gateway_file = repo.path().join("gateway");
        let written = match &gateway {
            Some(g) => std::fs::write(&gateway_file, format!("http://{}\n", g.addr())),
            None => remove_if_present(&gateway_file),
        };
        written.map_err(|source| Error::ApiFile {
            path: gateway_file,
            source,
        })?;
        // Announce what is pinned here, so that other nodes find it.
        for (cid, kind) in repo.pins().stored().map_err(repo::Error::from)? {
            if kind == crate::store::pins::PinKind::Recursive {
                client.provide(cid).await?;
            }
        }
        let daemon = Self {
            repo,
            client,
            network,
            api,
            api_addr,
            stop_api,
            gateway,
            metrics,
            sampler,
        };
        Ok((daemon, extended))
    }

    /// The bound API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The bound gateway address, if the gateway runs.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(crate::gateway::Server::addr)
    }

    /// The node's metrics, for the role's parts to add theirs.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// A handle to the host.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The repo.
    pub fn repo(&self) -> &Arc<Repo> {
        &self.repo
    }

    /// Stops the API, then the host; flushes the store and removes the `api` file.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.sampler.abort();
        if let Some(gateway) = self.gateway {
            gateway.shutdown().await;
            let _ = remove_if_present(&self.repo.path().join("gateway"));
        }
        let _ = self.stop_api.send(());
        let api_result = self.api.await;
        drop(self.client);
        self.network.shutdown().await;
        let api_file = self.repo.path().join("api");
        remove_if_present(&api_file).map_err(|source| Error::ApiFile {
            path: api_file,
            source,
        })?;
        self.repo.store().flush().map_err(repo::Error::from)?;
        if let Ok(Err(source)) = api_result {
            return Err(Error::Api {
                addr: self.api_addr,
                source,
            });
        }
        Ok(())
    }
}

/// Caps the C allocator's arenas at one per core: a daemon's many threads (the runtime's,
/// sled's, blocking ones) otherwise each keep what bursts of work freed. Measured on a master
/// holding 30,000 pins: RSS 396 MiB with glibc's default arenas, 197 MiB with two. Call it
/// before the runtime starts.
pub fn cap_malloc_arenas() {
    crate::store::cap_malloc_arenas();
}

/// The API address as Kubo writes it in `<repo>/api`.
pub fn api_multiaddr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    }
}

/// The shortest API token accepted. Bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// An API reachable from other hosts must require a token, and a token must not be guessable.
fn check_token(addr: SocketAddr, token: Option<&str>) -> Result<(), Error> {
    let refuse = |reason: String| Err(Error::ApiToken { addr, reason });
    match token {
        None if !addr.ip().is_loopback() => refuse(
            "an API bound to anything but loopback needs a bearer token \
             (--api-token-file or daemon.api_token_file), since it can add and remove data"
                .into(),
        ),
        Some(t) if t.len() < MIN_TOKEN_LEN || t.chars().any(char::is_whitespace) => refuse(
            format!("the API token must be at least {MIN_TOKEN_LEN} characters without whitespace"),
        ),
        _ => Ok(()),
    }
}

fn remove_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
