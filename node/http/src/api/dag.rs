//! IPLD calls, shaped as Kubo 0.22 shapes them: `dag/get` (a node, or a value inside one, in
//! an output codec), `dag/put` (nodes in an input codec stored in a store codec) and
//! `dag/stat` (sizes and block counts of DAGs).

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State as Extract};
use axum::response::Response;
use cid::Cid;
use ipfsbench_protocols::codec::cbor::Value;

use super::args::Args;
use super::error::ApiError;
use super::net::{ndjson, push_line};
use super::read::{blocking, fetch_one, resolve, stream_body};
use super::state::State;
use super::wire;
use ipfsbench_protocols::codec::ipld;
use ipfsbench_store::store::block::{self, Hash, MAX_BLOCK_SIZE, RAW};
use ipfsbench_store::store::dag;

/// The most path segments `dag/get` follows.
const MAX_SEGMENTS: usize = 64;
/// The largest block `dag/put` makes unless `allow-big-block` (Kubo's soft limit). Bytes.
const SOFT_BLOCK_LIMIT: usize = 1 << 20;

impl From<ipld::Error> for ApiError {
    fn from(e: ipld::Error) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// A block's bytes, fetched from the network when they are not local.
async fn load(s: &State, cid: Cid) -> Result<Vec<u8>, ApiError> {
    fetch_one(s, cid).await?;
    blocking(s, move |r| {
        r.store()
            .get(&cid)?
            .ok_or_else(|| ApiError::not_found(format!("block {cid} not found locally")))
    })
    .await
}

/// A block as the data model.
async fn node(s: &State, cid: Cid) -> Result<Value, ApiError> {
    let data = load(s, cid).await?;
    ipld::decode(cid.codec(), &data)
        .map_err(|e| ApiError::internal(format!("block {cid} does not decode: {e}")))
}

/// Splits `/ipfs/<cid>/...`, `/ipld/<cid>/...` or `<cid>/...`; true for the `/ipld/`
/// namespace, where dag-pb nodes are walked as data (`Links/0/Hash`) rather than by names.
fn split(path: &str) -> Result<(Cid, Vec<&str>, bool), ApiError> {
    let (rest, ipld_ns) = if let Some(rest) = path.strip_prefix("/ipfs/") {
        (rest, false)
    } else if let Some(rest) = path.strip_prefix("/ipld/") {
        (rest, true)
    } else if path.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "unsupported path namespace in {path:?} (/ipfs/ or /ipld/)"
        )));
    } else {
        (path, false)
    };
    let mut parts = rest.split('/').filter(|p| !p.is_empty());
    let root = block::parse_cid(parts.next().unwrap_or(""))?;
    let segments: Vec<&str> = parts.collect();
    if segments.len() > MAX_SEGMENTS {
        return Err(ApiError::bad_request(format!(
            "path of {} segments (at most {MAX_SEGMENTS})",
            segments.len()
        )));
    }
    Ok((root, segments, ipld_ns))
}

/// The value a path names, following links on the way and at its end, as Kubo does.
async fn resolve_value(s: &State, path: &str) -> Result<Value, ApiError> {
    let (mut cid, segments, ipld_ns) = split(path)?;
    let mut value = node(s, cid).await?;
    // Whether `value` is a whole block (not a value inside one).
    let mut whole = true;
    for segment in segments {
        let next = if whole && cid.codec() == block::DAG_PB && !ipld_ns {
            // Under /ipfs/, a dag-pb node's path segments are link names.
            named_link(&value, segment)
        } else {
            ipld::step(&value, segment).cloned()
        };
        value = next
            .ok_or_else(|| ApiError::not_found(format!("no link named {segment:?} under {cid}")))?;
        whole = false;
        if let Value::Link(target) = value {
            cid = target;
            value = node(s, cid).await?;
            whole = true;
        }
    }
    Ok(value)
}

/// The link of a dag-pb node (in its data-model form) named `name`.
fn named_link(node: &Value, name: &str) -> Option<Value> {
    let Some(Value::Array(links)) = ipld::step(node, "Links") else {
        return None;
    };
    links
        .iter()
        .find(|l| matches!(ipld::step(l, "Name"), Some(Value::Text(n)) if n == name))
        .and_then(|l| ipld::step(l, "Hash").cloned())
}

pub(super) async fn dag_get(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let codec = ipld::codec(args.get("output-codec").unwrap_or("dag-json"))?;
    let _hold = s.repo.tiers().hold();
    let value = resolve_value(&s, args.arg()?).await?;
    let bytes = ipld::encode(codec, &value)?;
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from(bytes))
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub(super) async fn dag_put(
    Extract(s): Extract<State>,
    args: Args,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = super::multipart::multipart(multipart)?;
    let input = ipld::codec(args.get("input-codec").unwrap_or("dag-json"))?;
    let store = ipld::codec(args.get("store-codec").unwrap_or("dag-cbor"))?;
    if let Some(hash) = args.get("hash").filter(|h| *h != "sha2-256") {
        return Err(ApiError::bad_request(format!(
            "hash function {hash:?} is not supported (sha2-256 only)"
        )));
    }
    let pin = args.flag("pin", false)?;
    let limit = if args.flag("allow-big-block", false)? {
        MAX_BLOCK_SIZE
    } else {
        SOFT_BLOCK_LIMIT
    };
    // Every part is decoded and encoded before anything is stored: a bad part stores nothing.
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("bad multipart body: {e}"))
    };
    let mut blocks = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let data = field.bytes().await.map_err(bad)?;
        let bytes = if input == store && input == RAW {
            data.to_vec()
        } else {
            ipld::encode(store, &ipld::decode(input, &data)?)?
        };
        if bytes.len() > limit {
            return Err(ApiError::bad_request(format!(
                "produced block is over {} bytes ({}): big blocks can't be exchanged with other \
                 peers; chunk with add, or pass allow-big-block (up to {MAX_BLOCK_SIZE} bytes)",
                limit,
                bytes.len()
            )));
        }
        blocks.push(bytes);
    }
    if blocks.is_empty() {
        return Err(ApiError::bad_request(
            "the object data is required as a file part",
        ));
    }
    let cids = blocking(&s, move |r| {
        blocks
            .into_iter()
            .map(|b| r.block_put(b, store).map_err(ApiError::from))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let mut body = String::new();
    for cid in &cids {
        if pin {
            let _hold = s.repo.tiers().hold();
            let cid = *cid;
            s.net.fetch_dag(&s.repo, cid).await?;
            blocking(&s, move |r| Ok(r.pin_add(&cid, true)?)).await?;
        }
        s.net.provide(*cid).await?;
        let line = wire::DagPut {
            cid: wire::CidLink {
                cid: cid.to_string(),
            },
        };
        push_line(&mut body, &line);
    }
    ndjson(Body::from(body))
}

pub(super) async fn dag_stat(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let progress = args.flag("progress", true)?;
    let paths = args.all("arg");
    if paths.is_empty() {
        return Err(ApiError::bad_request("argument \"arg\" is required"));
    }
    let hold = s.repo.tiers().hold();
    let mut roots = Vec::with_capacity(paths.len());
    for path in paths {
        let cid = resolve(&s, path).await?;
        s.net.fetch_dag(&s.repo, cid).await?;
        roots.push(cid);
    }
    stream_body(Arc::clone(&s.repo), "application/json", move |r, w| {
        let _hold = hold;
        let mut summary = wire::DagStatSummary::default();
        let mut unique: HashSet<Hash> = HashSet::new();
        let mut counted = 0u64;
        for root in roots {
            summary.dag_stats.push(wire::DagStat {
                cid: root.to_string(),
                ..wire::DagStat::default()
            });
            let mut seen = HashSet::new();
            dag::walk(r.store(), &root, false, &mut seen, &mut |cid, data| {
                let size = match data {
                    Some(d) => d.len() as u64,
                    None => r.store().size(cid)?.ok_or(dag::Error::NotFound(*cid))?,
                };
                if let Some(stat) = summary.dag_stats.last_mut() {
                    stat.size += size;
                    stat.num_blocks += 1;
                }
                if unique.insert(*cid.hash()) {
                    summary.total_size += size;
                }
                counted += size;
                if progress {
                    line(w, &summary)?;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        }
        summary.unique_blocks = unique.len() as u64;
        summary.shared_size = counted - summary.total_size;
        summary.ratio = if summary.total_size == 0 {
            0.0
        } else {
            counted as f32 / summary.total_size as f32
        };
        line(w, &summary).map_err(|e| e.to_string())
    })
}

/// Writes one JSON line.
fn line(w: &mut impl Write, value: &impl serde::Serialize) -> Result<(), dag::Error> {
    let mut text = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    w.write_all(&text)?;
    Ok(())
}
