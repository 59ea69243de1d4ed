//! A snapshot: the whole materialized state as content-addressed blocks, with the version
//! vector it covers, so a new peer starts from it instead of walking the history.
//!
//! ```text
//! root:  { "v": 1, "vv": [ [writer, seq, stamp, link, height], ... ],
//!          "heads": [ {c, w, s, h}, ... ],
//!          "f": tombstone floor stamp, "n": entries, "d": state digest, "c": [chunk links] }
//! chunk: { "e": [ [key, stamp, writer index into vv, seq, value | null], ... ] }
//! ```
//!
//! Entries are sorted by key across the chunks. Tombstones older than the floor are left out:
//! every delta not covered by the snapshot is newer than the floor.

use cid::Cid;
use libp2p::PeerId;

use super::delta::{DeltaRef, MAX_KEY_BYTES, MAX_PARENTS, MAX_VALUE_BYTES};
use super::error::StateError;
use crate::codec::cbor::{CborError, Value};

/// The encoding version.
pub const SNAPSHOT_VERSION: u64 = 1;
/// The most chunks one snapshot may have.
pub const MAX_CHUNKS: usize = 16_384;
/// The largest chunk or root block. Bytes.
pub const MAX_SNAPSHOT_BLOCK: usize = 1 << 20;
/// A chunk is closed once its entries reach this many bytes.
pub const CHUNK_TARGET: usize = 768 * 1024;

/// How far a writer's deltas are covered: its highest delta covered, and that delta's stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    /// The writer's highest delta covered.
    pub delta: DeltaRef,
    /// Its stamp.
    pub stamp: u64,
}

impl Covered {
    /// Whether the writer's delta `seq` is covered.
    pub fn covers(&self, writer: &PeerId, seq: u64) -> bool {
        &self.delta.writer == writer && self.delta.seq >= seq
    }
}

/// A snapshot's root block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRoot {
    /// The version vector covered.
    pub covered: Vec<Covered>,
    /// The heads of the state covered.
    pub heads: Vec<DeltaRef>,
    /// Tombstones at or below this stamp are left out.
    pub floor: u64,
    /// Entries in the chunks.
    pub entries: u64,
    /// The state digest (see the engine).
    pub digest: [u8; 32],
    /// The chunks, in key order.
    pub chunks: Vec<Cid>,
}

/// One entry of the materialized state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The stamp of the delta that wrote it.
    pub stamp: u64,
    /// Its writer.
    pub writer: PeerId,
    /// That delta's sequence.
    pub seq: u64,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

impl SnapshotRoot {
    /// The root block.
    pub fn encode(&self) -> Vec<u8> {
        let vv = self
            .covered
            .iter()
            .map(|c| {
                Value::Array(vec![
                    Value::Bytes(c.delta.writer.to_bytes()),
                    Value::Uint(c.delta.seq),
                    Value::Uint(c.stamp),
                    Value::Link(c.delta.cid),
                    Value::Uint(c.delta.height),
                ])
            })
            .collect();
        let heads = self.heads.iter().map(DeltaRef::cbor).collect();
        Value::Map(vec![
            ("v".into(), Value::Uint(SNAPSHOT_VERSION)),
            ("vv".into(), Value::Array(vv)),
            ("heads".into(), Value::Array(heads)),
            ("f".into(), Value::Uint(self.floor)),
            ("n".into(), Value::Uint(self.entries)),
            ("d".into(), Value::Bytes(self.digest.to_vec())),
            (
                "c".into(),
                Value::Array(self.chunks.iter().map(|c| Value::Link(*c)).collect()),
            ),
        ])
        .encode()
    }

    /// Decodes and checks a root block.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.len() > MAX_SNAPSHOT_BLOCK {
            return Err(StateError::TooLarge(bytes.len()));
        }
        let v = Value::decode(bytes)?;
        if v.uint("v")? != SNAPSHOT_VERSION {
            return Err(StateError::Version(v.uint("v")?));
        }
        let vv = v.array("vv")?;
        let heads = v.array("heads")?;
        let chunks = v.array("c")?;
        if vv.len() > MAX_PARENTS || heads.len() > MAX_PARENTS || chunks.len() > MAX_CHUNKS {
            return Err(StateError::Limit("snapshot size"));
        }
        let covered = vv
            .iter()
            .map(|c| match c {
                Value::Array(a) => match a.as_slice() {
                    [Value::Bytes(w), Value::Uint(seq), Value::Uint(stamp), Value::Link(cid), Value::Uint(height)] => {
                        Ok(Covered {
                            delta: DeltaRef {
                                cid: *cid,
                                writer: PeerId::from_bytes(w)
                                    .map_err(|_| StateError::Invalid("writer is not a PeerId"))?,
                                seq: *seq,
                                height: *height,
                            },
                            stamp: *stamp,
                        })
                    }
                    _ => Err(CborError::Field("vv").into()),
                },
                _ => Err(CborError::Field("vv").into()),
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        let heads = heads
            .iter()
            .map(DeltaRef::from_cbor)
            .collect::<Result<Vec<_>, _>>()?;
        let chunks = chunks
            .iter()
            .map(|c| match c {
                Value::Link(cid) => Ok(*cid),
                _ => Err(StateError::from(CborError::Field("c"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let digest = v
            .bytes("d")?
            .try_into()
            .map_err(|_| StateError::Invalid("digest is not 32 bytes"))?;
        Ok(Self {
            covered,
            heads,
            floor: v.uint("f")?,
            entries: v.uint("n")?,
            digest,
            chunks,
        })
    }
}

/// Encodes a chunk of `entries`, whose writers are all in `covered`.
pub fn encode_chunk(entries: &[Entry], covered: &[Covered]) -> Result<Vec<u8>, StateError> {
    let index = |w: &PeerId| {
        covered
            .iter()
            .position(|c| &c.delta.writer == w)
            .ok_or(StateError::Invalid("an entry's writer is not covered"))
    };
    let rows = entries
        .iter()
        .map(|e| {
            Ok(Value::Array(vec![
                Value::Bytes(e.key.clone()),
                Value::Uint(e.stamp),
                Value::Uint(index(&e.writer)? as u64),
                Value::Uint(e.seq),
                e.value.clone().map_or(Value::Null, Value::Bytes),
            ]))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    Ok(Value::Map(vec![("e".into(), Value::Array(rows))]).encode())
}

/// Decodes a chunk, naming writers from `covered`.
pub fn decode_chunk(bytes: &[u8], covered: &[Covered]) -> Result<Vec<Entry>, StateError> {
    if bytes.len() > MAX_SNAPSHOT_BLOCK {
        return Err(StateError::TooLarge(bytes.len()));
    }
    let v = Value::decode(bytes)?;
    v.array("e")?
        .iter()
        .map(|row| {
            let Value::Array(cols) = row else {
                return Err(CborError::Field("e").into());
            };
            let (key, stamp, writer, seq, value) = match cols.as_slice() {
                [Value::Bytes(k), Value::Uint(t), Value::Uint(w), Value::Uint(s), v] => {
                    let value = match v {
                        Value::Bytes(b) => Some(b.clone()),
                        Value::Null => None,
                        _ => return Err(CborError::Field("e").into()),
                    };
                    (k, *t, *w, *s, value)
                }
                _ => return Err(CborError::Field("e").into()),
            };
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(StateError::Limit("key length"));
            }
            if value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
                return Err(StateError::Limit("value length"));
            }
            let writer = usize::try_from(writer)
                .ok()
                .and_then(|i| covered.get(i))
                .ok_or(StateError::Invalid("writer index out of range"))?
                .delta
                .writer;
            Ok(Entry {
                key: key.clone(),
                stamp,
                writer,
                seq,
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_snapshot_round_trips() {
        let w = PeerId::random();
        let covered = vec![Covered {
            delta: DeltaRef {
                cid: super::super::block_cid(b"d"),
                writer: w,
                seq: 9,
                height: 12,
            },
            stamp: 77,
        }];
        let entries = vec![
            Entry {
                key: b"a".to_vec(),
                stamp: 3,
                writer: w,
                seq: 2,
                value: Some(b"1".to_vec()),
            },
            Entry {
                key: b"b".to_vec(),
                stamp: 70,
                writer: w,
                seq: 9,
                value: None,
            },
        ];
        let chunk = encode_chunk(&entries, &covered).unwrap();
        assert_eq!(decode_chunk(&chunk, &covered).unwrap(), entries);
        let root = SnapshotRoot {
            covered,
            heads: vec![],
            floor: 5,
            entries: 2,
            digest: [7; 32],
            chunks: vec![super::super::block_cid(&chunk)],
        };
        assert_eq!(SnapshotRoot::decode(&root.encode()).unwrap(), root);
        assert!(decode_chunk(&chunk, &[]).is_err(), "writer out of range");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = SnapshotRoot::decode(&bytes);
            let _ = decode_chunk(&bytes, &[]);
        }
    }
}
