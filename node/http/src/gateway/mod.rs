//! The HTTP gateway: `GET /ipfs/{cid}[/path]` on its own listener, as Kubo's path gateway
//! serves it. Files come with a sniffed `Content-Type`, `Range` requests (206, read in
//! constant memory, fetching only the blocks the range covers), an `ETag` and an immutable
//! `Cache-Control`; directories redirect to their `/` form, then serve their `index.html` or
//! an HTML listing. The trustless responses are `?format=raw` (the one block) and
//! `?format=car` (the path's blocks, then the whole DAG), also chosen by `Accept:
//! application/vnd.ipld.raw` or `application/vnd.ipld.car`. Content not stored here is
//! fetched over Bitswap; what does not arrive within the fetch timeout is a 504. A malformed
//! path is a 400. The gateway only reads: it never writes to the repo but for fetched blocks.

mod listing;
mod respond;
pub mod sniff;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;

use crate::api::{self, State};
use ipfsbench_net::network;
use ipfsbench_store::unixfs::ReadError;

/// What the gateway's handlers reach.
#[derive(Debug, Clone)]
struct Gateway {
    state: State,
    /// How long one missing block may take to arrive.
    timeout: Duration,
}

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

/// A gateway failure, as plain text like Kubo's gateway answers it.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Self {
        let status = match &e {
            ReadError::BadPath { .. } | ReadError::NotDirectory(_) => StatusCode::BAD_REQUEST,
            ReadError::NoSuchLink { .. } => StatusCode::NOT_FOUND,
            ReadError::Sharded(_) => StatusCode::NOT_IMPLEMENTED,
            ReadError::NotFound(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<network::Error> for Failure {
    fn from(e: network::Error) -> Self {
        let status = match e {
            network::Error::NotFound(_) | network::Error::Timeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, e.to_string())
    }
}

impl From<crate::api::read::LazyError> for Failure {
    fn from(e: crate::api::read::LazyError) -> Self {
        match e {
            crate::api::read::LazyError::Read(e) => e.into(),
            crate::api::read::LazyError::Net(e) => e.into(),
        }
    }
}

impl From<tokio::task::JoinError> for Failure {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The UnixFS file or directory, deserialized.
    Unixfs,
    /// The terminal block alone.
    Raw,
    /// A CAR of the path's blocks and the terminal DAG.
    Car,
}

/// The format from `?format=` or, without it, the `Accept` header.
fn format(query: Option<&str>, headers: &HeaderMap) -> Result<Format, Failure> {
    let asked = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(asked) = asked {
        return match asked.as_str() {
            "raw" => Ok(Format::Raw),
            "car" => Ok(Format::Car),
            "" => Ok(Format::Unixfs),
            other => Err(Failure::bad_request(format!(
                "format={other:?} is not supported (supported: raw, car)"
            ))),
        };
    }
    let accept = headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    Ok(if accept.contains("application/vnd.ipld.raw") {
        Format::Raw
    } else if accept.contains("application/vnd.ipld.car") {
        Format::Car
    } else {
        Format::Unixfs
    })
}

/// A request path split into its CID and the names under it; `.`/`..` segments are refused.
#[derive(Debug, PartialEq, Eq)]
struct ContentPath {
    cid: cid::Cid,
    names: Vec<String>,
    /// Whether the URL path ended with `/`.
    slash: bool,
}

fn parse_path(path: &str) -> Result<ContentPath, Failure> {
    let mut parts = path.split('/');
    let first = parts.next().unwrap_or_default();
    let cid = ipfsbench_store::store::block::parse_cid(first).map_err(|e| {
        Failure::bad_request(format!("invalid path \"/ipfs/{path}\": {}", e.reason))
    })?;
    let mut names = Vec::new();
    for part in parts.filter(|p| !p.is_empty()) {
        if part == "." || part == ".." || part.contains('\0') {
            return Err(Failure::bad_request(format!(
                "invalid path \"/ipfs/{path}\": segment {part:?} is not allowed"
            )));
        }
        names.push(part.to_string());
    }
    Ok(ContentPath {
        cid,
        names,
        slash: path.ends_with('/'),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_a_cid_and_names() {
        let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
        let p = parse_path(&format!("{cid}/a/b/")).unwrap_or_else(|_| unreachable!());
        assert_eq!(p.cid.to_string(), cid);
        assert_eq!(p.names, vec!["a", "b"]);
        assert!(p.slash);
        assert!(parse_path("not-a-cid/x").is_err());
        assert!(parse_path(&format!("{cid}/../etc")).is_err());
    }

    #[test]
    fn the_format_comes_from_the_query_then_the_accept_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(format(None, &headers).ok(), Some(Format::Unixfs));
        assert_eq!(format(Some("format=raw"), &headers).ok(), Some(Format::Raw));
        assert!(format(Some("format=tar"), &headers).is_err());
        headers.insert(
            "accept",
            axum::http::HeaderValue::from_static("application/vnd.ipld.car; version=1"),
        );
        assert_eq!(format(None, &headers).ok(), Some(Format::Car));
        assert_eq!(format(Some("format=raw"), &headers).ok(), Some(Format::Raw));
    }
}
