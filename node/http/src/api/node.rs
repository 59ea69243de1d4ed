//! Node calls shaped as Kubo 0.22 shapes them: `ping`, `swarm/addrs/local`, `config/show`
//! and `name/resolve` (of `/ipfs/` paths: this node has no IPNS).

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::response::{IntoResponse, Response};
use axum::Json;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::args::Args;
use super::error::ApiError;
use super::net::{ndjson, push_line};
use super::read::resolve;
use super::state::State;
use super::wire;
use ipfsbench_net::network::ping::Pinger;

/// The most pings one call may ask for.
const MAX_PINGS: u32 = 1000;
/// The pause between pings, as Kubo paces them.
const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) async fn swarm_addrs_local(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::Strings>, ApiError> {
    let id = args.flag("id", false)?;
    let peer = s.repo.peer_id();
    let mut addrs: Vec<String> = s
        .net
        .listen_addrs()
        .await?
        .into_iter()
        .map(|a| {
            if id {
                format!("{a}/p2p/{peer}")
            } else {
                a.to_string()
            }
        })
        .collect();
    addrs.sort();
    Ok(Json(wire::Strings { strings: addrs }))
}

/// Whether a config key names a secret: such keys are left out of `config/show`, as Kubo
/// leaves out `Identity.PrivKey` (and remote pinning services' keys).
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace(['_', '-'], "");
    key == "key"
        || [
            "privkey",
            "privatekey",
            "secret",
            "token",
            "password",
            "swarmkey",
            "apikey",
        ]
        .iter()
        .any(|s| key.ends_with(s))
}

fn scrub(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !is_secret(k));
            map.values_mut().for_each(scrub);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// `/ip4/<ip>/tcp/<port>` for a socket address; the text itself otherwise.
fn api_multiaddr(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(std::net::SocketAddr::V4(a)) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        Ok(std::net::SocketAddr::V6(a)) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
        Err(_) => addr.to_string(),
    }
}

pub(super) async fn config_show(
    Extract(s): Extract<State>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let config = s.repo.config();
    let mut ours = serde_json::to_value(config).map_err(|e| ApiError::internal(e.to_string()))?;
    scrub(&mut ours);
    // Kubo's sections that clients read, from this node's settings; the node's own config
    // in full under `Ipfsbench`. The private key lives in its own file and is never shown.
    let mut shown = serde_json::json!({
        "Identity": { "PeerID": s.repo.peer_id().to_string() },
        "Addresses": {
            "Swarm": config.daemon.listen,
            "API": api_multiaddr(&config.daemon.api),
            "Announce": [],
            "NoAnnounce": [],
        },
        "Bootstrap": config.daemon.bootstrap,
        "Discovery": { "MDNS": { "Enabled": config.daemon.mdns } },
        "Pubsub": { "Enabled": true, "Router": "gossipsub" },
        "API": { "HTTPHeaders": {} },
        "Ipfsbench": ours,
    });
    scrub(&mut shown);
    Ok(Json(shown))
}

pub(super) async fn name_resolve(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let name = args.arg()?;
    let stream = args.flag("stream", false)?;
    let Some(rest) = name.strip_prefix("/ipfs/") else {
        return Err(ApiError::bad_request(format!(
            "cannot resolve {name:?}: IPNS is not supported by this node (only /ipfs/ paths \
             resolve)"
        )));
    };
    // The path must resolve; it is answered as given, cleaned, as Kubo answers /ipfs/ paths.
    resolve(&s, rest).await?;
    let cleaned: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let answer = wire::ResolvedPath {
        path: format!("/ipfs/{}", cleaned.join("/")),
    };
    if stream {
        let mut body = String::new();
        push_line(&mut body, &answer);
        return ndjson(Body::from(body));
    }
    Ok(Json(answer).into_response())
}

/// A peer id, or a multiaddr ending in `/p2p/<peer id>` (then dialled first).
fn parse_peer(arg: &str) -> Result<(PeerId, Option<Multiaddr>), ApiError> {
    if let Ok(peer) = arg.parse::<PeerId>() {
        return Ok((peer, None));
    }
    let addr: Multiaddr = arg
        .parse()
        .map_err(|e| ApiError::bad_request(format!("failed to parse peer address '{arg}': {e}")))?;
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Ok((peer, Some(addr))),
        _ => Err(ApiError::bad_request(format!(
            "failed to parse peer address '{arg}': no /p2p/ peer id"
        ))),
    }
}

pub(super) async fn ping(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let (peer, addr) = parse_peer(args.arg()?)?;
    if peer == s.repo.peer_id() {
        return Err(ApiError::bad_request("error: can't ping self"));
    }
    let count: i64 = args.num("count")?.unwrap_or(10);
    if count <= 0 {
        return Err(ApiError::bad_request(format!(
            "ping count must be greater than 0, was {count}"
        )));
    }
    if count > i64::from(MAX_PINGS) {
        return Err(ApiError::bad_request(format!(
            "ping count {count} is over the limit of {MAX_PINGS}"
        )));
    }
    if let Some(addr) = addr {
        s.net.connect(addr).await?;
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let send = |line: wire::Ping| {
            let tx = tx.clone();
            async move {
                let mut text = serde_json::to_vec(&line).unwrap_or_default();
                text.push(b'\n');
                tx.send(Ok(Bytes::from(text))).await.is_ok()
            }
        };
        let text = |success: bool, text: String| wire::Ping {
            success,
            time: 0,
            text,
        };
        if !send(text(true, format!("PING {peer}."))).await {
            return;
        }
        let mut pinger = match Pinger::open(&s.net, peer).await {
            Ok(p) => p,
            Err(e) => {
                let _ = send(text(false, format!("Ping error: {e}"))).await;
                let _ = tx.send(Err(std::io::Error::other("ping failed"))).await;
                return;
            }
        };
        let (mut ok, mut total) = (0u32, std::time::Duration::ZERO);
        for i in 0..count {
            if i > 0 {
                tokio::time::sleep(PING_INTERVAL).await;
            }
            let line = match pinger.ping().await {
                Ok(rtt) => {
                    ok += 1;
                    total += rtt;
                    wire::Ping {
                        success: true,
                        time: u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
                        text: String::new(),
                    }
                }
                Err(e) => text(false, format!("Ping error: {e}")),
            };
            if !send(line).await {
                return;
            }
        }
        pinger.close().await;
        if ok == 0 {
            let _ = tx.send(Err(std::io::Error::other("ping failed"))).await;
            return;
        }
        let average = total.as_secs_f64() * 1000.0 / f64::from(ok);
        let _ = send(text(true, format!("Average latency: {average:.2}ms"))).await;
    });
    ndjson(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}
