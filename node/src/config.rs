//! The repo's configuration file, `config.toml`: typed, with documented defaults.

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
"#,
            store.pack_target_bytes, store.index_cache_bytes, store.writeback_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_to_defaults() {
        let parsed: Config = toml::from_str(&Config::template("12D3KooW")).unwrap();
        assert_eq!(parsed.store, PackStoreConfig::default());
        assert_eq!(parsed.identity.peer_id, "12D3KooW");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[store]\npack_size = 1\n").is_err());
    }
}
