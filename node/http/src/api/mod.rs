//! The HTTP API: a Kubo-shaped `/api/v0/...` subset, so that Kubo RPC clients work for these
//! calls, served with axum. Every call is a POST with `arg=` query parameters; malformed
//! requests get a 4xx with Kubo's JSON error (`{"Message", "Code", "Type": "error"}`), never a
//! 200. Bound to loopback unless configured otherwise; what browsers may do is in [`guard`].

mod content;
mod dag;
mod error;
pub mod guard;
mod net;
mod node;
mod observe;
pub(crate) mod read;
mod refs;
pub mod server;
mod storage;
pub(crate) mod stream;
mod tarball;
pub mod wire;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use guard::Access;
pub use net::ndjson;

use ipfsbench_net::network::Client;
use ipfsbench_store::repo::Repo;

/// The most query parameters one request may carry.
pub const MAX_ARGS: usize = 256;
/// The largest body of an `add` or `dag/import` upload. Bytes.
pub const MAX_UPLOAD: usize = 64 << 30;
/// The largest body of other calls (`block/put`, `pubsub/pub`). Bytes.
pub const MAX_SMALL_BODY: usize = 4 << 20;
/// Uploads (`add`, `dag/import`) received and imported at once; more wait their turn
/// before their bodies are read, so memory and spool space stay bounded.
pub const MAX_CONCURRENT_UPLOADS: usize = 4;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct State {
    /// The repo.
    pub repo: Arc<Repo>,
    /// The network host.
    pub net: Client,
    /// Turns for uploads, [`MAX_CONCURRENT_UPLOADS`] of them.
    uploads: Arc<tokio::sync::Semaphore>,
    /// The node's metrics.
    pub metrics: ipfsbench_net::metrics::Metrics,
}

impl State {
    /// The state of an API serving `repo` and `net`.
    pub fn new(repo: Arc<Repo>, net: Client, metrics: ipfsbench_net::metrics::Metrics) -> Self {
        Self {
            repo,
            net,
            uploads: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_UPLOADS)),
            metrics,
        }
    }

    /// Waits for an upload's turn; the turn ends when the permit drops.
    pub(crate) async fn upload_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.uploads)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the API is shutting down"))
    }
}

/// The query parameters of a call, in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Args(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Args {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let mut args = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if args.len() == MAX_ARGS {
                return Err(ApiError::bad_request(format!(
                    "too many arguments (at most {MAX_ARGS})"
                )));
            }
            args.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(args))
    }
}

impl Args {
    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The required first `arg`.
    pub fn arg(&self) -> Result<&str, ApiError> {
        self.get("arg")
            .ok_or_else(|| ApiError::bad_request("argument \"arg\" is required"))
    }

    /// A boolean flag (`true`/`false`, or present without value for true).
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "{key}: {other:?} is not a boolean"
            ))),
        }
    }

    /// Refuses `key` unless it is absent or one of `supported`: an option the node does not
    /// implement is an error, never silently ignored.
    pub fn only(&self, key: &str, supported: &[&str]) -> Result<(), ApiError> {
        for v in self.all(key) {
            if !supported.contains(&v) {
                return Err(ApiError::bad_request(format!(
                    "{key}={v:?} is not supported (supported: {})",
                    supported.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A number, if given.
    pub fn num<T: FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("{key}: {v:?} is not a number")))
            })
            .transpose()
    }
}

/// A multipart body, or the 400 JSON error that says why it is not one.
pub(crate) fn multipart(
    body: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<axum::extract::Multipart, ApiError> {
    body.map_err(|e| ApiError::bad_request(format!("expected a multipart/form-data body: {e}")))
}

/// The bytes of the first part of a multipart body; `what` names it in the error.
pub(crate) async fn first_part(
    multipart: &mut axum::extract::Multipart,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("bad multipart body: {e}"))
    };
    let field = multipart
        .next_field()
        .await
        .map_err(bad)?
        .ok_or_else(|| ApiError::bad_request(format!("{what} is required as a file part")))?;
    field.bytes().await.map_err(bad)
}

/// The API's routes.
pub fn router(state: State) -> Router {
    let upload = DefaultBodyLimit::max(MAX_UPLOAD);
    Router::new()
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/debug/metrics/prometheus", get(observe::metrics))
        .route("/metrics", get(observe::metrics))
        .route("/api/v0/stats/bw", post(observe::stats_bw))
        .route("/api/v0/stats/bitswap", post(observe::stats_bitswap))
        .route("/api/v0/bitswap/stat", post(observe::stats_bitswap))
        .route("/api/v0/id", post(net::id))
        .route("/api/v0/version", post(net::version))
        .route("/api/v0/swarm/connect", post(net::swarm_connect))
        .route("/api/v0/swarm/peers", post(net::swarm_peers))
        .route("/api/v0/routing/findprovs", post(net::findprovs))
        .route("/api/v0/pubsub/pub", post(net::pubsub_pub))
        .route("/api/v0/pubsub/sub", post(net::pubsub_sub))
        .route("/api/v0/pubsub/ls", post(net::pubsub_ls))
        .route("/api/v0/pubsub/peers", post(net::pubsub_peers))
        .route("/api/v0/ping", post(node::ping))
        .route("/api/v0/swarm/addrs/local", post(node::swarm_addrs_local))
        .route("/api/v0/config/show", post(node::config_show))
        .route("/api/v0/name/resolve", post(node::name_resolve))
        .route("/api/v0/dag/get", post(dag::dag_get))
        .route("/api/v0/dag/put", post(dag::dag_put))
        .route("/api/v0/dag/stat", post(dag::dag_stat))
        .route("/api/v0/refs", post(refs::refs))
        .route("/api/v0/refs/local", post(refs::refs_local))
        .route("/api/v0/add", post(content::add).layer(upload))
        .route("/api/v0/cat", post(content::cat))
        .route("/api/v0/get", post(content::get))
        .route("/api/v0/ls", post(content::ls))
        .route("/api/v0/block/get", post(content::block_get))
        .route("/api/v0/block/put", post(content::block_put))
        .route("/api/v0/block/stat", post(content::block_stat))
        .route("/api/v0/block/rm", post(content::block_rm))
        .route("/api/v0/pin/add", post(content::pin_add))
        .route("/api/v0/pin/rm", post(content::pin_rm))
        .route("/api/v0/pin/ls", post(content::pin_ls))
        .route("/api/v0/dag/export", post(content::dag_export))
        .route(
            "/api/v0/dag/import",
            post(content::dag_import).layer(upload),
        )
        .route("/api/v0/repo/stat", post(content::repo_stat))
        .route("/api/v0/repo/gc", post(content::repo_gc))
        .route("/api/v0/repo/verify", post(content::repo_verify))
        .route(
            "/api/v0/storage/tiers",
            axum::routing::get(storage::tiers).post(storage::tiers),
        )
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY))
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .with_state(state)
}

/// Serves the API, with `extra` routes beside its own, on `listener` until `shutdown`
/// resolves. Every request passes [`guard`] first; a method other than POST gets 405 in
/// Kubo's JSON shape, on every route.
pub async fn serve(
    listener: TcpListener,
    state: State,
    access: Access,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let http = crate::metrics::Http::new(&state.metrics, "api");
    let app = router(state)
        .merge(extra)
        .method_not_allowed_fallback(|| async {
            ApiError::method_not_allowed("the API takes POST requests only")
        })
        .layer(axum::middleware::from_fn_with_state(access, guard::guard))
        .layer(axum::middleware::from_fn_with_state(
            http,
            crate::metrics::track,
        ));
    server::run(listener, app, shutdown).await
}

/// Binds the API address (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
