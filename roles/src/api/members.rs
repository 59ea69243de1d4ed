//! `/api/v0/cluster/members` and `/api/v0/cluster/member/rm`: the members this node knows
//! (role, tags, issued, expiry, last heard) and, on a master holding the cluster's root, the
//! removal of one.

use std::sync::Arc;

use axum::extract::State as Extract;
use axum::routing::post;
use axum::{Json, Router};
use ipfsbench_core::api::{ApiError, Args};
use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_core::state;
use ipfsbench_protocols::membership::MAX_REASON;
use serde::{Deserialize, Serialize};

use crate::membership::keeper::{member_key, revoked_key};
use crate::membership::root::Issuer;
use crate::service::Handle;

#[derive(Clone)]
struct Api {
    service: Handle,
    state: state::Handle,
    net: Client,
    issuer: Option<Arc<Issuer>>,
}

/// One member as `cluster members` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemberView {
    /// Its peer id.
    pub peer: String,
    /// What the root granted it.
    pub role: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When its certificate was issued, Unix ms.
    pub issued_ms: u64,
    /// When it expires, Unix ms.
    pub expires_ms: u64,
    /// Milliseconds since its last heartbeat, if this node heard one.
    pub last_heard_ms_ago: Option<u64>,
    /// Whether it is this node.
    pub this_node: bool,
}

/// A peer the root removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemovedView {
    /// Its peer id.
    pub peer: String,
    /// When, Unix ms.
    pub removed_ms: u64,
    /// Why, as the master that removed it said.
    pub reason: String,
}

/// `cluster/members`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MembersView {
    /// The cluster, if this node belongs to one.
    pub cluster: Option<String>,
    /// Its members, by peer id.
    pub members: Vec<MemberView>,
    /// The peers removed.
    pub removed: Vec<RemovedView>,
}

/// The routes; `issuer` is `None` on a node that holds no root (it can still list).
pub fn router(
    service: Handle,
    state: state::Handle,
    net: Client,
    issuer: Option<Arc<Issuer>>,
) -> Router {
    Router::new()
        .route("/api/v0/cluster/members", post(list))
        .route("/api/v0/cluster/member/rm", post(remove))
        .with_state(Api {
            service,
            state,
            net,
            issuer,
        })
}

async fn list(Extract(api): Extract<Api>) -> Result<Json<MembersView>, ApiError> {
    let peers = api.service.peers().await?;
    let members = api.service.members();
    let me = api.state.peer_id().to_string();
    let view = MembersView {
        cluster: members.cluster().map(|c| c.name),
        members: members
            .list()
            .into_iter()
            .map(|m| {
                let peer = m.peer().to_string();
                let heard = peers.iter().find(|p| p.peer == peer);
                MemberView {
                    role: m.certificate.grant.name().to_string(),
                    tags: m.certificate.tags.clone(),
                    issued_ms: m.certificate.issued_ms,
                    expires_ms: m.certificate.expires_ms,
                    last_heard_ms_ago: heard.map(|p| p.last_heartbeat_ms_ago),
                    this_node: peer == me,
                    peer,
                }
            })
            .collect(),
        removed: members
            .revoked()
            .into_iter()
            .map(|r| RemovedView {
                peer: r.peer.0.to_string(),
                removed_ms: r.revoked_ms,
                reason: r.reason,
            })
            .collect(),
    };
    Ok(Json(view))
}

async fn remove(Extract(api): Extract<Api>, args: Args) -> Result<Json<RemovedView>, ApiError> {
    let issuer = super::invites::root_holder(api.issuer.as_ref(), "members are removed")?;
    let text = args.arg()?;
    let peer: PeerId = text
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a peer id")))?;
    if peer == api.state.peer_id() {
        return Err(ApiError::bad_request(
            "a master cannot remove itself; remove it from another master holding the root",
        ));
    }
    let reason = args.get("reason").unwrap_or_default().to_string();
    if reason.len() > MAX_REASON {
        return Err(ApiError::bad_request(format!(
            "reason: at most {MAX_REASON} bytes"
        )));
    }
    let now = crate::clock::now_ms();
    let signed = issuer
        .root
        .revoke(peer, &reason, now)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ops = vec![
        ipfsbench_protocols::state::Op {
            key: revoked_key(&peer),
            value: Some(signed),
        },
        ipfsbench_protocols::state::Op {
            key: member_key(&peer),
            value: None,
        },
    ];
    api.state
        .write(ops)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // This node stops trusting it at once; the others as the revocation reaches them.
    let _ = api.net.cut_off(peer).await;
    Ok(Json(RemovedView {
        peer: peer.to_string(),
        removed_ms: now,
        reason,
    }))
}
