//! The role service's settings: the `[tasks]` and `[cluster]` sections of the config, checked
//! and typed once.

use crate::master;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ClusterConfig, TasksConfig};
use crate::membership::members::Members;
use ipfsbench_core::network::PeerId;
use ipfsbench_core::trust::Refused;
use ipfsbench_protocols::membership::Grant;
use ipfsbench_protocols::task;
use ipfsbench_protocols::Role;

use crate::system;
pub use crate::tags::{check_tags, MAX_TAGS};

/// The keys of the replicated state only masters write: task records, results, standby
/// submissions, leadership and invites. A worker or submitter whose change touches one has
/// the whole change refused.
pub const MASTER_KEYS: [&[u8]; 5] = [b"task/", b"result/", b"submit/", b"master/", b"invite/"];

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
    pub master: master::Config,
    /// The longest one attempt may run.
    pub default_timeout: Duration,
    /// Programs `exec` may run: name to path.
    pub programs: std::collections::BTreeMap<String, PathBuf>,
    /// The most bytes an `exec` task may write.
    pub output_cap: u64,
    /// The replicated state and the pinset.
    pub state: ClusterSettings,
    /// The cluster's members, once this node belongs to a cluster: trusted beside the lists
    /// above, each as its grant allows.
    pub members: Members,
}

/// The replicated state and the pinset, typed.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Peers whose state changes are applied besides the trusted masters, workers and
    /// submitters.
    pub trusted_peers: HashSet<PeerId>,
    /// This node's tags, `key:value`.
    pub tags: Vec<String>,
    /// Pins' default least copies; `None`: every eligible peer.
    pub replication_min: Option<u32>,
    /// Pins' default most copies; `None`: every eligible peer.
    pub replication_max: Option<u32>,
    /// Whether masters may hold allocated pins.
    pub allocate_to_masters: bool,
    /// A peer silent this long has its pins allocated to others.
    pub reallocate_after: Duration,
    /// How often the heads are announced.
    pub announce: Duration,
    /// Changes between snapshots; 0: on demand only.
    pub snapshot_every: u64,
}

/// A replication factor of the configuration: -1 is every eligible peer, 0 is refused (as
/// IPFS Cluster refuses it in its configuration), n > 0 is n.
pub fn replication(value: i32) -> Option<Option<u32>> {
    match value {
        -1 => Some(None),
        n if n > 0 => Some(Some(n as u32)),
        _ => None,
    }
}

/// A configuration the service cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// A `[cluster]` value out of range.
    #[error("cluster.{field}: {reason}")]
    Cluster {
        /// The key.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A duration of zero.
    #[error("tasks.{0} must be greater than 0")]
    Zero(&'static str),
}

impl Settings {
    /// Checks `config` for a node of `role`.
    pub fn new(role: Role, config: &TasksConfig, cluster: &ClusterConfig) -> Result<Self, Error> {
        let peers = |field: &'static str, list: &[String]| {
            list.iter()
                .map(|v| {
                    v.parse::<PeerId>().map_err(|_| Error::BadPeer {
                        field,
                        value: v.clone(),
                    })
                })
                .collect::<Result<HashSet<_>, _>>()
        };
        if !task::valid_cluster_name(&config.cluster) {
            return Err(Error::BadCluster(config.cluster.clone()));
        }
        for (field, value) in [
            ("heartbeat_ms", config.heartbeat_ms),
            ("lease_ms", config.lease_ms),
            ("leader_lease_ms", config.leader_lease_ms),
            ("timeout_secs", u64::from(config.timeout_secs)),
        ] {
            if value == 0 {
                return Err(Error::Zero(field));
            }
        }
        let mut programs = std::collections::BTreeMap::new();
        for (name, path) in &config.exec_programs {
            let p = PathBuf::from(path);
            if !p.is_absolute() {
                return Err(Error::BadProgram {
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
            master: master::Config {
                lease_ms: config.lease_ms,
                leadership_lease_ms: config.leader_lease_ms,
                max_attempts: config.max_attempts.max(1),
                backoff_base_ms: config.backoff_base_ms,
                backoff_max_ms: config.backoff_max_ms.max(config.backoff_base_ms),
                worker_silence_ms: (3 * config.heartbeat_ms).max(1000),
                table_cache_bytes: config.table_cache_bytes,
            },
            default_timeout: Duration::from_secs(u64::from(config.timeout_secs)),
            programs,
            output_cap: config.exec_output_max_bytes,
            state: ClusterSettings::new(cluster)?,
            members: Members::default(),
        })
    }
}

impl Settings {
    /// Every peer whose changes to the replicated state this node applies (and whose
    /// benchmark database partitions it merges): `cluster.trusted_peers`, the trusted masters
    /// and workers, the submitters, the members whose grant writes (all but leechers), and
    /// this node (`me`); never a peer the cluster's root removed. The one rule for whose
    /// writes count: the replica drops the others' deltas, and pins are allocated only to
    /// these peers, since the others' reports on them would be dropped.
    pub fn state_writers(&self, me: PeerId) -> HashSet<PeerId> {
        let mut writers: HashSet<PeerId> = self.state.trusted_peers.clone();
        writers.extend(&self.trusted_masters);
        writers.extend(&self.trusted_workers);
        writers.extend(&self.submitters);
        writers.extend(self.members.writers());
        writers.retain(|p| !self.members.is_revoked(p));
        writers.insert(me);
        writers
    }

    /// Whether `peer` is a master whose assignments, leadership and reports count: listed in
    /// `tasks.trusted_masters`, or a member granted `master`.
    pub fn is_master(&self, peer: &PeerId) -> bool {
        (self.trusted_masters.contains(peer) && !self.members.is_revoked(peer))
            || self.members.grant(peer) == Some(Grant::Master)
    }

    /// Whether a master takes `peer`'s submissions: listed in `tasks.submitters`, or a
    /// member granted `submitter` or `master`.
    pub fn may_submit(&self, peer: &PeerId) -> bool {
        (self.submitters.contains(peer) && !self.members.is_revoked(peer))
            || matches!(
                self.members.grant(peer),
                Some(Grant::Submitter | Grant::Master)
            )
    }

    /// Whether a master uses `peer` as a worker: listed in `tasks.trusted_workers`, or a
    /// member granted `worker`; with no list and no cluster membership, any peer that
    /// announces itself as one.
    pub fn uses_worker(&self, peer: &PeerId) -> bool {
        if self.members.is_revoked(peer) {
            return false;
        }
        if self.trusted_workers.contains(peer) || self.members.grant(peer) == Some(Grant::Worker) {
            return true;
        }
        self.trusted_workers.is_empty() && !self.members.active()
    }

    /// Whether `peer`'s state changes may touch every key, the master-only ones
    /// ([`MASTER_KEYS`]) among them: always in a cluster without a root (the lists decide
    /// alone, as before membership); in a cluster, this node, the peers listed in
    /// `cluster.trusted_peers` or `tasks.trusted_masters`, and members granted `master`.
    pub fn writes_every_key(&self, me: PeerId, peer: &PeerId) -> bool {
        if !self.members.active() || *peer == me {
            return true;
        }
        if self.members.is_revoked(peer) {
            return false;
        }
        self.state.trusted_peers.contains(peer)
            || self.trusted_masters.contains(peer)
            || self.members.grant(peer) == Some(Grant::Master)
    }

    /// Whether `peer` may write `key` of the replicated state (see
    /// [`Settings::writes_every_key`]): the others write any key but the master-only ones.
    pub fn may_write_key(&self, me: PeerId, peer: &PeerId, key: &[u8]) -> bool {
        self.writes_every_key(me, peer) || !MASTER_KEYS.iter().any(|p| key.starts_with(p))
    }

    /// Counts a message from `peer` dropped for lack of trust.
    pub fn refuse(&self, peer: PeerId, what: Refused) {
        self.members.trust().refuse(peer, what);
    }
}

impl ClusterSettings {
    /// Checks the `[cluster]` section.
    pub fn new(config: &ClusterConfig) -> Result<Self, Error> {
        let bad = |field: &'static str, reason: String| Error::Cluster { field, reason };
        let trusted_peers = config
            .trusted_peers
            .iter()
            .map(|v| {
                v.parse::<PeerId>()
                    .map_err(|_| bad("trusted_peers", format!("{v:?} is not a PeerId")))
            })
            .collect::<Result<HashSet<_>, _>>()?;
        check_tags(&config.tags).map_err(|reason| bad("tags", reason))?;
        let factor = |field: &'static str, value: i32| {
            replication(value)
                .ok_or_else(|| bad(field, format!("{value} must be -1 (everywhere) or above 0")))
        };
        let replication_min = factor("replication_min", config.replication_min)?;
        let replication_max = factor("replication_max", config.replication_max)?;
        crate::pinset::input::check_factors(replication_min, replication_max)
            .map_err(|reason| bad("replication_min", reason))?;
        for (field, value) in [
            ("reallocate_after_secs", config.reallocate_after_secs),
            ("announce_ms", config.announce_ms),
        ] {
            if value == 0 {
                return Err(bad(field, "must be greater than 0".into()));
            }
        }
        Ok(Self {
            trusted_peers,
            tags: config.tags.clone(),
            replication_min,
            replication_max,
            allocate_to_masters: config.allocate_to_masters,
            reallocate_after: Duration::from_secs(config.reallocate_after_secs),
            announce: Duration::from_millis(config.announce_ms),
            snapshot_every: config.snapshot_every,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_writers_are_every_trusted_peer_and_this_node() {
        let mut s = Settings::new(
            Role::Master,
            &TasksConfig::default(),
            &ClusterConfig::default(),
        )
        .expect("defaults");
        let [me, peer, master, worker, submitter, stranger] =
            std::array::from_fn(|_| PeerId::random());
        s.state.trusted_peers.insert(peer);
        s.trusted_masters.insert(master);
        s.trusted_workers.insert(worker);
        s.submitters.insert(submitter);
        let writers = s.state_writers(me);
        assert_eq!(
            writers,
            HashSet::from([me, peer, master, worker, submitter])
        );
        assert!(!writers.contains(&stranger));
    }

    #[test]
    fn in_a_cluster_only_masters_write_the_master_keys() {
        use crate::membership::members::Cluster;
        use ipfsbench_protocols::membership::Certificate;
        use ipfsbench_protocols::task::WirePeer;
        let s = Settings::new(
            Role::Master,
            &TasksConfig::default(),
            &ClusterConfig::default(),
        )
        .expect("defaults");
        let [me, master, worker] = std::array::from_fn(|_| PeerId::random());
        // Without a cluster, the lists decide alone: any trusted writer writes any key.
        assert!(s.may_write_key(me, &worker, b"task/x"));
        let root = libp2p::identity::Keypair::generate_ed25519();
        s.members.set_cluster(Cluster {
            name: "lab".into(),
            root: root.public(),
        });
        for (peer, grant) in [(master, Grant::Master), (worker, Grant::Worker)] {
            let cert = Certificate {
                cluster: "lab".into(),
                peer: WirePeer(peer),
                grant,
                tags: vec![],
                issued_ms: 0,
                expires_ms: u64::MAX,
            }
            .sign(&root)
            .expect("sign")
            .encode();
            s.members.offer(&cert, Some(peer), 1).expect("a member");
        }
        for key in MASTER_KEYS {
            assert!(s.may_write_key(me, &master, key));
            assert!(!s.may_write_key(me, &worker, key), "{key:?}");
        }
        assert!(s.may_write_key(me, &worker, b"status/Qm/peer"));
        assert!(s.may_write_key(me, &worker, b"pin/Qm"));
        assert!(s.writes_every_key(me, &me) && !s.writes_every_key(me, &worker));
    }

    #[test]
    fn default_replication_follows_ipfs_clusters_rules() {
        let check = |min: i32, max: i32| {
            let config = ClusterConfig {
                replication_min: min,
                replication_max: max,
                ..ClusterConfig::default()
            };
            ClusterSettings::new(&config).map(|s| (s.replication_min, s.replication_max))
        };
        assert_eq!(check(1, 3).expect("1..3"), (Some(1), Some(3)));
        assert_eq!(check(-1, -1).expect("everywhere"), (None, None));
        for (min, max) in [(-1, 3), (2, -1), (4, 3), (0, 3), (1, 0), (-2, -1)] {
            assert!(check(min, max).is_err(), "{min}..{max} accepted");
        }
    }
}
