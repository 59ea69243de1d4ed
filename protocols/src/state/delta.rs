//! A delta: one batch of changes to the replicated state, stored as a DAG-CBOR block that
//! links to the heads it was made on.
//!
//! ```text
//! { "v": 1, "w": writer PeerId bytes, "s": writer's sequence (1, 2, ...),
//!   "h": height (1 + the highest parent's), "t": stamp (hybrid logical clock),
//!   "p": [ { "c": link, "w": writer, "s": seq, "h": height }, ... ],
//!   "o": [ [ key bytes, value bytes | null ], ... ] }
//! ```
//!
//! Each writer's deltas form a chain (its delta `s` is an ancestor of its delta `s + 1`), so
//! the set of deltas a node has applied is described exactly by a version vector: writer to
//! highest sequence. A parent names its writer and sequence, so a node knows which parents it
//! lacks without fetching them.

use cid::Cid;
use libp2p::PeerId;

use super::block::block_cid;
use super::error::StateError;
use crate::codec::cbor::{CborError, Value, DAG_CBOR};

/// The encoding version.
pub const DELTA_VERSION: u64 = 1;
/// The largest encoded delta. Bytes.
pub const MAX_DELTA_BYTES: usize = 1 << 20;
/// The most parents a delta may link to.
pub const MAX_PARENTS: usize = 256;
/// The most changes one delta may carry.
pub const MAX_OPS: usize = 16_384;
/// The longest key. Bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value. Bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A delta's place in the DAG: its CID, writer, sequence and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeltaRef {
    /// The block's CID.
    pub cid: Cid,
    /// Who wrote it.
    pub writer: PeerId,
    /// The writer's sequence number (1 for its first delta).
    pub seq: u64,
    /// 1 + the highest parent's height (1 for a delta with no parents).
    pub height: u64,
}

impl DeltaRef {
    /// The reference as the state's blocks hold it: `{ "c": link, "w": writer, "s": seq,
    /// "h": height }`.
    pub(crate) fn cbor(&self) -> Value {
        Value::Map(vec![
            ("c".into(), Value::Link(self.cid)),
            ("w".into(), Value::Bytes(self.writer.to_bytes())),
            ("s".into(), Value::Uint(self.seq)),
            ("h".into(), Value::Uint(self.height)),
        ])
    }

    /// Reads a reference as [`DeltaRef::cbor`] writes it.
    pub(crate) fn from_cbor(v: &Value) -> Result<Self, StateError> {
        Ok(DeltaRef {
            cid: v.link("c")?,
            writer: peer(v.bytes("w")?)?,
            seq: v.uint("s")?,
            height: v.uint("h")?,
        })
    }
}

/// One change: `key` set to `value`, or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The key.
    pub key: Vec<u8>,
    /// The new value; `None` removes the key.
    pub value: Option<Vec<u8>>,
}

/// A batch of changes made on `parents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Who wrote it.
    pub writer: PeerId,
    /// The writer's sequence number.
    pub seq: u64,
    /// 1 + the highest parent's height.
    pub height: u64,
    /// The writer's hybrid logical clock when it made the delta: every op's timestamp.
    pub stamp: u64,
    /// The heads it was made on.
    pub parents: Vec<DeltaRef>,
    /// The changes, each key at most once.
    pub ops: Vec<Op>,
}

impl Delta {
    /// The block bytes.
    pub fn encode(&self) -> Vec<u8> {
        let parents = self.parents.iter().map(DeltaRef::cbor).collect();
        let ops = self
            .ops
            .iter()
            .map(|op| {
                Value::Array(vec![
                    Value::Bytes(op.key.clone()),
                    op.value.clone().map_or(Value::Null, Value::Bytes),
                ])
            })
            .collect();
        Value::Map(vec![
            ("v".into(), Value::Uint(DELTA_VERSION)),
            ("w".into(), Value::Bytes(self.writer.to_bytes())),
            ("s".into(), Value::Uint(self.seq)),
            ("h".into(), Value::Uint(self.height)),
            ("t".into(), Value::Uint(self.stamp)),
            ("p".into(), Value::Array(parents)),
            ("o".into(), Value::Array(ops)),
        ])
        .encode()
    }

    /// The block and its CID.
    pub fn to_block(&self) -> (Cid, Vec<u8>) {
        let bytes = self.encode();
        (block_cid(&bytes), bytes)
    }

    /// This delta's reference, given its CID.
    pub fn reference(&self, cid: Cid) -> DeltaRef {
        DeltaRef {
            cid,
            writer: self.writer,
            seq: self.seq,
            height: self.height,
        }
    }

    /// Decodes and checks a delta block.
    pub fn decode(bytes: &[u8]) -> Result<Delta, StateError> {
        if bytes.len() > MAX_DELTA_BYTES {
            return Err(StateError::TooLarge(bytes.len()));
        }
        let v = Value::decode(bytes)?;
        if v.uint("v")? != DELTA_VERSION {
            return Err(StateError::Version(v.uint("v")?));
        }
        let parents = v.array("p")?;
        if parents.len() > MAX_PARENTS {
            return Err(StateError::Limit("parents"));
        }
        let parents = parents
            .iter()
            .map(DeltaRef::from_cbor)
            .collect::<Result<Vec<_>, StateError>>()?;
        let ops = v.array("o")?;
        if ops.len() > MAX_OPS {
            return Err(StateError::Limit("ops"));
        }
        let ops = ops.iter().map(op).collect::<Result<Vec<_>, StateError>>()?;
        let delta = Delta {
            writer: peer(v.bytes("w")?)?,
            seq: v.uint("s")?,
            height: v.uint("h")?,
            stamp: v.uint("t")?,
            parents,
            ops,
        };
        delta.check()?;
        Ok(delta)
    }

    /// The rules every delta keeps: a sequence from 1, a height one above its highest parent,
    /// parents of distinct writers, keys and values within their limits, each key once.
    pub fn check(&self) -> Result<(), StateError> {
        if self.seq == 0 {
            return Err(StateError::Invalid("sequence 0"));
        }
        let top = self.parents.iter().map(|p| p.height).max().unwrap_or(0);
        if top.checked_add(1) != Some(self.height) {
            return Err(StateError::Invalid("height is not one above the parents"));
        }
        let mut writers: Vec<&PeerId> = self.parents.iter().map(|p| &p.writer).collect();
        writers.sort();
        writers.dedup();
        if writers.len() != self.parents.len() {
            return Err(StateError::Invalid("two parents of one writer"));
        }
        if self.parents.iter().any(|p| p.cid.codec() != DAG_CBOR) {
            return Err(StateError::Invalid("a parent is not a DAG-CBOR block"));
        }
        let mut keys: Vec<&[u8]> = self.ops.iter().map(|o| o.key.as_slice()).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() != self.ops.len() {
            return Err(StateError::Invalid("a key changed twice in one delta"));
        }
        Ok(())
    }
}

fn peer(bytes: &[u8]) -> Result<PeerId, StateError> {
    PeerId::from_bytes(bytes).map_err(|_| StateError::Invalid("writer is not a PeerId"))
}

fn op(v: &Value) -> Result<Op, StateError> {
    let Value::Array(pair) = v else {
        return Err(CborError::Field("o").into());
    };
    let (key, value) = match pair.as_slice() {
        [Value::Bytes(k), Value::Bytes(v)] => (k.clone(), Some(v.clone())),
        [Value::Bytes(k), Value::Null] => (k.clone(), None),
        _ => return Err(CborError::Field("o").into()),
    };
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StateError::Limit("key length"));
    }
    if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
        return Err(StateError::Limit("value length"));
    }
    Ok(Op { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample(seq: u64) -> Delta {
        let parent = Delta {
            writer: PeerId::random(),
            seq: 1,
            height: 1,
            stamp: 5,
            parents: vec![],
            ops: vec![],
        };
        let (cid, _) = parent.to_block();
        Delta {
            writer: PeerId::random(),
            seq,
            height: 2,
            stamp: 7 << 16,
            parents: vec![parent.reference(cid)],
            ops: vec![
                Op {
                    key: b"pin/a".to_vec(),
                    value: Some(b"x".to_vec()),
                },
                Op {
                    key: b"pin/b".to_vec(),
                    value: None,
                },
            ],
        }
    }

    #[test]
    fn a_delta_round_trips_and_has_one_cid() {
        let d = sample(3);
        let (cid, bytes) = d.to_block();
        assert_eq!(cid.codec(), DAG_CBOR);
        assert_eq!(Delta::decode(&bytes).unwrap(), d);
        assert_eq!(d.to_block().0, cid);
    }

    #[test]
    fn broken_deltas_are_refused() {
        let mut d = sample(1);
        d.height = 5;
        assert!(Delta::decode(&d.encode()).is_err(), "wrong height");
        let mut d = sample(0);
        d.height = 2;
        assert!(Delta::decode(&d.encode()).is_err(), "sequence 0");
        let mut d = sample(1);
        d.ops.push(d.ops[0].clone());
        assert!(Delta::decode(&d.encode()).is_err(), "a key twice");
        let mut d = sample(1);
        d.ops[0].key = vec![1; MAX_KEY_BYTES + 1];
        assert!(Delta::decode(&d.encode()).is_err(), "long key");
    }

    proptest! {
        #[test]
        fn mutated_blocks_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = sample(2).encode();
            for (at, b) in flips {
                let i = at % bytes.len();
                bytes[i] ^= b;
            }
            let _ = Delta::decode(&bytes);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = Delta::decode(&bytes);
        }
    }
}
