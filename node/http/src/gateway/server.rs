//! The gateway's server: its routes, its handlers and the [`Server`] that runs them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;

use super::failure::Failure;
use super::request::{format, parse_path};
use super::respond;
use super::state::Gateway;
use crate::api::{self, State};

/// A running gateway.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks one) and serves the gateway on it, reading through `state`;
    /// a missing block may take `timeout` to arrive.
    pub async fn start(addr: SocketAddr, state: State, timeout: Duration) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let http = crate::metrics::Http::new(&state.metrics, "gateway");
        let app = router(Gateway { state, timeout }).layer(axum::middleware::from_fn_with_state(
            http,
            crate::metrics::track,
        ));
        let task = tokio::spawn(api::server::run(listener, app, async {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving; requests in flight get a short grace.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/ipfs/{*path}", get(content))
        .route("/ipns/{*path}", get(ipns))
        .fallback(|| async {
            Failure::new(
                StatusCode::NOT_FOUND,
                "not found: the gateway serves /ipfs/<cid>[/path]",
            )
        })
        .with_state(gateway)
}

async fn content(
    Extract(gateway): Extract<Gateway>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let format = format(query.as_deref(), &headers)?;
        let parsed = parse_path(&path)?;
        respond::serve(&gateway, &path, query.as_deref(), parsed, format, &headers).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn ipns(Path(_): Path<String>) -> Failure {
    Failure::new(
        StatusCode::NOT_IMPLEMENTED,
        "IPNS names are not supported: use /ipfs/<cid>",
    )
}
