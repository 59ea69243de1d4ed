//! Network calls: identity, peers, routing and pubsub.

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State as Extract};
use axum::response::Response;
use axum::Json;
use futures::StreamExt;
use libp2p::Multiaddr;
use multibase::Base;

use super::{wire, ApiError, Args, State};
use crate::store::block;

/// Protocols announced by `id`.
const PROTOCOLS: &[&str] = &[
    "/ipfs/bitswap",
    "/ipfs/bitswap/1.0.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.2.0",
    "/ipfs/id/1.0.0",
    "/ipfs/id/push/1.0.0",
    "/ipfs/kad/1.0.0",
    "/ipfs/ping/1.0.0",
    "/libp2p/autonat/1.0.0",
    "/libp2p/circuit/relay/0.2.0/stop",
    "/libp2p/dcutr",
    "/meshsub/1.1.0",
];

pub(super) async fn id(Extract(s): Extract<State>) -> Result<Json<wire::Identity>, ApiError> {
    let peer = s.repo.peer_id();
    let public = s.repo.keypair().public().encode_protobuf();
    // Kubo prints the key as plain base64: multibase's 'm' prefix dropped.
    let public = multibase::encode(Base::Base64Pad, public)[1..].to_string();
    let addrs: Vec<String> = s
        .net
        .listen_addrs()
        .await?
        .into_iter()
        .map(|a| format!("{a}/p2p/{peer}"))
        .collect();
    Ok(Json(wire::Identity {
        id: peer.to_string(),
        public_key: public,
        addresses: addrs,
        agent_version: format!("ipfsbench-node/{}", env!("CARGO_PKG_VERSION")),
        protocols: PROTOCOLS.iter().map(|p| p.to_string()).collect(),
    }))
}

pub(super) async fn version() -> Json<wire::Version> {
    Json(wire::Version {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: String::new(),
        repo: "1".to_string(),
        system: format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        golang: String::new(),
    })
}

pub(super) async fn swarm_connect(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::Strings>, ApiError> {
    let addrs = args.all("arg");
    if addrs.is_empty() {
        return Err(ApiError::bad_request("argument \"arg\" is required"));
    }
    let mut out = Vec::new();
    for a in addrs {
        let addr: Multiaddr = a
            .parse()
            .map_err(|e| ApiError::bad_request(format!("invalid multiaddr {a:?}: {e}")))?;
        let peer = s.net.connect(addr).await?;
        out.push(format!("connect {peer} success"));
    }
    Ok(Json(wire::Strings { strings: out }))
}

pub(super) async fn swarm_peers(
    Extract(s): Extract<State>,
) -> Result<Json<wire::SwarmPeers>, ApiError> {
    let peers = s
        .net
        .peers()
        .await?
        .into_iter()
        .map(|p| wire::SwarmPeer {
            addr: p.addr.to_string(),
            peer: p.peer.to_string(),
            latency: String::new(),
            muxer: String::new(),
            direction: 0,
            streams: None,
        })
        .collect();
    Ok(Json(wire::SwarmPeers { peers }))
}

pub(super) async fn findprovs(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let cid = block::parse_cid(args.arg()?)?;
    let providers = s.net.find_providers(cid).await?;
    let mut body = String::new();
    for (peer, addrs) in providers {
        let line = wire::RoutingEvent {
            extra: String::new(),
            id: String::new(),
            responses: vec![wire::Provider {
                id: peer.to_string(),
                addrs: addrs.iter().map(ToString::to_string).collect(),
            }],
            kind: wire::RoutingEvent::PROVIDER,
        };
        push_line(&mut body, &line);
    }
    ndjson(Body::from(body))
}

/// Appends `line` and a newline to an NDJSON body. (These types always serialize.)
pub(super) fn push_line(body: &mut String, line: &impl serde::Serialize) {
    if let Ok(text) = serde_json::to_string(line) {
        body.push_str(&text);
        body.push('\n');
    }
}

/// A streamed answer of JSON lines, as Kubo sends them.
pub fn ndjson(body: Body) -> Result<Response, ApiError> {
    Response::builder()
        .header("content-type", "application/json")
        .header("x-chunked-output", "1")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Pubsub topics travel in URLs multibase-encoded (`u` + base64url), as Kubo does.
fn decode_topic(arg: &str) -> Result<String, ApiError> {
    let (_, bytes) = multibase::decode(arg).map_err(|e| {
        ApiError::bad_request(format!(
            "topic {arg:?} must be multibase-encoded (e.g. 'u' + base64url): {e}"
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("topic is not UTF-8"))
}

fn encode(bytes: &[u8]) -> String {
    multibase::encode(Base::Base64Url, bytes)
}

pub(super) async fn pubsub_pub(
    Extract(s): Extract<State>,
    args: Args,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<wire::Empty>, ApiError> {
    let mut multipart = super::multipart(multipart)?;
    let topic = decode_topic(args.arg()?)?;
    let data = super::first_part(&mut multipart, "the message data").await?;
    if data.len() > crate::network::MAX_PUBSUB_MESSAGE {
        return Err(ApiError::bad_request(format!(
            "message of {} bytes exceeds the {}-byte limit",
            data.len(),
            crate::network::MAX_PUBSUB_MESSAGE
        )));
    }
    s.net.publish(topic, data.to_vec()).await?;
    Ok(Json(wire::Empty {}))
}

pub(super) async fn pubsub_sub(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let topic = decode_topic(args.arg()?)?;
    let rx = s.net.subscribe_hearing_own(topic.clone()).await?;
    let encoded_topic = encode(topic.as_bytes());
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |m| {
        let line = wire::PubsubMessage {
            from: m.from.map(|p| p.to_string()).unwrap_or_default(),
            data: encode(&m.data),
            seqno: encode(&m.seqno.unwrap_or(0).to_be_bytes()),
            topic_ids: vec![encoded_topic.clone()],
        };
        serde_json::to_string(&line).map(|text| text + "\n")
    });
    ndjson(Body::from_stream(lines))
}

pub(super) async fn pubsub_ls(Extract(s): Extract<State>) -> Result<Json<wire::Strings>, ApiError> {
    let topics: Vec<String> = s
        .net
        .topics()
        .await?
        .iter()
        .map(|t| encode(t.as_bytes()))
        .collect();
    Ok(Json(wire::Strings { strings: topics }))
}

pub(super) async fn pubsub_peers(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::Strings>, ApiError> {
    let topic = args.get("arg").map(decode_topic).transpose()?;
    let peers: Vec<String> = s
        .net
        .topic_peers(topic)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(wire::Strings { strings: peers }))
}
