//! The API's (and the gateway's) HTTP/1.1 server: hyper, with bounds on connections in all
//! and per client ([`admission`]), on request heads before hyper parses them ([`head`]: an
//! oversized URI or header section gets a 414 or 431 with Kubo's JSON error on every route),
//! on how long a client may take to send a request's headers, and a shutdown that waits for
//! requests in flight only so long.

mod admission;
mod head;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use admission::Admission;
use head::{Guarded, Refusal};

/// Connections served at once; past it new ones are closed at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections served at once from one client (an IPv4 address, or an IPv6 /64); past it
/// that client's new ones are closed at once, while others still get theirs.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// The longest a client may take to send a request's headers, from the moment the server
/// waits for them (the connection's start, or the end of the previous answer); past it the
/// connection is closed, so that slow senders give their place back.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, how long requests in flight (a `pubsub/sub` stream, say) may go on.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After a refused request's answer, how long the rest of what the client sends is read
/// and dropped (so that closing does not reset the connection before it reads the answer).
const LINGER: Duration = Duration::from_secs(5);
/// ... and at most how many bytes of it.
const LINGER_BYTES: usize = 8 << 20;
/// Hyper's own read buffer: request heads reach hyper only within the (smaller) bounds of
/// [`head`]; bodies stream through it.
const READ_BUFFER: usize = 1 << 20;
/// Hyper parses up to this many headers; [`head`] lets fewer through.
const PARSED_HEADERS: usize = 512;

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admission = Admission::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT);
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(%peer, ?why, "HTTP connection refused");
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let closed = closed.clone();
        connections.spawn(async move {
            let _slot = slot;
            serve(stream, peer, service, closed).await;
        });
    }
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::debug!("API shutdown: ending requests still in flight");
        connections.abort_all();
    }
    Ok(())
}

/// Serves one connection until it ends, or, once `closed` changes, until its request in
/// flight is answered; answers a refused request head itself.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    service: TowerToHyperService<Router>,
    mut closed: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(READ_BUFFER)
        .max_headers(PARSED_HEADERS);
    let guarded = Guarded::new(stream);
    let refused = guarded.refused();
    let mut conn = builder.serve_connection(TokioIo::new(guarded), service);
    let mut closing = false;
    let ended = loop {
        tokio::select! {
            ended = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break ended,
            // The server shuts down, or a request head was refused: the answer in flight, if
            // any, goes out, then the connection ends.
            _ = closed.changed(), if !closing => {
                closing = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            () = refused.notified(), if !closing => {
                closing = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    if let Err(e) = ended {
        tracing::trace!(%peer, error = %e, "HTTP connection ended");
    }
    let mut guarded = conn.into_parts().io.into_inner();
    match guarded.refusal().cloned() {
        Some(refusal) => answer_refused(guarded.get_mut(), &refusal).await,
        None => {
            let _ = guarded.get_mut().shutdown().await;
        }
    }
}

/// Answers a refused request with its JSON error, then reads and drops what the client still
/// sends, for [`LINGER`] at most.
async fn answer_refused(stream: &mut TcpStream, refusal: &Refusal) {
    let linger = async {
        stream.write_all(&refusal.response()).await?;
        stream.shutdown().await?;
        let mut sink = vec![0u8; 64 << 10];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => dropped += n,
            }
        }
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, linger).await;
}
