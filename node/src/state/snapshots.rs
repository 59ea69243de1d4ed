//! Writing a snapshot of the state as blocks, and starting from a peer's.

use std::time::Duration;

use cid::Cid;
use futures::stream::{FuturesOrdered, StreamExt};
use ipfsbench_protocols::state::snapshot::{
    decode_chunk, encode_chunk, Covered, Entry, SnapshotRoot, CHUNK_TARGET,
};
use ipfsbench_protocols::state::DAG_CBOR;
use libp2p::PeerId;

use super::{Db, Error};
use crate::network::Client;
use crate::repo::Repo;
use crate::store::Block;

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
        let previous = Cid::try_from(previous.as_slice())
            .map_err(|_| super::DbError::Corrupt("snapshot root"))?;
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
    let mut fetches = FuturesOrdered::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut chunks = root.chunks.iter();
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
        let chunk = done?;
        let bytes = repo
            .store()
            .get(&chunk)?
            .ok_or_else(|| snapshot_error(cid, "chunk not stored"))?;
        entries.extend(decode_chunk(&bytes, &root.covered).map_err(|e| snapshot_error(cid, e))?);
        if entries.len() as u64 > root.entries {
            return Err(snapshot_error(cid, "more entries than the root says"));
        }
    }
    if entries.len() as u64 != root.entries {
        return Err(snapshot_error(cid, "entry count does not match"));
    }
    if live_digest(&entries) != root.digest {
        return Err(snapshot_error(cid, "digest does not match its entries"));
    }
    db.merge_snapshot(&root.covered, &root.heads, entries)?;
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

/// The digest of the live entries, as the database keeps it.
pub(super) fn live_digest(entries: &[Entry]) -> [u8; 32] {
    let mut digest = [0u8; 32];
    for e in entries {
        if let Some(value) = &e.value {
            for (d, x) in digest.iter_mut().zip(super::db::entry_hash(&e.key, value)) {
                *d ^= x;
            }
        }
    }
    digest
}
