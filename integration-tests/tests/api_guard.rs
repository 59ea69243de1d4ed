//! The API against what a hostile web page or client sends: forged origins and hosts, the
//! wrong method, oversized requests, contradictory uploads, unsupported options, directories
//! where files belong, long names, slow senders. Each answer is a 4xx in Kubo's JSON error
//! shape before any byte of a 200, and nothing changes.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::Node;

/// The API's `host:port`.
fn api(node: &Node) -> String {
    let addr = std::fs::read_to_string(node.repo().join("api")).unwrap();
    let parts: Vec<&str> = addr.trim().split('/').collect();
    format!("{}:{}", parts[2], parts[4])
}

/// Sends `head` (request line and headers, without the blank line) and `body`; returns the
/// status and the body of the answer.
fn raw(node: &Node, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(api(node)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 4);
    (status, response[at..].to_vec())
}

fn post(node: &Node, path: &str, headers: &[&str]) -> (u16, String) {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1");
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    let (status, body) = raw(node, &head, b"");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn assert_json_error(status: u16, want: u16, body: &str, what: &str) {
    assert_eq!(status, want, "{what}: {body}");
    assert!(body.contains("\"Type\":\"error\""), "{what}: {body}");
    assert!(body.contains("\"Message\""), "{what}: {body}");
}

/// A multipart body of `(name, content type, content)` parts.
fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XyZzYbOuNdArY";
    let mut body = Vec::new();
    for (name, kind, data) in parts {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{name}\"\r\nContent-Type: {kind}\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn upload(node: &Node, path: &str, parts: &[(&str, &str, &[u8])]) -> (u16, String) {
    let (kind, body) = multipart(parts);
    let head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}");
    let (status, body) = raw(node, &head, &body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

const FILE: &str = "application/octet-stream";
const DIR: &str = "application/x-directory";

#[test]
fn web_pages_cannot_drive_the_api() {
    let node = Node::start("worker", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"keep me").unwrap();
    let cid = String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()])).unwrap();
    let cid = cid.trim();
    let port = api(&node).rsplit(':').next().unwrap().to_string();

    let rm = format!("/api/v0/pin/rm?arg={cid}");
    for forged in [
        "Origin: http://evil.example".to_string(),
        "Origin: null".to_string(),
        "Referer: http://evil.example/page".to_string(),
        format!(
            "Origin: http://127.0.0.1:{}",
            port.parse::<u16>().unwrap() + 1
        ),
    ] {
        let (status, body) = post(&node, &rm, &[&forged]);
        assert_json_error(status, 403, &body, &forged);
    }
    let (status, body) = post(&node, "/api/v0/repo/gc", &["Origin: http://evil.example"]);
    assert_json_error(status, 403, &body, "gc from a foreign page");
    // DNS rebinding: a foreign name pointing at loopback.
    let mut head = format!("POST {rm} HTTP/1.1\r\nHost: evil.example:{port}");
    head.push_str("\r\nX-Probe: 1");
    let (status, body) = raw(&node, &head, b"");
    assert_json_error(status, 403, &String::from_utf8_lossy(&body), "foreign Host");
    // The pin is still there, and its blocks.
    let pins = String::from_utf8(node.ok(&["pin", "ls"])).unwrap();
    assert!(pins.contains(cid), "{pins}");

    // The node's own origin passes.
    let own = format!("Origin: http://127.0.0.1:{port}");
    let (status, body) = post(&node, "/api/v0/version", &[&own]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&node, "/api/v0/version", &["Host: localhost"]);
    assert_eq!(status, 200, "{body}");

    // GET is refused on every RPC endpoint, the roles' ones too, in Kubo's JSON shape.
    for path in [
        "/api/v0/pin/rm?arg=x",
        "/api/v0/repo/gc",
        "/api/v0/task/ls",
        "/api/v0/cluster/peers",
    ] {
        let (status, body) = raw(
            &node,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1"),
            b"",
        );
        assert_json_error(status, 405, &String::from_utf8_lossy(&body), path);
    }
}

#[test]
fn oversized_requests_get_json_errors() {
    let node = Node::start("worker", &[]);
    let long = format!("/api/v0/cat?arg={}", "a".repeat(40_000));
    let (status, body) = post(&node, &long, &[]);
    assert_json_error(status, 414, &body, "long URI");
    let many: Vec<String> = (0..200).map(|i| format!("X-Filler-{i}: x")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, body) = post(&node, "/api/v0/version", &many);
    assert_json_error(status, 431, &body, "many headers");
    let big = format!("X-Big: {}", "b".repeat(100_000));
    let (status, body) = post(&node, "/api/v0/version", &[&big]);
    assert_json_error(status, 431, &body, "a big header");
}

#[test]
fn uploads_that_contradict_themselves_are_400s() {
    let node = Node::start("worker", &[]);
    let long = "n".repeat(300);
    for (what, parts) in [
        (
            "a file, then a path under it",
            vec![("a", FILE, &b"x"[..]), ("a%2Fb", FILE, b"y")],
        ),
        (
            "a file, then a directory of the same name",
            vec![("a", FILE, &b"x"[..]), ("a", DIR, b"")],
        ),
        (
            "a directory, then a file of the same name",
            vec![("d", DIR, &b""[..]), ("d", FILE, b"x")],
        ),
        (
            "a name twice",
            vec![("t", FILE, &b"x"[..]), ("t", FILE, b"y")],
        ),
        ("a 300-byte name", vec![(long.as_str(), FILE, &b"x"[..])]),
    ] {
        let (status, body) = upload(&node, "/api/v0/add", &parts);
        assert_json_error(status, 400, &body, what);
    }
    let tmp: Vec<_> = std::fs::read_dir(node.repo().join("tmp"))
        .map(|d| d.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "spools left behind: {tmp:?}");
    // A proper tree still goes in.
    let (status, body) = upload(
        &node,
        "/api/v0/add",
        &[("d", DIR, b""), ("d%2Fx", FILE, b"1"), ("d%2Fe", DIR, b"")],
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn unsupported_options_are_refused_not_ignored() {
    let node = Node::start("worker", &[]);
    for (path, what) in [
        ("/api/v0/add?hash=sha3-256", "add hash"),
        ("/api/v0/add?trickle=true", "add trickle"),
        ("/api/v0/add?inline=true", "add inline"),
        ("/api/v0/block/put?format=cbor", "block/put format"),
        ("/api/v0/block/put?mhtype=sha3-256", "block/put mhtype"),
        ("/api/v0/block/put?mhlen=20", "block/put mhlen"),
    ] {
        let (status, body) = upload(&node, path, &[("f", FILE, b"data")]);
        assert_json_error(status, 400, &body, what);
    }
    let (status, body) = upload(&node, "/api/v0/add?hash=sha2-256", &[("f", FILE, b"data")]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload(
        &node,
        "/api/v0/block/put?format=raw",
        &[("f", FILE, b"data")],
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn directories_are_errors_before_a_200_and_long_names_survive_get() {
    let node = Node::start("worker", &[]);
    let dir = tempfile::tempdir().unwrap();
    let long_dir = "d".repeat(120);
    let long_file = format!("{}.bin", "f".repeat(140));
    let deep = dir.path().join("top").join(&long_dir);
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join(&long_file), b"long names work").unwrap();
    let out = node.ok(&["add", "-r", "-Q", dir.path().join("top").to_str().unwrap()]);
    let root = String::from_utf8(out).unwrap().trim().to_string();

    let (status, body) = post(&node, &format!("/api/v0/cat?arg={root}"), &[]);
    assert_json_error(status, 400, &body, "cat of a directory");
    assert!(body.contains("this dag node is a directory"), "{body}");
    let (status, body) = post(&node, &format!("/api/v0/cat?arg={root}&length=0"), &[]);
    assert_json_error(status, 400, &body, "an empty cat of a directory");

    // `get` of the tree: a tar with the whole names.
    let out = dir.path().join("out");
    node.ok(&["get", &root, "-o", out.to_str().unwrap()]);
    let got = std::fs::read(out.join(&long_dir).join(&long_file)).unwrap();
    assert_eq!(got, b"long names work");
    let (status, body) = raw(
        &node,
        &format!("POST /api/v0/get?arg={root} HTTP/1.1\r\nHost: 127.0.0.1"),
        b"",
    );
    assert_eq!(status, 200);
    let needle = format!("{long_dir}/{long_file}");
    assert!(
        body.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "the tar carries the long name whole"
    );
}

#[test]
fn slow_headers_are_cut_off_and_uploads_take_turns() {
    let node = Node::start("worker", &[]);
    // Headers a byte at a time, every 2 s: the connection is closed within the header
    // timeout (30 s), not kept for ever.
    let mut slow = TcpStream::connect(api(&node)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let started = Instant::now();
    let request = b"POST /api/v0/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut closed = false;
    'drip: for byte in request.iter().chain(std::iter::repeat(&b'a')) {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        for _ in 0..2 {
            let mut buf = [0u8; 256];
            match slow.read(&mut buf) {
                Ok(_) => {
                    closed = true;
                    break 'drip;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    closed = true;
                    break 'drip;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still open after 60 s"
        );
    }
    assert!(closed);
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "closed too early"
    );

    // Many uploads at once: their bodies are read a few at a time, so at most that many
    // spools exist, whatever the number of clients.
    let (kind, _) = multipart(&[]);
    let mut clients = Vec::new();
    for _ in 0..12 {
        let mut c = TcpStream::connect(api(&node)).unwrap();
        write!(
            c,
            "POST /api/v0/add HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n\
             Content-Length: 100000000\r\n\r\n--XyZzYbOuNdArY\r\nContent-Disposition: \
             form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: {FILE}\r\n\r\n"
        )
        .unwrap();
        c.write_all(&[7u8; 64 << 10]).unwrap();
        clients.push(c);
    }
    let spools = || {
        std::fs::read_dir(node.repo().join("tmp"))
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while spools() < 4 {
        assert!(Instant::now() < deadline, "uploads never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(spools(), 4, "at most 4 uploads are received at once");
    drop(clients);
    // Their spools go when they break off.
    let deadline = Instant::now() + Duration::from_secs(20);
    while spools() > 0 {
        assert!(Instant::now() < deadline, "broken uploads left spools");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = post(&node, "/api/v0/version", &[]);
    assert_eq!(status, 200, "{body}");
}
