//! The cluster's pinset and replicated state over HTTP, in the shape of IPFS Cluster's API:
//! `/api/v0/cluster/pins/add|rm|ls|update|status|recover`, `/api/v0/cluster/alerts`,
//! `/api/v0/cluster/state` and `/api/v0/cluster/state/snapshot`.

use crate::pinset;

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use cid::Cid;
use ipfsbench_core::api::{ndjson, ApiError, Args};
use ipfsbench_core::network::PeerId;
use ipfsbench_core::state;

use super::wire::{self, Alert, Alerts, Recovered, Snapshot};
use crate::pinset::{input, PeerStatus, PinRequest, PinStatus, Pinset};
use crate::service;

/// Bytes of JSON lines gathered before they are sent.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Api {
    pinset: Pinset,
    service: service::Handle,
}

impl From<pinset::Error> for ApiError {
    fn from(e: pinset::Error) -> Self {
        match e {
            pinset::Error::Invalid(_) | pinset::Error::Alloc(_) => {
                ApiError::bad_request(e.to_string())
            }
            pinset::Error::NotPinned(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// The routes, on a running pinset.
pub fn router(pinset: Pinset, service: service::Handle) -> Router {
    Router::new()
        .route("/api/v0/cluster/pins/add", post(add))
        .route("/api/v0/cluster/pins/rm", post(rm))
        .route("/api/v0/cluster/pins/ls", post(ls))
        .route("/api/v0/cluster/pins/update", post(update))
        .route("/api/v0/cluster/pins/status", post(status))
        .route("/api/v0/cluster/pins/recover", post(recover))
        .route("/api/v0/cluster/alerts", post(alerts))
        .route("/api/v0/cluster/state", post(state_status))
        .route("/api/v0/cluster/state/snapshot", post(snapshot))
        .with_state(Api { pinset, service })
}

fn cid(text: &str) -> Result<Cid, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid CID {text:?}: {e}")))
}

fn peer(text: &str) -> Result<PeerId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a PeerId")))
}

/// A replication factor, read as IPFS Cluster reads it ([`input::factor`]); `replication`
/// sets both.
fn factor(args: &Args, key: &str) -> Result<Option<Option<u32>>, ApiError> {
    let given = match args.get("replication") {
        Some(_) => args.num::<i64>("replication")?,
        None => args.num::<i64>(key)?,
    };
    match given {
        Some(n) => input::factor(n).map_err(|e| ApiError::bad_request(format!("{key}: {e}"))),
        None => Ok(None),
    }
}

fn request(args: &Args) -> Result<PinRequest, ApiError> {
    let metadata = input::metadata(args.all("metadata")).map_err(ApiError::bad_request)?;
    let allocations: Vec<&str> = args
        .all("allocations")
        .into_iter()
        .flat_map(|a| a.split(','))
        .filter(|a| !a.is_empty())
        .collect();
    if allocations.len() > pinset::MAX_ALLOCATIONS {
        return Err(ApiError::bad_request(format!(
            "at most {} allocations",
            pinset::MAX_ALLOCATIONS
        )));
    }
    let allocations = allocations
        .into_iter()
        .map(peer)
        .collect::<Result<Vec<_>, _>>()?;
    let expire_at_ms = args
        .get("expire-in")
        .map(|d| {
            input::duration(d)
                .and_then(|d| input::expiry(crate::clock::now_ms(), d))
                .map_err(ApiError::bad_request)
        })
        .transpose()?;
    Ok(PinRequest {
        cid: Some(cid(args.arg()?)?),
        name: args.get("name").unwrap_or_default().to_string(),
        min: factor(args, "replication-min")?,
        max: factor(args, "replication-max")?,
        allocations,
        tags: args.all("tag").into_iter().map(str::to_string).collect(),
        metadata,
        expire_at_ms,
    })
}

async fn add(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let pin = api
        .pinset
        .add(request(&args)?, crate::clock::now_ms())
        .await?;
    json_line(&pin)
}

async fn rm(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let pin = api.pinset.remove(&cid(args.arg()?)?).await?;
    json_line(&pin)
}

async fn update(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let [from, to] = args.all("arg")[..] else {
        return Err(ApiError::bad_request(
            "update takes two arguments: FROM and TO",
        ));
    };
    let pin = api
        .pinset
        .update(&cid(from)?, cid(to)?, crate::clock::now_ms())
        .await?;
    json_line(&pin)
}

fn json_line<T: serde::Serialize>(v: &T) -> Result<Response, ApiError> {
    let text = serde_json::to_string(v).map_err(|e| ApiError::internal(e.to_string()))?;
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(text))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Streams the JSON lines `produce` sends (each without its newline) from a blocking
/// thread, in chunks; `send` answers false once the client has gone.
pub(super) fn stream<F>(produce: F) -> Result<Response, ApiError>
where
    F: FnOnce(&mut dyn FnMut(&[u8]) -> bool) + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(CHUNK);
        let mut open = true;
        produce(&mut |line| {
            buf.extend_from_slice(line);
            buf.push(b'\n');
            if buf.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK)));
                open = tx.blocking_send(Ok(chunk)).is_ok();
            }
            open
        });
        if open && !buf.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(buf)));
        }
    });
    ndjson(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

/// `v` as one JSON line (without the newline).
pub(super) fn line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v)
        .unwrap_or_else(|e| format!("{{\"Error\":{:?}}}", e.to_string()).into_bytes())
}

async fn ls(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let name = args.get("name").map(str::to_string);
    if name.as_ref().is_some_and(|n| n.len() > pinset::MAX_TEXT) {
        return Err(ApiError::bad_request(format!(
            "name longer than {} bytes: no pin has it",
            pinset::MAX_TEXT
        )));
    }
    let pinset = api.pinset.clone();
    stream(move |send| {
        // A pin is stored as the JSON the API sends: passed through after a check that it is
        // JSON, decoded only to filter by name.
        for raw in pinset.list_raw() {
            let keep_going = match raw {
                Ok(raw) => match &name {
                    // One line each: no raw newline inside a pin.
                    None if !raw.contains(&b'\n')
                        && serde_json::from_slice::<serde::de::IgnoredAny>(&raw).is_ok() =>
                    {
                        send(&raw)
                    }
                    None => send(&line(
                        &serde_json::json!({ "Error": "a stored pin is not JSON" }),
                    )),
                    Some(n) => match serde_json::from_slice::<crate::pinset::Pin>(&raw) {
                        Ok(pin) if &pin.name == n => send(&raw),
                        Ok(_) => true,
                        Err(e) => send(&line(&serde_json::json!({ "Error": e.to_string() }))),
                    },
                },
                Err(e) => send(&line(&serde_json::json!({ "Error": e.to_string() }))),
            };
            if !keep_going {
                return;
            }
        }
    })
}

/// The status of `pin`, from every peer's report.
fn gather(pinset: &Pinset, pin: &crate::pinset::Pin) -> PinStatus {
    let reports = pinset
        .state()
        .scan(&PeerStatus::prefix(&pin.cid))
        .filter_map(|kv| {
            let (k, v) = kv.ok()?;
            let peer = std::str::from_utf8(&k)
                .ok()?
                .rsplit('/')
                .next()?
                .parse()
                .ok()?;
            Some((peer, serde_json::from_slice(&v).ok()?))
        })
        .collect();
    PinStatus::gather(pin, reports)
}

async fn status(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let pinset = api.pinset.clone();
    if let Some(text) = args.get("arg") {
        let cid = cid(text)?;
        let pin = pinset.get(&cid)?.ok_or(pinset::Error::NotPinned(cid))?;
        return json_line(&gather(&pinset, &pin));
    }
    stream(move |send| {
        for pin in pinset.list().flatten() {
            if !send(&line(&gather(&pinset, &pin))) {
                return;
            }
        }
    })
}

async fn recover(Extract(api): Extract<Api>, args: Args) -> Result<Json<Recovered>, ApiError> {
    let cid = args.get("arg").map(cid).transpose()?;
    let pins = api.pinset.recover(cid.as_ref()).await?;
    Ok(Json(Recovered {
        pins: pins.iter().map(|p| p.cid.to_string()).collect(),
    }))
}

async fn alerts(Extract(api): Extract<Api>) -> Result<Json<Alerts>, ApiError> {
    let peers = api.service.peers().await.map_err(ApiError::from)?;
    let after = api.pinset.settings().reallocate_after.as_millis() as u64;
    let mut out = Vec::new();
    let mut allocated: Vec<PeerId> = Vec::new();
    let pinset = api.pinset.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        pinset
            .list()
            .flatten()
            .map(|pin| (pin.allocations.clone(), gather(&pinset, &pin)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    for (allocations, status) in &statuses {
        allocated.extend(allocations.iter().copied());
        if status.under_replicated {
            out.push(Alert::UnderReplicated {
                cid: status.cid.clone(),
                pinned: status.pinned,
                wanted: status.replication_factor_min,
            });
        }
    }
    allocated.sort();
    allocated.dedup();
    // Peers silent for three heartbeats or more, and allocated peers not heard at all.
    let silent = (3 * 1_000).min(after);
    for p in &peers {
        if p.last_heartbeat_ms_ago > silent {
            out.push(Alert::PeerGone {
                peer: p.peer.clone(),
                silent_ms: Some(p.last_heartbeat_ms_ago),
            });
        }
    }
    for a in allocated {
        if !peers.iter().any(|p| p.peer == a.to_string()) {
            out.push(Alert::PeerGone {
                peer: a.to_string(),
                silent_ms: None,
            });
        }
    }
    for r in wire::RefusedPeer::list(api.service.members()) {
        out.push(Alert::NotAMember {
            peer: r.peer,
            dropped: r.dropped,
            removed: r.removed,
        });
    }
    Ok(Json(Alerts { alerts: out }))
}

/// A refused write is the caller's fault (400); anything else is the node's (500).
fn state_error(e: state::Error) -> ApiError {
    match e {
        state::Error::Invalid(_) => ApiError::bad_request(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

async fn state_status(Extract(api): Extract<Api>) -> Result<Json<state::Status>, ApiError> {
    Ok(Json(
        api.pinset.state().status().await.map_err(state_error)?,
    ))
}

async fn snapshot(Extract(api): Extract<Api>) -> Result<Json<Snapshot>, ApiError> {
    let cid = api.pinset.state().snapshot().await.map_err(state_error)?;
    Ok(Json(Snapshot {
        snapshot: cid.to_string(),
    }))
}
