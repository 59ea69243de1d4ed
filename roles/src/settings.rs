//! The role service's settings: the `[tasks]` section of the config, checked and typed once.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use ipfsbench_core::config::TasksConfig;
use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task;
use ipfsbench_protocols::Role;

use crate::master::MasterConfig;
use crate::system;

/// The role service's settings, checked and typed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's role.
    pub role: Role,
    /// The cluster name.
    pub cluster: String,
    /// Masters whose assignments this worker runs.
    pub trusted_masters: HashSet<PeerId>,
    /// Peers this master takes submissions from over pubsub.
    pub submitters: HashSet<PeerId>,
    /// Workers this master uses; empty means any peer announcing itself as a worker.
    pub trusted_workers: HashSet<PeerId>,
    /// Attempts run at once (workers).
    pub max_concurrent: u16,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Scheduling settings (masters).
    pub master: MasterConfig,
    /// The longest one attempt may run.
    pub default_timeout: Duration,
    /// Programs `exec` may run: name to path.
    pub programs: std::collections::BTreeMap<String, PathBuf>,
    /// The most bytes an `exec` task may write.
    pub output_cap: u64,
}

/// A configuration the service cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A PeerId in the configuration does not parse.
    #[error("tasks.{field}: {value:?} is not a PeerId")]
    BadPeer {
        /// The config key.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// The cluster name is not usable in a topic.
    #[error("tasks.cluster: {0:?} must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
    BadCluster(String),
    /// An `exec` program is not an absolute path.
    #[error("tasks.exec_programs.{name}: {path:?} must be an absolute path")]
    BadProgram {
        /// The program's name.
        name: String,
        /// Its path.
        path: String,
    },
    /// A duration of zero.
    #[error("tasks.{0} must be greater than 0")]
    Zero(&'static str),
}

impl Settings {
    /// Checks `config` for a node of `role`.
    pub fn new(role: Role, config: &TasksConfig) -> Result<Self, SettingsError> {
        let peers = |field: &'static str, list: &[String]| {
            list.iter()
                .map(|v| {
                    v.parse::<PeerId>().map_err(|_| SettingsError::BadPeer {
                        field,
                        value: v.clone(),
                    })
                })
                .collect::<Result<HashSet<_>, _>>()
        };
        if !task::valid_cluster_name(&config.cluster) {
            return Err(SettingsError::BadCluster(config.cluster.clone()));
        }
        for (field, value) in [
            ("heartbeat_ms", config.heartbeat_ms),
            ("lease_ms", config.lease_ms),
            ("timeout_secs", u64::from(config.timeout_secs)),
        ] {
            if value == 0 {
                return Err(SettingsError::Zero(field));
            }
        }
        let mut programs = std::collections::BTreeMap::new();
        for (name, path) in &config.exec_programs {
            let p = PathBuf::from(path);
            if !p.is_absolute() {
                return Err(SettingsError::BadProgram {
                    name: name.clone(),
                    path: path.clone(),
                });
            }
            programs.insert(name.clone(), p);
        }
        let max_concurrent = match config.max_concurrent_tasks {
            0 => system::cores(),
            n => n,
        };
        Ok(Self {
            role,
            cluster: config.cluster.clone(),
            trusted_masters: peers("trusted_masters", &config.trusted_masters)?,
            submitters: peers("submitters", &config.submitters)?,
            trusted_workers: peers("trusted_workers", &config.trusted_workers)?,
            max_concurrent,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            master: MasterConfig {
                lease_ms: config.lease_ms,
                max_attempts: config.max_attempts.max(1),
                backoff_base_ms: config.backoff_base_ms,
                backoff_max_ms: config.backoff_max_ms.max(config.backoff_base_ms),
                worker_silence_ms: (3 * config.heartbeat_ms).max(1000),
                table_cache_bytes: config.table_cache_bytes,
            },
            default_timeout: Duration::from_secs(u64::from(config.timeout_secs)),
            programs,
            output_cap: config.exec_output_max_bytes,
        })
    }
}
