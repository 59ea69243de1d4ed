//! `/ipfsbench/index-sync/1.0.0` on plain libp2p streams: the manifest server, the
//! request, and pulling a peer's new partitions.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use ipfsbench_protocols::index::{
    read_frame, write_frame, IndexError, Partition, Request, Response, Table, MAX_ENTRIES,
    MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL,
};
use ipfsbench_protocols::task::WirePeer;
use libp2p::PeerId;

use super::error::Error;
use super::shared::Shared;
use super::spool::{Manifest, MAX_PARTITION_BYTES};

/// A peer's manifest entries kept, at most: past this it is cut off.
pub(crate) const MAX_MANIFEST_ENTRIES: usize = 200_000;
/// Manifest requests answered at once.
const SERVING: usize = 16;
/// One request and its answer, at most.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Partitions fetched at once from one peer.
const FETCHING: usize = 8;

/// Answers manifest requests until the host stops.
pub(crate) async fn serve(shared: Arc<Shared>) {
    let mut incoming = match shared.client.streams().accept(PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::warn!("serving {PROTOCOL}: {e}");
            return;
        }
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(SERVING));
    while let Some((_peer, stream)) = incoming.next().await {
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            continue; // dropped: the asker retries at the next announcement
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, answer(&shared, stream)).await;
            drop(permit);
        });
    }
}

async fn answer(shared: &Shared, mut stream: libp2p::Stream) -> Result<(), IndexError> {
    let request = Request::decode(&read_frame(&mut stream, MAX_REQUEST_BYTES).await?)?;
    let response = {
        let manifests = shared.manifests.read().unwrap_or_else(|e| e.into_inner());
        let unknown = Manifest::default();
        let own = manifests.get(&request.node.0).unwrap_or(&unknown);
        let start = own.partitions.partition_point(|p| p.seq <= request.since);
        let mut partitions: Vec<Partition> = own.partitions[start..]
            .iter()
            .take(MAX_ENTRIES)
            .cloned()
            .collect();
        // Entries with long replacement lists may not fit: fewer per answer then.
        loop {
            let response = Response {
                latest: own.latest,
                partitions,
            };
            match response.encode() {
                Ok(bytes) => break bytes,
                Err(_) if response.partitions.len() > 1 => {
                    partitions = response.partitions;
                    partitions.truncate(partitions.len() / 2);
                }
                Err(e) => return Err(e),
            }
        }
    };
    write_frame(&mut stream, &response).await?;
    shared
        .counters
        .manifests_served
        .fetch_add(1, Ordering::Relaxed);
    futures::AsyncWriteExt::close(&mut stream).await?;
    Ok(())
}

/// Asks `peer` for `node`'s manifest after `since`.
async fn request(
    shared: &Shared,
    peer: PeerId,
    node: PeerId,
    since: u64,
) -> Result<Response, Error> {
    let misbehaved = |reason: String| Error::Misbehaved { peer, reason };
    let exchange = async {
        let mut stream = shared
            .client
            .streams()
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let bytes = Request {
            node: WirePeer(node),
            since,
        }
        .encode()
        .map_err(|e| Error::Corrupt(e.to_string()))?;
        write_frame(&mut stream, &bytes)
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let bytes = match read_frame(&mut stream, MAX_RESPONSE_BYTES).await {
            Ok(bytes) => bytes,
            Err(IndexError::Io(e)) => return Err(Error::Io(e)),
            Err(e) => return Err(misbehaved(e.to_string())),
        };
        Response::decode(&bytes).map_err(|e| misbehaved(e.to_string()))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))?
}

/// Brings `known` (what we have of `node`'s manifest) up to date and fetches the live
/// partitions of `tables` that are not here; returns the new manifest once every one of
/// them is here and checked. The manifest is asked of `node` itself or, when it cannot be
/// reached, of a connected trusted member that synced it.
pub(crate) async fn pull(
    shared: &Arc<Shared>,
    node: PeerId,
    known: Manifest,
    tables: &[Table],
    trusted: &HashSet<PeerId>,
    timeout: Duration,
) -> Result<Manifest, Error> {
    let mut manifest = known;
    let mut source = node;
    let me = shared.repo.peer_id();
    loop {
        let response = match request(shared, source, node, manifest.latest).await {
            Ok(r) => r,
            Err(Error::Io(e)) if source == node => {
                // Not reachable directly: ask the trusted members we are connected to.
                let peers = shared.client.peers().await?;
                let mut found = None;
                for p in peers.iter().map(|p| p.peer) {
                    if p == node || p == me || !trusted.contains(&p) {
                        continue;
                    }
                    if let Ok(r) = request(shared, p, node, manifest.latest).await {
                        if r.latest > manifest.latest {
                            found = Some((p, r));
                            break;
                        }
                    }
                }
                let Some((p, r)) = found else {
                    return Err(Error::Io(e));
                };
                source = p;
                r
            }
            Err(e) => return Err(e),
        };
        let before = manifest.latest;
        for p in response.partitions {
            if p.seq > manifest.latest {
                manifest.latest = p.seq;
                manifest.partitions.push(p);
            }
        }
        if manifest.partitions.len() > MAX_MANIFEST_ENTRIES {
            return Err(Error::Misbehaved {
                peer: source,
                reason: format!("a manifest of more than {MAX_MANIFEST_ENTRIES} entries"),
            });
        }
        if manifest.latest >= response.latest || manifest.latest == before {
            break;
        }
    }
    let wanted: Vec<Partition> = manifest
        .live()
        .filter(|p| tables.contains(&p.table) && !shared.spool.part(&p.cid.0).exists())
        .cloned()
        .collect();
    futures::stream::iter(wanted)
        .map(|p| fetch(shared, p, timeout))
        .buffer_unordered(FETCHING)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(manifest)
}

/// Fetches one partition with Bitswap, checks it and puts it in place, kept from GC.
async fn fetch(shared: &Arc<Shared>, p: Partition, timeout: Duration) -> Result<(), Error> {
    let cid = p.cid.0;
    if p.bytes > MAX_PARTITION_BYTES {
        return Err(Error::Rejected {
            cid,
            reason: format!("{} bytes, over the bound of {MAX_PARTITION_BYTES}", p.bytes),
        });
    }
    tokio::time::timeout(timeout, shared.client.fetch_dag(&shared.repo, cid))
        .await
        .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))??;
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let tmp = shared.spool.scratch("fetched.parquet");
        let result = ipfsbench_store::unixfs::get(shared.repo.store(), &cid, &tmp)
            .map_err(|e| Error::Rejected {
                cid,
                reason: e.to_string(),
            })
            .and_then(|_| shared.spool.accept(shared.engine()?, &tmp, &p));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        shared.keep(&cid)?;
        shared
            .counters
            .partitions_fetched
            .fetch_add(1, Ordering::Relaxed);
        shared
            .counters
            .bytes_fetched
            .fetch_add(p.bytes, Ordering::Relaxed);
        Ok(())
    })
    .await
    .map_err(|_| Error::Stopped)?
}
