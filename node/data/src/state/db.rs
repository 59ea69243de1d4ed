//! The materialized state, kept durably in the repo's sled database so a restart does not
//! replay history. Every delta is applied in one transaction over all trees: a crash leaves
//! the state as it was before the delta or after it, never between.
//!
//! - `state.entries`: key → the winning write (stamp, writer, seq, value or tombstone).
//!   Last writer wins: the higher (stamp, writer) pair, so every node picks the same winner.
//! - `state.writers`: writer → its highest applied delta (the version vector).
//! - `state.heads`: writer → its head, when that delta is not known to be another's parent.
//! - `state.deltas`: (writer, seq) → CID, the history kept until a snapshot covers it.
//! - `state.meta`: the digest and count of live entries, the clock's reserve, the floor.

use cid::Cid;
use ipfsbench_protocols::state::delta::Delta;
use ipfsbench_protocols::state::snapshot::{Covered, Entry};
use ipfsbench_protocols::state::DeltaRef;
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::collections::HashMap;
use std::ops::Bound;

/// Failures of the state database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// sled failed.
    #[error("state database: {0}")]
    Sled(#[from] sled::Error),
    /// Stored bytes do not decode: the database is damaged.
    #[error("state database is damaged: {0}")]
    Corrupt(&'static str),
}

impl From<TransactionError<DbError>> for DbError {
    fn from(e: TransactionError<DbError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => DbError::Sled(e),
        }
    }
}

/// A writer's highest applied delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Its sequence.
    pub seq: u64,
    /// Its stamp.
    pub stamp: u64,
    /// Where it is.
    pub delta: DeltaRef,
}

/// What applying a delta did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was applied; this many keys changed.
    Changed(usize),
    /// It was applied before.
    Already,
    /// A delta it depends on is not applied yet.
    NotReady,
    /// It breaks the writer's chain (a stamp not above its previous one).
    Invalid,
}

/// The digest of the live entries (XOR of each entry's hash) and their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Live (not removed) keys.
    pub live: u64,
    /// Tombstones kept.
    pub tombstones: u64,
    /// Equal digests, equal live states.
    pub digest: [u8; 32],
}

/// The state trees.
#[derive(Debug, Clone)]
pub struct Db {
    entries: sled::Tree,
    writers: sled::Tree,
    heads: sled::Tree,
    deltas: sled::Tree,
    meta: sled::Tree,
}

const SUMMARY: &[u8] = b"summary";

fn abort(e: DbError) -> ConflictableTransactionError<DbError> {
    ConflictableTransactionError::Abort(e)
}

impl Db {
    /// The state in the repo's database.
    pub fn open(db: &sled::Db) -> Result<Self, DbError> {
        Ok(Self {
            entries: db.open_tree("state.entries")?,
            writers: db.open_tree("state.writers")?,
            heads: db.open_tree("state.heads")?,
            deltas: db.open_tree("state.deltas")?,
            meta: db.open_tree("state.meta")?,
        })
    }

    /// The value of `key`, if it is set.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(match self.entries.get(key)? {
            Some(bytes) => decode_entry(key, &bytes)?.value,
            None => None,
        })
    }

    /// Every live entry whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), DbError>> {
        self.entries.scan_prefix(prefix).filter_map(|item| {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e.into())),
            };
            match decode_entry(&k, &v) {
                Ok(Entry {
                    value: Some(value), ..
                }) => Some(Ok((k.to_vec(), value))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    /// Every entry, tombstones included, in key order.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry, DbError>> {
        self.entries.iter().map(|item| {
            let (k, v) = item?;
            decode_entry(&k, &v)
        })
    }

    /// The live entries' digest and counts.
    pub fn summary(&self) -> Result<Summary, DbError> {
        Ok(match self.meta.get(SUMMARY)? {
            Some(bytes) => decode_summary(&bytes)?,
            None => Summary::default(),
        })
    }

    /// The highest applied delta of `writer`.
    pub fn version(&self, writer: &PeerId) -> Result<Option<Version>, DbError> {
        self.writers
            .get(writer.to_bytes())?
            .map(|b| decode_version(*writer, &b))
            .transpose()
    }

    /// The version vector.
    pub fn versions(&self) -> Result<Vec<Version>, DbError> {
        self.writers
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let writer = PeerId::from_bytes(&k).map_err(|_| DbError::Corrupt("writer"))?;
                decode_version(writer, &v)
            })
            .collect()
    }

    /// The heads: what the next local delta links to.
    pub fn heads(&self) -> Result<Vec<DeltaRef>, DbError> {
        self.heads
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let writer = PeerId::from_bytes(&k).map_err(|_| DbError::Corrupt("head"))?;
                Ok(decode_version(writer, &v)?.delta)
            })
            .collect()
    }

    /// Whether the delta `r` is applied.
    pub fn has(&self, r: &DeltaRef) -> Result<bool, DbError> {
        Ok(self.version(&r.writer)?.is_some_and(|v| v.seq >= r.seq))
    }

    /// Applies `delta` (whose block is `cid`) if every delta it depends on is applied.
    pub fn apply(&self, cid: Cid, delta: &Delta) -> Result<Applied, DbError> {
        let current = self.version(&delta.writer)?;
        let seq = current.map_or(0, |v| v.seq);
        if delta.seq <= seq {
            return Ok(Applied::Already);
        }
        if delta.seq != seq + 1 {
            return Ok(Applied::NotReady);
        }
        if current.is_some_and(|v| delta.stamp <= v.stamp) {
            return Ok(Applied::Invalid);
        }
        for p in &delta.parents {
            if !self.has(p)? {
                return Ok(Applied::NotReady);
            }
        }
        let me = delta.reference(cid);
        let trees = (
            &self.entries,
            &self.writers,
            &self.heads,
            &self.deltas,
            &self.meta,
        );
        let changed = trees.transaction(|(entries, writers, heads, deltas, meta)| {
            let mut summary = read_summary(meta)?;
            let mut changed = 0;
            for op in &delta.ops {
                let new = Entry {
                    key: op.key.clone(),
                    stamp: delta.stamp,
                    writer: delta.writer,
                    seq: delta.seq,
                    value: op.value.clone(),
                };
                if merge(entries, &mut summary, new)? {
                    changed += 1;
                }
            }
            let version = encode_version(delta.seq, delta.stamp, &me);
            writers.insert(delta.writer.to_bytes(), version.clone())?;
            for p in &delta.parents {
                let key = p.writer.to_bytes();
                if let Some(head) = heads.get(&key)? {
                    let head = decode_version(p.writer, &head).map_err(abort)?;
                    if head.delta.cid == p.cid {
                        heads.remove(key)?;
                    }
                }
            }
            heads.insert(delta.writer.to_bytes(), version)?;
            deltas.insert(history_key(&delta.writer, delta.seq), cid.to_bytes())?;
            meta.insert(SUMMARY, encode_summary(&summary))?;
            Ok(changed)
        })?;
        Ok(Applied::Changed(changed))
    }

    /// Merges a snapshot that covers `covered` with `heads`: its `entries` (in strictly
    /// increasing key order) join this state, and entries this state has from deltas the
    /// snapshot covers but does not hold are dropped (it holds their successors or collected
    /// their tombstones). See [`Db::merge_snapshot_piece`] for a snapshot taken in pieces.
    pub fn merge_snapshot(
        &self,
        covered: &[Covered],
        heads: &[DeltaRef],
        entries: Vec<Entry>,
    ) -> Result<(), DbError> {
        let applied = self.applied()?;
        let all = (Bound::Unbounded, Bound::Unbounded);
        self.merge_snapshot_piece(covered, &applied, all, &entries)?;
        self.finish_snapshot(covered, heads)
    }

    /// The sequence each writer's applied deltas reach: what a snapshot piece leaves alone.
    pub fn applied(&self) -> Result<HashMap<PeerId, u64>, DbError> {
        Ok(self
            .versions()?
            .into_iter()
            .map(|v| (v.delta.writer, v.seq))
            .collect())
    }

    /// Merges one piece of a snapshot, in one transaction: `entries` (in strictly increasing
    /// key order) are every entry the snapshot holds in the key `range`; local entries in that
    /// range that the snapshot covers but does not hold are dropped. A snapshot merged piece by
    /// piece, its ranges following each other, then [`Db::finish_snapshot`], is merged as
    /// [`Db::merge_snapshot`] merges it whole, in memory bounded by a piece. A node stopped
    /// between pieces holds a merge of part of a snapshot: still a state the deltas and the
    /// snapshot merge into (merging is idempotent), and, its versions not moved, still behind.
    /// `applied`: [`Db::applied`] before the first piece.
    pub fn merge_snapshot_piece(
        &self,
        covered: &[Covered],
        applied: &HashMap<PeerId, u64>,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        entries: &[Entry],
    ) -> Result<(), DbError> {
        if entries.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err(DbError::Corrupt("snapshot entries out of order"));
        }
        // A write this node applied already counts as it stands here: the snapshot may be
        // older than what followed it (a removal whose tombstone was since dropped).
        let local: Vec<Entry> = self
            .entries
            .range::<Vec<u8>, _>(range)
            .map(|kv| {
                let (k, v) = kv?;
                decode_entry(&k, &v)
            })
            .collect::<Result<_, _>>()?;
        let trees = (&self.entries, &self.meta);
        trees.transaction(|(tx_entries, meta)| {
            let mut summary = read_summary(meta)?;
            for e in &local {
                let is_covered = covered.iter().any(|c| c.covers(&e.writer, e.seq));
                let held = entries.binary_search_by(|x| x.key.cmp(&e.key)).is_ok();
                if is_covered && !held {
                    tx_entries.remove(e.key.as_slice())?;
                    account(&mut summary, Some(e), None);
                }
            }
            for e in entries {
                if applied.get(&e.writer).is_some_and(|&seq| seq >= e.seq) {
                    continue;
                }
                merge(tx_entries, &mut summary, e.clone())?;
            }
            meta.insert(SUMMARY, encode_summary(&summary))?;
            Ok(())
        })?;
        Ok(())
    }

    /// Records what a merged snapshot covers: each writer's version moves up to it, and its
    /// `heads` become this state's heads where this node has nothing later. One transaction.
    pub fn finish_snapshot(&self, covered: &[Covered], heads: &[DeltaRef]) -> Result<(), DbError> {
        let trees = (&self.writers, &self.heads);
        trees.transaction(|(writers, tx_heads)| {
            for c in covered {
                let key = c.delta.writer.to_bytes();
                let local = match writers.get(&key)? {
                    Some(v) => decode_version(c.delta.writer, &v).map_err(abort)?.seq,
                    None => 0,
                };
                if local < c.delta.seq {
                    writers.insert(key.clone(), encode_version(c.delta.seq, c.stamp, &c.delta))?;
                }
                // The writer's head: the snapshot's, unless this node has a later delta.
                if let Some(head) = tx_heads.get(&key)? {
                    let head = decode_version(c.delta.writer, &head).map_err(abort)?;
                    if head.seq <= c.delta.seq {
                        tx_heads.remove(key.clone())?;
                    }
                }
                if local <= c.delta.seq && heads.iter().any(|h| h.cid == c.delta.cid) {
                    tx_heads.insert(key, encode_version(c.delta.seq, c.stamp, &c.delta))?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Drops tombstones with stamps at or below `floor`; returns how many.
    pub fn collect_tombstones(&self, floor: u64) -> Result<u64, DbError> {
        let dead: Vec<Vec<u8>> = self
            .entries()
            .filter_map(|e| match e {
                Ok(e) if e.value.is_none() && e.stamp <= floor => Some(Ok(e.key)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        let trees = (&self.entries, &self.meta);
        trees.transaction(|(entries, meta)| {
            let mut summary = read_summary(meta)?;
            for key in &dead {
                entries.remove(key.as_slice())?;
            }
            summary.tombstones = summary.tombstones.saturating_sub(dead.len() as u64);
            meta.insert(SUMMARY, encode_summary(&summary))?;
            Ok(())
        })?;
        Ok(dead.len() as u64)
    }

    /// Forgets the history of deltas covered by `covered`; returns their CIDs.
    pub fn forget_history(&self, covered: &[Covered]) -> Result<Vec<Cid>, DbError> {
        let mut out = Vec::new();
        for c in covered {
            let start = history_key(&c.delta.writer, 0);
            let end = history_key(&c.delta.writer, c.delta.seq.saturating_add(1));
            for item in self.deltas.range(start..end) {
                let (k, v) = item?;
                out.push(Cid::try_from(v.as_ref()).map_err(|_| DbError::Corrupt("history"))?);
                self.deltas.remove(k)?;
            }
        }
        Ok(out)
    }

    /// Makes every change so far durable.
    pub fn flush(&self) -> Result<(), DbError> {
        self.entries.flush()?;
        Ok(())
    }

    /// A stored number of the meta tree.
    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>, DbError> {
        self.meta
            .get(key.as_bytes())?
            .map(|b| read_u64(&b, 0).ok_or(DbError::Corrupt("meta number")))
            .transpose()
    }

    /// Stores a number in the meta tree.
    pub fn set_meta_u64(&self, key: &str, value: u64) -> Result<(), DbError> {
        self.meta.insert(key.as_bytes(), &value.to_be_bytes())?;
        Ok(())
    }

    /// Stored bytes of the meta tree.
    pub fn meta_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.meta.get(key.as_bytes())?.map(|b| b.to_vec()))
    }

    /// Stores bytes in the meta tree.
    pub fn set_meta_bytes(&self, key: &str, value: &[u8]) -> Result<(), DbError> {
        self.meta.insert(key.as_bytes(), value)?;
        Ok(())
    }
}

/// Joins `new` into the entries: the higher (stamp, writer) wins. Whether it won.
fn merge(
    entries: &TransactionalTree,
    summary: &mut Summary,
    new: Entry,
) -> Result<bool, ConflictableTransactionError<DbError>> {
    let old = entries
        .get(new.key.as_slice())?
        .map(|b| decode_entry(&new.key, &b))
        .transpose()
        .map_err(abort)?;
    if let Some(old) = &old {
        if (old.stamp, old.writer.to_bytes()) >= (new.stamp, new.writer.to_bytes()) {
            return Ok(false);
        }
    }
    entries.insert(new.key.as_slice(), encode_entry(&new))?;
    account(summary, old.as_ref(), Some(&new));
    Ok(true)
}

/// Updates the digest and counts for `old` replaced by `new`.
fn account(summary: &mut Summary, old: Option<&Entry>, new: Option<&Entry>) {
    for (e, sign) in [(old, false), (new, true)] {
        let Some(e) = e else { continue };
        match &e.value {
            Some(value) => {
                let h = entry_hash(&e.key, value);
                for (d, x) in summary.digest.iter_mut().zip(h) {
                    *d ^= x;
                }
                summary.live = if sign {
                    summary.live + 1
                } else {
                    summary.live.saturating_sub(1)
                };
            }
            None => {
                summary.tombstones = if sign {
                    summary.tombstones + 1
                } else {
                    summary.tombstones.saturating_sub(1)
                };
            }
        }
    }
}

/// The hash of a live key and its value: the digest is the XOR of these.
pub(super) fn entry_hash(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(value);
    h.finalize().into()
}

fn read_summary(
    meta: &TransactionalTree,
) -> Result<Summary, ConflictableTransactionError<DbError>> {
    match meta.get(SUMMARY)? {
        Some(bytes) => decode_summary(&bytes).map_err(abort),
        None => Ok(Summary::default()),
    }
}

fn encode_summary(s: &Summary) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&s.live.to_be_bytes());
    out.extend_from_slice(&s.tombstones.to_be_bytes());
    out.extend_from_slice(&s.digest);
    out
}

fn decode_summary(b: &[u8]) -> Result<Summary, DbError> {
    let bad = DbError::Corrupt("summary");
    let digest = b.get(16..48).ok_or(DbError::Corrupt("summary"))?;
    Ok(Summary {
        live: read_u64(b, 0).ok_or(bad)?,
        tombstones: read_u64(b, 8).ok_or(DbError::Corrupt("summary"))?,
        digest: digest.try_into().map_err(|_| DbError::Corrupt("summary"))?,
    })
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// (writer length, writer, seq): a writer's history in sequence order.
fn history_key(writer: &PeerId, seq: u64) -> Vec<u8> {
    let w = writer.to_bytes();
    let mut k = Vec::with_capacity(w.len() + 9);
    k.push(w.len() as u8);
    k.extend_from_slice(&w);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn encode_version(seq: u64, stamp: u64, delta: &DeltaRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&stamp.to_be_bytes());
    out.extend_from_slice(&delta.height.to_be_bytes());
    out.extend_from_slice(&delta.cid.to_bytes());
    out
}

fn decode_version(writer: PeerId, b: &[u8]) -> Result<Version, DbError> {
    let bad = || DbError::Corrupt("version");
    let seq = read_u64(b, 0).ok_or_else(bad)?;
    let cid = Cid::try_from(b.get(24..).ok_or_else(bad)?).map_err(|_| bad())?;
    Ok(Version {
        seq,
        stamp: read_u64(b, 8).ok_or_else(bad)?,
        delta: DeltaRef {
            cid,
            writer,
            seq,
            height: read_u64(b, 16).ok_or_else(bad)?,
        },
    })
}

/// (stamp, seq, writer length, writer, 0 | 1 value).
fn encode_entry(e: &Entry) -> Vec<u8> {
    let w = e.writer.to_bytes();
    let mut out = Vec::with_capacity(18 + w.len() + e.value.as_ref().map_or(0, Vec::len));
    out.extend_from_slice(&e.stamp.to_be_bytes());
    out.extend_from_slice(&e.seq.to_be_bytes());
    out.push(w.len() as u8);
    out.extend_from_slice(&w);
    match &e.value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
    out
}

fn decode_entry(key: &[u8], b: &[u8]) -> Result<Entry, DbError> {
    let bad = || DbError::Corrupt("entry");
    let wlen = usize::from(*b.get(16).ok_or_else(bad)?);
    let writer = PeerId::from_bytes(b.get(17..17 + wlen).ok_or_else(bad)?).map_err(|_| bad())?;
    let value = match b.get(17 + wlen).ok_or_else(bad)? {
        0 => None,
        1 => Some(b[18 + wlen..].to_vec()),
        _ => return Err(bad()),
    };
    Ok(Entry {
        key: key.to_vec(),
        stamp: read_u64(b, 0).ok_or_else(bad)?,
        writer,
        seq: read_u64(b, 8).ok_or_else(bad)?,
        value,
    })
}
