//! A file's bytes streamed in order while its blocks arrive: the body of `cat` and of the
//! gateway's file responses.
//!
//! The reader keeps a window of the file's nodes in file order. Up to [`WINDOW`] of them load
//! at once (from the store, or over Bitswap when missing); a loaded node with children is
//! replaced in place by its own bytes and its children, and the bytes at the head of the
//! window go out as soon as they are there. A block fetched from the network reaches the body
//! as the very buffer Bitswap received (shared, not copied) and is never read back from the
//! store. Memory stays bounded by the window, whatever the file's size; only the blocks that
//! overlap the requested range are loaded.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use cid::Cid;
use futures::stream::FuturesUnordered;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::read::LazyError;
use ipfsbench_net::network::{self, Client};
use ipfsbench_store::repo::Repo;
use ipfsbench_store::unixfs::{self, ReadError};

/// Nodes loading at once (as many as Bitswap keeps in flight to one peer).
const WINDOW: usize = 64;
/// Chunks queued for the client before the reader waits for it.
const QUEUE: usize = 16;

/// A body of bytes `offset..offset+length` of the file `cid` (to its end when `length` is
/// `None`). `hold` lives as long as the reading. A failure after the status went out ends the
/// body with an error, so the client sees a broken transfer, not a short one. What was
/// fetched is flushed to disk once the body is done.
pub(crate) fn file_body(
    repo: Arc<Repo>,
    net: Client,
    cid: Cid,
    offset: u64,
    length: Option<u64>,
    hold: impl Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let _hold = hold;
        let mut fetched = 0u64;
        let result = stream(&repo, &net, cid, (offset, length), &tx, &mut fetched).await;
        if let Err(e) = result {
            tracing::warn!(%cid, error = %e, "response body cut short");
            let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
        }
        drop(tx);
        if fetched > 0 {
            let flushed = tokio::task::spawn_blocking(move || repo.store().flush()).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(%cid, error = %e, "flushing fetched blocks failed");
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// One node of the file in the window.
struct Slot {
    /// Names the slot while its load runs (positions shift as nodes expand).
    id: u64,
    cid: Cid,
    /// File offset of the node's first byte.
    start: u64,
    state: State,
}

enum State {
    Waiting,
    Loading,
    /// Content bytes, ready to go out.
    Ready(Bytes),
}

/// Why the client stopped receiving.
fn gone() -> LazyError {
    LazyError::Read(ReadError::Io {
        path: "-".into(),
        source: io::Error::new(io::ErrorKind::BrokenPipe, "client went away"),
    })
}

async fn stream(
    repo: &Arc<Repo>,
    net: &Client,
    root: Cid,
    (offset, length): (u64, Option<u64>),
    tx: &mpsc::Sender<Result<Bytes, io::Error>>,
    fetched: &mut u64,
) -> Result<u64, LazyError> {
    let end = length.map_or(u64::MAX, |l| offset.saturating_add(l));
    let mut window = VecDeque::from([Slot {
        id: 0,
        cid: root,
        start: 0,
        state: State::Waiting,
    }]);
    let mut next_id = 1u64;
    let mut loading = FuturesUnordered::new();
    let mut written = 0u64;
    loop {
        // What is ready at the head goes out, in order.
        while let Some(Slot {
            state: State::Ready(data),
            start,
            ..
        }) = window.front()
        {
            let len = data.len() as u64;
            let from = offset.saturating_sub(*start).min(len) as usize;
            let to = end.saturating_sub(*start).min(len) as usize;
            if from < to {
                let chunk = data.slice(from..to);
                written += chunk.len() as u64;
                tx.send(Ok(chunk)).await.map_err(|_| gone())?;
            }
            window.pop_front();
        }
        if window.is_empty() {
            return Ok(written);
        }
        // Keep the first WINDOW nodes that are not ready loading.
        let mut busy = 0;
        for slot in window.iter_mut() {
            if busy == WINDOW {
                break;
            }
            match slot.state {
                State::Ready(_) => continue,
                State::Loading => {}
                State::Waiting => {
                    slot.state = State::Loading;
                    let (id, cid) = (slot.id, slot.cid);
                    let load = load(Arc::clone(repo), net.clone(), cid);
                    loading.push(async move { (id, load.await) });
                }
            }
            busy += 1;
        }
        let Some((id, loaded)) = loading.next().await else {
            // The head is not ready, so a load runs: this is not reached.
            return Err(LazyError::Net(network::Error::Stopped));
        };
        let (data, from_network) = loaded?;
        *fetched += u64::from(from_network);
        let Some(at) = window.iter().position(|s| s.id == id) else {
            continue;
        };
        let tail = window.split_off(at);
        let mut tail = tail.into_iter();
        let Some(slot) = tail.next() else {
            continue;
        };
        // The node gives way to its own bytes, then its children within the range.
        let node = unixfs::file_node(&slot.cid, &data)?;
        let mut child_start = slot.start + node.content_len() as u64;
        if node.content_len() > 0 {
            window.push_back(Slot {
                id: slot.id,
                cid: slot.cid,
                start: slot.start,
                state: State::Ready(data.slice(node.content)),
            });
        }
        for (cid, size) in node.children {
            if child_start < end && child_start.saturating_add(size) > offset {
                window.push_back(Slot {
                    id: next_id,
                    cid,
                    start: child_start,
                    state: State::Waiting,
                });
                next_id += 1;
            }
            child_start = child_start.saturating_add(size);
        }
        window.extend(tail);
    }
}

/// A node's block, from the store or else over Bitswap; whether it came from the network.
async fn load(repo: Arc<Repo>, net: Client, cid: Cid) -> Result<(Bytes, bool), LazyError> {
    // An index lookup: quick enough for the async thread, and it spares a missing block a
    // trip to a blocking thread.
    if !repo.store().has(cid.hash()).map_err(ReadError::from)? {
        if let Some(data) = net.fetch_data(cid).await? {
            return Ok((data, true));
        }
    }
    let data = tokio::task::spawn_blocking(move || repo.store().get(&cid))
        .await
        .map_err(network::Error::store)?
        .map_err(ReadError::from)?
        .ok_or(ReadError::NotFound(cid))?;
    Ok((Bytes::from(data), false))
}
