//! Replicated cluster state benchmark, on loopback with separate processes:
//!
//! 1. 10,000 `cluster pin add` calls on one node (8 concurrent API clients): how long until
//!    four other nodes hold the same state (same digest).
//! 2. The pinset grown to 100,000 pins: `cluster pin ls` throughput (the whole NDJSON stream
//!    read through the API), beside the same number of bytes read with `cat` through the
//!    same API in the same run (the HTTP streaming limit), and the node's RSS.
//! 3. A new node joins that state (after a snapshot): how long until it holds the same
//!    state, and how many deltas of the history it had to apply.
//!
//! Run: `cargo build --release -p ipfsbench-node && cargo bench -p ipfsbench-integration-tests
//! --bench cluster` (`BENCH_PINS` overrides the 100,000 pins of step 2).

// A benchmark reports failures by panicking, like a test.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use serde_json::Value;

/// Concurrent API clients adding pins.
const CLIENTS: usize = 8;
/// Pins added in step 1.
const FIRST: usize = 10_000;

/// Heartbeats every 250 ms, announcements every second, masters holding pins too, snapshots
/// only on demand (step 3 asks for one).
const TUNING: Tuning = Tuning::NONE
    .heartbeat_ms(250)
    .announce_ms(1_000)
    .allocate_to_masters(true)
    .snapshot_every(0);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str) -> Value {
    let mut resp = agent.post(url).send_empty().unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.body_mut().read_json().unwrap()
}

/// Adds `n` distinct tiny files on `node` in one `add -r`; their CIDs.
fn distinct_cids(node: &Node, dir: &Path, n: usize, tag: &str) -> Vec<String> {
    let root = dir.join(tag);
    std::fs::create_dir_all(&root).unwrap();
    // A thousand files per directory: a UnixFS directory node holds no more than that here.
    for i in 0..n {
        let sub = root.join(format!("{}", i / 1_000));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("{i}")), format!("{tag}-{i}")).unwrap();
    }
    let out = String::from_utf8(node.ok(&["add", "-r", root.to_str().unwrap()])).unwrap();
    let cids: Vec<String> = out
        .lines()
        .filter(|l| l.matches('/').count() == 2)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert_eq!(cids.len(), n, "add -r listed {} files", cids.len());
    cids
}

/// Pins every CID through `base` with 8 clients, each held by `holder`.
fn pin_all(agent: &ureq::Agent, base: &str, cids: &[String], holder: &str) {
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            s.spawn(move || {
                for cid in cids.iter().skip(c).step_by(CLIENTS) {
                    post(
                        agent,
                        &format!(
                            "{base}/cluster/pins/add?arg={cid}&replication-min=1&replication-max=1&allocations={holder}"
                        ),
                    );
                }
            });
        }
    });
}

/// Waits until every node's state has `live` entries or more, and one digest.
fn converge(agent: &ureq::Agent, bases: &[String], live: u64, secs: u64) -> Duration {
    let clock = Instant::now();
    loop {
        let states: Vec<Value> = bases
            .iter()
            .map(|b| post(agent, &format!("{b}/cluster/state")))
            .collect();
        if states
            .iter()
            // At least: the state also holds the masters' leadership record.
            .all(|s| s["Live"].as_u64() >= Some(live) && s["Digest"] == states[0]["Digest"])
        {
            return clock.elapsed();
        }
        assert!(
            clock.elapsed() < Duration::from_secs(secs),
            "no convergence within {secs} s: {:?}",
            states
                .iter()
                .map(|s| (&s["Live"], &s["Pending"]))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every node lists `n` pins.
fn listed_everywhere(agent: &ureq::Agent, bases: &[String], n: usize, secs: u64) -> Duration {
    let clock = Instant::now();
    loop {
        let counts: Vec<usize> = bases
            .iter()
            .map(|b| {
                let mut resp = agent
                    .post(format!("{b}/cluster/pins/ls"))
                    .send_empty()
                    .unwrap();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(u64::MAX)
                    .read_to_string()
                    .unwrap();
                text.lines().count()
            })
            .collect();
        if counts.iter().all(|&c| c == n) {
            return clock.elapsed();
        }
        assert!(
            clock.elapsed() < Duration::from_secs(secs),
            "not listed everywhere within {secs} s: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a whole streamed answer; (bytes, seconds).
fn read_all(agent: &ureq::Agent, url: &str) -> (u64, f64) {
    let clock = Instant::now();
    let mut resp = agent.post(url).send_empty().unwrap();
    assert!(resp.status().is_success(), "{url}");
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    (bytes, clock.elapsed().as_secs_f64())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster benchmark: run with `cargo bench -p ipfsbench-integration-tests --bench cluster`");
        return;
    }
    let total: usize = std::env::var("BENCH_PINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let repos: Vec<_> = dirs.iter().map(|d| d.path().join("repo")).collect();
    let ids: Vec<String> = repos.iter().map(|r| init_repo(r)).collect();
    let trust = |i: usize, upto: usize| -> Vec<String> {
        (0..upto)
            .filter(|&j| j != i)
            .flat_map(|j| ["--trust-peer".to_string(), ids[j].clone()])
            .collect()
    };
    let master = {
        let flags = trust(0, 5);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Node::start_in(&repos[0], "master", &flags, TUNING)
    };
    let mut nodes = vec![master];
    for (i, repo) in repos.iter().enumerate().take(5).skip(1) {
        let mut flags = trust(i, 5);
        flags.extend(["--bootstrap".to_string(), nodes[0].addr.clone()]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        nodes.push(Node::start_in(repo, "worker", &flags, TUNING));
    }
    let agent = agent();
    let bases: Vec<String> = nodes.iter().map(Node::api_base).collect();
    let data = tempfile::tempdir().unwrap();

    // 1. 10,000 adds on the master reach four others.
    let cids = distinct_cids(&nodes[0], data.path(), FIRST, "first");
    let clock = Instant::now();
    pin_all(&agent, &bases[0], &cids, &ids[0]);
    let added = clock.elapsed();
    println!(
        "{FIRST} pin adds on one node through its API: {:.2} s ({:.0}/s)",
        added.as_secs_f64(),
        FIRST as f64 / added.as_secs_f64()
    );
    let listed = listed_everywhere(&agent, &bases, FIRST, 120);
    // Each pin, and the master's report that it holds it.
    let after = converge(&agent, &bases, 2 * FIRST as u64, 300);
    let state = post(&agent, &format!("{}/cluster/state", bases[0]));
    println!(
        "all 5 nodes list the {FIRST} pins {:.2} s after the last add ({:.2} s after the first); identical states, the master's reports included, {:.2} s after the last add (deltas written: {})",
        listed.as_secs_f64(),
        (added + listed).as_secs_f64(),
        after.as_secs_f64(),
        state_deltas(&state)
    );

    // 2. 100,000 pins: listing speed and memory.
    let more = distinct_cids(&nodes[0], data.path(), total - FIRST, "more");
    let clock = Instant::now();
    pin_all(&agent, &bases[0], &more, &ids[0]);
    println!(
        "grew the pinset to {total} pins in {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    converge(&agent, &bases, 2 * total as u64, 600);
    let mut rates = Vec::new();
    let mut limits = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        let (bytes, secs) = read_all(&agent, &format!("{}/cluster/pins/ls", bases[1]));
        rates.push(total as f64 / secs);
        size = bytes;
    }
    // The same bytes through the same API as a file: the streaming limit.
    let file = data.path().join("same-size");
    std::fs::write(&file, vec![b'x'; size as usize]).unwrap();
    let out = String::from_utf8(nodes[1].ok(&["add", "-Q", file.to_str().unwrap()])).unwrap();
    for _ in 0..3 {
        let (_, secs) = read_all(&agent, &format!("{}/cat?arg={}", bases[1], out.trim()));
        limits.push(total as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    limits.sort_by(f64::total_cmp);
    println!(
        "cluster pin ls of {total} pins ({:.1} MB of JSON lines): median {:.0} pins/s; the same bytes by cat through the same API: {:.0} pins/s equivalent (ratio {:.2})",
        size as f64 / 1e6,
        rates[1],
        limits[1],
        rates[1] / limits[1]
    );
    for (i, n) in nodes.iter().enumerate() {
        println!("RSS node {i}: {:.1} MiB", n.rss_kib() as f64 / 1024.0);
    }

    // 3. A new node joins from the master's snapshot.
    post(&agent, &format!("{}/cluster/state/snapshot", bases[0]));
    let clock = Instant::now();
    let joiner = Node::start_in(
        &repos[5],
        "worker",
        &["--trust-peer", &ids[0], "--bootstrap", &nodes[0].addr],
        TUNING,
    );
    let base = joiner.api_base();
    let caught_up = converge(
        &agent,
        &[bases[0].clone(), base.clone()],
        2 * total as u64,
        120,
    );
    let status = post(&agent, &format!("{base}/cluster/state"));
    println!(
        "a new node caught up with {total} pins in {:.2} s from start ({:.2} s after its API answered): snapshots loaded {}, deltas applied {} of the master's {} in history",
        clock.elapsed().as_secs_f64(),
        caught_up.as_secs_f64(),
        status["SnapshotsLoaded"],
        status["Applied"],
        state_deltas(&post(&agent, &format!("{}/cluster/state", bases[0])))
    );
    println!("RSS new node: {:.1} MiB", joiner.rss_kib() as f64 / 1024.0);
}

/// Deltas written by every writer, from a state report.
fn state_deltas(state: &Value) -> u64 {
    state["Writers"]
        .as_array()
        .map(|w| w.iter().filter_map(|p| p[1].as_u64()).sum())
        .unwrap_or(0)
}
