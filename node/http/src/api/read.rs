//! What reading calls share: blocking repo work off the async threads, resolving paths with
//! the network's help, reading a file while its blocks arrive, and streaming a body that a
//! blocking reader writes.

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use cid::Cid;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::state::State;
use ipfsbench_net::network::{self, Client};
use ipfsbench_store::repo::Repo;
use ipfsbench_store::unixfs::{self, ReadError};

/// Runs blocking repo work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    s: &State,
    f: impl FnOnce(&Repo) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let repo = Arc::clone(&s.repo);
    tokio::task::spawn_blocking(move || f(&repo)).await?
}

/// Resolves `CID[/path]`, fetching the directory blocks on the way from the network.
pub(crate) async fn resolve(s: &State, path: &str) -> Result<Cid, ApiError> {
    // Each pass fetches the one block that stopped resolution; a path has few segments.
    for _ in 0..64 {
        let p = path.to_string();
        let result = blocking(s, move |r| Ok(unixfs::resolve(r.store(), &p))).await?;
        match result {
            Ok(cid) => return Ok(cid),
            Err(ReadError::NotFound(missing)) => {
                s.net.fetch_block(missing, Vec::new()).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::bad_request("path too deep"))
}

/// A `Write` that hands chunks to an HTTP body stream; blocks when the client reads slowly.
pub(crate) struct ChannelWriter(mpsc::Sender<Result<Bytes, io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams what `f` writes as the response body.
pub(crate) fn stream_body(
    repo: Arc<Repo>,
    content_type: &str,
    f: impl FnOnce(&Repo, &mut ChannelWriter) -> Result<(), String> + Send + 'static,
) -> Result<Response, ApiError> {
    Response::builder()
        .header("content-type", content_type)
        .body(body(repo, f))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A body made of what `f`, run on a blocking thread, writes. A failure after the status went
/// out ends the body with an error, so the client sees a broken transfer, not a short one.
pub(crate) fn body(
    repo: Arc<Repo>,
    f: impl FnOnce(&Repo, &mut ChannelWriter) -> Result<(), String> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter(tx.clone());
        if let Err(e) = f(&repo, &mut w) {
            tracing::warn!(error = %e, "response body cut short");
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Fetches `cid` from the network unless it is stored here.
pub(crate) async fn fetch_one(s: &State, cid: Cid) -> Result<(), ApiError> {
    let local = blocking(s, move |r| Ok(r.store().has(cid.hash())?)).await?;
    if !local {
        s.net.fetch_block(cid, Vec::new()).await?;
    }
    Ok(())
}

/// Why [`read_lazily`] stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LazyError {
    /// Reading the DAG failed (or a block was gone again right after its fetch).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A missing block could not be fetched (within the client's fetch timeout).
    #[error(transparent)]
    Net(#[from] network::Error),
}

impl From<LazyError> for ApiError {
    fn from(e: LazyError) -> Self {
        match e {
            LazyError::Read(e) => e.into(),
            LazyError::Net(e) => e.into(),
        }
    }
}

/// Writes bytes `offset..offset+length` of the file `cid` to `out`, on a blocking thread,
/// fetching each missing block when the reader reaches it and going on from the byte where it
/// stopped: memory stays constant whatever the file's size, and a caller that prefetches the
/// DAG meanwhile ([`Client::fetch_dag`]) has the transfer and the read overlap.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_lazily(
    repo: &Repo,
    net: &Client,
    runtime: &tokio::runtime::Handle,
    cid: Cid,
    mut offset: u64,
    mut length: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, LazyError> {
    let mut total = 0;
    let mut last_missing = None;
    loop {
        let mut counting = Counting {
            inner: out,
            written: 0,
        };
        let result = unixfs::cat(repo.store(), &cid, offset, length, &mut counting);
        let written = counting.written;
        total += written;
        offset += written;
        length = length.map(|l| l - written.min(l));
        match result {
            Ok(_) => return Ok(total),
            Err(ReadError::NotFound(missing)) => {
                // A block fetched but gone again (evicted at once) would loop: give up.
                if last_missing == Some(missing) && written == 0 {
                    return Err(ReadError::NotFound(missing).into());
                }
                last_missing = Some(missing);
                runtime.block_on(net.fetch_block(missing, Vec::new()))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Counts what passes through to `inner`.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    written: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
