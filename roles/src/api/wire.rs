//! The task and cluster calls' answers, defined once: the server serializes these and the
//! CLI's client reads them back. Field names are PascalCase, as the node's Kubo-shaped calls.

use serde::{Deserialize, Serialize};

use crate::master::{State, TaskRecord};
use crate::service::{PeerView, Submitted};

/// `task/submit`'s answer without `wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Submission {
    /// The task's id.
    pub id: String,
    /// False when the same key was submitted before.
    pub new: bool,
    /// Its state, when this node is the master.
    pub state: Option<State>,
}

impl From<&Submitted> for Submission {
    fn from(s: &Submitted) -> Self {
        Self {
            id: s.id.to_string(),
            new: s.new,
            state: s.record.as_ref().map(|r| r.state),
        }
    }
}

/// How a task ended: `task/result`'s answer, and `task/submit`'s with `wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Outcome {
    /// The task's id.
    pub id: String,
    /// Its final state.
    pub state: State,
    /// The result record's CID, when it succeeded.
    pub result: Option<String>,
    /// The last error, when it did not.
    pub error: Option<String>,
    /// With `wait` on a submission: false when the same key was submitted before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

impl From<&crate::service::Finished> for Outcome {
    fn from(f: &crate::service::Finished) -> Self {
        Self {
            id: f.id.to_string(),
            state: f.state,
            result: f.result.map(|c| c.to_string()),
            error: f.error.clone(),
            new: None,
        }
    }
}

/// A page of `task/ls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskPage {
    /// The records, in submission order.
    pub tasks: Vec<TaskRecord>,
    /// Where the next page starts (its `after`), when there is one.
    pub next: Option<u64>,
}

/// `cluster/peers`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterPeers {
    /// The nodes heard from, this one included.
    pub peers: Vec<PeerView>,
    /// Peers whose messages this node dropped (not members, not listed, or removed), most
    /// first.
    #[serde(default)]
    pub refused: Vec<RefusedPeer>,
}

/// A peer whose messages were dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RefusedPeer {
    /// The peer.
    pub peer: String,
    /// Messages dropped.
    pub dropped: u64,
    /// ... by what they were (`state`, `index`, `submission`, `assignment`, `task`).
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// When the last one was dropped, Unix ms.
    pub last_ms: u64,
    /// Whether the cluster's root removed it.
    pub removed: bool,
}

impl RefusedPeer {
    /// The refusals `members` counted, most first.
    pub fn list(members: &crate::membership::members::Members) -> Vec<Self> {
        members
            .trust()
            .refusals()
            .into_iter()
            .map(|r| Self {
                peer: r.peer.to_string(),
                dropped: r.total(),
                by_kind: r
                    .counts
                    .iter()
                    .map(|(k, n)| (k.name().to_string(), *n))
                    .collect(),
                last_ms: r.last_ms,
                removed: members.is_revoked(&r.peer),
            })
            .collect()
    }
}

/// `cluster/pins/recover`'s answer: the pins whose holders retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recovered {
    /// Their CIDs.
    pub pins: Vec<String>,
}

/// `cluster/state/snapshot`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Snapshot {
    /// The new snapshot's root.
    pub snapshot: String,
}

/// `cluster/alerts`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alerts {
    /// What needs attention.
    pub alerts: Vec<Alert>,
}

/// Something that needs attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Kind", rename_all = "snake_case")]
pub enum Alert {
    /// A peer has not been heard for a while (or an allocated peer never was).
    PeerGone {
        /// The peer.
        #[serde(rename = "Peer")]
        peer: String,
        /// Milliseconds since it was last heard; `None`: not heard since this node started.
        #[serde(rename = "SilentMs")]
        silent_ms: Option<u64>,
    },
    /// Fewer peers hold a pin than it asks for.
    UnderReplicated {
        /// The pin.
        #[serde(rename = "Cid")]
        cid: String,
        /// Peers that report it pinned.
        #[serde(rename = "Pinned")]
        pinned: usize,
        /// The least copies it asks for (`None`: every eligible peer).
        #[serde(rename = "Wanted")]
        wanted: Option<u32>,
    },
    /// A peer whose messages are dropped: not a member (nor listed), or removed.
    NotAMember {
        /// The peer.
        #[serde(rename = "Peer")]
        peer: String,
        /// Messages dropped so far.
        #[serde(rename = "Dropped")]
        dropped: u64,
        /// Whether the cluster's root removed it.
        #[serde(rename = "Removed")]
        removed: bool,
    },
}
