//! What the daemon is started with (the merged config file and flags), and why it fails.

use crate::repo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;

use crate::network;
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
pub(super) fn check_token(addr: SocketAddr, token: Option<&str>) -> Result<(), Error> {
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

pub(super) fn remove_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
