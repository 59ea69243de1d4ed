//! The API's request answers, defined once: the server serializes these and the CLI's client
//! reads them back, so the two cannot drift. Field names are Kubo's, exactly (PascalCase, with
//! Kubo's own exceptions such as `ID` and pubsub's lowercase fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every failed call's answer, in Kubo's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// 1 for a client error, 0 otherwise.
    pub code: u8,
    /// Always `error`.
    #[serde(rename = "Type")]
    pub kind: String,
}

/// One line of `add`'s answer: an entry added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Added {
    /// Its path in the upload (the CID for unnamed stdin).
    pub name: String,
    /// Its CID.
    pub hash: String,
    /// Its cumulative size, in decimal text as Kubo sends it.
    pub size: String,
}

/// `ls`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Listing {
    /// One object per path listed.
    pub objects: Vec<ListedObject>,
}

/// A directory listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedObject {
    /// The path asked for.
    pub hash: String,
    /// Its entries.
    pub links: Vec<Link>,
}

/// An entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Link {
    /// Its name in the directory.
    pub name: String,
    /// Its CID.
    pub hash: String,
    /// Its size. Bytes.
    pub size: u64,
    /// Kubo's type number: [`Link::DIRECTORY`], [`Link::FILE`], [`Link::SYMLINK`] or 0.
    #[serde(rename = "Type")]
    pub kind: u8,
    /// A symlink's target (empty: not resolved).
    pub target: String,
}

impl Link {
    /// The type number of a directory.
    pub const DIRECTORY: u8 = 1;
    /// The type number of a file.
    pub const FILE: u8 = 2;
    /// The type number of a symlink.
    pub const SYMLINK: u8 = 4;
}

/// `block/put` and `block/stat`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockStat {
    /// The block's CID.
    pub key: String,
    /// Its size. Bytes.
    pub size: u64,
}

/// One line of `block/rm`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockRemoved {
    /// The CID removed.
    pub hash: String,
    /// Why it was not removed. Absent on success, as Kubo leaves it out: Kubo's RPC clients
    /// read any `Error` field, even an empty one, as a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `pin/add` and `pin/rm`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pins {
    /// The CIDs pinned or unpinned.
    pub pins: Vec<String>,
}

/// `pin/ls`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinList {
    /// Each pinned CID with how it is pinned. Left out when there are none, as Kubo leaves
    /// it out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, PinType>,
}

/// How a CID is pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinType {
    /// `recursive`, `direct` or `indirect`; a CID named in the request that is pinned below
    /// a recursive pin is `indirect through <root>`, as Kubo says it.
    #[serde(rename = "Type")]
    pub kind: String,
}

/// One line of `pin/ls?stream=true`'s answer: a pinned CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PinListed {
    /// The CID.
    pub cid: String,
    /// How it is pinned, as in [`PinType`].
    #[serde(rename = "Type")]
    pub kind: String,
}

/// One line of `dag/import`'s answer: a root imported and pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Imported {
    /// The root.
    pub root: ImportedRoot,
}

/// A root of an imported CAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportedRoot {
    /// Its CID as a dag-json link.
    pub cid: CidLink,
    /// Empty: a failed pin ends the call with an error instead.
    pub pin_error_msg: String,
}

/// A CID in dag-json's link form, `{"/": "<cid>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidLink {
    /// The CID.
    #[serde(rename = "/")]
    pub cid: String,
}

/// `repo/stat`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoStat {
    /// Blocks stored.
    pub num_objects: u64,
    /// Bytes the store takes on disk.
    pub repo_size: u64,
    /// Bytes of the blocks stored.
    pub logical_size: u64,
    /// 0: no configured maximum.
    pub storage_max: u64,
    /// The repo's directory.
    pub repo_path: String,
    /// The repo format.
    pub version: String,
}

/// `repo/gc`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcReport {
    /// Blocks removed.
    pub removed_blocks: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Bytes the store gave back to the disk.
    pub reclaimed_bytes: u64,
}

/// `repo/verify`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyReport {
    /// Blocks read and hashed.
    pub checked: u64,
    /// The blocks whose bytes do not match their hash.
    pub bad: Vec<BadBlock>,
}

/// A block that failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BadBlock {
    /// Its CID.
    pub cid: String,
    /// What is wrong.
    pub reason: String,
}

/// `id`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Identity {
    /// The PeerId.
    #[serde(rename = "ID")]
    pub id: String,
    /// The public key, protobuf-encoded, in base64.
    pub public_key: String,
    /// Listen addresses, each ending in `/p2p/<id>`.
    pub addresses: Vec<String>,
    /// `ipfsbench-node/<version>`.
    pub agent_version: String,
    /// The protocols spoken.
    pub protocols: Vec<String>,
}

/// `version`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    /// The node's version.
    pub version: String,
    /// Empty.
    pub commit: String,
    /// The repo version.
    pub repo: String,
    /// `<arch>/<os>`.
    pub system: String,
    /// Empty: not a Go program.
    pub golang: String,
}

/// A list of strings: `swarm/connect`, `pubsub/ls`, `pubsub/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Strings {
    /// The strings.
    pub strings: Vec<String>,
}

/// `swarm/peers`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmPeers {
    /// The connected peers.
    pub peers: Vec<SwarmPeer>,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmPeer {
    /// The address of the connection.
    pub addr: String,
    /// Its PeerId.
    pub peer: String,
    /// Empty: not measured.
    pub latency: String,
    /// Empty: not reported.
    pub muxer: String,
    /// 0: not reported.
    pub direction: u8,
    /// Null: not reported.
    pub streams: Option<Vec<String>>,
}

/// One line of `routing/findprovs`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingEvent {
    /// Empty.
    pub extra: String,
    /// Empty.
    #[serde(rename = "ID")]
    pub id: String,
    /// The providers found.
    pub responses: Vec<Provider>,
    /// Kubo's event type: [`RoutingEvent::PROVIDER`].
    #[serde(rename = "Type")]
    pub kind: u8,
}

impl RoutingEvent {
    /// The event type of a provider found.
    pub const PROVIDER: u8 = 4;
}

/// A provider of a CID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Provider {
    /// Its PeerId.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its addresses.
    pub addrs: Vec<String>,
}

/// One line of `pubsub/sub`'s answer: a message. Its fields are encoded as Kubo 0.11 and
/// later encode them when the subscriber named the topic multibase-encoded; for a plain
/// topic name, as Kubo before 0.11 did (standard padded base64, and the plain topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PubsubMessage {
    /// The sender's PeerId as text (before 0.11: its bytes in base64); empty when unsigned.
    pub from: String,
    /// The data, multibase base64url (before 0.11: base64).
    pub data: String,
    /// The sequence number's 8 big-endian bytes, multibase base64url (before 0.11: base64).
    pub seqno: String,
    /// The topic, multibase base64url (before 0.11: plain).
    #[serde(rename = "topicIDs")]
    pub topic_ids: Vec<String>,
}

/// An empty JSON object: `pubsub/pub`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// One line of `dag/put`'s answer: a node stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagPut {
    /// Its CID as a dag-json link.
    pub cid: CidLink,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f32(x: &f32) -> bool {
    *x == 0.0
}

/// A float32 as Go's encoding/json writes one: a whole number without a fraction.
fn go_float<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        s.serialize_i64(*x as i64)
    } else {
        s.serialize_f32(*x)
    }
}

/// A line of `dag/stat`'s answer (Kubo 0.22+): running totals while it walks (`progress`),
/// then the summary. Zero fields are left out, as Kubo leaves them out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagStatSummary {
    /// Distinct blocks over all the DAGs (summary only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unique_blocks: u64,
    /// Bytes of the distinct blocks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_size: u64,
    /// Bytes counted more than once because DAGs share blocks (summary only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shared_size: u64,
    /// Bytes over all DAGs counted each time, over `TotalSize` (summary only).
    #[serde(
        default,
        skip_serializing_if = "is_zero_f32",
        serialize_with = "go_float"
    )]
    pub ratio: f32,
    /// Each DAG asked for.
    #[serde(rename = "DagStats", default, skip_serializing_if = "Vec::is_empty")]
    pub dag_stats: Vec<DagStat>,
}

/// One DAG of `dag/stat`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DagStat {
    /// Its root (a plain string here, unlike `dag/put`).
    pub cid: String,
    /// Bytes of its distinct blocks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Its distinct blocks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_blocks: u64,
}

/// One line of `refs` and `refs/local`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ref {
    /// The reference, formatted as asked (`<dst>` by default).
    #[serde(rename = "Ref")]
    pub reference: String,
    /// Empty, or why listing stopped.
    pub err: String,
}

/// One line of `ping`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ping {
    /// Whether this step succeeded.
    pub success: bool,
    /// The round trip, in nanoseconds (Go's `time.Duration`); 0 on text lines.
    pub time: u64,
    /// A message (`PING <peer>.`, `Average latency: ...`, an error), or empty.
    pub text: String,
}

/// `name/resolve`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResolvedPath {
    /// The `/ipfs/` path.
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_kubos() {
        let v = serde_json::to_value(Listing {
            objects: vec![ListedObject {
                hash: "p".into(),
                links: vec![Link {
                    name: "a".into(),
                    hash: "h".into(),
                    size: 3,
                    kind: Link::FILE,
                    target: String::new(),
                }],
            }],
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Objects": [{"Hash": "p", "Links": [
                {"Name": "a", "Hash": "h", "Size": 3, "Type": 2, "Target": ""}]}]})
        );
        let v = serde_json::to_value(Imported {
            root: ImportedRoot {
                cid: CidLink { cid: "c".into() },
                pin_error_msg: String::new(),
            },
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Root": {"Cid": {"/": "c"}, "PinErrorMsg": ""}})
        );
        let v = serde_json::to_value(PubsubMessage {
            from: "f".into(),
            data: "d".into(),
            seqno: "s".into(),
            topic_ids: vec!["t".into()],
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"from": "f", "data": "d", "seqno": "s", "topicIDs": ["t"]})
        );
        let v = serde_json::to_value(RoutingEvent {
            extra: String::new(),
            id: String::new(),
            responses: vec![Provider {
                id: "p".into(),
                addrs: vec![],
            }],
            kind: RoutingEvent::PROVIDER,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Extra": "", "ID": "", "Responses": [{"ID": "p", "Addrs": []}], "Type": 4})
        );
        assert_eq!(serde_json::to_string(&Empty {}).unwrap(), "{}");
    }

    #[test]
    fn pins_and_removed_blocks_leave_out_what_kubo_leaves_out() {
        let removed = BlockRemoved {
            hash: "h".into(),
            error: None,
        };
        assert_eq!(serde_json::to_string(&removed).unwrap(), r#"{"Hash":"h"}"#);
        let back: BlockRemoved = serde_json::from_str(r#"{"Hash":"h","Error":"gone"}"#).unwrap();
        assert_eq!(back.error.as_deref(), Some("gone"));
        let none = PinList {
            keys: BTreeMap::new(),
        };
        assert_eq!(serde_json::to_string(&none).unwrap(), "{}");
        assert_eq!(serde_json::from_str::<PinList>("{}").unwrap(), none);
        let line = PinListed {
            cid: "c".into(),
            kind: "direct".into(),
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"Cid":"c","Type":"direct"}"#
        );
    }

    #[test]
    fn dag_stat_is_shaped_as_kubo_0_22_shapes_it() {
        let summary = DagStatSummary {
            unique_blocks: 2,
            total_size: 10,
            shared_size: 0,
            ratio: 1.0,
            dag_stats: vec![DagStat {
                cid: "c".into(),
                size: 10,
                num_blocks: 2,
            }],
        };
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            r#"{"UniqueBlocks":2,"TotalSize":10,"Ratio":1,"DagStats":[{"Cid":"c","Size":10,"NumBlocks":2}]}"#
        );
        let ratio = DagStatSummary {
            ratio: 1.5,
            ..DagStatSummary::default()
        };
        assert_eq!(serde_json::to_string(&ratio).unwrap(), r#"{"Ratio":1.5}"#);
        let line = Ping {
            success: true,
            time: 5,
            text: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"Success":true,"Time":5,"Text":""}"#
        );
        let r = Ref {
            reference: "r".into(),
            err: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"Ref":"r","Err":""}"#
        );
    }
}
