//! The HTTP gateway of real daemons: content added on one node read through another node's
//! gateway, which fetches it over Bitswap: whole files and ranges, `ETag` and
//! `If-None-Match`, sniffed types, directories (redirect, listing, `index.html`), the
//! trustless `raw` and `car` answers, bad paths, missing content, and a 1 GiB file read in
//! constant memory.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::data::write_pseudo_random_file;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn add(node: &Node, path: &Path, extra: &[&str]) -> String {
    let mut args = vec!["add", "-Q"];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    String::from_utf8(node.ok(&args))
        .unwrap()
        .trim()
        .to_string()
}

/// A source node, and a reader node whose gateway fetches from it, giving a missing block
/// `timeout_secs` to arrive (long enough for a loaded machine, where tests run side by side).
fn pair(timeout_secs: u64) -> (Node, Node) {
    let source = Node::start("worker", &[]);
    let reader =
        Node::start_configured("worker", &[], Tuning::NONE.fetch_timeout_secs(timeout_secs));
    reader.connect(&source);
    (source, reader)
}

#[test]
fn files_and_ranges_come_through_another_nodes_gateway() {
    let (source, reader) = pair(60);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    write_pseudo_random_file(&file, (5 << 20) + 77, 3).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let cid = add(&source, &file, &[]);
    let base = reader.gateway_base();
    let url = format!("{base}/ipfs/{cid}");

    let whole = get(&url, &[]);
    assert_eq!(whole.status, 200);
    assert!(whole.body == bytes, "whole file differs");
    assert_eq!(whole.header("etag"), format!("\"{cid}\""));
    assert_eq!(
        whole.header("cache-control"),
        "public, max-age=29030400, immutable"
    );
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert_eq!(whole.header("x-ipfs-path"), format!("/ipfs/{cid}"));
    assert_eq!(whole.header("content-type"), "application/octet-stream");

    let part = get(&url, &[("range", "bytes=1000000-1999999")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 1000000-1999999/{}", bytes.len())
    );
    assert!(part.body == bytes[1_000_000..2_000_000], "range differs");
    let tail = get(&url, &[("range", "bytes=-100")]);
    assert_eq!(tail.status, 206);
    assert!(tail.body == bytes[bytes.len() - 100..]);
    let past = get(&url, &[("range", &format!("bytes={}-", bytes.len()))]);
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        format!("bytes */{}", bytes.len())
    );

    let again = get(&url, &[("if-none-match", &format!("\"{cid}\""))]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

/// Ranges of a file not yet local, read through `cat` and the gateway of another node: the
/// reader walks the DAG in order with many blocks in flight and must put every byte in its
/// place, for inline (dag-pb) and raw leaves, on a DAG three levels deep, and fetch only
/// what the range needs.
#[test]
fn ranges_of_a_remote_file_come_out_in_order() {
    let (source, reader) = pair(60);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    // 1 KiB chunks: 1,300 leaves under 8 nodes under the root.
    write_pseudo_random_file(&file, (1300 << 10) + 333, 9).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let base = reader.gateway_base();
    for leaves in ["--raw-leaves=false", "--raw-leaves=true"] {
        let cid = add(&source, &file, &["--chunker", "size-1024", leaves]);
        // A range first: only its blocks are fetched.
        let from = 700_000usize;
        let out = reader.ok(&[
            "cat",
            "--offset",
            &from.to_string(),
            "--length",
            "5000",
            &cid,
        ]);
        assert!(
            out == bytes[from..from + 5000],
            "cat range differs ({leaves})"
        );
        let stat = String::from_utf8(reader.ok(&["repo", "stat"])).unwrap();
        let objects: u64 = stat
            .lines()
            .find_map(|l| l.trim().strip_prefix("NumObjects:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX);
        assert!(objects < 100, "a 5,000-byte range fetched {objects} blocks");
        let part = get(
            &format!("{base}/ipfs/{cid}"),
            &[("range", "bytes=1000000-1099999")],
        );
        assert_eq!(part.status, 206);
        assert!(
            part.body == bytes[1_000_000..1_100_000],
            "gateway range differs"
        );
        let whole = reader.ok(&["cat", &cid]);
        assert!(whole == bytes, "whole file differs ({leaves})");
        let tail = reader.ok(&["cat", "--offset", &(bytes.len() - 10).to_string(), &cid]);
        assert!(tail == bytes[bytes.len() - 10..]);
        reader.ok(&["repo", "gc"]);
    }
}

#[test]
fn directories_types_and_trustless_answers() {
    // The absent CID at the end waits this long for its 504.
    let (source, reader) = pair(10);
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("docs")).unwrap();
    std::fs::create_dir_all(site.join("www")).unwrap();
    std::fs::write(site.join("notes"), "plain words\n").unwrap();
    std::fs::write(site.join("pic"), b"\x89PNG\r\n\x1a\nrest-of-a-png").unwrap();
    std::fs::write(site.join("docs/<b>&.txt"), "escaped").unwrap();
    std::fs::write(site.join("www/index.html"), "<p>home page</p>").unwrap();
    let root = String::from_utf8(source.ok(&["add", "-r", "-Q", site.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    let base = reader.gateway_base();

    // A directory without its slash is redirected; with it, listed.
    let bare = get(&format!("{base}/ipfs/{root}/docs"), &[]);
    assert_eq!(bare.status, 301);
    assert_eq!(bare.header("location"), format!("/ipfs/{root}/docs/"));
    let listing = get(&format!("{base}/ipfs/{root}/"), &[]);
    assert_eq!(listing.status, 200);
    assert!(listing.header("content-type").starts_with("text/html"));
    let html = String::from_utf8(listing.body).unwrap();
    for name in ["notes", "pic", "docs/", "www/"] {
        assert!(
            html.contains(&format!(">{name}</a>")),
            "{name} missing: {html}"
        );
    }
    let docs = String::from_utf8(get(&format!("{base}/ipfs/{root}/docs/"), &[]).body).unwrap();
    assert!(docs.contains("&lt;b&gt;&amp;.txt"), "{docs}");
    assert!(!docs.contains("<b>&"), "{docs}");
    // index.html is served in place of a listing.
    let home = get(&format!("{base}/ipfs/{root}/www/"), &[]);
    assert_eq!(home.status, 200);
    assert_eq!(home.body, b"<p>home page</p>");
    assert!(home.header("content-type").starts_with("text/html"));

    // Types: by extension, else by content.
    let pic = get(&format!("{base}/ipfs/{root}/pic"), &[]);
    assert_eq!(pic.header("content-type"), "image/png");
    let notes = get(&format!("{base}/ipfs/{root}/notes"), &[]);
    assert_eq!(notes.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(notes.body, b"plain words\n");

    // Raw: the block's bytes, equal to what `block get` gives.
    let raw = get(&format!("{base}/ipfs/{root}?format=raw"), &[]);
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), "application/vnd.ipld.raw");
    assert_eq!(raw.body, source.ok(&["block", "get", &root]));
    let by_accept = get(
        &format!("{base}/ipfs/{root}"),
        &[("accept", "application/vnd.ipld.raw")],
    );
    assert_eq!(by_accept.body, raw.body);

    // CAR of the whole DAG: byte for byte what `dag export` writes.
    let car = get(&format!("{base}/ipfs/{root}?format=car"), &[]);
    assert_eq!(car.status, 200);
    assert!(car
        .header("content-type")
        .starts_with("application/vnd.ipld.car"));
    assert!(
        car.body == source.ok(&["dag", "export", &root]),
        "CAR differs"
    );
    // CAR of a path: the root's block (the directory the path went through), then the file.
    let car_path = get(
        &format!("{base}/ipfs/{root}/notes"),
        &[("accept", "application/vnd.ipld.car")],
    );
    assert_eq!(car_path.status, 200);
    let notes_cid = String::from_utf8(source.ok(&["ls", &root]))
        .unwrap()
        .lines()
        .find(|l| l.ends_with(" notes"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let blocks = car_sections(&car_path.body);
    assert_eq!(blocks.len(), 2, "{} sections", blocks.len());
    assert!(blocks[0].ends_with(&source.ok(&["block", "get", &root])));
    assert!(blocks[1].ends_with(&source.ok(&["block", "get", &notes_cid])));

    // Bad paths are 400; an unsupported format too; a missing name 404.
    assert_eq!(get(&format!("{base}/ipfs/not-a-cid"), &[]).status, 400);
    assert_eq!(get(&format!("{base}/ipfs/{root}/../x"), &[]).status, 400);
    assert_eq!(
        get(&format!("{base}/ipfs/{root}?format=tar"), &[]).status,
        400
    );
    assert_eq!(get(&format!("{base}/ipfs/{root}/nothing"), &[]).status, 404);
    // Content nobody has: 504 once the fetch timeout passes.
    let absent = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    assert_eq!(get(&format!("{base}/ipfs/{absent}"), &[]).status, 504);
}

fn varint(bytes: &[u8], at: &mut usize) -> usize {
    let (mut value, mut shift) = (0usize, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        value |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

/// The sections (CID and block bytes) of a CAR v1, after its header.
fn car_sections(car: &[u8]) -> Vec<Vec<u8>> {
    let mut at = 0;
    let header = varint(car, &mut at);
    at += header;
    let mut sections = Vec::new();
    while at < car.len() {
        let len = varint(car, &mut at);
        sections.push(car[at..at + len].to_vec());
        at += len;
    }
    sections
}

#[test]
fn a_one_gib_file_is_served_in_constant_memory() {
    let node = Node::start("worker", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    // Repeating data: a small DAG on disk, 1 GiB of bytes through the reader.
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(1 << 30).unwrap();
    let cid = add(&node, &file, &[]);
    let url = format!("{}/ipfs/{cid}", node.gateway_base());
    let before = node.rss_kib();
    let resp = agent().get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 20];
    let (mut total, mut nonzero, mut peak) = (0u64, 0u64, before);
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        nonzero += buf[..n].iter().filter(|b| **b != 0).count() as u64;
        total += n as u64;
        if total % (64 << 20) < n as u64 {
            peak = peak.max(node.rss_kib());
        }
    }
    assert_eq!(total, 1 << 30);
    assert_eq!(nonzero, 0);
    let grown_mib = peak.saturating_sub(before) / 1024;
    println!(
        "RSS before {} MiB, peak while serving 1 GiB {} MiB",
        before / 1024,
        peak / 1024
    );
    assert!(
        grown_mib < 64,
        "RSS grew by {grown_mib} MiB while serving 1 GiB"
    );
    // A range deep inside it reads only what it covers.
    let part = get(&url, &[("range", "bytes=1000000000-1000000009")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, vec![0u8; 10]);
}
