//! The repo's configuration file, `config.toml`: typed, with documented defaults.

use serde::{Deserialize, Serialize};

pub use crate::store::tiers::CacheConfig;
use crate::store::PackStoreConfig;

/// The whole configuration. Every key is optional; absent keys take their defaults.
///
/// The sections this layer knows are typed here; the others (the roles' `[tasks]` and
/// `[cluster]`) are kept as TOML in [`Config::sections`] for the layer that owns them, which
/// parses them and refuses what it does not know.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// The node identity.
    pub identity: IdentityConfig,
    /// The block store.
    pub store: PackStoreConfig,
    /// The daemon: network and API.
    pub daemon: DaemonConfig,
    /// The storage tiers: the leecher's bounded cache, memory tier and block serving.
    pub cache: CacheConfig,
    /// Every other section, by name, for the layer above that owns it.
    #[serde(flatten)]
    pub sections: toml::Table,
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
    /// A file holding an invite to join a cluster with on the first start (`--join-file`).
    /// Default: none.
    pub join_token_file: String,
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
            join_token_file: String::new(),
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
        assert_eq!(parsed.identity.peer_id, "12D3KooW");
    }

    #[test]
    fn the_example_is_the_defaults() {
        let mut parsed: Config = toml::from_str(EXAMPLE).unwrap();
        // The sections owned above this layer are kept, unparsed, for their owner.
        let others: Vec<&String> = parsed.sections.keys().collect();
        assert_eq!(others, ["cluster", "tasks"]);
        parsed.sections.clear();
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
    fn unknown_keys_are_refused_and_other_sections_kept() {
        assert!(toml::from_str::<Config>("[store]\npack_size = 1\n").is_err());
        let parsed: Config = toml::from_str("[tasks]\nlease_ms = 5\n").unwrap();
        assert_eq!(parsed.sections["tasks"]["lease_ms"].as_integer(), Some(5));
    }
}
