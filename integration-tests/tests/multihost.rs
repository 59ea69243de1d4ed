//! Nodes on separate hosts (network namespaces on a bridge, see `netns`), each a real
//! process with its own address: a cluster formed from one bootstrap address with mDNS off,
//! discovery by mDNS across the bridge, a Bitswap transfer over a link shaped to 100 Mbit/s,
//! the task path through a partition and its healing, and a host vanishing while it runs a
//! task. Needs root; without it every trial is reported as ignored, with the reason.
//!
//! The trials run one at a time: one of them measures a transfer rate.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::ops::Deref;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::netns::{mbit_per_s, tcp_copy, Lab};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// One trial's body.
type Check = fn() -> Result<(), Failed>;

fn main() {
    let mut args = Arguments::from_args();
    // One at a time: the shaped transfer measures a rate, and the machine's cores are shared.
    args.test_threads = Some(1);
    let trials: Vec<(&str, Check)> = vec![
        (
            "a_cluster_forms_across_hosts_from_one_bootstrap_address_without_mdns",
            bootstrap_only,
        ),
        ("two_hosts_find_each_other_by_mdns_across_a_bridge", mdns),
        (
            "a_bitswap_transfer_over_a_100_mbit_link_runs_near_the_link_rate",
            shaped_transfer,
        ),
        (
            "a_cut_off_worker_gets_no_tasks_and_takes_them_again_once_healed",
            partition_and_heal,
        ),
        (
            "a_task_on_a_host_that_vanishes_is_retried_on_another_worker",
            vanishing_host,
        ),
    ];
    let trials = trials
        .into_iter()
        .map(|(name, check)| match Lab::new(0) {
            Ok(_) => Trial::test(name, move || {
                let started = Instant::now();
                let outcome = check();
                eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
                outcome
            }),
            // Without root the trial is skipped; as root, a lab that cannot be made fails it.
            Err(reason) if reason.contains("need root") => {
                eprintln!("{name}: IGNORED: {reason}");
                Trial::test(name, || Ok(())).with_ignored_flag(true)
            }
            Err(reason) => Trial::test(name, move || Err(reason.into())),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Heartbeats every 200 ms (so a master counts a worker silent for a second as gone), the
/// attempt lease and the leadership lease `lease_ms`, quick retries, one task at a time per
/// worker, and `sleep` allowed as an `exec` program.
const fn tuning(lease_ms: u64) -> Tuning<'static> {
    Tuning::FAST
        .announce_ms(200)
        .lease_ms(lease_ms)
        .leader_lease_ms(lease_ms)
        .backoff_base_ms(100)
        .max_concurrent_tasks(1)
        .exec_programs(&[("sleep", "/bin/sleep")])
}

/// A node running on one of the lab's hosts, with its repo (removed after the node is
/// killed: fields drop in order).
struct Hosted {
    node: Node,
    ip: String,
    _repo: tempfile::TempDir,
}

impl Deref for Hosted {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.node
    }
}

/// Starts a node of `role` on host `i`, listening on TCP at the host's address, with
/// `flags` appended and the master's lease `lease_ms`.
fn start(lab: &Lab, i: usize, role: &str, flags: &[&str], lease_ms: u64) -> Hosted {
    let repo = tempfile::tempdir().unwrap();
    let host = &lab.hosts[i];
    let node = Node::start_in_netns(
        &host.ns,
        &host.ip,
        &repo.path().join("repo"),
        role,
        flags,
        tuning(lease_ms),
    );
    Hosted {
        node,
        ip: host.ip.clone(),
        _repo: repo,
    }
}

/// A master on host 0 and a worker on each of hosts 1..=workers, each worker given only the
/// master's address (`--bootstrap`) and trusting it; mDNS is off everywhere.
fn cluster(lab: &Lab, workers: usize, lease_ms: u64) -> (Hosted, Vec<Hosted>) {
    let master = start(lab, 0, "master", &[], lease_ms);
    let flags = [
        "--bootstrap",
        &master.addr,
        "--trust-master",
        &master.peer_id,
    ];
    let workers = (1..=workers)
        .map(|i| start(lab, i, "worker", &flags, lease_ms))
        .collect();
    (master, workers)
}

fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Result<(), Failed> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {secs} s waiting until {what}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `cluster peers` of `node`: (peer, role, milliseconds since its last heartbeat).
fn cluster_peers(node: &Node) -> Vec<(String, String, u64)> {
    String::from_utf8(node.ok(&["cluster", "peers"]))
        .unwrap()
        .lines()
        .skip(1)
        // The peers heard, not the peers whose messages were dropped (listed after them).
        .take_while(|l| !l.contains(": not a member: ") && !l.contains(": removed from "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[6].parse().unwrap())
        })
        .collect()
}

/// Milliseconds since `node` last heard a heartbeat of `peer` (`None`: never).
fn silent_ms(node: &Node, peer: &Node) -> Option<u64> {
    cluster_peers(node)
        .into_iter()
        .find(|p| p.0 == peer.peer_id)
        .map(|p| p.2)
}

/// Whether `node` heard `peer` as a `role` within the last second.
fn hears(node: &Node, peer: &Node, role: &str) -> bool {
    cluster_peers(node)
        .iter()
        .any(|p| p.0 == peer.peer_id && p.1 == role && p.2 < 1000)
}

/// Whether `node` has a connection to `peer` at `peer`'s address on its host.
fn connected(node: &Node, peer: &Hosted) -> bool {
    let prefix = format!("/ip4/{}/", peer.ip);
    let suffix = format!("/p2p/{}", peer.peer_id);
    String::from_utf8(node.ok(&["swarm", "peers"]))
        .unwrap()
        .lines()
        // One `/p2p/` part: the peer's address, then its id, once.
        .any(|l| l.starts_with(&prefix) && l.ends_with(&suffix) && l.matches("/p2p/").count() == 1)
}

fn status(master: &Node, id: &str) -> Value {
    serde_json::from_slice(&master.ok(&["task", "status", id])).unwrap()
}

fn submit(master: &Node, args: &[&str]) -> String {
    let mut full = vec!["task", "submit"];
    full.extend_from_slice(args);
    master.first_line(&full)
}

/// Submits a task and waits for it; (its id, its result record's CID).
fn run_task(master: &Node, args: &[&str]) -> (String, String) {
    let mut full = vec!["task", "submit"];
    full.extend_from_slice(args);
    full.push("--wait");
    let out = String::from_utf8(master.ok(&full)).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    (lines[0].to_string(), lines[1].to_string())
}

/// Mastered from host A, workers on hosts B and C that know only A's address: they hear each
/// other and connect to each other directly (found through the master's DHT, not mDNS), a task
/// runs on a worker's host, and its result record is fetched from the other worker's host.
fn bootstrap_only() -> Result<(), Failed> {
    let lab = Lab::new(3)?;
    let (m, w) = cluster(&lab, 2, 10_000);
    let a_ip = &lab.hosts[0].ip;
    assert!(
        m.addr.starts_with(&format!("/ip4/{a_ip}/tcp/")),
        "the master listens on its host's address: {}",
        m.addr
    );
    wait_until(60, "the master hears both workers", || {
        hears(&m, &w[0], "worker") && hears(&m, &w[1], "worker")
    })?;
    wait_until(
        60,
        "each worker hears the master and the other worker",
        || {
            hears(&w[0], &m, "master")
                && hears(&w[0], &w[1], "worker")
                && hears(&w[1], &m, "master")
                && hears(&w[1], &w[0], "worker")
        },
    )?;
    wait_until(
        60,
        "the workers connect to each other at their hosts' addresses",
        || connected(&w[0], &w[1]) && connected(&w[1], &w[0]),
    )?;

    let (id, result) = run_task(&m, &["--kind", "bench.hash", "--param", "size=1048576"]);
    let record = status(&m, &id);
    assert_eq!(record["State"], "succeeded", "{record}");
    let ran = record["Worker"].as_str().unwrap();
    let other = w
        .iter()
        .find(|n| n.peer_id != ran)
        .ok_or("the task ran on neither worker")?;
    assert_ne!(other.peer_id, ran);
    let fetched: Value = serde_json::from_slice(&other.ok(&["cat", &result])).unwrap();
    assert_eq!(fetched["Task"], id.as_str(), "{fetched}");
    assert_eq!(fetched["Worker"], ran, "{fetched}");
    assert_eq!(fetched["Metrics"]["Bytes"], 1_048_576, "{fetched}");
    Ok(())
}

/// Two hosts with mDNS on and no bootstrap address: each finds the other on the bridge and
/// connects to its host's address.
fn mdns() -> Result<(), Failed> {
    let lab = Lab::new(2)?;
    lab.enable_multicast()?;
    let a = start(&lab, 0, "worker", &["--mdns", "true"], 10_000);
    let b = start(&lab, 1, "worker", &["--mdns", "true"], 10_000);
    wait_until(60, "the two nodes connect after finding each other", || {
        connected(&a, &b) && connected(&b, &a)
    })?;
    Ok(())
}

/// 64 MiB over a link shaped to 100 Mbit/s each way: the bare link (a plain TCP copy
/// before shaping), the shaped link (the same copy after), and a Bitswap `cat` between two
/// nodes over it. The fetched bytes are the added ones, and the fetch runs at 70 % of the link
/// rate or more, never faster than the link.
fn shaped_transfer() -> Result<(), Failed> {
    const RATE_MBIT: u32 = 100;
    const LEN: u64 = 64 << 20;
    let lab = Lab::new(2)?;
    let (from, to) = (&lab.hosts[0], &lab.hosts[1]);
    let bare = mbit_per_s(LEN, tcp_copy(from, to, LEN)?);
    lab.shape(0, RATE_MBIT)?;
    let tcp = mbit_per_s(32 << 20, tcp_copy(from, to, 32 << 20)?);

    let a = start(&lab, 0, "worker", &[], 10_000);
    let b = start(&lab, 1, "worker", &["--bootstrap", &a.addr], 10_000);
    wait_until(60, "the fetching node is connected to the holder", || {
        connected(&b, &a)
    })?;
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("data");
    ipfsbench_integration_tests::data::write_pseudo_random_file(&path, LEN, 13).unwrap();
    let cid = a.first_line(&["add", "-Q", path.to_str().unwrap()]);
    let started = Instant::now();
    let out = b.cli(&["cat", &cid]);
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "cat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = std::fs::read(&path).unwrap();
    assert!(
        out.stdout == sent,
        "the fetched bytes differ from the added ones"
    );
    let bitswap = mbit_per_s(LEN, elapsed);
    println!(
        "bare veth link, plain TCP: {bare:.0} Mbit/s; link shaped to {RATE_MBIT} Mbit/s, \
         plain TCP: {tcp:.1} Mbit/s; Bitswap cat of 64 MiB over it: {bitswap:.1} Mbit/s \
         in {:.2} s ({:.0} % of the shaped TCP copy)",
        elapsed.as_secs_f64(),
        bitswap / tcp * 100.0
    );
    let rate = f64::from(RATE_MBIT);
    if tcp > rate {
        return Err(format!("the shaped link carried {tcp:.1} Mbit/s, over its rate").into());
    }
    if bare < 2.0 * rate {
        return Err(
            format!("the bare link ({bare:.0} Mbit/s) is no faster than the shaping").into(),
        );
    }
    if !(0.7 * rate..=rate).contains(&bitswap) {
        return Err(format!(
            "Bitswap moved {bitswap:.1} Mbit/s over a {RATE_MBIT} Mbit/s link \
             (expected between 70 % and 100 % of it)"
        )
        .into());
    }
    Ok(())
}

/// A worker's host is cut off (moved to a bridge of its own): the master stops hearing it and
/// every task goes to the other worker. Joined again, its heartbeats come back and a task
/// lands on it.
fn partition_and_heal() -> Result<(), Failed> {
    let lab = Lab::new(3)?;
    let (m, w) = cluster(&lab, 2, 1500);
    let (stays, cut) = (&w[0], &w[1]);
    wait_until(60, "the master hears both workers", || {
        hears(&m, stays, "worker") && hears(&m, cut, "worker")
    })?;
    // Before the cut, the worker to be cut off takes work.
    let (id, _) = run_task(&m, &["--kind", "noop", "--target", &cut.peer_id]);
    assert_eq!(status(&m, &id)["Worker"], cut.peer_id.as_str());

    lab.partition(&[2])?;
    wait_until(30, "the master counts the cut-off worker as gone", || {
        silent_ms(&m, cut).is_some_and(|ms| ms > 2000)
    })?;
    let ids: Vec<String> = (0..6).map(|_| submit(&m, &["--kind", "noop"])).collect();
    wait_until(
        60,
        "every task succeeds while the worker is cut off",
        || ids.iter().all(|id| status(&m, id)["State"] == "succeeded"),
    )?;
    for id in &ids {
        let record = status(&m, id);
        assert_eq!(record["Worker"], stays.peer_id.as_str(), "{record}");
        assert_eq!(record["Attempt"], 1, "{record}");
    }
    // The cut-off side hears nobody either.
    assert!(
        silent_ms(cut, &m).is_some_and(|ms| ms > 1000),
        "{:?}",
        cluster_peers(cut)
    );

    lab.heal()?;
    wait_until(60, "the master hears the worker again", || {
        hears(&m, cut, "worker")
    })?;
    let (id, result) = run_task(&m, &["--kind", "noop", "--target", &cut.peer_id]);
    let record = status(&m, &id);
    assert_eq!(record["Worker"], cut.peer_id.as_str(), "{record}");
    let fetched: Value = serde_json::from_slice(&m.ok(&["cat", &result])).unwrap();
    assert_eq!(fetched["Worker"], cut.peer_id.as_str(), "{fetched}");
    Ok(())
}

/// A worker's host vanishes (its veth pair deleted) while it runs a 4 s task: the master's
/// lease on the attempt runs out and the task is retried on the other worker, where it
/// succeeds.
fn vanishing_host() -> Result<(), Failed> {
    let lab = Lab::new(3)?;
    let (m, w) = cluster(&lab, 2, 1500);
    wait_until(60, "the master hears both workers", || {
        hears(&m, &w[0], "worker") && hears(&m, &w[1], "worker")
    })?;
    let id = submit(
        &m,
        &[
            "--kind",
            "exec",
            "--param",
            "program=sleep",
            "--param",
            "arg=4",
        ],
    );
    wait_until(30, "the task runs", || {
        status(&m, &id)["State"] == "running"
    })?;
    let first = status(&m, &id);
    let victim = w
        .iter()
        .position(|n| first["Worker"] == n.peer_id.as_str())
        .ok_or_else(|| format!("the task runs on neither worker: {first}"))?;
    let survivor = &w[1 - victim];
    assert_eq!(first["Attempt"], 1, "{first}");

    lab.remove(victim + 1)?;
    wait_until(60, "the task succeeds after its host vanished", || {
        status(&m, &id)["State"] == "succeeded"
    })?;
    let record = status(&m, &id);
    assert_eq!(record["Worker"], survivor.peer_id.as_str(), "{record}");
    assert!(record["Attempt"].as_u64().unwrap() >= 2, "{record}");
    assert!(record["Failures"].as_u64().unwrap() >= 1, "{record}");
    assert!(
        record["LastError"]
            .as_str()
            .is_some_and(|e| e.contains("lease expired")),
        "{record}"
    );
    let result: Value =
        serde_json::from_slice(&m.ok(&["cat", record["Result"].as_str().unwrap()])).unwrap();
    assert_eq!(result["Worker"], survivor.peer_id.as_str(), "{result}");
    assert_eq!(result["Attempt"], record["Attempt"], "{result}");
    assert_eq!(result["Metrics"]["ExitCode"], 0, "{result}");
    Ok(())
}
