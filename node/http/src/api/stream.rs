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

/// Streams the bytes `offset..offset+length` of the file `root` to `tx`; what came over the
/// network is counted in `fetched`. The bytes sent.
async fn stream(
    repo: &Arc<Repo>,
    net: &Client,
    root: Cid,
    (offset, length): (u64, Option<u64>),
    tx: &mpsc::Sender<Result<Bytes, io::Error>>,
    fetched: &mut u64,
) -> Result<u64, LazyError> {
    let mut window = Window::new(root, offset, length);
    let mut loading = FuturesUnordered::new();
    let mut written = 0u64;
    loop {
        written += window.send_ready(tx).await?;
        if window.slots.is_empty() {
            return Ok(written);
        }
        window.start_loads(|id, cid| {
            let load = load(Arc::clone(repo), net.clone(), cid);
            loading.push(async move { (id, load.await) });
        });
        let Some((id, loaded)) = loading.next().await else {
            // The head is not ready, so a load runs: this is not reached.
            return Err(LazyError::Net(network::Error::Stopped));
        };
        let (data, from_network) = loaded?;
        *fetched += u64::from(from_network);
        window.expand(id, &data)?;
    }
}

/// The file's nodes still to send, in file order, and the range asked for.
struct Window {
    slots: VecDeque<Slot>,
    /// The id the next slot gets.
    next_id: u64,
    /// File offset of the range's first byte.
    offset: u64,
    /// File offset just past the range's last byte.
    end: u64,
}

impl Window {
    /// A window holding the root node alone, for the bytes `offset..offset+length`.
    fn new(root: Cid, offset: u64, length: Option<u64>) -> Self {
        Self {
            slots: VecDeque::from([Slot {
                id: 0,
                cid: root,
                start: 0,
                state: State::Waiting,
            }]),
            next_id: 1,
            offset,
            end: length.map_or(u64::MAX, |l| offset.saturating_add(l)),
        }
    }

    /// Sends what is ready at the head, in order, and drops it from the window; the bytes
    /// sent.
    async fn send_ready(
        &mut self,
        tx: &mpsc::Sender<Result<Bytes, io::Error>>,
    ) -> Result<u64, LazyError> {
        let mut written = 0u64;
        while let Some(Slot {
            state: State::Ready(data),
            start,
            ..
        }) = self.slots.front()
        {
            let len = data.len() as u64;
            let from = self.offset.saturating_sub(*start).min(len) as usize;
            let to = self.end.saturating_sub(*start).min(len) as usize;
            if from < to {
                let chunk = data.slice(from..to);
                written += chunk.len() as u64;
                tx.send(Ok(chunk)).await.map_err(|_| gone())?;
            }
            self.slots.pop_front();
        }
        Ok(written)
    }

    /// Keeps the first [`WINDOW`] nodes that are not ready loading: `start` is called with
    /// the id and CID of each whose load starts now.
    fn start_loads(&mut self, mut start: impl FnMut(u64, Cid)) {
        let mut busy = 0;
        for slot in self.slots.iter_mut() {
            if busy == WINDOW {
                break;
            }
            match slot.state {
                State::Ready(_) => continue,
                State::Loading => {}
                State::Waiting => {
                    slot.state = State::Loading;
                    start(slot.id, slot.cid);
                }
            }
            busy += 1;
        }
    }

    /// The loaded node `id` (block `data`) gives way to its own bytes, then its children
    /// within the range.
    fn expand(&mut self, id: u64, data: &Bytes) -> Result<(), LazyError> {
        let Some(at) = self.slots.iter().position(|s| s.id == id) else {
            return Ok(());
        };
        let tail = self.slots.split_off(at);
        let mut tail = tail.into_iter();
        let Some(slot) = tail.next() else {
            return Ok(());
        };
        let node = unixfs::file_node(&slot.cid, data)?;
        let mut child_start = slot.start + node.content_len() as u64;
        if node.content_len() > 0 {
            self.slots.push_back(Slot {
                id: slot.id,
                cid: slot.cid,
                start: slot.start,
                state: State::Ready(data.slice(node.content)),
            });
        }
        for (cid, size) in node.children {
            if child_start < self.end && child_start.saturating_add(size) > self.offset {
                self.slots.push_back(Slot {
                    id: self.next_id,
                    cid,
                    start: child_start,
                    state: State::Waiting,
                });
                self.next_id += 1;
            }
            child_start = child_start.saturating_add(size);
        }
        self.slots.extend(tail);
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ipfsbench_store::store::protect::Protector;
    use ipfsbench_store::store::{BlockStore, MemoryStore};
    use ipfsbench_store::unixfs::{add_reader, AddOptions, Sink};

    use super::*;

    /// A file of `len` bytes imported in 10-byte chunks (over 174 chunks make a two-level
    /// tree); its root and its bytes.
    fn import(store: &MemoryStore, len: usize, cid_version: u8) -> (Cid, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let options = AddOptions {
            cid_version,
            chunker: "size-10".parse().unwrap_or_else(|_| unreachable!()),
            ..AddOptions::default()
        };
        let protector = Protector::new();
        let session = protector.session();
        let mut sink = Sink::new(store, &session);
        let source = Box::new(io::Cursor::new(data.clone()));
        let added = add_reader(source, Path::new("-"), &options, &mut sink)
            .unwrap_or_else(|e| unreachable!("{e}"));
        (added.cid, data)
    }

    /// Reads `offset..offset+length` through a window, completing the latest load first so
    /// that nodes arrive out of order; the bytes and the number of blocks loaded.
    async fn read(
        store: &MemoryStore,
        root: Cid,
        offset: u64,
        length: Option<u64>,
    ) -> (Vec<u8>, usize) {
        let (tx, mut rx) = mpsc::channel(1 << 16);
        let mut window = Window::new(root, offset, length);
        let (mut pending, mut loads, mut out) = (Vec::new(), 0, Vec::new());
        loop {
            window
                .send_ready(&tx)
                .await
                .unwrap_or_else(|_| unreachable!());
            while let Ok(chunk) = rx.try_recv() {
                out.extend_from_slice(&chunk.unwrap_or_else(|_| unreachable!()));
            }
            if window.slots.is_empty() {
                return (out, loads);
            }
            window.start_loads(|id, cid| pending.push((id, cid)));
            assert!(!pending.is_empty() && pending.len() <= WINDOW);
            let Some((id, cid)) = pending.pop() else {
                unreachable!()
            };
            let data = store.get(&cid).unwrap_or_else(|_| unreachable!());
            loads += 1;
            let data = Bytes::from(data.unwrap_or_else(|| unreachable!()));
            window.expand(id, &data).unwrap_or_else(|_| unreachable!());
        }
    }

    #[tokio::test]
    async fn a_window_sends_the_range_in_order_loading_only_what_overlaps_it() {
        let store = MemoryStore::new();
        for cid_version in [0, 1] {
            let (root, data) = import(&store, 2000, cid_version);
            let (whole, all) = read(&store, root, 0, None).await;
            assert_eq!(whole, data);
            for (offset, length) in [(15, Some(30)), (995, Some(1000)), (1990, None)] {
                let (got, loads) = read(&store, root, offset, length).await;
                let end = length.map_or(data.len(), |l| (offset + l) as usize);
                assert_eq!(got, data[offset as usize..end], "{offset} {length:?}");
                assert!(
                    loads < all,
                    "{loads} of {all} blocks for {offset} {length:?}"
                );
            }
            for (offset, length) in [(5, Some(0)), (2000, None), (5000, Some(10))] {
                assert_eq!(read(&store, root, offset, length).await.0, Vec::<u8>::new());
            }
        }
    }
}
