//! The names a task message uses: its topics, task ids, kinds, and CIDs and peer ids as
//! they travel (as bytes).

use std::fmt;
use std::str::FromStr;

use cid::Cid;
use libp2p::PeerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::limits::VERSION;

/// The prefix of every cluster topic.
pub const TOPIC_PREFIX: &str = "/ipfsbench/";

/// The gossipsub topics of a cluster. Every node subscribes to all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Submit, Assign and Cancel: work going to masters and workers.
    Tasks,
    /// Claim, Progress and Report: what workers say about their attempts.
    Reports,
    /// Heartbeats of every node.
    Heartbeats,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 3] = [Topic::Tasks, Topic::Reports, Topic::Heartbeats];

    /// The topic's name in cluster `cluster`: `/ipfsbench/<cluster>/<topic>/<VERSION>`.
    pub fn name(self, cluster: &str) -> String {
        let topic = match self {
            Topic::Tasks => "tasks",
            Topic::Reports => "reports",
            Topic::Heartbeats => "heartbeats",
        };
        format!("{TOPIC_PREFIX}{cluster}/{topic}/{VERSION}")
    }

    /// The topic named `name` in cluster `cluster`, if it is one.
    pub fn parse(name: &str, cluster: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name(cluster) == name)
    }
}

/// Checks a cluster name: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn valid_cluster_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A task's identity: 16 bytes derived from the submitter and its idempotency key, so the same
/// submission always names the same task. Shown as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub [u8; 16]);

impl TaskId {
    /// The id of the task that `submitter` submits under `key`.
    pub fn derive(submitter: &PeerId, key: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"ipfsbench-task\0");
        h.update(submitter.to_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A string that is not 32 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("invalid task id {0:?}: expected 32 hex digits")]
pub struct BadTaskId(String);

impl FromStr for TaskId {
    type Err = BadTaskId;

    fn from_str(s: &str) -> Result<Self, BadTaskId> {
        let bad = || BadTaskId(s.to_string());
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(id))
    }
}

/// What a task does. Unknown kinds do not decode, so they are refused at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Returns an empty result at once: measures dispatch.
    Noop,
    /// Hash throughput (sha2-256) over `size` bytes (param, default 256 MiB).
    BenchHash,
    /// Block store write and read throughput over `size` bytes (param, default 256 MiB).
    BenchStore,
    /// Fetches its input DAG from the network and measures the throughput.
    BenchFetch,
    /// Counts the blocks and bytes of its input DAG.
    DagStat,
    /// Runs a program from the worker's allowlist (param `program`), without a shell.
    Exec,
    /// Runs one read-only SQL query (param `query`) over its inputs, Parquet datasets
    /// mounted as `datasets.input_1`, `datasets.input_2`...; the answer, as Parquet, is its
    /// output.
    Sql,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::Noop,
        Kind::BenchHash,
        Kind::BenchStore,
        Kind::BenchFetch,
        Kind::DagStat,
        Kind::Exec,
        Kind::Sql,
    ];

    /// The kind's name, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Noop => "noop",
            Kind::BenchHash => "bench.hash",
            Kind::BenchStore => "bench.store",
            Kind::BenchFetch => "bench.fetch",
            Kind::DagStat => "dag.stat",
            Kind::Exec => "exec",
            Kind::Sql => "sql",
        }
    }

    /// Whether the kind needs at least one input CID.
    pub fn needs_input(self) -> bool {
        matches!(self, Kind::BenchFetch | Kind::DagStat | Kind::Sql)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no task kind.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown task kind {0:?} (known: noop, bench.hash, bench.store, bench.fetch, dag.stat, exec, sql)"
)]
pub struct UnknownKind(String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// A CID on the wire: its binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WireCid(pub Cid);

impl Serialize for WireCid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.to_bytes())
    }
}

impl<'de> Deserialize<'de> for WireCid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        Cid::try_from(bytes.as_slice())
            .map(WireCid)
            .map_err(serde::de::Error::custom)
    }
}

/// A PeerId on the wire: its binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WirePeer(pub PeerId);

impl Serialize for WirePeer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.to_bytes())
    }
}

impl<'de> Deserialize<'de> for WirePeer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        PeerId::from_bytes(&bytes)
            .map(WirePeer)
            .map_err(serde::de::Error::custom)
    }
}

/// Reads a byte string written with `serialize_bytes`.
fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    d.deserialize_bytes(Visitor)
}
