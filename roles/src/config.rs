//! The roles' sections of the repo's `config.toml`: `[tasks]` (the cluster's name, who is
//! trusted, how work is run) and `[cluster]` (the replicated state and the pins it keeps).
//! The node's own sections are typed in `ipfsbench_core::config`, which keeps these two for
//! us unparsed; [`RoleConfig::from`] types them and refuses any section nobody knows.

use serde::{Deserialize, Serialize};

use ipfsbench_core::config::Config;

/// The sections of `config.toml` the roles own. Every key is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Tasks: the cluster, who is trusted, and how work is run.
    pub tasks: TasksConfig,
    /// The replicated cluster state and the pins the cluster keeps.
    pub cluster: ClusterConfig,
}

impl RoleConfig {
    /// Types the sections of `config` the node left to the roles.
    ///
    /// # Errors
    ///
    /// A key or section that is unknown or malformed, as text.
    pub fn from(config: &Config) -> Result<Self, String> {
        toml::Value::Table(config.sections.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RoleConfig, String> {
        RoleConfig::from(&Config::parse(text)?)
    }

    #[test]
    fn the_example_is_the_defaults() {
        let example = ipfsbench_core::config::EXAMPLE;
        assert_eq!(parse(example).unwrap(), RoleConfig::default());
        // Every knob of the defaults is written out in the example.
        let defaults = toml::to_string(&RoleConfig::default()).unwrap();
        for line in defaults.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap();
            assert!(
                example
                    .lines()
                    .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = "))),
                "{key} is missing from config.example.toml"
            );
        }
    }

    #[test]
    fn sections_and_keys_nobody_knows_are_refused() {
        let e = parse("[taks]\nlease_ms = 5\n").unwrap_err();
        assert!(e.contains("taks"), "{e}");
        let e = parse("[tasks]\nlease = 5\n").unwrap_err();
        assert!(e.contains("lease"), "{e}");
        assert_eq!(parse("[tasks]\nlease_ms = 5\n").unwrap().tasks.lease_ms, 5);
    }
}
