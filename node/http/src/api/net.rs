//! Network calls: identity, peers, routing and pubsub.

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State as Extract};
use axum::response::Response;
use axum::Json;
use futures::StreamExt;
use libp2p::Multiaddr;
use multibase::Base;

use super::args::Args;
use super::error::ApiError;
use super::state::State;
use super::wire;
use ipfsbench_store::store::block;

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
    // Kubo prints the key as plain base64.
    let public = base64(&public);
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
        // Our program and version, never a Kubo version: a client that reads it as Kubo's
        // (aioipfs) takes it for a Kubo before 0.11, whose pubsub form we also serve (see
        // `TopicForm`).
        agent_version: format!("ipfsbench-node/{}", env!("CARGO_PKG_VERSION")),
        protocols: PROTOCOLS.iter().map(|p| p.to_string()).collect(),
    }))
}

/// `version`: this node's own version (not a Kubo version it would imitate).
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

/// How a call names its pubsub topic, which also decides how `pubsub/sub` encodes messages.
///
/// Kubo 0.11 moved pubsub to multibase: topics travel in URLs multibase-encoded (`u` +
/// base64url), and messages carry multibase fields. Clients written for older Kubo send plain
/// topic names (`pub` takes the data as a second argument) and read messages with standard
/// base64 fields and plain topic names. aioipfs 0.7 picks one form by reading `id`'s
/// `AgentVersion` as a Kubo version (`<name>/<version>`, not the `version` call): ours names our
/// own program and version (`ipfsbench-node/0.1.0`), so it picks the old form. Rather than
/// answer as a Kubo version this node is not, the API takes both: an argument that decodes as
/// multibase to UTF-8 text is a multibase topic, as Kubo 0.11 and later read it; any other is a
/// plain topic name. The one ambiguity, a plain name that is also multibase text (`uaGk`, say),
/// is read as multibase, as Kubo reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopicForm {
    /// Kubo 0.11 and later.
    Multibase,
    /// Kubo before 0.11.
    Plain,
}

/// A topic argument: the topic, and the form it came in.
fn decode_topic(arg: &str) -> Result<(String, TopicForm), ApiError> {
    if arg.is_empty() {
        return Err(ApiError::bad_request("the topic is empty"));
    }
    let multibase = multibase::decode(arg)
        .ok()
        .and_then(|(_, bytes)| String::from_utf8(bytes).ok());
    Ok(match multibase {
        Some(topic) => (topic, TopicForm::Multibase),
        None => (arg.to_string(), TopicForm::Plain),
    })
}

fn encode(bytes: &[u8]) -> String {
    multibase::encode(Base::Base64Url, bytes)
}

/// Standard padded base64, as Go's JSON encodes bytes (multibase's `M` prefix dropped).
fn base64(bytes: &[u8]) -> String {
    multibase::encode(Base::Base64Pad, bytes)[1..].to_string()
}

/// Refuses a message over the network's size limit.
fn check_size(data: &[u8]) -> Result<(), ApiError> {
    if data.len() > ipfsbench_net::network::MAX_PUBSUB_MESSAGE {
        return Err(ApiError::bad_request(format!(
            "message of {} bytes exceeds the {}-byte limit",
            data.len(),
            ipfsbench_net::network::MAX_PUBSUB_MESSAGE
        )));
    }
    Ok(())
}

/// `pubsub/pub?arg=<topic>` with the data as a file part; or, as Kubo before 0.11 took it,
/// `pubsub/pub?arg=<plain topic>&arg=<data>...`, each further argument one message.
pub(super) async fn pubsub_pub(
    Extract(s): Extract<State>,
    args: Args,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<wire::Empty>, ApiError> {
    let all = args.all("arg");
    let topic = *all
        .first()
        .ok_or_else(|| ApiError::bad_request("argument \"arg\" is required"))?;
    if all.len() > 1 {
        if topic.is_empty() {
            return Err(ApiError::bad_request("the topic is empty"));
        }
        let messages = &all[1..];
        for data in messages {
            check_size(data.as_bytes())?;
        }
        for data in messages {
            s.net
                .publish(topic.to_string(), data.as_bytes().to_vec())
                .await?;
        }
        return Ok(Json(wire::Empty {}));
    }
    let mut multipart = super::multipart::multipart(multipart)?;
    let (topic, _) = decode_topic(topic)?;
    let data = super::multipart::first_part(&mut multipart, "the message data").await?;
    check_size(&data)?;
    s.net.publish(topic, data.to_vec()).await?;
    Ok(Json(wire::Empty {}))
}

/// `pubsub/sub`: messages as JSON lines, encoded in the form the topic came in.
pub(super) async fn pubsub_sub(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let (topic, form) = decode_topic(args.arg()?)?;
    let rx = s.net.subscribe_hearing_own(topic.clone()).await?;
    let topic_id = match form {
        TopicForm::Multibase => encode(topic.as_bytes()),
        TopicForm::Plain => topic,
    };
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |m| {
        let seqno = m.seqno.unwrap_or(0).to_be_bytes();
        let line = match form {
            TopicForm::Multibase => wire::PubsubMessage {
                from: m.from.map(|p| p.to_string()).unwrap_or_default(),
                data: encode(&m.data),
                seqno: encode(&seqno),
                topic_ids: vec![topic_id.clone()],
            },
            TopicForm::Plain => wire::PubsubMessage {
                from: m.from.map(|p| base64(&p.to_bytes())).unwrap_or_default(),
                data: base64(&m.data),
                seqno: base64(&seqno),
                topic_ids: vec![topic_id.clone()],
            },
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
    let topic = args
        .get("arg")
        .map(decode_topic)
        .transpose()?
        .map(|(topic, _)| topic);
    let peers: Vec<String> = s
        .net
        .topic_peers(topic)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(wire::Strings { strings: peers }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_read_as_multibase_when_they_decode_and_as_plain_names_otherwise() {
        let multibase = |t: &str| {
            decode_topic(t)
                .ok()
                .map(|(t, f)| (t, f == TopicForm::Multibase))
        };
        // Kubo 0.11 and later: multibase text, any base.
        assert_eq!(
            multibase(&encode(b"my topic")),
            Some(("my topic".into(), true))
        );
        assert_eq!(multibase("f6869"), Some(("hi".into(), true)));
        // Older clients' plain names, including ones that start with a multibase prefix.
        for plain in [
            "aioipfs-pubsub",
            "bench/results 1",
            "test",
            "uh oh",
            "z0OIl",
        ] {
            assert_eq!(multibase(plain), Some((plain.into(), false)), "{plain}");
        }
        // Multibase of bytes that are not UTF-8 text is no topic of ours: a plain name.
        let binary = encode(&[0xff, 0xfe]);
        assert_eq!(multibase(&binary), Some((binary.clone(), false)));
        assert!(decode_topic("").is_err());
    }

    #[test]
    fn the_old_form_encodes_bytes_as_go_did() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(&1u64.to_be_bytes()), "AAAAAAAAAAE=");
        assert_eq!(base64(&[]), "");
    }
}
