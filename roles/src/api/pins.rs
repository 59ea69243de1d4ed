//! The cluster's pinset and replicated state over HTTP, in the shape of IPFS Cluster's API:
//! `/api/v0/cluster/pins/add|rm|ls|update|status|recover`, `/api/v0/cluster/alerts`,
//! `/api/v0/cluster/state` and `/api/v0/cluster/state/snapshot`.

use crate::pinset;
use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use cid::Cid;
use ipfsbench_core::api::{ndjson, ApiError, Args};
use ipfsbench_core::network::PeerId;
use ipfsbench_core::state;

use super::wire::{Alert, Alerts, Recovered, Snapshot};
use crate::pinset::{PeerStatus, PinRequest, PinStatus, Pinset};
use crate::service;
use crate::settings::replication;

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

fn factor(args: &Args, key: &str) -> Result<Option<Option<u32>>, ApiError> {
    args.num::<i32>(key)?
        .map(|n| {
            replication(n).ok_or_else(|| {
                ApiError::bad_request(format!("{key} {n} must be -1 (everywhere) or above 0"))
            })
        })
        .transpose()
}

/// A duration like `90s`, `15m`, `2h` or `7d`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 2h or 7d"))?;
    let secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn request(args: &Args) -> Result<PinRequest, ApiError> {
    let mut metadata = BTreeMap::new();
    for m in args.all("metadata") {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| ApiError::bad_request(format!("metadata {m:?} is not key=value")))?;
        metadata.insert(k.to_string(), v.to_string());
    }
    let allocations = args
        .all("allocations")
        .iter()
        .flat_map(|a| a.split(','))
        .filter(|a| !a.is_empty())
        .map(peer)
        .collect::<Result<Vec<_>, _>>()?;
    let expire_at_ms = args
        .get("expire-in")
        .map(|d| {
            duration(d)
                .map(|d| crate::now_ms() + d.as_millis() as u64)
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
    let pin = api.pinset.add(request(&args)?, crate::now_ms()).await?;
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
        .update(&cid(from)?, cid(to)?, crate::now_ms())
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
    Ok(Json(Alerts { alerts: out }))
}

async fn state_status(Extract(api): Extract<Api>) -> Result<Json<state::Status>, ApiError> {
    Ok(Json(api.pinset.state().status().await?))
}

async fn snapshot(Extract(api): Extract<Api>) -> Result<Json<Snapshot>, ApiError> {
    let cid = api.pinset.state().snapshot().await?;
    Ok(Json(Snapshot {
        snapshot: cid.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(duration("30"), Ok(Duration::from_secs(30)));
        assert!(duration("1w").is_err());
        assert!(duration("h").is_err());
        assert!(duration("99999999999999999999d").is_err());
    }
}
