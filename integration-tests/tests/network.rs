//! Several daemons on loopback, as separate processes: adding on one node, fetching on others.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;

fn add(node: &Node, file: &Path) -> String {
    String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn add_on_one_node_cat_on_another() {
    let a = Node::start("worker", &[]);
    let b = Node::start("leecher", &[]);
    b.connect(&a);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, (3 << 20) + 123, 1).unwrap();
    let cid = add(&a, &file);
    let fetched = b.ok(&["cat", &cid]);
    assert!(
        fetched == std::fs::read(&file).unwrap(),
        "fetched bytes differ"
    );
    // Now local on b: served from its own store.
    let out = b.ok(&["repo", "stat"]);
    assert!(String::from_utf8_lossy(&out).contains("NumObjects: 14"));
    // Both see each other.
    let peers = String::from_utf8(a.ok(&["swarm", "peers"])).unwrap();
    assert!(peers.contains(&b.peer_id), "{peers}");
}

#[test]
fn a_missing_block_is_a_clear_error() {
    let a = Node::start("worker", &[]);
    let b = Node::start("worker", &[]);
    a.connect(&b);
    let out = a.cli(&[
        "block",
        "get",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn five_nodes_fetch_at_once() {
    let source = Node::start("master", &[]);
    let others: Vec<Node> = (0..4).map(|_| Node::start("worker", &[])).collect();
    for n in &others {
        n.connect(&source);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 8 << 20, 2).unwrap();
    let expected = std::fs::read(&file).unwrap();
    let cid = add(&source, &file);
    std::thread::scope(|s| {
        for n in &others {
            let cid = &cid;
            let expected = &expected;
            s.spawn(move || assert!(n.ok(&["cat", cid]) == *expected));
        }
    });
}

#[test]
fn fetch_completes_when_a_provider_dies() {
    let mut a = Node::start("worker", &[]);
    let b = Node::start("worker", &[]);
    let c = Node::start("leecher", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 64 << 20, 3).unwrap();
    let cid = add(&a, &file);
    assert_eq!(add(&b, &file), cid);
    c.connect(&a);
    c.connect(&b);
    let mut cat =
        std::process::Command::new(ipfsbench_integration_tests::bin::ipfsbench_node_binary())
            .arg("--repo")
            .arg(c.repo())
            .args(["cat", &cid])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // Kill a as soon as c has part of the file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stat = String::from_utf8(c.ok(&["repo", "stat"])).unwrap();
        let objects: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("NumObjects: "))
            .unwrap()
            .parse()
            .unwrap();
        if objects > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    a.kill();
    let mut out = Vec::new();
    std::io::Read::read_to_end(cat.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(cat.wait().unwrap().success());
    assert!(out == std::fs::read(&file).unwrap(), "fetched bytes differ");
}

#[test]
fn daemon_stops_cleanly_and_releases_the_repo() {
    let mut a = Node::start("master", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 1 << 20, 4).unwrap();
    let cid = add(&a, &file);
    assert!(a.stop(), "clean exit on SIGTERM");
    assert!(!a.repo().join("api").exists(), "api file removed");
    // Offline now: the CLI opens the repo itself.
    let out = a.ok(&["cat", &cid]);
    assert!(out == std::fs::read(&file).unwrap());
}

/// Sends a raw HTTP request to the node's API; returns the status and the body.
fn http(node: &Node, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let api = std::fs::read_to_string(node.repo().join("api")).unwrap();
    let parts: Vec<&str> = api.trim().split('/').collect();
    let mut stream = std::net::TcpStream::connect(format!("{}:{}", parts[2], parts[4])).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn api_answers_bad_requests_with_4xx_json_errors() {
    let a = Node::start("worker", &[]);
    for (method, path, status) in [
        ("POST", "/api/v0/cat", 400),
        ("POST", "/api/v0/cat?arg=not-a-cid", 400),
        ("POST", "/api/v0/block/stat?arg=QmNotACid", 400),
        ("POST", "/api/v0/pin/ls?type=sideways", 400),
        (
            "POST",
            "/api/v0/swarm/connect?arg=/ip4/127.0.0.1/tcp/1",
            400,
        ),
        ("POST", "/api/v0/pubsub/pub?arg=plain-topic", 400),
        ("POST", "/api/v0/no/such/call", 404),
        ("GET", "/api/v0/id", 405),
    ] {
        let (got, body) = http(&a, method, path);
        assert_eq!(got, status, "{method} {path}: {body}");
        assert!(body.contains("\"Type\":\"error\""), "{path}: {body}");
        assert!(body.contains("\"Message\""), "{path}: {body}");
    }
    let too_many: String = (0..300).map(|i| format!("arg={i}&")).collect();
    let (got, _) = http(&a, "POST", &format!("/api/v0/pin/rm?{too_many}"));
    assert_eq!(got, 400, "argument count is bounded");
    let (got, body) = http(&a, "POST", "/api/v0/version");
    assert_eq!(got, 200, "{body}");
}

#[test]
fn providers_are_found_through_the_dht() {
    let a = Node::start("worker", &[]);
    let b = Node::start("master", &[]);
    b.connect(&a);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 1000, 5).unwrap();
    let cid = add(&a, &file);
    // The provider record travels to b in the background: ask until it is there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = String::from_utf8(b.ok(&["routing", "findprovs", &cid])).unwrap();
        if out.lines().any(|l| l.trim() == a.peer_id) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a never appeared as provider: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn get_writes_a_directory_fetched_from_another_node() {
    let a = Node::start("worker", &[]);
    let b = Node::start("leecher", &[]);
    b.connect(&a);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/empty")).unwrap();
    write_pseudo_random_file(&tree.join("big.bin"), (1 << 20) + 3, 6).unwrap();
    std::fs::write(tree.join("sub/small.txt"), b"small").unwrap();
    std::fs::write(tree.join("sub/zero"), b"").unwrap();
    let cid = String::from_utf8(a.ok(&["add", "-r", "-Q", tree.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    let out = dir.path().join("out");
    b.ok(&["get", &cid, "-o", out.to_str().unwrap()]);
    assert!(
        std::fs::read(out.join("big.bin")).unwrap() == std::fs::read(tree.join("big.bin")).unwrap()
    );
    assert_eq!(std::fs::read(out.join("sub/small.txt")).unwrap(), b"small");
    assert_eq!(std::fs::read(out.join("sub/zero")).unwrap(), b"");
    assert!(out.join("sub/empty").is_dir());
}
