//! The task and cluster calls of the HTTP API, served beside the node's own:
//! `/api/v0/task/submit|status|ls|cancel|result` and `/api/v0/cluster/peers|stats`. Errors use
//! the node API's Kubo-shaped JSON. The answers' types are in [`wire`]. The web page over all
//! of them, `GET /dashboard`, is in [`dashboard`].

pub mod dashboard;
pub mod invites;
pub mod members;
pub mod pins;
pub mod query;
pub mod results;
pub mod wire;

use crate::service;
use axum::extract::State as Extract;
use axum::routing::post;
use axum::{Json, Router};
use ipfsbench_core::api::{ApiError, Args};
use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_protocols::task::{Kind, Spec, TaskId, WireCid, WirePeer};
use rand::RngCore;

use crate::master::{State, TaskRecord, MAX_LIST_PAGE};
use crate::service::{Finished, Handle, Stats};

/// The records one `task ls` page holds unless asked for another number.
pub const DEFAULT_LIST_LIMIT: usize = 1_000;

#[derive(Debug, Clone)]
struct Api {
    service: Handle,
    net: Client,
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        match e {
            service::Error::WrongRole(_) | service::Error::Refused(_) => {
                ApiError::bad_request(e.to_string())
            }
            service::Error::NotFound(_) => ApiError::not_found(e.to_string()),
            service::Error::Master(_) | service::Error::Network(_) | service::Error::Stopped => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

/// The routes, bound to a running service.
pub fn router(service: Handle, net: Client) -> Router {
    Router::new()
        .route("/api/v0/task/submit", post(submit))
        .route("/api/v0/task/status", post(status))
        .route("/api/v0/task/ls", post(list))
        .route("/api/v0/task/cancel", post(cancel))
        .route("/api/v0/task/result", post(result))
        .route("/api/v0/cluster/peers", post(peers))
        .route("/api/v0/cluster/stats", post(stats))
        .with_state(Api { service, net })
}

fn task_id(args: &Args) -> Result<TaskId, ApiError> {
    args.arg()?
        .parse()
        .map_err(|e: ipfsbench_protocols::task::BadTaskId| ApiError::bad_request(e.to_string()))
}

/// The spec named by a submission's arguments.
fn spec(args: &Args) -> Result<Spec, ApiError> {
    let kind: Kind = args
        .get("kind")
        .ok_or_else(|| ApiError::bad_request("argument \"kind\" is required"))?
        .parse()
        .map_err(|e: ipfsbench_protocols::task::UnknownKind| {
            ApiError::bad_request(e.to_string())
        })?;
    let mut spec = Spec::new(kind);
    for input in args.all("input") {
        let cid = input
            .parse()
            .map_err(|e| ApiError::bad_request(format!("input {input:?}: {e}")))?;
        spec.inputs.push(WireCid(cid));
    }
    for param in args.all("param") {
        let (k, v) = param
            .split_once('=')
            .ok_or_else(|| ApiError::bad_request(format!("param {param:?} is not key=value")))?;
        spec.params.push((k.to_string(), v.to_string()));
    }
    if let Some(target) = args.get("target") {
        let peer: PeerId = target
            .parse()
            .map_err(|_| ApiError::bad_request(format!("target {target:?} is not a PeerId")))?;
        spec.target = Some(WirePeer(peer));
    }
    spec.timeout_secs = args.num("timeout")?.unwrap_or(0);
    spec.max_attempts = args.num("max-attempts")?.unwrap_or(0);
    spec.check()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(spec)
}

/// `task/submit`'s answer: the submission, or with `wait` how the task ended.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum SubmitAnswer {
    Sent(wire::Submission),
    Ended(wire::Outcome),
}

async fn submit(Extract(api): Extract<Api>, args: Args) -> Result<Json<SubmitAnswer>, ApiError> {
    let spec = spec(&args)?;
    let key = match args.get("key") {
        Some(k) if k.is_empty() || k.len() > ipfsbench_protocols::task::MAX_SHORT_TEXT => {
            return Err(ApiError::bad_request("key must be 1 to 1024 bytes long"))
        }
        Some(k) => k.to_string(),
        None => {
            let mut bytes = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let wait = args.flag("wait", false)?;
    let submitted = api.service.submit(key, spec).await?;
    if !wait {
        return Ok(Json(SubmitAnswer::Sent(wire::Submission::from(&submitted))));
    }
    let finished = api.service.wait(submitted.id).await?;
    let mut outcome = wire::Outcome::from(&finished);
    outcome.new = Some(submitted.new);
    Ok(Json(SubmitAnswer::Ended(outcome)))
}

async fn status(Extract(api): Extract<Api>, args: Args) -> Result<Json<TaskRecord>, ApiError> {
    let id = task_id(&args)?;
    Ok(Json(api.service.status(id).await?))
}

async fn list(Extract(api): Extract<Api>, args: Args) -> Result<Json<wire::TaskPage>, ApiError> {
    let state = args
        .get("state")
        .map(|s| s.parse::<State>().map_err(ApiError::bad_request))
        .transpose()?;
    let limit = args.num("limit")?.unwrap_or(DEFAULT_LIST_LIMIT);
    if limit == 0 || limit > MAX_LIST_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIST_PAGE}; page with \"after\" for more"
        )));
    }
    let after = args.num("after")?;
    let (tasks, next) = api.service.list(state, after, limit).await?;
    Ok(Json(wire::TaskPage { tasks, next }))
}

async fn cancel(Extract(api): Extract<Api>, args: Args) -> Result<Json<TaskRecord>, ApiError> {
    let id = task_id(&args)?;
    Ok(Json(api.service.cancel(id).await?))
}

async fn result(Extract(api): Extract<Api>, args: Args) -> Result<Json<wire::Outcome>, ApiError> {
    let id = task_id(&args)?;
    let finished = if args.flag("wait", false)? {
        api.service.wait(id).await?
    } else {
        let record = api.service.status(id).await?;
        Finished::from(&record)
    };
    match (&finished.result, finished.state) {
        (Some(_), State::Succeeded) => Ok(Json(wire::Outcome::from(&finished))),
        (_, state) if state.is_terminal() => Err(ApiError::bad_request(format!(
            "task {id} is {}: {}",
            state,
            finished.error.as_deref().unwrap_or("no result")
        ))),
        (_, state) => Err(ApiError::bad_request(format!(
            "task {id} is {} and has no result yet",
            state
        ))),
    }
}

async fn peers(Extract(api): Extract<Api>) -> Result<Json<wire::ClusterPeers>, ApiError> {
    let peers = api.service.peers().await?;
    let refused = wire::RefusedPeer::list(api.service.members());
    Ok(Json(wire::ClusterPeers { peers, refused }))
}

async fn stats(Extract(api): Extract<Api>) -> Result<Json<Stats>, ApiError> {
    let mut stats = api.service.stats().await?;
    let host = api.net.pubsub_stats().await?;
    stats.rejected_by_host = host.rejected;
    stats.lagged = host.lagged;
    stats.cut_off_peers = host.cut_off;
    Ok(Json(stats))
}
