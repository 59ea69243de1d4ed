//! Transfer benchmark: a file fetched between two nodes on loopback, for every pairing of our
//! daemon and Kubo, measured in one run; plus the RSS of an idle daemon.
//!
//! Run: `cargo build --release -p ipfsbench-node && cargo bench -p ipfsbench-integration-tests
//! --bench transfer` (`BENCH_TRANSFER_BYTES` overrides the 256 MiB size).

// A benchmark reports failures by panicking, like a test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use ipfsbench_integration_tests::kubo::Kubo;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("transfer benchmark: run with `cargo bench -p ipfsbench-integration-tests --bench transfer`");
        return;
    }
    let bytes: u64 = std::env::var("BENCH_TRANSFER_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 << 20);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.bin");
    write_pseudo_random_file(&file, bytes, 77).unwrap();
    let mb = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let mut rows: Vec<(String, Duration)> = Vec::new();

    // Idle RSS: a fresh daemon after it has settled.
    let idle = Node::start("worker", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss = idle.rss_kib();
    drop(idle);

    // ours -> ours
    let a = Node::start("worker", &[]);
    let b = Node::start("worker", &[]);
    let cid = String::from_utf8(a.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    b.connect(&a);
    rows.push(("ours -> ours".into(), timed_cat(&b, &cid)));

    match Kubo::load() {
        Err(e) => println!("Kubo unavailable ({e}): Kubo pairings skipped"),
        Ok(kubo) => {
            // Kubo -> Kubo
            let ka = kubo.test_repo(Some(dir.path()), true).unwrap();
            let kb = kubo.test_repo(Some(dir.path()), true).unwrap();
            let kcid = kubo.add_file(ka.path(), &file, false).unwrap();
            assert_eq!(kcid, cid, "same CID on both sides");
            let ka_addr = kubo_addr(&kubo, ka.path());
            kubo.connect(kb.path(), &ka_addr).unwrap();
            let dest = dir.path().join("k2k.out");
            let start = Instant::now();
            kubo.download(kb.path(), &cid, &dest, Duration::from_secs(600))
                .unwrap();
            rows.push(("Kubo -> Kubo".into(), start.elapsed()));
            std::fs::remove_file(&dest).unwrap();

            // Kubo -> ours
            let c = Node::start("worker", &[]);
            c.ok(&["swarm", "connect", &ka_addr]);
            rows.push(("Kubo -> ours".into(), timed_cat(&c, &cid)));

            // ours -> Kubo
            let kc = kubo.test_repo(Some(dir.path()), true).unwrap();
            kubo.connect(kc.path(), &a.addr).unwrap();
            let dest = dir.path().join("o2k.out");
            let start = Instant::now();
            kubo.download(kc.path(), &cid, &dest, Duration::from_secs(600))
                .unwrap();
            rows.push(("ours -> Kubo".into(), start.elapsed()));
        }
    }

    println!(
        "transfer of {:.0} MiB on loopback (MB = 10^6 bytes)",
        bytes as f64 / f64::from(1u32 << 20)
    );
    let k2k = rows
        .iter()
        .find(|(n, _)| n == "Kubo -> Kubo")
        .map(|(_, d)| *d);
    for (name, d) in &rows {
        let ratio = k2k
            .map(|k| format!("{:.2}x Kubo->Kubo", k.as_secs_f64() / d.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "  {name:<14} {:>7.2} s {:>8.1} MB/s   {ratio}",
            d.as_secs_f64(),
            mb(*d)
        );
    }
    println!("  idle daemon RSS: {:.1} MiB", idle_rss as f64 / 1024.0);
}

fn kubo_addr(kubo: &Kubo, repo: &std::path::Path) -> String {
    let id = kubo.node_id(repo).unwrap();
    let addr = kubo
        .multiaddrs(repo)
        .unwrap()
        .into_iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap();
    format!("{addr}/p2p/{id}")
}

fn timed_cat(node: &Node, cid: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(node.repo())
        .args(["cat", cid])
        .stdout(File::create("/dev/null").unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "cat failed");
    start.elapsed()
}
