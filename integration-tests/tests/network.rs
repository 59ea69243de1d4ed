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
