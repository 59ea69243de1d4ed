//! The API's routes ([`router`]) and its server ([`serve`]): every call's path, the body
//! limits, the guard and the request metrics around them.

use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use super::error::ApiError;
use super::guard::{self, Access};
use super::state::State;
use super::{content, dag, net, node, observe, refs, server, storage};

/// The largest body of an `add` or `dag/import` upload. Bytes.
pub const MAX_UPLOAD: usize = 64 << 30;
/// The largest body of other calls (`block/put`, `pubsub/pub`). Bytes.
pub const MAX_SMALL_BODY: usize = 4 << 20;

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
