//! The gateway's answers: a file (whole or a range), a directory (its `index.html` or a
//! listing), one raw block, or a CAR.

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use cid::Cid;

use super::failure::Failure;
use super::request::{ContentPath, Format};
use super::state::Gateway;
use super::{listing, sniff};
use crate::api::{read, stream};
use ipfsbench_net::network::Client;
use ipfsbench_store::repo::Repo;
use ipfsbench_store::unixfs::{self, EntryKind, ReadError};

/// `Cache-Control` of everything under `/ipfs/`: the content never changes.
const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// Answers a parsed request for `/ipfs/{url_path}`.
pub(super) async fn serve(
    gateway: &Gateway,
    url_path: &str,
    query: Option<&str>,
    path: ContentPath,
    format: Format,
    headers: &HeaderMap,
) -> Result<Response, Failure> {
    let repo = &gateway.state.repo;
    // What is fetched stays on disk until it has been read, even past a leecher's cache size.
    let hold = repo.tiers().hold();
    let mut chain = vec![path.cid];
    let mut current = path.cid;
    for name in &path.names {
        fetched(gateway, current).await?;
        let step = format!("{current}/{name}");
        current = blocking(gateway, move |r| Ok(unixfs::resolve(r.store(), &step)?)).await?;
        chain.push(current);
    }
    chain.pop();
    let ipfs_path = format!("/ipfs/{url_path}");
    let response = match format {
        Format::Raw => raw(gateway, current, headers).await?,
        Format::Car => car(gateway, path.cid, chain, current, headers, hold).await?,
        Format::Unixfs => {
            fetched(gateway, current).await?;
            let kind = blocking(gateway, move |r| Ok(unixfs::kind(r.store(), &current)?)).await?;
            match kind {
                EntryKind::File => {
                    let name = path.names.last().cloned().unwrap_or_default();
                    file(gateway, current, &name, headers, hold).await?
                }
                EntryKind::Directory if !path.slash => {
                    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                    return redirect(&format!("{ipfs_path}/{query}"));
                }
                EntryKind::Directory => {
                    directory(gateway, &ipfs_path, current, headers, hold).await?
                }
                EntryKind::Symlink | EntryKind::Other => {
                    return Err(Failure::new(
                        StatusCode::NOT_IMPLEMENTED,
                        format!("{current} is neither a file nor a directory"),
                    ))
                }
            }
        }
    };
    Ok(with_common(response, &ipfs_path))
}

/// Runs `f` on the repo off the async threads.
async fn blocking<T: Send + 'static>(
    gateway: &Gateway,
    f: impl FnOnce(&Repo) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let repo = Arc::clone(&gateway.state.repo);
    tokio::task::spawn_blocking(move || f(&repo)).await?
}

/// Makes sure `cid`'s block is here, fetching it within the gateway's timeout.
async fn fetched(gateway: &Gateway, cid: Cid) -> Result<(), Failure> {
    let local = blocking(gateway, move |r| {
        r.store()
            .has(cid.hash())
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    })
    .await?;
    if !local {
        fetch(&gateway.state.net, cid, gateway.timeout).await?;
    }
    Ok(())
}

async fn fetch(net: &Client, cid: Cid, timeout: std::time::Duration) -> Result<(), Failure> {
    match tokio::time::timeout(timeout, net.fetch_block(cid, Vec::new())).await {
        Ok(result) => result.map(|_| ()).map_err(Failure::from),
        Err(_) => Err(Failure::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("block {cid} did not arrive within {} s", timeout.as_secs()),
        )),
    }
}

impl From<ipfsbench_store::store::Error> for Failure {
    fn from(e: ipfsbench_store::store::Error) -> Self {
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn redirect(location: &str) -> Result<Response, Failure> {
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .body(Body::empty())
        .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The headers every `/ipfs/` answer carries.
fn with_common(mut response: Response, ipfs_path: &str) -> Response {
    let h = response.headers_mut();
    if response_cacheable(h) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    }
    if let Ok(v) = HeaderValue::from_str(ipfs_path) {
        h.insert("x-ipfs-path", v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn response_cacheable(h: &HeaderMap) -> bool {
    h.contains_key(header::ETAG)
}

/// Whether `If-None-Match` names `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn unchanged(etag: &str) -> Result<Response, Failure> {
    Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header(header::ETAG, etag)
        .body(Body::empty())
        .map_err(internal)
}

async fn raw(gateway: &Gateway, cid: Cid, headers: &HeaderMap) -> Result<Response, Failure> {
    let etag = format!("\"{cid}.raw\"");
    if not_modified(headers, &etag) {
        return unchanged(&etag);
    }
    fetched(gateway, cid).await?;
    let data = blocking(gateway, move |r| {
        r.store()
            .get(&cid)?
            .ok_or_else(|| Failure::from(ReadError::NotFound(cid)))
    })
    .await?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.ipld.raw")
        .header(header::CONTENT_LENGTH, data.len())
        .header(header::ETAG, etag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{cid}.bin\""),
        )
        .body(Body::from(data))
        .map_err(internal)
}

async fn car(
    gateway: &Gateway,
    root: Cid,
    chain: Vec<Cid>,
    terminal: Cid,
    headers: &HeaderMap,
    hold: impl Send + 'static,
) -> Result<Response, Failure> {
    let etag = format!("\"{terminal}.car\"");
    if not_modified(headers, &etag) {
        return unchanged(&etag);
    }
    gateway
        .state
        .net
        .fetch_dag(&gateway.state.repo, terminal)
        .await?;
    let body = read::body(Arc::clone(&gateway.state.repo), move |r, w| {
        let _hold = hold;
        let mut out = io::BufWriter::with_capacity(1 << 20, w);
        unixfs::car::export_path(r.store(), &root, &chain, &terminal, &mut out)
            .map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.ipld.car; version=1")
        .header(header::ETAG, etag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{terminal}.car\""),
        )
        .body(body)
        .map_err(internal)
}

async fn directory(
    gateway: &Gateway,
    ipfs_path: &str,
    cid: Cid,
    headers: &HeaderMap,
    hold: impl Send + 'static,
) -> Result<Response, Failure> {
    let index = format!("{cid}/index.html");
    match blocking(gateway, move |r| Ok(unixfs::resolve(r.store(), &index))).await? {
        Ok(page) => {
            fetched(gateway, page).await?;
            return file(gateway, page, "index.html", headers, hold).await;
        }
        Err(ReadError::NoSuchLink { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let etag = format!("\"DirIndex-{cid}\"");
    if not_modified(headers, &etag) {
        return unchanged(&etag);
    }
    // Each entry's kind and size come from its own block: fetch the missing ones.
    let entries = loop {
        match blocking(gateway, move |r| Ok(unixfs::ls(r.store(), &cid))).await? {
            Ok(entries) => break entries,
            Err(ReadError::NotFound(missing)) => {
                fetch(&gateway.state.net, missing, gateway.timeout).await?;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let html = listing::page(ipfs_path, &cid, &entries);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::ETAG, etag)
        .body(Body::from(html))
        .map_err(internal)
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No range, or one the gateway answers whole (several ranges, another unit).
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A range that lies past the end.
    Unsatisfiable,
}

fn range(header: Option<&HeaderValue>, size: u64) -> Range {
    let Some(spec) = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().strip_prefix("bytes="))
    else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // The last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return Range::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size.saturating_sub(1))),
            Err(_) => None,
        },
        (false, true) => first
            .parse::<u64>()
            .ok()
            .map(|a| (a, size.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some((a, b.min(size.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Range::Whole,
        Some((start, _)) if start >= size => Range::Unsatisfiable,
        Some((start, end)) => Range::Part(start, end),
    }
}

async fn file(
    gateway: &Gateway,
    cid: Cid,
    name: &str,
    headers: &HeaderMap,
    hold: impl Send + 'static,
) -> Result<Response, Failure> {
    let etag = format!("\"{cid}\"");
    if not_modified(headers, &etag) {
        return unchanged(&etag);
    }
    let size = blocking(gateway, move |r| Ok(unixfs::file_size(r.store(), &cid)?)).await?;
    let net = gateway.state.net.clone();
    let (n2, rt2) = (net.clone(), tokio::runtime::Handle::current());
    let head = blocking(gateway, move |r| {
        let mut head = Vec::with_capacity(sniff::SNIFF_LEN as usize);
        read::read_lazily(r, &n2, &rt2, cid, 0, Some(sniff::SNIFF_LEN), &mut head)?;
        Ok(head)
    })
    .await?;
    let content_type = sniff::content_type(name, &head);
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes");
    let (offset, length) = match range(headers.get(header::RANGE), size) {
        Range::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .map_err(internal);
        }
        Range::Part(start, end) => {
            builder = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (start, end - start + 1)
        }
        Range::Whole => (0, size),
    };
    // The body reads the range in order with many blocks in flight.
    let body = stream::file_body(
        Arc::clone(&gateway.state.repo),
        net,
        cid,
        offset,
        Some(length),
        hold,
    );
    builder
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(h: &str, size: u64) -> Range {
        range(
            Some(&HeaderValue::from_str(h).unwrap_or_else(|_| unreachable!())),
            size,
        )
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(parsed("bytes=0-99", 1000), Range::Part(0, 99));
        assert_eq!(parsed("bytes=900-", 1000), Range::Part(900, 999));
        assert_eq!(parsed("bytes=-100", 1000), Range::Part(900, 999));
        assert_eq!(parsed("bytes=990-5000", 1000), Range::Part(990, 999));
        assert_eq!(parsed("bytes=-5000", 1000), Range::Part(0, 999));
        assert_eq!(parsed("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parsed("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(parsed("bytes=5-1", 1000), Range::Whole);
        assert_eq!(parsed("bytes=0-1,5-6", 1000), Range::Whole);
        assert_eq!(parsed("items=0-1", 1000), Range::Whole);
        assert_eq!(range(None, 1000), Range::Whole);
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_stars() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, "\"c\""));
    }
}
