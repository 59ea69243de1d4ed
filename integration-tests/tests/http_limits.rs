//! The HTTP servers of a real daemon (the API with the roles' routes on it, and the gateway)
//! against what a hostile client does at the connection level:
//!
//! - request heads far past the bounds (a 1 MB URI: a pin name of 1 MB and 10,000 tags; 10,000
//!   headers; one 1 MB header) get a 414 or 431 with Kubo's JSON error on every route, the
//!   roles' included, on a fresh connection and after an answered request on a kept-alive one;
//! - 600 connections sending a byte a second from one address hold at most that client's
//!   share of the server while normal requests from another address are served, and are
//!   closed within the header timeout.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::Node;

/// A client's share of the server's connections (`api::server::MAX_CONNECTIONS_PER_CLIENT`).
const SHARE: usize = 64;
/// How long a client may take to send a request's headers (`api::server::HEADER_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The slow connections' pace, a byte a second: the hostile client under test, which holds
/// its connections open by sending that slowly (a pace, not a wait for some state).
const DRIP: Duration = Duration::from_secs(1);

/// `host:port` of a base URL such as `http://127.0.0.1:5001/api/v0`.
fn socket_of(base: &str) -> SocketAddr {
    let rest = base.trim_start_matches("http://");
    rest.split('/').next().unwrap().parse().unwrap()
}

/// One HTTP answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answers in `bytes`, in order (each framed by its `Content-Length`).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body_end = (end + 4 + length).min(bytes.len());
        out.push(Answer {
            status,
            headers,
            body: bytes[end + 4..body_end].to_vec(),
        });
        bytes = &bytes[body_end..];
    }
    out
}

/// Sends `requests` on one connection, then reads until the server closes it.
fn exchange(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<Answer> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    for r in requests {
        // The server may stop reading a refused request early; what it answered is read below.
        if stream.write_all(r).is_err() {
            break;
        }
    }
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    answers(&received)
}

fn request(method: &str, target: &str, headers: &[String], close: bool) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn assert_json_error(answer: &Answer, status: u16, what: &str) {
    let body = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, status, "{what}: {body}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: body {body:?} is not JSON: {e}"));
    assert_eq!(v["Type"], "error", "{what}: {body}");
    assert_eq!(v["Code"], 1, "{what}: {body}");
    assert!(
        v["Message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[test]
fn oversized_heads_get_kubos_json_error_on_every_route() {
    let node = Node::start("master", &[]);
    let api = socket_of(&node.api_base());
    let gateway = socket_of(&node.gateway_base());
    let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    // The pin of the report: a name of 1 MB and 10,000 tags.
    let tags: String = (0..10_000).map(|i| format!("&tag=t{i}")).collect();
    let pin = format!(
        "/api/v0/cluster/pins/add?arg={cid}&name={}{tags}",
        "n".repeat(1 << 20)
    );
    let many: Vec<String> = (0..10_000).map(|i| format!("X-Tag-{i}: t{i}")).collect();
    let big = vec![format!("X-Big: {}", "b".repeat(1 << 20))];
    let routes = [
        (api, "POST", "/api/v0/version"),
        (api, "POST", "/api/v0/add"),
        (api, "POST", "/api/v0/pin/ls"),
        (api, "POST", "/api/v0/cluster/pins/add"),
        (api, "POST", "/api/v0/cluster/pins/ls"),
        (api, "POST", "/api/v0/task/submit"),
        (api, "POST", "/api/v0/query"),
        (api, "POST", "/api/v0/no/such/call"),
        (api, "GET", "/debug/metrics/prometheus"),
        (gateway, "GET", "/ipfs/bafkqaaa"),
    ];
    for (addr, method, path) in routes {
        let long = format!("{path}?arg={}", "a".repeat(1 << 20));
        for (what, req, status) in [
            ("a 1 MB URI", request(method, &long, &[], true), 414),
            ("10,000 headers", request(method, path, &many, true), 431),
            ("a 1 MB header", request(method, path, &big, true), 431),
        ] {
            let got = exchange(addr, &[req]);
            assert_eq!(got.len(), 1, "{what} on {path}: {got:?}");
            assert_json_error(&got[0], status, &format!("{what} on {path}"));
        }
    }
    let got = exchange(api, &[request("POST", &pin, &[], true)]);
    assert_json_error(&got[0], 414, "the pin of 1 MB and 10,000 tags");

    // On a kept-alive connection: the first request is answered, the oversized second one
    // gets its JSON error, and the connection closes.
    let got = exchange(
        api,
        &[
            request("POST", "/api/v0/version", &[], false),
            request("POST", &pin, &[], false),
        ],
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].status, 200, "{got:?}");
    let version: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert!(version["Version"].is_string(), "{version}");
    assert_json_error(&got[1], 414, "an oversized second request");

    // A chunked body passes on the same connection before an oversized head.
    let mut chunked = b"POST /api/v0/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        .to_vec();
    chunked.extend(request("POST", "/api/v0/version", &many, false));
    let got = exchange(api, &[chunked]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].status, 200, "{got:?}");
    assert_json_error(&got[1], 431, "10,000 headers after a chunked request");

    // Requests within the bounds are served as before.
    let ok = exchange(api, &[request("POST", "/api/v0/id", &[], true)]);
    assert_eq!(ok[0].status, 200);
}

/// A connection that sends a request head a byte at a time.
struct Slow {
    stream: tokio::net::TcpStream,
    sent: usize,
    closed: Option<Instant>,
}

const SLOW_HEAD: &[u8] = b"POST /api/v0/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

impl Slow {
    async fn open(from: &str, to: SocketAddr) -> Slow {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let stream = socket.connect(to).await.unwrap();
        Slow {
            stream,
            sent: 0,
            closed: None,
        }
    }

    /// Sends the next byte unless the server closed the connection (or answered it: a
    /// timeout's 408).
    fn drip(&mut self) {
        if self.closed.is_some() {
            return;
        }
        let mut buf = [0u8; 512];
        match self.stream.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                self.closed = Some(Instant::now());
                return;
            }
        }
        let byte = SLOW_HEAD.get(self.sent).copied().unwrap_or(b'a');
        match self.stream.try_write(&[byte]) {
            Ok(_) => self.sent += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.closed = Some(Instant::now()),
        }
    }
}

fn open_count(conns: &[Slow]) -> usize {
    conns.iter().filter(|c| c.closed.is_none()).count()
}

#[test]
fn hundreds_of_slow_connections_from_one_client_lock_out_no_one() {
    let node = Node::start("worker", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"served while others drip\n").unwrap();
    let cid = String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    let api = socket_of(&node.api_base());
    let gateway_base = node.gateway_base();
    let gateway = socket_of(&gateway_base);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // 600 slow connections to the API from 127.0.0.2, 100 to the gateway from 127.0.0.3.
        let opened = Instant::now();
        let mut api_slow = Vec::new();
        for _ in 0..600 {
            api_slow.push(Slow::open("127.0.0.2", api).await);
        }
        let mut gateway_slow = Vec::new();
        for _ in 0..100 {
            gateway_slow.push(Slow::open("127.0.0.3", gateway).await);
        }
        let drip_all = |a: &mut Vec<Slow>, g: &mut Vec<Slow>| {
            a.iter_mut().chain(g.iter_mut()).for_each(Slow::drip);
        };
        // Dripping on, until the servers have refused what is past the client's share (the
        // rest they hold, until the header timeout).
        let settle = Instant::now() + Duration::from_secs(10);
        loop {
            drip_all(&mut api_slow, &mut gateway_slow);
            let held = (open_count(&api_slow), open_count(&gateway_slow));
            if (held.0 <= SHARE && held.1 <= SHARE) || Instant::now() > settle {
                break;
            }
            tokio::time::sleep(DRIP).await;
        }
        let (api_open, gateway_open) = (open_count(&api_slow), open_count(&gateway_slow));

        // Normal requests from 127.0.0.1 meanwhile, to both servers.
        let api_url = format!("{}/version", node.api_base());
        let gateway_url = format!("{gateway_base}/ipfs/{cid}");
        let normal = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            let mut served = Vec::new();
            for i in 0..20 {
                let started = Instant::now();
                let status = if i % 2 == 0 {
                    agent
                        .post(&api_url)
                        .send_empty()
                        .map(|r| r.status().as_u16())
                } else {
                    agent.get(&gateway_url).call().map(|r| r.status().as_u16())
                };
                served.push((i, status.map_err(|e| e.to_string()), started.elapsed()));
                std::thread::sleep(Duration::from_millis(500));
            }
            served
        });
        while !normal.is_finished() {
            drip_all(&mut api_slow, &mut gateway_slow);
            tokio::time::sleep(DRIP).await;
        }
        let failed: Vec<String> = normal
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, status, _)| *status != Ok(200))
            .map(|(i, status, took)| format!("request {i}: {status:?} after {took:?}"))
            .collect();
        assert!(
            failed.is_empty(),
            "normal requests from 127.0.0.1 not served ({} of 20, even ones to the API, odd \
             ones to the gateway):\n{}",
            failed.len(),
            failed.join("\n")
        );
        assert!(
            (1..=SHARE).contains(&api_open),
            "{api_open} of 600 slow API connections held (a client's share is {SHARE})"
        );
        assert!(
            (1..=SHARE).contains(&gateway_open),
            "{gateway_open} of 100 slow gateway connections held (a client's share is {SHARE})"
        );

        // The slow ones are closed within the header timeout.
        let deadline = opened + HEADER_TIMEOUT + Duration::from_secs(20);
        while open_count(&api_slow) + open_count(&gateway_slow) > 0 {
            assert!(
                Instant::now() < deadline,
                "{} slow connections still open {:?} after they opened",
                open_count(&api_slow) + open_count(&gateway_slow),
                opened.elapsed()
            );
            drip_all(&mut api_slow, &mut gateway_slow);
            tokio::time::sleep(DRIP).await;
        }
        let last = api_slow
            .iter()
            .chain(&gateway_slow)
            .filter_map(|c| c.closed)
            .max()
            .unwrap();
        eprintln!(
            "600 + 100 slow connections: {api_open} + {gateway_open} held, the last closed \
             {:?} after opening",
            last - opened
        );
    });
}
