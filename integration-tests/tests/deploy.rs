//! What a deployment relies on, with real daemons: a private swarm keeps out nodes without
//! its key (no connection, no gossip); an API off loopback needs a bearer token and refuses
//! to start without one; the probes and the Prometheus metrics answer, with the host's,
//! the role's and the HTTP server's figures; `stats/bw` and `stats/bitswap` count a transfer.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use ipfsbench_integration_tests::data::write_pseudo_random_file;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// The API's root URL, `http://127.0.0.1:PORT`.
fn root(node: &Node) -> String {
    node.api_base().trim_end_matches("/api/v0").to_string()
}

fn swarm_key(path: &Path, byte: u8) {
    let hex: String = (0..32).map(|i| format!("{:02x}", byte ^ i)).collect();
    std::fs::write(path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")).unwrap();
}

/// Runs the daemon on a fresh repo with `args`; it must exit at once with an error that
/// contains `expected`.
fn refuses_to_start(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init_repo(&repo);
    let out = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(&repo)
        .args(["--role", "worker", "--mdns", "false", "--gateway", "off"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(err.contains(expected), "{err}");
}

#[test]
fn a_private_swarm_keeps_out_nodes_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, other) = (dir.path().join("swarm.key"), dir.path().join("other.key"));
    swarm_key(&key, 0x5a);
    swarm_key(&other, 0xa5);
    let k = key.to_str().unwrap();
    let a = Node::start("worker", &["--swarm-key", k]);
    let b = Node::start("worker", &["--swarm-key", k]);
    let stranger = Node::start("worker", &["--swarm-key", other.to_str().unwrap()]);
    let public = Node::start("worker", &[]);
    b.connect(&a);
    let target = format!("{}/p2p/{}", a.addr, a.peer_id);
    for outsider in [&stranger, &public] {
        let out = outsider.cli(&["swarm", "connect", &target]);
        assert!(!out.status.success(), "an outsider connected");
    }
    // Gossip: b's messages reach a's subscriber, the outsiders' never do.
    let topic = "private-swarm-check";
    let mut sub = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(a.repo())
        .args(["pubsub", "sub", topic])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = sub.stdout.take().unwrap();
    let (tx, rx) = mpsc::sync_channel(64);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // `pubsub pub` reads the message from a file, like Kubo's.
    let (member_msg, outsider_msg) = (dir.path().join("member"), dir.path().join("outsider"));
    std::fs::write(&member_msg, "from-member").unwrap();
    std::fs::write(&outsider_msg, "from-outsider").unwrap();
    let (member_msg, outsider_msg) = (member_msg.to_str().unwrap(), outsider_msg.to_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("from-member")) {
        assert!(
            Instant::now() < deadline,
            "no message from a member arrived"
        );
        for outsider in [&stranger, &public] {
            outsider.ok(&["pubsub", "pub", topic, outsider_msg]);
        }
        b.ok(&["pubsub", "pub", topic, member_msg]);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
    }
    let _ = sub.kill();
    let _ = sub.wait();
    assert!(
        !lines.iter().any(|l| l.contains("from-outsider")),
        "{lines:?}"
    );
    let peers = String::from_utf8(a.ok(&["swarm", "peers"])).unwrap();
    assert!(peers.contains(&b.peer_id), "{peers}");
    assert!(!peers.contains(&stranger.peer_id) && !peers.contains(&public.peer_id));
    // A key cannot ride QUIC: such a listen address is refused at start.
    refuses_to_start(
        &["--swarm-key", k, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"],
        "TCP only",
    );
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    refuses_to_start(
        &[
            "--swarm-key",
            bad.to_str().unwrap(),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
        "not a swarm key",
    );
}

#[test]
fn an_api_off_loopback_needs_a_token() {
    let listen = ["--listen", "/ip4/127.0.0.1/tcp/0"];
    let mut no_token = vec!["--api", "0.0.0.0:0"];
    no_token.extend(listen);
    refuses_to_start(&no_token, "needs a bearer token");
    let dir = tempfile::tempdir().unwrap();
    let weak = dir.path().join("weak");
    std::fs::write(&weak, "short\n").unwrap();
    let mut weak_args = vec![
        "--api",
        "0.0.0.0:0",
        "--api-token-file",
        weak.to_str().unwrap(),
    ];
    weak_args.extend(listen);
    refuses_to_start(&weak_args, "at least 16 characters");

    let token = "s3cret-token-for-the-api-0123456789";
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let path = file.to_str().unwrap().to_string();
    // The repo's config names the file, so the CLI finds the token as well.
    let node = Node::start_configured(
        "worker",
        &["--api", "0.0.0.0:0"],
        Tuning::NONE.api_token_file(&path),
    );
    let base = root(&node);
    let call = |auth: Option<&str>| {
        let mut req = agent().post(format!("{base}/api/v0/id"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send_empty().unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().read_to_string().unwrap())
    };
    let (status, body) = call(None);
    assert_eq!(status, 401, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["Type"], "error");
    assert_eq!(call(Some("Bearer wrong-token-wrong-token")).0, 401);
    assert_eq!(call(Some(&format!("Basic {token}"))).0, 401);
    let (status, body) = call(Some(&format!("Bearer {token}")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&node.peer_id));
    // The probes and the metrics need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = agent().get(format!("{base}{path}")).call().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    // The CLI reads the token from the file the config names.
    let id = String::from_utf8(node.ok(&["id"])).unwrap();
    assert!(id.contains(&node.peer_id));
}

/// The value of the sample whose line starts with `prefix`, if there is one.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_probes_and_stats_count_a_transfer_and_a_task() {
    let master = Node::start("master", &[]);
    let trust = ["--trust-master", master.peer_id.as_str()];
    let worker = Node::start("worker", &trust);
    worker.connect(&master);
    let reader = Node::start("worker", &trust);
    reader.connect(&worker);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 3 << 20, 9).unwrap();
    let cid = String::from_utf8(worker.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(reader.ok(&["cat", &cid]).len(), 3 << 20);
    let out = master.first_line(&["task", "submit", "--kind", "noop", "--wait"]);
    assert!(!out.is_empty());

    let base = root(&reader);
    let resp = agent()
        .get(format!("{base}/debug/metrics/prometheus"))
        .header("Accept", "application/openmetrics-text")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"));
    let text = resp.into_body().read_to_string().unwrap();
    let blocks = sample(&text, "ipfsbench_bitswap_blocks_received_total").unwrap();
    assert!(blocks >= 12.0, "{blocks} blocks");
    let bytes = sample(&text, "ipfsbench_bitswap_received_bytes_total").unwrap();
    assert!(bytes >= f64::from(3 << 20), "{bytes} bytes");
    assert!(sample(&text, "ipfsbench_store_blocks").unwrap() >= 12.0);
    assert!(sample(&text, "ipfsbench_peers_connected").unwrap() >= 1.0);
    assert!(
        text.contains("libp2p_bandwidth_bytes_total{"),
        "no bandwidth"
    );
    assert!(
        text.contains("libp2p_swarm_connections_established_total"),
        "no swarm"
    );
    assert!(
        text.contains(
            "ipfsbench_http_requests_total{server=\"api\",endpoint=\"/api/v0/cat\",code=\"200\"}"
        ),
        "no HTTP counts"
    );
    assert!(text.contains("ipfsbench_http_request_duration_seconds_bucket{"));
    assert!(sample(&text, "ipfsbench_cluster_peers{role=\"master\"}").unwrap() >= 1.0);
    assert!(text.contains("ipfsbench_state_heads "));
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(text.matches("# EOF").count(), 1);

    // Kubo's stats calls, with Kubo's field names.
    let post = |path: &str| -> serde_json::Value {
        let resp = agent()
            .post(format!("{base}/api/v0/{path}"))
            .send_empty()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        serde_json::from_str(&resp.into_body().read_to_string().unwrap()).unwrap()
    };
    let bw = post("stats/bw");
    assert!(bw["TotalIn"].as_u64().unwrap() >= 3 << 20, "{bw}");
    assert!(bw["TotalOut"].as_u64().unwrap() > 0, "{bw}");
    assert!(
        bw["RateIn"].is_number() && bw["RateOut"].is_number(),
        "{bw}"
    );
    let bitswap = post("bitswap/stat");
    // The node goes on receiving (the replicated state's deltas): the counter only grows.
    let received = bitswap["BlocksReceived"].as_f64().unwrap();
    assert!(received >= blocks, "{received} < {blocks}: {bitswap}");
    assert!(bitswap["DataReceived"].as_u64().unwrap() >= 3 << 20);
    // `cat` returns once the file is streamed; the DAG's background fetch may still be
    // winding down. No want stays behind.
    ipfsbench_integration_tests::poll::wait_until(30, "the wantlist empties", || {
        post("bitswap/stat")["Wantlist"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    assert!(bitswap["Peers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == worker.peer_id.as_str()));
    assert!(post("stats/bitswap")["BlocksReceived"].as_f64().unwrap() >= received);

    // The master counts the worker and the task messages.
    let text = agent()
        .get(format!("{}/metrics", root(&master)))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        sample(&text, "ipfsbench_cluster_peers{role=\"worker\"}").unwrap() >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "ipfsbench_task_messages_received_total").unwrap() >= 1.0);
    assert!(text.contains("ipfsbench_task_queue_depth 0"));
}
