//! Writing a snapshot of the state as blocks, and starting from a peer's.

use std::ops::Bound;
use std::time::Duration;

use cid::Cid;
use futures::stream::{FuturesOrdered, StreamExt};
use ipfsbench_protocols::state::snapshot::{
    decode_chunk, encode_chunk, Covered, Entry, SnapshotRoot, CHUNK_TARGET,
};
use ipfsbench_protocols::state::DAG_CBOR;
use libp2p::PeerId;

use super::db::{Db, DbError};
use super::error::Error;
use ipfsbench_net::network::Client;
use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::Block;

/// Chunks of a snapshot fetched at once.
const CHUNK_FETCHES: usize = 16;
/// The most entries a snapshot may hold to be loaded (the state is held in memory while it
/// is merged).
const MAX_ENTRIES: u64 = 10_000_000;
/// The meta key of the newest snapshot's root.
pub(super) const SNAPSHOT_KEY: &str = "snapshot";
/// The meta key of the tombstone floor the newest snapshot used.
pub(super) const FLOOR_KEY: &str = "floor";

/// Stores `bytes` as a kept DAG-CBOR block; its CID.
pub(super) fn put_kept(repo: &Repo, bytes: Vec<u8>) -> Result<Cid, Error> {
    let block = Block::hash(DAG_CBOR, bytes, false);
    repo.pins().keep(block.cid())?;
    repo.store().put(&block)?;
    Ok(*block.cid())
}

/// The snapshot whose root is `cid`, read from the local store.
pub(super) fn read_root(repo: &Repo, cid: &Cid) -> Result<SnapshotRoot, Error> {
    let bytes = repo
        .store()
        .get(cid)?
        .ok_or_else(|| snapshot_error(*cid, "root block not stored"))?;
    SnapshotRoot::decode(&bytes).map_err(|e| snapshot_error(*cid, e))
}

fn snapshot_error(cid: Cid, reason: impl ToString) -> Error {
    Error::Snapshot {
        cid,
        reason: reason.to_string(),
    }
}

/// Writes the state as a snapshot, dropping tombstones at or below `floor` first; lets go of
/// the previous snapshot and of the history it covered. Returns the root and the number of
/// tombstones dropped.
pub(super) fn write(repo: &Repo, db: &Db, floor: u64) -> Result<(Cid, u64), Error> {
    let collected = db.collect_tombstones(floor)?;
    let versions = db.versions()?;
    let covered: Vec<Covered> = versions
        .iter()
        .map(|v| Covered {
            delta: v.delta,
            stamp: v.stamp,
        })
        .collect();
    let mut chunks = Vec::new();
    let mut chunk: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    let mut count = 0u64;
    for entry in db.entries() {
        let entry = entry?;
        bytes += entry.key.len() + entry.value.as_ref().map_or(0, Vec::len) + 32;
        count += 1;
        chunk.push(entry);
        if bytes >= CHUNK_TARGET {
            chunks.push(put_kept(repo, encode_chunk(&chunk, &covered)?)?);
            chunk.clear();
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        chunks.push(put_kept(repo, encode_chunk(&chunk, &covered)?)?);
    }
    let summary = db.summary()?;
    let root = SnapshotRoot {
        covered,
        heads: db.heads()?,
        floor,
        entries: count,
        digest: summary.digest,
        chunks,
    };
    let cid = put_kept(repo, root.encode())?;
    repo.store().flush()?;
    adopt(repo, db, cid, &root)?;
    Ok((cid, collected))
}

/// Makes `cid` this node's snapshot: the previous one's blocks and the history it covered
/// are let go (the new one covers at least as much).
fn adopt(repo: &Repo, db: &Db, cid: Cid, root: &SnapshotRoot) -> Result<(), Error> {
    let previous = db.meta_bytes(SNAPSHOT_KEY)?;
    // Recorded (durably) before anything is let go: a crash in between leaves blocks kept
    // for nothing, never a snapshot announced that is gone.
    db.set_meta_bytes(SNAPSHOT_KEY, &cid.to_bytes())?;
    let floor = db.meta_u64(FLOOR_KEY)?.unwrap_or(0).max(root.floor);
    db.set_meta_u64(FLOOR_KEY, floor)?;
    db.flush()?;
    if let Some(previous) = previous {
        let previous =
            Cid::try_from(previous.as_slice()).map_err(|_| DbError::Corrupt("snapshot root"))?;
        if previous != cid {
            if let Ok(old) = read_root(repo, &previous) {
                for delta in db.forget_history(&old.covered)? {
                    repo.pins().release(&delta)?;
                }
                for chunk in old.chunks.iter().filter(|c| !root.chunks.contains(c)) {
                    repo.pins().release(chunk)?;
                }
            }
            repo.pins().release(&previous)?;
        }
    }
    Ok(())
}

/// Fetches the snapshot `cid` from `from` (and whoever has it), checks it, and merges it into
/// the state. Returns its root. The snapshot is not kept: the caller writes its own, which
/// covers at least as much, before it lets go of any history.
pub(super) async fn load(
    repo: &std::sync::Arc<Repo>,
    client: &Client,
    db: &Db,
    cid: Cid,
    from: PeerId,
    timeout: Duration,
) -> Result<SnapshotRoot, Error> {
    fetch(client, cid, from, timeout).await?;
    let root = read_root(repo, &cid)?;
    if root.entries > MAX_ENTRIES {
        return Err(snapshot_error(
            cid,
            format!("more than {MAX_ENTRIES} entries"),
        ));
    }
    // First every chunk is fetched and checked (order, count, digest) without keeping its
    // entries; then each is decoded again and merged as one piece: memory stays that of a
    // chunk, whatever the size of the state.
    let mut fetches = FuturesOrdered::new();
    let mut chunks = root.chunks.iter();
    let mut check = Check::default();
    loop {
        while fetches.len() < CHUNK_FETCHES {
            let Some(chunk) = chunks.next() else { break };
            let chunk = *chunk;
            fetches.push_back(
                async move { fetch(client, chunk, from, timeout).await.map(|()| chunk) },
            );
        }
        let Some(done) = fetches.next().await else {
            break;
        };
        let entries = read_chunk(repo, cid, &done?, &root)?;
        check.add(&entries).map_err(|e| snapshot_error(cid, e))?;
        if check.count > root.entries {
            return Err(snapshot_error(cid, "more entries than the root says"));
        }
    }
    if check.count != root.entries {
        return Err(snapshot_error(cid, "entry count does not match"));
    }
    if check.digest != root.digest {
        return Err(snapshot_error(cid, "digest does not match its entries"));
    }
    let applied = db.applied()?;
    let mut lower: Bound<Vec<u8>> = Bound::Unbounded;
    let mut merged_to_end = false;
    for (i, chunk) in root.chunks.iter().enumerate() {
        let entries = read_chunk(repo, cid, chunk, &root)?;
        let Some(last) = entries.last() else {
            continue;
        };
        let upper = if i + 1 < root.chunks.len() {
            Bound::Included(last.key.clone())
        } else {
            merged_to_end = true;
            Bound::Unbounded
        };
        let next = Bound::Excluded(last.key.clone());
        db.merge_snapshot_piece(&root.covered, &applied, (lower, upper), &entries)?;
        lower = next;
    }
    if !merged_to_end {
        // Past the last entry (or an empty snapshot): what the snapshot does not hold there.
        db.merge_snapshot_piece(&root.covered, &applied, (lower, Bound::Unbounded), &[])?;
    }
    db.finish_snapshot(&root.covered, &root.heads)?;
    let floor = db.meta_u64(FLOOR_KEY)?.unwrap_or(0).max(root.floor);
    db.set_meta_u64(FLOOR_KEY, floor)?;
    db.flush()?;
    Ok(root)
}

async fn fetch(client: &Client, cid: Cid, from: PeerId, timeout: Duration) -> Result<(), Error> {
    match tokio::time::timeout(timeout, client.fetch_block(cid, vec![from])).await {
        Ok(result) => result.map(|_| ()).map_err(Error::from),
        Err(_) => Err(snapshot_error(
            cid,
            format!("not fetched within {timeout:?}"),
        )),
    }
}

/// A chunk's entries, from the store.
fn read_chunk(
    repo: &Repo,
    cid: Cid,
    chunk: &Cid,
    root: &SnapshotRoot,
) -> Result<Vec<Entry>, Error> {
    let bytes = repo
        .store()
        .get(chunk)?
        .ok_or_else(|| snapshot_error(cid, "chunk not stored"))?;
    decode_chunk(&bytes, &root.covered).map_err(|e| snapshot_error(cid, e))
}

/// A snapshot's entries checked as they stream by: strictly increasing keys, their count and
/// the digest of the live ones.
#[derive(Default)]
struct Check {
    last: Option<Vec<u8>>,
    count: u64,
    digest: [u8; 32],
}

impl Check {
    fn add(&mut self, entries: &[Entry]) -> Result<(), &'static str> {
        for e in entries {
            if self.last.as_ref().is_some_and(|last| *last >= e.key) {
                return Err("entries out of order");
            }
            self.last = Some(e.key.clone());
            if let Some(value) = &e.value {
                for (d, x) in self
                    .digest
                    .iter_mut()
                    .zip(super::db::entry_hash(&e.key, value))
                {
                    *d ^= x;
                }
            }
        }
        self.count += entries.len() as u64;
        Ok(())
    }
}
