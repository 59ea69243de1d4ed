//! `refs` (the links under paths, as Kubo 0.22 lists them) and `refs/local` (every block in
//! the store). Both stream JSON lines `{"Ref", "Err"}` as they go: a listing of any size is
//! written in bounded memory (the unique set aside), and stops when the client goes away.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::response::Response;
use cid::Cid;
use tokio::sync::mpsc;

use super::args::Args;
use super::error::ApiError;
use super::net::ndjson;
use super::read::{blocking, fetch_one, resolve, stream_body};
use super::state::State;
use super::wire;
use ipfsbench_protocols::codec::pb;
use ipfsbench_store::store::block::{DAG_PB, RAW};
use ipfsbench_store::store::dag;

/// Lines buffered ahead of a slow client.
const LINES_AHEAD: usize = 64;

/// What one `refs` call writes.
#[derive(Debug, Clone)]
struct Options {
    unique: bool,
    /// Negative: no limit.
    max_depth: i64,
    format: String,
}

pub(super) async fn refs(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let recursive = args.flag("recursive", false)?;
    let edges = args.flag("edges", false)?;
    let mut format = args.get("format").unwrap_or("<dst>").to_string();
    if edges {
        if format != "<dst>" {
            return Err(ApiError::bad_request(
                "using format argument with edges is not allowed",
            ));
        }
        format = "<src> -> <dst>".to_string();
    }
    let max_depth = if recursive {
        args.num::<i64>("max-depth")?.unwrap_or(-1)
    } else {
        1
    };
    let options = Options {
        unique: args.flag("unique", false)?,
        max_depth,
        format,
    };
    let paths = args.all("arg");
    if paths.is_empty() {
        return Err(ApiError::bad_request("argument \"arg\" is required"));
    }
    // Every path resolves before anything is written, as in Kubo.
    let mut roots = Vec::with_capacity(paths.len());
    for path in paths {
        roots.push(resolve(&s, path).await?);
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(LINES_AHEAD);
    tokio::spawn(async move {
        let _hold = s.repo.tiers().hold();
        let mut walker = Walker {
            s: &s,
            tx: &tx,
            options,
            seen: HashMap::new(),
        };
        for root in roots {
            match walker.write_refs(root).await {
                Ok(true) => {}
                // The client went away.
                Ok(false) => return,
                Err(e) => {
                    if !walker.send(String::new(), e.message().to_string()).await {
                        return;
                    }
                }
            }
        }
    });
    ndjson(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

/// Kubo's `RefWriter`: depth-first in link order, children at their parent's depth + 1.
struct Walker<'a> {
    s: &'a State,
    tx: &'a mpsc::Sender<Result<Bytes, std::io::Error>>,
    options: Options,
    /// With `unique`: the shallowest depth each CID was seen at.
    seen: HashMap<Cid, i64>,
}

impl Walker<'_> {
    /// Sends one line; false when the client is gone.
    async fn send(&self, reference: String, err: String) -> bool {
        let line = wire::Ref { reference, err };
        let mut text = serde_json::to_vec(&line).unwrap_or_default();
        text.push(b'\n');
        self.tx.send(Ok(Bytes::from(text))).await.is_ok()
    }

    /// The links of a block with their names (dag-pb names; empty for other codecs).
    async fn links(&self, cid: Cid) -> Result<Vec<(Cid, String)>, ApiError> {
        if cid.codec() == RAW {
            return Ok(Vec::new());
        }
        fetch_one(self.s, cid).await?;
        blocking(self.s, move |r| {
            let data = r
                .store()
                .get(&cid)?
                .ok_or_else(|| ApiError::not_found(format!("block {cid} not found locally")))?;
            let links = if cid.codec() == DAG_PB {
                pb::decode_node(&data)
                    .map_err(|e| ApiError::internal(format!("block {cid}: {e}")))?
                    .links
                    .into_iter()
                    .map(|l| (l.cid, l.name))
                    .collect()
            } else {
                dag::links(&cid, &data)
                    .map_err(|e| ApiError::internal(e.to_string()))?
                    .into_iter()
                    .map(|c| (c, String::new()))
                    .collect()
            };
            Ok(links)
        })
        .await
    }

    /// Whether to go below `cid` at `depth`, and whether to write it (Kubo's `visit`).
    fn visit(&mut self, cid: Cid, depth: i64) -> (bool, bool) {
        let max = self.options.max_depth;
        if max >= 0 && depth > max {
            return (false, false);
        }
        let at_max = max >= 0 && depth == max;
        if !self.options.unique {
            return (!at_max, true);
        }
        let old = self.seen.get(&cid).copied();
        if let Some(old) = old {
            if max < 0 || old <= depth {
                return (false, false);
            }
        }
        self.seen.insert(cid, depth);
        (!at_max, old.is_none())
    }

    fn format(&self, src: &Cid, dst: &Cid, name: &str) -> String {
        self.options
            .format
            .replace("<src>", &src.to_string())
            .replace("<dst>", &dst.to_string())
            .replace("<linkname>", name)
    }

    /// Writes the refs under `root`; false when the client went away.
    async fn write_refs(&mut self, root: Cid) -> Result<bool, ApiError> {
        // Each frame: a node, its links and the next one to visit. The stack is as deep as
        // the DAG, and each frame holds one block's links.
        let mut stack = vec![(root, self.links(root).await?, 0usize, 0i64)];
        while let Some((node, links, next, depth)) = stack.last_mut() {
            let Some((child, name)) = links.get(*next).cloned() else {
                stack.pop();
                continue;
            };
            *next += 1;
            let (node, child_depth) = (*node, *depth + 1);
            let (deeper, write) = self.visit(child, child_depth);
            if write {
                let text = self.format(&node, &child, &name);
                if !self.send(text, String::new()).await {
                    return Ok(false);
                }
            }
            if deeper {
                let links = self.links(child).await?;
                stack.push((child, links, 0, child_depth));
            }
        }
        Ok(true)
    }
}

pub(super) async fn refs_local(Extract(s): Extract<State>) -> Result<Response, ApiError> {
    // Kubo lists every block as a CIDv1 raw CID: the store knows multihashes only.
    let response = stream_body(Arc::clone(&s.repo), "application/json", |r, w| {
        r.store()
            .for_each_hash(&mut |hash| {
                let line = wire::Ref {
                    reference: Cid::new_v1(RAW, hash).to_string(),
                    err: String::new(),
                };
                let mut text = serde_json::to_vec(&line).unwrap_or_default();
                text.push(b'\n');
                w.write_all(&text)
                    .map_err(|source| ipfsbench_store::store::Error::Io {
                        path: "the HTTP response".into(),
                        source,
                    })
            })
            .map_err(|e| e.to_string())
    })?;
    Ok(with_chunked(response))
}

/// Marks a streamed answer as Kubo marks its streams.
fn with_chunked(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-chunked-output",
        axum::http::HeaderValue::from_static("1"),
    );
    response
}
