//! `/api/v0/cluster/invite`, `/api/v0/cluster/invites` and `/api/v0/cluster/invite/revoke`:
//! a master holding the cluster's root issues, lists and revokes invites.

use std::sync::Arc;

use axum::extract::State as Extract;
use axum::routing::post;
use axum::{Json, Router};
use ipfsbench_core::api::{ApiError, Args};
use ipfsbench_core::network::{Client, Multiaddr, PeerId};
use ipfsbench_core::state;
use ipfsbench_protocols::membership::{Grant, MAX_INVITE_ADDRS};
use libp2p::multiaddr::Protocol;
use serde::Serialize;

use crate::membership::invites::{self, Error, InviteRecord, Request};
use crate::membership::root::Issuer;
use crate::pinset::input;

#[derive(Clone)]
struct Api {
    state: state::Handle,
    net: Client,
    issuer: Option<Arc<Issuer>>,
}

/// An issued invite: the token (shown once) and what the cluster keeps of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Issued {
    /// The one line a new node is started with.
    pub token: String,
    /// The cluster's record of it.
    pub invite: InviteRecord,
}

/// The routes; `issuer` is `None` on a node that holds no root (it can still list).
pub fn router(state: state::Handle, net: Client, issuer: Option<Arc<Issuer>>) -> Router {
    Router::new()
        .route("/api/v0/cluster/invite", post(issue))
        .route("/api/v0/cluster/invites", post(list))
        .route("/api/v0/cluster/invite/revoke", post(revoke))
        .with_state(Api { state, net, issuer })
}

fn api_error(e: Error) -> ApiError {
    match e {
        Error::Bad(_) | Error::Token(_) => ApiError::bad_request(e.to_string()),
        Error::NotFound(_) => ApiError::not_found(e.to_string()),
        Error::State(_) => ApiError::internal(e.to_string()),
    }
}

fn request(args: &Args) -> Result<Request, ApiError> {
    let role = args.get("role").unwrap_or("worker");
    let grant = Grant::from_name(role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role {role:?}: expected worker, master, leecher or submitter"
        ))
    })?;
    let ttl = input::duration(args.get("ttl").unwrap_or("24h"))
        .map_err(|e| ApiError::bad_request(format!("ttl: {e}")))?;
    let uses = args.num::<u32>("uses")?.unwrap_or(1);
    let tags = args.all("tag").into_iter().map(str::to_string).collect();
    let certificate = input::duration(args.get("cert_ttl").unwrap_or("90d"))
        .map_err(|e| ApiError::bad_request(format!("cert-ttl: {e}")))?;
    Ok(Request {
        grant,
        ttl,
        uses,
        tags,
        certificate,
    })
}

/// The root this node holds, or a 400 saying that `what` needs a master holding it.
pub(crate) fn root_holder<'a>(
    issuer: Option<&'a Arc<Issuer>>,
    what: &str,
) -> Result<&'a Issuer, ApiError> {
    issuer.map(AsRef::as_ref).ok_or_else(|| {
        ApiError::bad_request(format!(
            "this node holds no cluster root: {what} by a master that ran `cluster init` or \
             `cluster root import`"
        ))
    })
}

async fn issue(Extract(api): Extract<Api>, args: Args) -> Result<Json<Issued>, ApiError> {
    let issuer = root_holder(api.issuer.as_ref(), "invites are issued")?;
    let request = request(&args)?;
    let listen = api
        .net
        .listen_addrs()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let me = api.state.peer_id();
    let mut addrs = given_addrs(&args, me)?;
    addrs.extend(invites::dialable(&listen, me));
    addrs.truncate(MAX_INVITE_ADDRS);
    let now = crate::clock::now_ms();
    let (token, invite) = invites::issue(
        &api.state,
        &issuer.root,
        issuer.swarm_key,
        addrs,
        &request,
        now,
    )
    .await
    .map_err(api_error)?;
    Ok(Json(Issued { token, invite }))
}

/// The `addr` arguments: addresses of this master to put in the token first (a DNS name a
/// pod is reached by, say), each ending in this master's `/p2p/` id.
fn given_addrs(args: &Args, me: PeerId) -> Result<Vec<Multiaddr>, ApiError> {
    let given = args.all("addr");
    if given.len() > MAX_INVITE_ADDRS {
        return Err(ApiError::bad_request(format!(
            "addr: at most {} addresses",
            MAX_INVITE_ADDRS
        )));
    }
    given
        .into_iter()
        .map(|text| {
            let mut addr: Multiaddr = text
                .parse()
                .map_err(|e| ApiError::bad_request(format!("addr {text:?}: {e}")))?;
            match addr.iter().last() {
                Some(Protocol::P2p(peer)) if peer == me => {}
                Some(Protocol::P2p(_)) => {
                    return Err(ApiError::bad_request(format!(
                        "addr {text:?} names another peer than this master"
                    )))
                }
                _ => addr.push(Protocol::P2p(me)),
            }
            Ok(addr)
        })
        .collect()
}

async fn list(Extract(api): Extract<Api>) -> Json<Vec<InviteRecord>> {
    Json(invites::list(&api.state))
}

async fn revoke(Extract(api): Extract<Api>, args: Args) -> Result<Json<InviteRecord>, ApiError> {
    let id = args.arg()?;
    Ok(Json(
        invites::revoke(&api.state, id).await.map_err(api_error)?,
    ))
}
