//! The repo's configuration file, `config.toml`: typed, with documented defaults.

use serde::{Deserialize, Serialize};

pub use crate::store::tiers::CacheConfig;
use crate::store::PackStoreConfig;

/// The whole configuration. Every key is optional; absent keys take their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The node identity.
    pub identity: IdentityConfig,
    /// The block store.
    pub store: PackStoreConfig,
    /// The daemon: network and API.
    pub daemon: DaemonConfig,
    /// The storage tiers: the leecher's bounded cache, memory tier and block serving.
    pub cache: CacheConfig,
    /// Tasks: the cluster, who is trusted, and how work is run.
    pub tasks: TasksConfig,
    /// The replicated cluster state and the pins the cluster keeps.
    pub cluster: ClusterConfig,
}

/// The replicated cluster state (a Merkle-CRDT) and the cluster's pinset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// PeerIds whose changes to the replicated state this node applies, besides the trusted
    /// masters, workers and submitters of `[tasks]` (`--trust-peer`). Default: none.
    pub trusted_peers: Vec<String>,
    /// This node's tags, `key:value`, announced for pin allocation (`--tag`).
    pub tags: Vec<String>,
    /// Pins' default least number of copies; -1 means every eligible peer.
    pub replication_min: i32,
    /// Pins' default most number of copies; -1 means every eligible peer.
    pub replication_max: i32,
    /// Whether masters may hold allocated pins (workers always may, leechers never).
    pub allocate_to_masters: bool,
    /// A peer silent this long has its pins allocated to others. Seconds.
    pub reallocate_after_secs: u64,
    /// How often the state's heads are announced, changed or not. Milliseconds.
    pub announce_ms: u64,
    /// Write a snapshot once this many changes were applied since the last; 0 means on
    /// demand only.
    pub snapshot_every: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            trusted_peers: Vec::new(),
            tags: Vec::new(),
            replication_min: 1,
            replication_max: 3,
            allocate_to_masters: false,
            reallocate_after_secs: 300,
            announce_ms: 5_000,
            snapshot_every: 1_000,
        }
    }
}

/// How the daemon runs. Command-line flags override these.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// libp2p listen multiaddrs. Default: TCP and QUIC on every interface, port 4101.
    pub listen: Vec<String>,
    /// Peers dialled at start, `.../p2p/<peer id>`. Default: none.
    pub bootstrap: Vec<String>,
    /// Find peers on the LAN by mDNS. Default true.
    pub mdns: bool,
    /// Where the HTTP API listens, `host:port` (port 0 picks a free one). Default
    /// `127.0.0.1:5101`.
    pub api: String,
    /// How long a block fetch may wait for the network. Seconds; default 60.
    pub fetch_timeout_secs: u64,
    /// Browser origins (`https://app.example`) allowed to call the API besides the API's own
    /// (`http://127.0.0.1:<port>`, `localhost`, `[::1]`); `*` allows any. Default: none.
    pub api_allowed_origins: Vec<String>,
    /// Host names the API answers to besides IP literals and `localhost` (a guard against
    /// DNS rebinding). Default: none.
    pub api_allowed_hosts: Vec<String>,
    /// A file holding the API's bearer token (one line). Required when `api` is not on
    /// loopback. Default: none.
    pub api_token_file: String,
    /// Where the HTTP gateway (`/ipfs/<cid>`) listens, `host:port`; `off` turns it off.
    /// Default: empty, meaning `127.0.0.1:8080` on masters and workers and off on leechers.
    pub gateway: String,
    /// The private network's key file (Kubo's `swarm.key` format). Default: empty, meaning
    /// `<repo>/swarm.key` if it exists, otherwise a public network.
    pub swarm_key_file: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4101".into(),
                "/ip4/0.0.0.0/udp/4101/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            api: "127.0.0.1:5101".into(),
            fetch_timeout_secs: 60,
            api_allowed_origins: Vec::new(),
            api_allowed_hosts: Vec::new(),
            api_token_file: String::new(),
            gateway: String::new(),
            swarm_key_file: String::new(),
        }
    }
}

/// How this node takes part in task scheduling. Command-line flags override these.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// The cluster's name: its gossipsub topics are `/ipfsbench/<cluster>/...`. Default
    /// `default`.
    pub cluster: String,
    /// PeerIds of the masters whose assignments a worker runs, and whose reports of finished
    /// tasks a submitting node believes. Default: none, so a worker runs nothing until the
    /// operator lists its masters (a bootstrap peer is not trusted by being one).
    pub trusted_masters: Vec<String>,
    /// PeerIds a master takes submissions from over pubsub (its own API is always allowed).
    /// Default: none.
    pub submitters: Vec<String>,
    /// PeerIds of the workers a master gives tasks to and takes results from. Default: none,
    /// meaning any peer that announces itself as a worker (an open cluster).
    pub trusted_workers: Vec<String>,
    /// The most tasks a worker runs at once; 0 means one per CPU core. Default 0.
    pub max_concurrent_tasks: u16,
    /// How often a node announces itself. Milliseconds; default 1000.
    pub heartbeat_ms: u64,
    /// How long a worker's attempt stays leased without a heartbeat naming it; then the master
    /// gives the task to another worker. Milliseconds; default 10000.
    pub lease_ms: u64,
    /// How long the master that schedules may stay silent before a standby master (another
    /// `--role master` of the cluster, listed in `trusted_masters`) takes over. Milliseconds;
    /// default 10000.
    pub leader_lease_ms: u64,
    /// Attempts before a task fails, unless the task says otherwise. Default 3.
    pub max_attempts: u8,
    /// The wait before the first retry, doubled for each further one. Milliseconds; default
    /// 500.
    pub backoff_base_ms: u64,
    /// The longest wait before a retry. Milliseconds; default 30000.
    pub backoff_max_ms: u64,
    /// The longest one attempt may run, unless the task says otherwise. Seconds; default 600.
    pub timeout_secs: u32,
    /// Programs `exec` tasks may run on this worker: name to absolute path. Default: none.
    pub exec_programs: std::collections::BTreeMap<String, String>,
    /// The most bytes an `exec` task may write to its output directory. Default 256 MiB.
    pub exec_output_max_bytes: u64,
    /// Memory a master's task table (sled) may use for its page cache. Bytes; default
    /// 16 MiB.
    pub table_cache_bytes: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            cluster: "default".into(),
            trusted_masters: Vec::new(),
            submitters: Vec::new(),
            trusted_workers: Vec::new(),
            max_concurrent_tasks: 0,
            heartbeat_ms: 1000,
            lease_ms: 10_000,
            leader_lease_ms: 10_000,
            max_attempts: 3,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            timeout_secs: 600,
            exec_programs: std::collections::BTreeMap::new(),
            exec_output_max_bytes: 256 << 20,
            table_cache_bytes: 16 << 20,
        }
    }
}

/// The node identity as recorded in the config (the key itself lives in `identity.key`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The PeerId derived from the key; informational, checked against the key at open.
    pub peer_id: String,
}

impl Config {
    /// Parses a repo's `config.toml`.
    ///
    /// # Errors
    ///
    /// What is malformed, as text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// `config.example.toml`: every knob with its default and unit, as `init` writes it.
pub const EXAMPLE: &str = include_str!("../../../config.example.toml");

impl Config {
    /// The commented TOML that `init` writes: [`EXAMPLE`] with the node's PeerId.
    pub fn template(peer_id: &str) -> String {
        EXAMPLE.replacen("peer_id = \"\"", &format!("peer_id = \"{peer_id}\""), 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_defaults() {
        let parsed: Config = toml::from_str(&Config::template("12D3KooW")).unwrap();
        assert_eq!(parsed.store, PackStoreConfig::default());
        assert_eq!(parsed.daemon, DaemonConfig::default());
        assert_eq!(parsed.cache, CacheConfig::default());
        assert_eq!(parsed.tasks, TasksConfig::default());
        assert_eq!(parsed.cluster, ClusterConfig::default());
        assert_eq!(parsed.identity.peer_id, "12D3KooW");
    }

    #[test]
    fn the_example_is_the_defaults() {
        let parsed: Config = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(parsed, Config::default());
        // Every section and knob of the defaults is written out in the example.
        let defaults = toml::to_string(&Config::default()).unwrap();
        for line in defaults.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(
                EXAMPLE
                    .lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = "))),
                "{key} is missing from config.example.toml"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[store]\npack_size = 1\n").is_err());
    }
}
