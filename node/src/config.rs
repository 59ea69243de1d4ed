//! The repo's configuration file, `config.toml`: typed, with documented defaults.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    /// The commented TOML that `init` writes: every knob with its default and unit.
    pub fn template(peer_id: &str) -> String {
        let store = PackStoreConfig::default();
        format!(
            r#"# ipfsbench-node repo configuration.
# Every key is optional: a key left out takes the default shown here.

[identity]
# The node's PeerId, derived from the Ed25519 key in `identity.key`. Do not edit:
# the node refuses to start when it does not match the key.
peer_id = "{peer_id}"

[store]
# A pack file is closed and a new one started once it reaches this size. Bytes.
pack_target_bytes = {}
# Memory the block index (sled) may use for its page cache. Bytes.
index_cache_bytes = {}
# During long writes, start writing new bytes to disk once this many have accumulated
# (and wait for bytes older than eight times this), so that the fsync that makes an `add`
# durable waits for little. Bytes.
writeback_bytes = {}

[daemon]
# libp2p listen multiaddrs (`--listen`).
listen = ["/ip4/0.0.0.0/tcp/4101", "/ip4/0.0.0.0/udp/4101/quic-v1"]
# Peers dialled at start, each ending in /p2p/<peer id> (`--bootstrap`).
bootstrap = []
# Find peers on the LAN by mDNS (`--mdns`).
mdns = true
# Where the HTTP API listens, host:port; port 0 picks a free one (`--api`). Keep it on
# loopback unless the network in front of it is trusted: the API can add and remove data.
api = "127.0.0.1:5101"
# How long a block fetch may wait for the network. Seconds.
fetch_timeout_secs = 60
"#,
            store.pack_target_bytes, store.index_cache_bytes, store.writeback_bytes
        )
    }
}

/// What a node does in the cluster. An enum enforced in code: it selects the Kademlia mode,
/// whether the node is a relay server, and (with the roles crate) what work it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes task submissions and schedules them; Kademlia server and relay server.
    Master,
    /// Runs tasks, serves blocks, stores allocated pins; Kademlia server, relay client.
    Worker,
    /// Consumes results with a bounded cache; Kademlia client, relay client.
    Leecher,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Leecher => "leecher",
        })
    }
}

/// A string that names no role.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (expected master, worker or leecher)")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "master" => Ok(Role::Master),
            "worker" => Ok(Role::Worker),
            "leecher" => Ok(Role::Leecher),
            other => Err(UnknownRole(other.to_string())),
        }
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
        assert_eq!(parsed.identity.peer_id, "12D3KooW");
    }

    #[test]
    fn roles_parse_and_print() {
        for role in [Role::Master, Role::Worker, Role::Leecher] {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert!("boss".parse::<Role>().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[store]\npack_size = 1\n").is_err());
    }
}
