//! Content calls: add, cat, get, ls, blocks, pins, CAR, repo.

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State as Extract};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cid::Cid;
use tokio::io::AsyncWriteExt;

use super::args::Args;
use super::error::ApiError;
use super::net::{ndjson, push_line};
use super::read::{blocking, fetch_one, read_lazily, resolve, stream_body};
use super::state::State;
use super::wire;
use ipfsbench_store::store::block::{self, DAG_PB, RAW};
use ipfsbench_store::store::pins::{PinFilter, PinKind};
use ipfsbench_store::unixfs::{self, AddOptions, EntryKind, ReadError};

fn add_options(args: &Args) -> Result<AddOptions, ApiError> {
    if args.flag("wrap-with-directory", false)? {
        return Err(ApiError::bad_request(
            "--wrap-with-directory is not supported yet",
        ));
    }
    args.only("hash", &["sha2-256"])?;
    for unsupported in ["trickle", "inline", "nocopy", "fscache"] {
        if args.flag(unsupported, false)? {
            return Err(ApiError::bad_request(format!(
                "{unsupported}=true is not supported"
            )));
        }
    }
    let chunker = args
        .get("chunker")
        .unwrap_or("size-262144")
        .parse()
        .map_err(|e: unixfs::AddError| ApiError::bad_request(e.to_string()))?;
    Ok(AddOptions {
        cid_version: args.num("cid-version")?.unwrap_or(0),
        raw_leaves: args
            .get("raw-leaves")
            .map(|_| args.flag("raw-leaves", true))
            .transpose()?,
        chunker,
        hidden: args.flag("hidden", false)?,
    })
}

/// The longest name of one file or directory in an upload. Bytes.
const MAX_NAME: usize = 255;

/// Where an upload's parts go, so that parts that contradict each other (a file and a
/// directory of one name, a path through a file, a name twice) are refused with a 400 before
/// anything is written.
#[derive(Debug, Default)]
struct Layout(std::collections::HashMap<PathBuf, bool>);

impl Layout {
    fn claim(&mut self, root: &Path, path: &Path, dir: bool) -> Result<(), ApiError> {
        let conflict = |what: &str| {
            let shown = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            ApiError::bad_request(format!("upload entry {shown:?} {what}"))
        };
        for parent in path.ancestors().skip(1) {
            if parent == root {
                break;
            }
            match self.0.get(parent) {
                Some(false) => return Err(conflict("lies under a file of the upload")),
                Some(true) => {}
                None => {
                    self.0.insert(parent.to_path_buf(), true);
                }
            }
        }
        match self.0.get(path) {
            Some(true) if dir => Ok(()),
            Some(true) => Err(conflict("is a directory already")),
            Some(false) => Err(conflict("appears twice")),
            None => {
                self.0.insert(path.to_path_buf(), dir);
                Ok(())
            }
        }
    }
}

/// A multipart file name, as Kubo's clients send it (URL-escaped relative path), made safe.
fn spool_path(root: &Path, name: &str) -> Result<PathBuf, ApiError> {
    let decoded = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("file name is not UTF-8"))?;
    let rel = Path::new(decoded.as_ref());
    let mut out = root.to_path_buf();
    let mut any = false;
    for c in rel.components() {
        match c {
            Component::Normal(part) if part.len() > MAX_NAME => {
                return Err(ApiError::bad_request(format!(
                    "a name of {} bytes in upload path {decoded:?} (at most {MAX_NAME})",
                    part.len()
                )))
            }
            Component::Normal(part) => {
                out.push(part);
                any = true;
            }
            Component::CurDir => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unsafe file name {decoded:?} in upload"
                )))
            }
        }
    }
    if !any {
        return Err(ApiError::bad_request("empty file name in upload"));
    }
    Ok(out)
}

pub(super) async fn add(
    Extract(s): Extract<State>,
    args: Args,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = super::multipart::multipart(multipart)?;
    let options = add_options(&args)?;
    let pin = args.flag("pin", true)?;
    let only_hash = args.flag("only-hash", false)?;
    let _turn = s.upload_turn().await?;
    // Uploads are spooled to a directory inside the repo, then imported like local paths: the
    // same importer, the same CIDs, and nothing half-added if the upload breaks off.
    let spool = s.repo.scratch_dir("add-")?;
    let tops = spool_parts(&mut multipart, spool.path()).await?;
    if tops.is_empty() {
        return Err(ApiError::bad_request("no file in the upload"));
    }
    let added = blocking(&s, move |repo| {
        let mut out = Vec::new();
        for (top, stdin) in tops {
            let entries = if only_hash {
                let mut sink = unixfs::Sink::only_hash();
                unixfs::add_path(&top, &options, &mut sink)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
            } else {
                repo.add_path(&top, &options, pin, &mut |_| {})?
            };
            for mut e in entries {
                if stdin {
                    e.name = e.cid.to_string();
                }
                out.push(e);
            }
        }
        drop(spool);
        Ok(out)
    })
    .await?;
    if !only_hash {
        if let Some(root) = added.last() {
            s.net.provide(root.cid).await?;
        }
    }
    let mut body = String::new();
    for e in &added {
        let line = wire::Added {
            name: e.name.clone(),
            hash: e.cid.to_string(),
            size: e.tsize.to_string(),
        };
        push_line(&mut body, &line);
    }
    ndjson(Body::from(body))
}

/// Writes an upload's parts under `root`; returns the top-level entries, each with whether
/// it came unnamed (stdin).
async fn spool_parts(
    multipart: &mut Multipart,
    root: &Path,
) -> Result<Vec<(PathBuf, bool)>, ApiError> {
    let mut tops: Vec<(PathBuf, bool)> = Vec::new();
    let mut layout = Layout::default();
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("bad multipart body: {e}"))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let raw_name = field.file_name().unwrap_or("").to_string();
        let stdin = raw_name.is_empty();
        let name = if stdin { "stdin".to_string() } else { raw_name };
        let path = spool_path(root, &name)?;
        let is_dir = field
            .content_type()
            .is_some_and(|t| t == "application/x-directory");
        if !stdin {
            layout.claim(root, &path, is_dir)?;
        }
        let top = root.join(
            path.strip_prefix(root)
                .ok()
                .and_then(|p| p.components().next())
                .map(|c| c.as_os_str().to_owned())
                .unwrap_or_default(),
        );
        if !tops.iter().any(|(t, _)| *t == top) {
            tops.push((top, stdin));
        }
        if is_dir {
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            file.write_all(&chunk)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        file.flush()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(tops)
}

pub(super) async fn cat(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    // What is fetched stays on disk until it has been read, even past a leecher's cache size.
    let hold = s.repo.tiers().hold();
    let cid = resolve(&s, args.arg()?).await?;
    let offset: u64 = args.num("offset")?.unwrap_or(0);
    let length: Option<u64> = args.num("length")?;
    let (net, runtime) = (s.net.clone(), tokio::runtime::Handle::current());
    // Refuse a directory or broken root before a 200 goes out.
    let (n, rt) = (net.clone(), runtime.clone());
    blocking(&s, move |r| {
        read_lazily(r, &n, &rt, cid, 0, Some(0), &mut io::sink())?;
        Ok(())
    })
    .await?;
    // The body reads the file in order with many blocks in flight, so that the transfer and
    // the read overlap.
    let body = super::stream::file_body(Arc::clone(&s.repo), net, cid, offset, length, hold);
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub(super) async fn get(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let path = args.arg()?.to_string();
    let hold = s.repo.tiers().hold();
    let cid = resolve(&s, &path).await?;
    s.net.fetch_dag(&s.repo, cid).await?;
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(&path)
        .to_string();
    stream_body(Arc::clone(&s.repo), "application/x-tar", move |r, w| {
        let _hold = hold;
        super::tarball::write(r, &cid, &name, w).map_err(|e| e.to_string())?;
        // Two zero blocks end a tar archive.
        w.write_all(&[0u8; 1024]).map_err(|e| e.to_string())
    })
}

pub(super) async fn ls(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::Listing>, ApiError> {
    let _hold = s.repo.tiers().hold();
    let path = args.arg()?.to_string();
    let cid = resolve(&s, &path).await?;
    // Children are read for their type and size: fetch the ones missing.
    let entries = loop {
        let result = blocking(&s, move |r| Ok(unixfs::ls(r.store(), &cid))).await?;
        match result {
            Ok(entries) => break entries,
            Err(ReadError::NotFound(missing)) => {
                s.net.fetch_block(missing, Vec::new()).await?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let links = entries
        .iter()
        .map(|e| wire::Link {
            name: e.name.clone(),
            hash: e.cid.to_string(),
            size: e.size,
            kind: match e.kind {
                EntryKind::Directory => wire::Link::DIRECTORY,
                EntryKind::File => wire::Link::FILE,
                EntryKind::Symlink => wire::Link::SYMLINK,
                EntryKind::Other => 0,
            },
            target: String::new(),
        })
        .collect();
    Ok(Json(wire::Listing {
        objects: vec![wire::ListedObject {
            hash: path.to_string(),
            links,
        }],
    }))
}

pub(super) async fn block_get(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let cid = block::parse_cid(args.arg()?)?;
    let _hold = s.repo.tiers().hold();
    fetch_one(&s, cid).await?;
    let data = blocking(&s, move |r| {
        r.store()
            .get(&cid)?
            .ok_or_else(|| ApiError::not_found(format!("block {cid} not found locally")))
    })
    .await?;
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Body::from(data))
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub(super) async fn block_stat(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::BlockStat>, ApiError> {
    let cid = block::parse_cid(args.arg()?)?;
    let _hold = s.repo.tiers().hold();
    fetch_one(&s, cid).await?;
    let size = blocking(&s, move |r| {
        r.store()
            .size(&cid)?
            .ok_or_else(|| ApiError::not_found(format!("block {cid} not found locally")))
    })
    .await?;
    Ok(Json(wire::BlockStat {
        key: cid.to_string(),
        size,
    }))
}

pub(super) async fn block_put(
    Extract(s): Extract<State>,
    args: Args,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<wire::BlockStat>, ApiError> {
    let mut multipart = super::multipart::multipart(multipart)?;
    // Kubo's older `format` names a codec too; `mhtype` and `mhlen` the hash.
    args.only("format", &["raw", "v0", "dag-pb", "protobuf"])?;
    args.only("mhtype", &["sha2-256"])?;
    args.only("mhlen", &["-1", "32"])?;
    let format = match args.get("format") {
        Some("raw") => Some("raw"),
        Some(_) => Some("dag-pb"),
        None => None,
    };
    let codec = match args.get("cid-codec").or(format).unwrap_or("raw") {
        "raw" => RAW,
        "dag-pb" => DAG_PB,
        other => {
            return Err(ApiError::bad_request(format!(
                "unsupported cid-codec {other:?} (raw or dag-pb)"
            )))
        }
    };
    let data = super::multipart::first_part(&mut multipart, "the block")
        .await?
        .to_vec();
    if codec == DAG_PB {
        ipfsbench_protocols::codec::pb::decode_node(&data)
            .map_err(|e| ApiError::bad_request(format!("block is not valid dag-pb: {e}")))?;
    }
    let size = data.len();
    let cid = blocking(&s, move |r| Ok(r.block_put(data, codec)?)).await?;
    Ok(Json(wire::BlockStat {
        key: cid.to_string(),
        size: size as u64,
    }))
}

pub(super) async fn block_rm(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let cids = args
        .all("arg")
        .into_iter()
        .map(block::parse_cid)
        .collect::<Result<Vec<_>, _>>()?;
    if cids.is_empty() {
        return Err(ApiError::bad_request("argument \"arg\" is required"));
    }
    // Kubo's options: `force` ignores blocks that are not here, `quiet` leaves out the lines
    // of blocks removed.
    let force = args.flag("force", false)?;
    let quiet = args.flag("quiet", false)?;
    blocking(&s, move |r| {
        let mut body = String::new();
        for cid in cids {
            match r.block_rm(&cid) {
                Ok(()) => {}
                Err(ipfsbench_store::repo::Error::NotFound(_)) if force => {}
                Err(e) => return Err(e.into()),
            }
            if !quiet {
                let line = wire::BlockRemoved {
                    hash: cid.to_string(),
                    error: None,
                };
                push_line(&mut body, &line);
            }
        }
        Ok(body)
    })
    .await
    .and_then(|body| ndjson(Body::from(body)))
}

pub(super) async fn pin_add(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::Pins>, ApiError> {
    let recursive = args.flag("recursive", true)?;
    let paths = args.all("arg");
    if paths.is_empty() {
        return Err(ApiError::bad_request("argument \"arg\" is required"));
    }
    let mut pinned = Vec::new();
    // Fetched blocks stay until pinned, even past a leecher's cache size.
    let _hold = s.repo.tiers().hold();
    for path in paths {
        let cid = resolve(&s, path).await?;
        if recursive {
            s.net.fetch_dag(&s.repo, cid).await?;
        } else {
            fetch_one(&s, cid).await?;
            let repo = Arc::clone(&s.repo);
            tokio::task::spawn_blocking(move || repo.store().flush())
                .await?
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        blocking(&s, move |r| Ok(r.pin_add(&cid, recursive)?)).await?;
        s.net.provide(cid).await?;
        pinned.push(cid.to_string());
    }
    Ok(Json(wire::Pins { pins: pinned }))
}

pub(super) async fn pin_rm(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Json<wire::Pins>, ApiError> {
    let paths: Vec<String> = args.all("arg").into_iter().map(str::to_string).collect();
    if paths.is_empty() {
        return Err(ApiError::bad_request("argument \"arg\" is required"));
    }
    let removed = blocking(&s, move |r| {
        let mut out = Vec::new();
        for p in paths {
            let cid = unixfs::resolve(r.store(), &p)?;
            r.pins().remove(r.store(), &cid)?;
            out.push(cid.to_string());
        }
        Ok(out)
    })
    .await?;
    Ok(Json(wire::Pins { pins: removed }))
}

/// `pin/ls` as Kubo 0.22 answers it: every pin of the kinds `type` selects, or, with `arg`s,
/// each named path (resolved) with how it is pinned; a named path that is not pinned (as that
/// `type`) fails the call with Kubo's message. `stream=true` answers a line per pin.
pub(super) async fn pin_ls(Extract(s): Extract<State>, args: Args) -> Result<Response, ApiError> {
    let filter = match args.get("type").unwrap_or("all") {
        "all" => PinFilter::All,
        "recursive" => PinFilter::Recursive,
        "direct" => PinFilter::Direct,
        "indirect" => PinFilter::Indirect,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid type '{other}', must be one of {{direct, indirect, recursive, all}}"
            )))
        }
    };
    let stream = args.flag("stream", false)?;
    let mut named = Vec::new();
    for path in args.all("arg") {
        named.push((path.to_string(), resolve(&s, path).await?));
    }
    let pins: Vec<(String, String)> = blocking(&s, move |r| {
        if named.is_empty() {
            let all = r.pins().list(r.store(), filter)?;
            return Ok(all
                .into_iter()
                .map(|(cid, kind)| (cid.to_string(), kind.to_string()))
                .collect());
        }
        let mut out = Vec::with_capacity(named.len());
        for (path, cid) in named {
            let kind = pinned_as(r, &cid, filter)?.ok_or_else(|| {
                // Kubo's words and status (500) for a path that is not pinned.
                ApiError::internal(format!("path '{path}' is not pinned"))
            })?;
            out.push((cid.to_string(), kind));
        }
        Ok(out)
    })
    .await?;
    if stream {
        let mut body = String::new();
        for (cid, kind) in pins {
            push_line(&mut body, &wire::PinListed { cid, kind });
        }
        return ndjson(Body::from(body));
    }
    let keys = pins
        .into_iter()
        .map(|(cid, kind)| (cid, wire::PinType { kind }))
        .collect();
    Ok(Json(wire::PinList { keys }).into_response())
}

/// How `cid` is pinned among the kinds `filter` selects, in Kubo's order (recursive, then
/// direct, then below a recursive pin) and words (`indirect through <root>`).
fn pinned_as(
    r: &ipfsbench_store::repo::Repo,
    cid: &Cid,
    filter: PinFilter,
) -> Result<Option<String>, ApiError> {
    let stored = r.pins().get(cid)?;
    let wants = |kind| matches!(filter, PinFilter::All) || filter == kind;
    if stored == Some(PinKind::Recursive) && wants(PinFilter::Recursive) {
        return Ok(Some(PinKind::Recursive.to_string()));
    }
    if stored == Some(PinKind::Direct) && wants(PinFilter::Direct) {
        return Ok(Some(PinKind::Direct.to_string()));
    }
    if wants(PinFilter::Indirect) {
        if let Some(root) = r.pins().indirect_root(r.store(), cid.hash())? {
            return Ok(Some(format!("indirect through {root}")));
        }
    }
    Ok(None)
}

pub(super) async fn dag_export(
    Extract(s): Extract<State>,
    args: Args,
) -> Result<Response, ApiError> {
    let hold = s.repo.tiers().hold();
    let cid = resolve(&s, args.arg()?).await?;
    s.net.fetch_dag(&s.repo, cid).await?;
    stream_body(
        Arc::clone(&s.repo),
        "application/vnd.ipld.car",
        move |r, w| {
            let _hold = hold;
            let mut out = io::BufWriter::with_capacity(1 << 20, w);
            r.export_car(&cid, &mut out).map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())
        },
    )
}

pub(super) async fn dag_import(
    Extract(s): Extract<State>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = super::multipart::multipart(multipart)?;
    let _turn = s.upload_turn().await?;
    let mut body = String::new();
    let mut any = false;
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("bad multipart body: {e}"))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        any = true;
        // Spool the CAR, then import it in one blocking pass (a bad CAR imports nothing).
        let mut spool =
            tempfile::tempfile_in(s.repo.path()).map_err(|e| ApiError::internal(e.to_string()))?;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            spool
                .write_all(&chunk)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let imported = blocking(&s, move |r| {
            use std::io::Seek;
            spool
                .rewind()
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(r.import_car(io::BufReader::with_capacity(1 << 20, spool))?)
        })
        .await?;
        for root in imported.roots {
            s.net.provide(root).await?;
            let line = wire::Imported {
                root: wire::ImportedRoot {
                    cid: wire::CidLink {
                        cid: root.to_string(),
                    },
                    pin_error_msg: String::new(),
                },
            };
            push_line(&mut body, &line);
        }
    }
    if !any {
        return Err(ApiError::bad_request("a CAR file part is required"));
    }
    ndjson(Body::from(body))
}

pub(super) async fn repo_stat(
    Extract(s): Extract<State>,
) -> Result<Json<wire::RepoStat>, ApiError> {
    let stat = blocking(&s, |r| Ok(r.stat()?)).await?;
    Ok(Json(wire::RepoStat {
        num_objects: stat.blocks,
        repo_size: stat.disk_bytes,
        logical_size: stat.logical_bytes,
        storage_max: 0,
        repo_path: s.repo.path().display().to_string(),
        version: "ipfsbench-1".to_string(),
    }))
}

pub(super) async fn repo_gc(Extract(s): Extract<State>) -> Result<Json<wire::GcReport>, ApiError> {
    let stats = blocking(&s, |r| Ok(r.gc()?)).await?;
    Ok(Json(wire::GcReport {
        removed_blocks: stats.removed_blocks,
        removed_bytes: stats.removed_bytes,
        reclaimed_bytes: stats.reclaimed_disk_bytes,
    }))
}

pub(super) async fn repo_verify(
    Extract(s): Extract<State>,
) -> Result<Json<wire::VerifyReport>, ApiError> {
    let report = blocking(&s, |r| Ok(r.verify()?)).await?;
    let bad = report
        .bad
        .iter()
        .map(|(h, reason)| wire::BadBlock {
            cid: Cid::new_v1(RAW, *h).to_string(),
            reason: reason.clone(),
        })
        .collect();
    Ok(Json(wire::VerifyReport {
        checked: report.checked,
        bad,
    }))
}
