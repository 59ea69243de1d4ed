//! A leecher's bounded cache, with real daemons on loopback: it keeps at most
//! `cache.max_bytes` of what it fetched, evicts from disk, keeps what it pinned, serves reads
//! again from memory, and does not serve blocks to other peers.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use serde_json::Value;

/// The leecher's cache: smaller than the four files it reads, larger than any one.
const MAX_BYTES: u64 = 1 << 20;
const FILE: u64 = 600 << 10;
const PINNED: u64 = 300 << 10;

fn add(node: &Node, file: &Path) -> String {
    String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string()
}

fn tiers(node: &Node) -> Value {
    serde_json::from_slice(&node.ok(&["storage", "tiers", "--json"])).unwrap()
}

fn tier<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["Tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["Name"] == name)
        .unwrap()
}

/// The chunks of a file, as `ls` lists them.
fn leaves(node: &Node, cid: &str) -> Vec<String> {
    String::from_utf8(node.ok(&["ls", cid]))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// `GET /api/v0/storage/tiers` on the node's API, by hand: the status line and the body.
fn http_get_tiers(node: &Node) -> (String, String) {
    let api = std::fs::read_to_string(node.repo().join("api")).unwrap();
    let port = api.trim().rsplit('/').next().unwrap();
    let mut conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    conn.write_all(b"GET /api/v0/storage/tiers HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn a_leecher_caches_within_its_budget_keeps_pins_and_serves_nothing() {
    let mut worker = Node::start("worker", &[]);
    let leecher = Node::start_configured(
        "leecher",
        &[],
        Tuning::NONE
            .cache_max_bytes(MAX_BYTES)
            .fetch_timeout_secs(20),
    );
    leecher.connect(&worker);

    let dir = tempfile::tempdir().unwrap();
    let pinned_path = dir.path().join("pinned.bin");
    write_pseudo_random_file(&pinned_path, PINNED, 10).unwrap();
    let pinned = add(&worker, &pinned_path);
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("f{i}.bin"));
            write_pseudo_random_file(&path, FILE, 20 + i).unwrap();
            (add(&worker, &path), std::fs::read(&path).unwrap())
        })
        .collect();
    let first_leaves = leaves(&worker, &files[0].0);
    assert_eq!(first_leaves.len(), 3);

    // The leecher reads the pinned file and pins it, then reads 2.4 MiB through 1 MiB, each
    // file twice: the second read comes from the memory tier, and makes every file frequent,
    // so that the frequent list churns too and the pinned blocks leave the cache.
    assert!(leecher.ok(&["cat", &pinned]) == std::fs::read(&pinned_path).unwrap());
    leecher.ok(&["pin", "add", &pinned]);
    for (cid, bytes) in &files {
        for _ in 0..2 {
            assert!(leecher.ok(&["cat", cid]) == *bytes, "cat {cid} differs");
        }
    }
    let (last, last_bytes) = &files[3];

    let report = tiers(&leecher);
    assert_eq!(report["Role"], "leecher", "{report:#}");
    assert_eq!(report["ServesBlocks"], false);
    let disk = tier(&report, "disk");
    let cache_bytes = disk["CacheBytes"].as_u64().unwrap();
    assert_eq!(disk["MaxBytes"].as_u64(), Some(MAX_BYTES), "{report:#}");
    assert!(cache_bytes > 0 && cache_bytes <= MAX_BYTES, "{report:#}");
    assert!(disk["Evictions"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(disk["PendingEvictions"], 0, "{report:#}");
    // On disk: the cache, plus the pinned file (its chunks wrapped in dag-pb, and a root),
    // which left the cache but not the disk.
    let stored = disk["Bytes"].as_u64().unwrap();
    assert!(stored <= MAX_BYTES + PINNED + 4096, "{report:#}");
    assert!(stored - cache_bytes >= PINNED, "{report:#}");
    assert!(
        tier(&report, "memory")["Hits"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(
        tier(&report, "peer")["Bytes"].as_u64().unwrap() >= 4 * FILE + PINNED,
        "{report:#}"
    );
    // The table, and the same report over GET.
    let table = String::from_utf8(leecher.ok(&["storage", "tiers"])).unwrap();
    assert!(
        table.contains("role: leecher, serves blocks: no"),
        "{table}"
    );
    let (status, body) = http_get_tiers(&leecher);
    assert!(status.contains(" 200 "), "{status}");
    let over_get: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(over_get["Role"], "leecher");

    // A worker keeps everything and serves.
    let report = tiers(&worker);
    assert_eq!(report["ServesBlocks"], true, "{report:#}");
    assert_eq!(tier(&report, "disk")["MaxBytes"], Value::Null);

    // With the worker gone, what the leecher still has is local: the pinned file and the last
    // file read; the first file's chunks were evicted from disk.
    assert!(worker.stop());
    assert!(leecher.ok(&["cat", &pinned]) == std::fs::read(&pinned_path).unwrap());
    assert!(leecher.ok(&["cat", last]) == *last_bytes);
    let evicted = leecher.cli(&["block", "stat", &first_leaves[0]]);
    assert!(!evicted.status.success(), "an evicted chunk is still local");

    // Another peer connected to the leecher alone cannot fetch what the leecher holds.
    let stranger = Node::start("worker", &[]);
    stranger.connect(&leecher);
    let refused = stranger.cli(&["block", "get", last]);
    assert!(!refused.status.success(), "the leecher served a block");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn storage_tiers_needs_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(ipfsbench_integration_tests::bin::ipfsbench_node_binary())
        .arg("--repo")
        .arg(dir.path().join("repo"))
        .args(["storage", "tiers"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no daemon is running"), "{err}");
}
