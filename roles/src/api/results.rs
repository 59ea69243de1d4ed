//! The cluster's finished tasks and its scheduling master over HTTP:
//! `/api/v0/cluster/results[?kind=K]` streams every finished task's outcome kept in the
//! replicated state (one JSON object a line, as stored), on any node, whether or not the master
//! that ran it is still there; `/api/v0/cluster/master` says which master schedules.

use axum::extract::State as Extract;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use ipfsbench_core::api::{ApiError, Args};
use ipfsbench_protocols::task::Kind;

use super::pins::{line, stream};
use crate::master::replicated::{ResultEntry, RESULT_PREFIX};
use crate::service::{self, MasterView};

#[derive(Debug, Clone)]
struct Api {
    state: ipfsbench_core::state::Handle,
    service: service::Handle,
}

/// The routes, on the node's replicated state and role service.
pub fn router(state: ipfsbench_core::state::Handle, service: service::Handle) -> Router {
    Router::new()
        .route("/api/v0/cluster/results", post(results))
        .route("/api/v0/cluster/master", post(master))
        .with_state(Api { state, service })
}

async fn results(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let kind = args
        .get("kind")
        .map(|k| {
            k.parse::<Kind>()
                .map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .transpose()?;
    let state = api.state.clone();
    stream(move |send| {
        for kv in state.scan(RESULT_PREFIX.as_bytes()) {
            let keep_going = match kv {
                Ok((_, raw)) => match serde_json::from_slice::<ResultEntry>(&raw) {
                    Ok(entry) if kind.is_none_or(|k| k == entry.kind) => send(&line(&entry)),
                    Ok(_) => true,
                    Err(e) => send(&line(&serde_json::json!({
                        "Error": format!("a stored result does not decode: {e}")
                    }))),
                },
                Err(e) => send(&line(&serde_json::json!({ "Error": e.to_string() }))),
            };
            if !keep_going {
                return;
            }
        }
    })
}

async fn master(Extract(api): Extract<Api>) -> Result<Json<MasterView>, ApiError> {
    Ok(Json(api.service.master().await?))
}
