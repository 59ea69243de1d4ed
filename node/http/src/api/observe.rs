//! Calls that observe the node: the probes (`GET /healthz`, `GET /readyz`), the metrics
//! (`GET /debug/metrics/prometheus`, `/metrics`; the format by `Accept`), and Kubo's `stats/bw` and `stats/bitswap`
//! (also `bitswap/stat`) with Kubo's field names.

use axum::extract::State as Extract;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::args::Args;
use super::error::ApiError;
use super::state::State;

/// Alive: the process answers HTTP.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the host runs and listens on at least one address.
pub(super) async fn readyz(Extract(s): Extract<State>) -> Response {
    match s.net.listen_addrs().await {
        Ok(addrs) if !addrs.is_empty() => (StatusCode::OK, "ready\n").into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "not listening yet\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// Every metric: in Prometheus' text format 0.0.4, as Kubo serves them, unless the scrape's
/// `Accept` asks for OpenMetrics.
pub(super) async fn metrics(Extract(s): Extract<State>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = ipfsbench_net::metrics::Format::negotiate(accept);
    let text = s.metrics.render_as(format).await;
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        text,
    )
        .into_response()
}

/// Kubo's `stats/bw` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Bandwidth {
    total_in: u64,
    total_out: u64,
    rate_in: f64,
    rate_out: f64,
}

pub(super) async fn stats_bw(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<Bandwidth>, ApiError> {
    for unsupported in ["peer", "proto"] {
        if args.get(unsupported).is_some() {
            return Err(ApiError::bad_request(format!(
                "{unsupported}= is not supported: the totals cover every peer and protocol"
            )));
        }
    }
    if args.flag("poll", false)? {
        return Err(ApiError::bad_request("poll=true is not supported"));
    }
    let b = s.metrics.bandwidth();
    Ok(Json(Bandwidth {
        total_in: b.total_in,
        total_out: b.total_out,
        rate_in: b.rate_in,
        rate_out: b.rate_out,
    }))
}

/// A CID as Kubo's JSON writes links.
#[derive(Debug, Serialize)]
pub(super) struct Link {
    #[serde(rename = "/")]
    cid: String,
}

/// Kubo's `stats/bitswap` (`bitswap/stat`) answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct BitswapStat {
    provide_buf_len: u64,
    wantlist: Vec<Link>,
    peers: Vec<String>,
    blocks_received: u64,
    data_received: u64,
    blocks_sent: u64,
    data_sent: u64,
    dup_blks_received: u64,
    dup_data_received: u64,
    messages_received: u64,
}

pub(super) async fn stats_bitswap(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<BitswapStat>, ApiError> {
    args.only("human", &["false"])?;
    let stats = s.net.stats().await?;
    let b = &stats.bitswap;
    Ok(Json(BitswapStat {
        provide_buf_len: 0,
        wantlist: stats
            .wantlist
            .iter()
            .map(|c| Link { cid: c.to_string() })
            .collect(),
        peers: stats.peers.iter().map(ToString::to_string).collect(),
        blocks_received: b.blocks_received,
        data_received: b.bytes_received,
        blocks_sent: b.blocks_sent,
        data_sent: b.bytes_sent,
        // Blocks nobody wanted any more are the duplicates: a copy arrived first.
        dup_blks_received: b.unwanted_blocks,
        dup_data_received: 0,
        messages_received: 0,
    }))
}
