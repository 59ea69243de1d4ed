//! Invites: issued by a master holding the cluster's root and recorded in the replicated
//! state (`invite/<id>`: what it grants, how many uses, until when, the digest of its
//! secret, revoked or not), so any master honours and counts them. The secret itself is
//! only in the token.

use std::time::Duration;

use ipfsbench_core::state;
use ipfsbench_protocols::membership::{Grant, Invite, InviteId};
use ipfsbench_protocols::state::Op;
use libp2p::{Multiaddr, PeerId};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::root::Root;

/// The longest an invite may stay open.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most uses one invite may have.
pub const MAX_USES: u32 = 1_000;
/// The most addresses a token carries.
const MAX_ADDRS: usize = 8;

/// An invite as the cluster keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InviteRecord {
    /// Its id (public).
    pub id: String,
    /// What its holder becomes.
    pub grant: String,
    /// The tags its holder gets.
    pub tags: Vec<String>,
    /// How many nodes may join with it.
    pub uses: u32,
    /// How many have.
    pub used: u32,
    /// When it was issued, Unix ms.
    pub issued_ms: u64,
    /// When it stops admitting, Unix ms.
    pub expires_ms: u64,
    /// SHA-256 of its secret, hex.
    pub digest: String,
    /// Cancelled by a master.
    pub revoked: bool,
    /// The master that issued it.
    pub by: String,
    /// How long the certificates it gets its holders hold, ms (renewed while they stay).
    #[serde(default = "default_cert_ms")]
    pub cert_ms: u64,
}

fn default_cert_ms() -> u64 {
    MEMBER_CERT_MS
}

/// The shortest and longest life of a member's certificate.
pub const CERT_TTL: (Duration, Duration) = (
    Duration::from_secs(10),
    Duration::from_secs(365 * 24 * 3600),
);

/// What an invite should grant.
#[derive(Debug, Clone)]
pub struct Request {
    /// What its holder becomes.
    pub grant: Grant,
    /// How long it stays open.
    pub ttl: Duration,
    /// How many nodes may join with it.
    pub uses: u32,
    /// The tags its holder gets, `key:value`.
    pub tags: Vec<String>,
    /// How long its holders' certificates hold.
    pub certificate: Duration,
}

/// Why an invite was not issued, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller asked for something out of bounds.
    #[error("{0}")]
    Bad(String),
    /// No such invite.
    #[error("no invite {0}")]
    NotFound(String),
    /// The replicated state failed.
    #[error("the replicated state: {0}")]
    State(#[from] state::Error),
    /// The token could not be made.
    #[error(transparent)]
    Token(#[from] ipfsbench_protocols::membership::Error),
}

fn key(id: &InviteId) -> Vec<u8> {
    format!("invite/{id}").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The addresses a new node can dial this master at: its listen addresses with its peer id,
/// unspecified ones left out.
pub fn dialable(listen: &[Multiaddr], me: PeerId) -> Vec<Multiaddr> {
    listen
        .iter()
        .filter(|a| {
            !a.iter().any(|p| {
                matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_unspecified())
                    || matches!(p, libp2p::multiaddr::Protocol::Ip6(ip) if ip.is_unspecified())
            })
        })
        .map(|a| a.clone().with(libp2p::multiaddr::Protocol::P2p(me)))
        .take(MAX_ADDRS)
        .collect()
}

/// Issues an invite: records it, and returns the token (the only copy of its secret).
///
/// # Errors
///
/// A request out of bounds, or a failed write.
pub async fn issue(
    state: &state::Handle,
    root: &Root,
    swarm_key: Option<[u8; 32]>,
    addrs: Vec<Multiaddr>,
    request: &Request,
    now_ms: u64,
) -> Result<(String, InviteRecord), Error> {
    if request.ttl.is_zero() || request.ttl > MAX_TTL {
        return Err(Error::Bad(format!(
            "ttl must be more than 0 and at most {} days",
            MAX_TTL.as_secs() / 86_400
        )));
    }
    if request.uses == 0 || request.uses > MAX_USES {
        return Err(Error::Bad(format!("uses must be 1 to {MAX_USES}")));
    }
    crate::tags::check_tags(&request.tags).map_err(Error::Bad)?;
    if request.certificate < CERT_TTL.0 || request.certificate > CERT_TTL.1 {
        return Err(Error::Bad(format!(
            "cert-ttl must be {} s to {} days",
            CERT_TTL.0.as_secs(),
            CERT_TTL.1.as_secs() / 86_400
        )));
    }
    if addrs.is_empty() {
        return Err(Error::Bad(
            "this master has no address a new node could dial".into(),
        ));
    }
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut id);
    rand::thread_rng().fill_bytes(&mut secret);
    let invite = Invite {
        cluster: root.info.name.clone(),
        root: root.public_key(),
        swarm_key,
        addrs: addrs.iter().map(Multiaddr::to_vec).collect(),
        id: InviteId(id),
        secret,
    };
    let token = invite.encode()?;
    let ttl_ms = u64::try_from(request.ttl.as_millis()).unwrap_or(u64::MAX);
    let record = InviteRecord {
        id: invite.id.to_string(),
        grant: request.grant.name().into(),
        tags: request.tags.clone(),
        uses: request.uses,
        used: 0,
        issued_ms: now_ms,
        expires_ms: now_ms.saturating_add(ttl_ms),
        digest: hex(&Invite::digest(&secret)),
        revoked: false,
        by: state.peer_id().to_string(),
        cert_ms: u64::try_from(request.certificate.as_millis()).unwrap_or(u64::MAX),
    };
    let value = serde_json::to_vec(&record).unwrap_or_default();
    state.put(key(&invite.id), value).await?;
    Ok((token, record))
}

/// Every invite the cluster knows, newest first.
pub fn list(state: &state::Handle) -> Vec<InviteRecord> {
    let mut out: Vec<InviteRecord> = state
        .scan(b"invite/")
        .filter_map(|kv| serde_json::from_slice(&kv.ok()?.1).ok())
        .collect();
    out.sort_by(|a, b| b.issued_ms.cmp(&a.issued_ms).then(a.id.cmp(&b.id)));
    out
}

/// Revokes the invite `id`: no node joins with it from then on.
///
/// # Errors
///
/// A malformed or unknown id, or a failed write.
pub async fn revoke(state: &state::Handle, id: &str) -> Result<InviteRecord, Error> {
    let parsed: InviteId = id
        .parse()
        .map_err(|e: ipfsbench_protocols::membership::Error| Error::Bad(e.to_string()))?;
    let bytes = state
        .get(&key(&parsed))?
        .ok_or_else(|| Error::NotFound(id.to_string()))?;
    let mut record: InviteRecord =
        serde_json::from_slice(&bytes).map_err(|_| Error::NotFound(id.to_string()))?;
    record.revoked = true;
    state
        .put(
            key(&parsed),
            serde_json::to_vec(&record).unwrap_or_default(),
        )
        .await?;
    Ok(record)
}

/// How long a certificate issued to a joining node holds.
pub const MEMBER_CERT_MS: u64 = 90 * 24 * 3600 * 1000;

/// Admits `peer` with the invite `id` if `secret` is its secret and it is open: counts the
/// use in the replicated state, then returns the certificate signed for `peer`.
///
/// # Errors
///
/// Why not, in words the joining node is shown: unknown, wrong secret, revoked, expired,
/// used up; or a failed write.
pub async fn redeem(
    state: &state::Handle,
    root: &Root,
    peer: PeerId,
    id: InviteId,
    secret: &[u8; 32],
    now_ms: u64,
) -> Result<Vec<u8>, String> {
    let unknown = || format!("no invite {id} in this cluster");
    let bytes = state
        .get(&key(&id))
        .map_err(|e| e.to_string())?
        .ok_or_else(unknown)?;
    let mut record: InviteRecord = serde_json::from_slice(&bytes).map_err(|_| unknown())?;
    if record.digest != hex(&Invite::digest(secret)) {
        return Err(format!("invite {id}: the secret is not this invite's"));
    }
    if record.revoked {
        return Err(format!("invite {id} was revoked"));
    }
    if now_ms >= record.expires_ms {
        return Err(format!("invite {id} expired"));
    }
    if record.used >= record.uses {
        return Err(format!(
            "invite {id} is used up ({} of {})",
            record.used, record.uses
        ));
    }
    let grant = Grant::from_name(&record.grant).ok_or_else(unknown)?;
    let certificate = root
        .certify(peer, grant, record.tags.clone(), now_ms, record.cert_ms)
        .map_err(|e| e.to_string())?;
    record.used += 1;
    let value = serde_json::to_vec(&record).unwrap_or_default();
    // One delta: the use counted, and the new member known to every node at once.
    let ops = vec![
        Op {
            key: key(&id),
            value: Some(value),
        },
        Op {
            key: super::keeper::member_key(&peer),
            value: Some(certificate.clone()),
        },
    ];
    state.write(ops).await.map_err(|e| e.to_string())?;
    Ok(certificate)
}
