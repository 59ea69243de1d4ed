//! The master's side of `/ipfsbench/join/1.0.0`: each request is answered in turn (one at
//! a time, each within a deadline), so a flood of them costs one stream at a time.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipfsbench_core::network::Client;
use ipfsbench_core::state;
use ipfsbench_protocols::index::{read_frame, write_frame};
use ipfsbench_protocols::membership::{JoinRequest, JoinResponse, JOIN_PROTOCOL, MAX_JOIN_REQUEST};
use libp2p::PeerId;

use super::invites;
use super::root::Issuer;

/// How long one exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers join requests until the host stops.
pub async fn serve(client: Client, state: state::Handle, issuer: Arc<Issuer>) {
    let mut incoming = match client.streams().accept(JOIN_PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!("serving {JOIN_PROTOCOL}: {e}");
            return;
        }
    };
    while let Some((peer, stream)) = incoming.next().await {
        let answered =
            tokio::time::timeout(EXCHANGE_TIMEOUT, answer(&state, &issuer, peer, stream)).await;
        if !matches!(answered, Ok(Ok(()))) {
            tracing::debug!(%peer, "a join request went unanswered");
        }
    }
}

async fn answer(
    state: &state::Handle,
    issuer: &Issuer,
    peer: PeerId,
    mut stream: libp2p::Stream,
) -> Result<(), String> {
    let bytes = read_frame(&mut stream, MAX_JOIN_REQUEST)
        .await
        .map_err(|e| e.to_string())?;
    let response = match JoinRequest::decode(&bytes) {
        Ok(request) => {
            let now = crate::clock::now_ms();
            match invites::redeem(state, &issuer.root, peer, request.id, &request.secret, now).await
            {
                Ok(certificate) => {
                    tracing::info!(%peer, invite = %request.id, "admitted a member");
                    JoinResponse::Admitted { certificate }
                }
                Err(reason) => JoinResponse::Refused { reason },
            }
        }
        Err(e) => JoinResponse::Refused {
            reason: e.to_string(),
        },
    };
    write_frame(&mut stream, &response.encode())
        .await
        .map_err(|e| e.to_string())?;
    futures::AsyncWriteExt::close(&mut stream)
        .await
        .map_err(|e| e.to_string())
}
