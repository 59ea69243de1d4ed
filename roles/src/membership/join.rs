//! The joining node's side: `--join TOKEN` on a node that is no member yet. The daemon starts
//! with the invite's cluster name, swarm key and masters as bootstrap peers; the node asks
//! the masters in turn for its certificate, checks it against the invite's root, and only
//! then writes the cluster into its repo (`<repo>/cluster/`, and `swarm.key` when private).
//! A refusal writes nothing.

use ipfsbench_core::network::Client;
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::index::{read_frame, write_frame};
use ipfsbench_protocols::membership::{
    Certificate, Invite, JoinRequest, JoinResponse, SignedCertificate, JOIN_PROTOCOL,
    MAX_JOIN_RESPONSE,
};
use libp2p::multiaddr::Protocol;
use libp2p::PeerId;

use super::admit::EXCHANGE_TIMEOUT;
use super::root::{self, ClusterInfo};

/// Whether this repo already belongs to a cluster: it holds its own certificate, and that
/// certificate still holds. A node whose certificate expired (it was away longer than its
/// life, so nobody renewed it) joins again with a token.
pub fn is_member(repo: &Repo) -> bool {
    let Some(info) = root::info(repo).ok().flatten() else {
        return false;
    };
    let Ok(bytes) = std::fs::read(root::dir(repo).join("member.cert")) else {
        return false;
    };
    let key = multibase::Base::Base64
        .decode(&info.root)
        .ok()
        .and_then(|b| libp2p::identity::PublicKey::try_decode_protobuf(&b).ok());
    let Some(key) = key else {
        return false;
    };
    SignedCertificate::decode(&bytes)
        .and_then(|c| c.verify_for(&key, &info.name, &repo.peer_id(), crate::clock::now_ms()))
        .is_ok()
}

/// Whether this repo holds a cluster's files, valid or not.
pub fn holds_cluster(repo: &Repo) -> bool {
    root::dir(repo).exists()
}

/// Asks the invite's masters for a certificate; the first answer counts.
///
/// # Errors
///
/// Every master's refusal or failure, in words.
pub async fn ask(
    client: &Client,
    me: PeerId,
    invite: &Invite,
) -> Result<(Certificate, Vec<u8>), String> {
    let root = invite.root_key().map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    for addr in invite.multiaddrs() {
        let Some(Protocol::P2p(master)) = addr.iter().last() else {
            continue;
        };
        let exchange = async {
            client
                .connect(addr.clone())
                .await
                .map_err(|e| e.to_string())?;
            let mut stream = client
                .streams()
                .open_stream(master, JOIN_PROTOCOL)
                .await
                .map_err(|e| e.to_string())?;
            let request = JoinRequest {
                id: invite.id,
                secret: invite.secret,
            };
            write_frame(&mut stream, &request.encode())
                .await
                .map_err(|e| e.to_string())?;
            let bytes = read_frame(&mut stream, MAX_JOIN_RESPONSE)
                .await
                .map_err(|e| e.to_string())?;
            JoinResponse::decode(&bytes).map_err(|e| e.to_string())
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(Ok(JoinResponse::Admitted { certificate })) => {
                let signed = SignedCertificate::decode(&certificate).map_err(|e| e.to_string())?;
                let now = crate::clock::now_ms();
                let cert = signed
                    .verify_for(&root, &invite.cluster, &me, now)
                    .map_err(|e| format!("the master's certificate: {e}"))?;
                return Ok((cert, certificate));
            }
            Ok(Ok(JoinResponse::Refused { reason })) => return Err(format!("refused: {reason}")),
            Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
            Err(_) => failures.push(format!("{addr}: no answer")),
        }
    }
    Err(format!(
        "no master of the invite answered ({})",
        failures.join("; ")
    ))
}

/// Writes the cluster this node joined into its repo, all at once.
///
/// # Errors
///
/// A failed write (nothing is left half-written in `<repo>/cluster`).
pub fn store(repo: &Repo, invite: &Invite, certificate: &[u8]) -> Result<ClusterInfo, root::Error> {
    let info = ClusterInfo {
        name: invite.cluster.clone(),
        root: root::base64(&invite.root),
        private: invite.swarm_key.is_some(),
        masters: invite
            .multiaddrs()
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
    let swarm_key = invite
        .swarm_key
        .map(|key| ipfsbench_core::network::SwarmKey::new(key).to_string());
    let files: [(&str, &[u8]); 2] = [("cluster.json", &json), ("member.cert", certificate)];
    // A membership that expired is replaced whole: moved aside, and back if the new one
    // cannot be written.
    let old = root::dir(repo);
    if old.join("root.key").exists() {
        return Err(root::Error::Exists(old, invite.cluster.clone()));
    }
    let aside = repo.path().join("tmp").join("cluster-expired");
    let replacing = old.exists();
    if replacing {
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&old, &aside).map_err(|e| root::Error::Malformed {
            path: old.clone(),
            reason: format!("moving the expired membership aside: {e}"),
        })?;
    }
    match root::install_dir(repo, &files, swarm_key.as_deref()) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&aside);
            Ok(info)
        }
        Err(e) => {
            if replacing {
                let _ = std::fs::rename(&aside, &old);
            }
            Err(e)
        }
    }
}
