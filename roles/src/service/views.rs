//! What the service answers: the outcome of a task, a submission, the cluster's peers and
//! this node's counters, and the service's errors.

use crate::master;
use std::collections::HashMap;

use ipfsbench_protocols::task::{Capacity, TaskId};
use ipfsbench_protocols::Role;

use crate::cluster::Counters;
use crate::master::{State, TaskRecord};

/// How a task ended, as a waiting submitter learns it.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The task.
    pub id: TaskId,
    /// Its final state.
    pub state: State,
    /// The result record's CID, when it succeeded.
    pub result: Option<cid::Cid>,
    /// The last error, when it did not.
    pub error: Option<String>,
}

impl From<&TaskRecord> for Finished {
    fn from(r: &TaskRecord) -> Self {
        Self {
            id: r.id,
            state: r.state,
            result: r.result,
            error: r.last_error.clone(),
        }
    }
}

/// A submission's answer: the task's id, whether it is new, and its record when this node is
/// the master.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The task id.
    pub id: TaskId,
    /// False when the same key was submitted before.
    pub new: bool,
    /// The record (masters only).
    pub record: Option<TaskRecord>,
}

/// A node of the cluster as `cluster peers` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerView {
    /// Its PeerId.
    pub peer: String,
    /// Its role.
    pub role: Role,
    /// Whether it is this node.
    pub this_node: bool,
    /// Its capacity as last announced.
    pub capacity: CapacityView,
    /// Attempts it runs.
    pub running: usize,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms_ago: u64,
    /// The epoch of its leadership, when it is the master that schedules.
    #[serde(default)]
    pub leads: Option<u64>,
    /// Whether this node applies its changes to the replicated state (its reports on pins
    /// among them): only such peers are allocated pins.
    #[serde(default)]
    pub trusted: bool,
    /// What the cluster's root granted it (`master`, `worker`, `leecher`, `submitter`), when
    /// it is a member.
    #[serde(default)]
    pub member: Option<String>,
    /// Messages from it this node dropped for lack of trust or membership.
    #[serde(default)]
    pub dropped: u64,
}

/// Which master schedules, as a node knows it: what `cluster master` shows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MasterView {
    /// The master that leads, if one is heard.
    pub active: Option<String>,
    /// The epoch of its leadership.
    pub epoch: Option<u64>,
    /// This node: `leading` or `standby` for masters, else its role.
    pub this_node: String,
}

/// A capacity, for JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapacityView {
    /// CPU cores.
    pub cores: u16,
    /// Total memory. Bytes.
    pub memory_total_bytes: u64,
    /// Available memory. Bytes.
    pub memory_available_bytes: u64,
    /// Free space of the store. Bytes.
    pub store_free_bytes: u64,
    /// The most attempts it runs at once.
    pub max_concurrent: u16,
    /// CPU and platform.
    pub hardware: String,
    /// Programs `exec` may run there.
    pub programs: Vec<String>,
    /// Its tags, `key:value`.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl From<&Capacity> for CapacityView {
    fn from(c: &Capacity) -> Self {
        Self {
            cores: c.cores,
            memory_total_bytes: c.memory_total_bytes,
            memory_available_bytes: c.memory_available_bytes,
            store_free_bytes: c.store_free_bytes,
            max_concurrent: c.max_concurrent,
            hardware: c.hardware.clone(),
            programs: c.programs.clone(),
            tags: c.tags.clone(),
        }
    }
}

/// Counters of this node, with the host's count of rejected gossip.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stats {
    /// This node's role.
    pub role: Role,
    /// Task message counters.
    pub messages: Counters,
    /// Gossip on task topics the host rejected before it reached the service (did not decode
    /// or broke a limit).
    pub rejected_by_host: u64,
    /// Gossip this node's subscribers had no room for: dropped.
    pub lagged: u64,
    /// Peers the host disconnected for relaying invalid task messages.
    pub cut_off_peers: u64,
    /// Attempts running here.
    pub running: usize,
    /// Attempts run to success here since the node started (workers).
    #[serde(default)]
    pub completed: u64,
    /// Unfinished tasks by state (masters).
    pub tasks: HashMap<String, usize>,
}

/// What the service can fail at, as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request this node's role does not serve.
    #[error("{0}")]
    WrongRole(String),
    /// A refused request.
    #[error("{0}")]
    Refused(String),
    /// No such task.
    #[error("no task {0}")]
    NotFound(TaskId),
    /// The master's database failed.
    #[error(transparent)]
    Master(master::Error),
    /// The network failed.
    #[error("network: {0}")]
    Network(#[from] ipfsbench_core::network::Error),
    /// The service has stopped.
    #[error("the role service has stopped")]
    Stopped,
}

impl From<master::Error> for Error {
    fn from(e: master::Error) -> Self {
        match e {
            master::Error::Refused(m) => Error::Refused(m),
            master::Error::NoSuchTask(id) => Error::NotFound(id),
            other => Error::Master(other),
        }
    }
}
