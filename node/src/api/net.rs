//! Network calls: identity, peers, routing and pubsub.

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State as Extract};
use axum::response::Response;
use axum::Json;
use futures::StreamExt;
use libp2p::Multiaddr;
use multibase::Base;
use serde_json::{json, Value};

use super::{ApiError, Args, State};
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

pub(super) async fn id(Extract(s): Extract<State>) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "ID": peer.to_string(),
        "PublicKey": public,
        "Addresses": addrs,
        "AgentVersion": format!("ipfsbench-node/{}", env!("CARGO_PKG_VERSION")),
        "Protocols": PROTOCOLS,
    })))
}

pub(super) async fn version() -> Json<Value> {
    Json(json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": "1",
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "",
    }))
}

pub(super) async fn swarm_connect(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "Strings": out })))
}

pub(super) async fn swarm_peers(Extract(s): Extract<State>) -> Result<Json<Value>, ApiError> {
    let peers: Vec<Value> = s
        .net
        .peers()
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "Addr": p.addr.to_string(),
                "Peer": p.peer.to_string(),
                "Latency": "",
                "Muxer": "",
                "Direction": 0,
                "Streams": null,
            })
        })
        .collect();
    Ok(Json(json!({ "Peers": peers })))
}

pub(super) async fn findprovs(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let cid = block::parse_cid(args.arg()?)?;
    let providers = s.net.find_providers(cid).await?;
    let mut body = String::new();
    for (peer, addrs) in providers {
        let line = json!({
            "Extra": "",
            "ID": "",
            "Responses": [{
                "ID": peer.to_string(),
                "Addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }],
            "Type": 4,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    ndjson(Body::from(body))
}

pub(super) fn ndjson(body: Body) -> Result<Response, ApiError> {
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
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({})))
}

pub(super) async fn pubsub_sub(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let topic = decode_topic(args.arg()?)?;
    let rx = s.net.subscribe(topic.clone()).await?;
    let encoded_topic = encode(topic.as_bytes());
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |m| {
        let line = json!({
            "from": m.from.map(|p| p.to_string()).unwrap_or_default(),
            "data": encode(&m.data),
            "seqno": encode(&m.seqno.unwrap_or(0).to_be_bytes()),
            "topicIDs": [encoded_topic.clone()],
        });
        Ok::<_, std::convert::Infallible>(format!("{line}\n"))
    });
    ndjson(Body::from_stream(lines))
}

pub(super) async fn pubsub_ls(Extract(s): Extract<State>) -> Result<Json<Value>, ApiError> {
    let topics: Vec<String> = s
        .net
        .topics()
        .await?
        .iter()
        .map(|t| encode(t.as_bytes()))
        .collect();
    Ok(Json(json!({ "Strings": topics })))
}

pub(super) async fn pubsub_peers(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<Value>, ApiError> {
    let topic = args.get("arg").map(decode_topic).transpose()?;
    let peers: Vec<String> = s
        .net
        .topic_peers(topic)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(json!({ "Strings": peers })))
}
