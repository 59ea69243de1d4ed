//! The replicated pinset across real daemons on loopback: a dataset kept on three workers
//! stays on three when one dies; pins added concurrently on several nodes converge; an
//! untrusted peer's changes are dropped, and it is allocated nothing; a node killed while
//! catching up comes back consistent.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// Heartbeats and announcements every 200 ms, re-allocation after 3 s of silence.
const TUNING: Tuning = Tuning::FAST.announce_ms(200).reallocate_after_secs(3);

/// Nodes of `roles`, the first one the bootstrap peer; each trusts every other one unless
/// it is listed in `untrusted` (then nobody trusts it, and it trusts everyone).
struct Cluster {
    nodes: Vec<Node>,
    _dirs: Vec<tempfile::TempDir>,
}

fn cluster(roles: &[&str], untrusted: &[usize]) -> Cluster {
    let dirs: Vec<tempfile::TempDir> = roles.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let repos: Vec<_> = dirs.iter().map(|d| d.path().join("repo")).collect();
    let ids: Vec<String> = repos.iter().map(|r| init_repo(r)).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        let mut flags: Vec<String> = Vec::new();
        for (j, id) in ids.iter().enumerate() {
            if j != i && !untrusted.contains(&j) {
                flags.extend(["--trust-peer".to_string(), id.clone()]);
            }
        }
        if i > 0 {
            flags.extend(["--bootstrap".to_string(), nodes[0].addr.clone()]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        nodes.push(Node::start_in(&repos[i], role, &flags, TUNING));
    }
    Cluster { nodes, _dirs: dirs }
}

fn json(node: &Node, args: &[&str]) -> Value {
    serde_json::from_slice(&node.ok(args)).unwrap()
}

fn add_file(node: &Node, dir: &Path, seed: u64, len: u64) -> String {
    let path = dir.join(format!("data-{seed}"));
    ipfsbench_integration_tests::data::write_pseudo_random_file(&path, len, seed).unwrap();
    let out = String::from_utf8(node.ok(&["add", "-q", path.to_str().unwrap()])).unwrap();
    out.trim().to_string()
}

fn status(node: &Node, cid: &str) -> Value {
    json(node, &["cluster", "pin", "status", cid, "--json"])
}

fn pinned_on(node: &Node, cid: &str) -> Vec<String> {
    let s = status(node, cid);
    s["PeerMap"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Status"] == "pinned")
        .map(|(p, _)| p.clone())
        .collect()
}

fn locally_pinned(node: &Node, cid: &str) -> bool {
    let out = node.cli(&["pin", "ls", "--type", "recursive", "-q"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == cid)
}

fn workers_heard(node: &Node) -> usize {
    String::from_utf8(node.ok(&["cluster", "peers"]))
        .unwrap()
        .lines()
        .filter(|l| l.contains(" worker "))
        .count()
}

fn state(node: &Node) -> Value {
    json(node, &["cluster", "state"])
}

fn converged(nodes: &[&Node], live: u64) -> bool {
    let states: Vec<Value> = nodes.iter().map(|n| state(n)).collect();
    states
        .iter()
        .all(|s| s["Live"] == live && s["Digest"] == states[0]["Digest"])
}

#[test]
fn a_dataset_is_kept_on_three_workers_and_stays_on_three_when_one_dies() {
    let mut c = cluster(&["master", "worker", "worker", "worker", "worker"], &[]);
    let master = &c.nodes[0];
    wait_until(30, "the master hears all four workers", || {
        workers_heard(master) == 4
    });
    let dir = tempfile::tempdir().unwrap();
    let cid = add_file(master, dir.path(), 7, 3 << 20);
    let out = String::from_utf8(master.ok(&[
        "cluster",
        "pin",
        "add",
        &cid,
        "--name",
        "dataset",
        "--replication-min",
        "3",
        "--replication-max",
        "3",
        "--metadata",
        "owner=lab",
    ]))
    .unwrap();
    assert!(out.contains("on 3 peers"), "{out}");
    wait_until(60, "three workers pin the dataset", || {
        pinned_on(master, &cid).len() == 3
    });
    let holders = pinned_on(master, &cid);
    for n in &c.nodes[1..] {
        assert_eq!(
            locally_pinned(n, &cid),
            holders.contains(&n.peer_id),
            "worker {} holds what the status says",
            n.peer_id
        );
    }
    // Every node sees the same pin.
    let ls =
        String::from_utf8(c.nodes[4].ok(&["cluster", "pin", "ls", "--name", "dataset"])).unwrap();
    assert!(ls.starts_with(&cid) && ls.contains("3..3"), "{ls}");

    // A holder dies: within the re-allocation window its copy moves to the fourth worker.
    let victim = c
        .nodes
        .iter()
        .position(|n| holders.contains(&n.peer_id))
        .unwrap();
    let victim_id = c.nodes[victim].peer_id.clone();
    c.nodes[victim].kill();
    let master = &c.nodes[0];
    wait_until(60, "the dataset is back on three live workers", || {
        let now = pinned_on(master, &cid);
        now.len() == 3 && !now.contains(&victim_id)
    });
    let alerts = String::from_utf8(master.ok(&["cluster", "alerts"])).unwrap();
    assert!(alerts.contains(&victim_id), "{alerts}");

    // Removed from the cluster: every holder unpins it.
    master.ok(&["cluster", "pin", "rm", &cid]);
    // (The master keeps its own pin from `add`.)
    wait_until(30, "every worker unpins the dataset", || {
        c.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 0 && *i != victim)
            .all(|(_, n)| !locally_pinned(n, &cid))
    });
}

#[test]
fn pins_added_concurrently_on_three_nodes_converge_everywhere() {
    let c = cluster(&["master", "worker", "worker", "worker", "worker"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut cids: Vec<Vec<String>> = Vec::new();
    for (i, n) in c.nodes[..3].iter().enumerate() {
        cids.push(
            (0..10)
                .map(|k| add_file(n, dir.path(), (i * 100 + k) as u64, 4096))
                .collect(),
        );
    }
    wait_until(30, "every node hears the workers", || {
        c.nodes[..3].iter().all(|n| workers_heard(n) == 4)
    });
    std::thread::scope(|s| {
        for (n, cids) in c.nodes[..3].iter().zip(&cids) {
            s.spawn(move || {
                for cid in cids {
                    n.ok(&[
                        "cluster",
                        "pin",
                        "add",
                        cid,
                        "--replication-min",
                        "1",
                        "--replication-max",
                        "2",
                    ]);
                }
            });
        }
    });
    let all: Vec<&Node> = c.nodes.iter().collect();
    // 30 pins plus up to two status reports each.
    wait_until(
        60,
        "every node holds the same state with every pin pinned",
        || {
            let s = state(&c.nodes[0]);
            let pins = String::from_utf8(c.nodes[4].ok(&["cluster", "pin", "ls"])).unwrap();
            let statuses =
                String::from_utf8(c.nodes[0].ok(&["cluster", "pin", "status", "--json"])).unwrap();
            let done = statuses
                .lines()
                .filter(|l| l.contains("\"Pinned\":2"))
                .count();
            pins.lines().count() == 30 && done == 30 && converged(&all, s["Live"].as_u64().unwrap())
        },
    );
}

#[test]
fn an_untrusted_peer_s_changes_are_dropped() {
    let c = cluster(&["master", "worker", "worker"], &[2]);
    let dir = tempfile::tempdir().unwrap();
    let stranger = &c.nodes[2];
    let cid = add_file(stranger, dir.path(), 1, 1024);
    wait_until(30, "the stranger hears the workers", || {
        workers_heard(stranger) == 2
    });
    stranger.ok(&[
        "cluster",
        "pin",
        "add",
        &cid,
        "--replication-min",
        "1",
        "--replication-max",
        "1",
    ]);
    wait_until(
        30,
        "the master counts the stranger's announcements as dropped",
        || state(&c.nodes[0])["DroppedUntrusted"].as_u64().unwrap() > 0,
    );
    for n in &c.nodes[..2] {
        let ls = String::from_utf8(n.ok(&["cluster", "pin", "ls"])).unwrap();
        assert!(
            !ls.contains(&cid),
            "an untrusted pin reached {}: {ls}",
            n.peer_id
        );
    }
}

fn allocations(node: &Node, cid: &str) -> Vec<String> {
    let ls = String::from_utf8(node.ok(&["cluster", "pin", "ls", "--json"])).unwrap();
    let pin: Value = ls
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|p| p["Cid"] == cid)
        .unwrap_or_else(|| panic!("{cid} is not in the pinset: {ls}"));
    let mut peers: Vec<String> = pin["Allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    peers.sort();
    peers
}

#[test]
fn pins_go_only_to_peers_whose_reports_count() {
    // Three workers, the last of which nobody trusts; it trusts everyone and heartbeats like
    // the others.
    let c = cluster(&["master", "worker", "worker", "worker"], &[3]);
    let (master, first, stranger) = (&c.nodes[0], &c.nodes[1], &c.nodes[3]);
    let mut trusted = vec![c.nodes[1].peer_id.clone(), c.nodes[2].peer_id.clone()];
    trusted.sort();
    wait_until(30, "the master and a worker hear all three workers", || {
        workers_heard(master) == 3 && workers_heard(first) == 3
    });
    let dir = tempfile::tempdir().unwrap();
    // Everywhere, from the master; two copies, from a worker.
    let everywhere = add_file(master, dir.path(), 11, 64 << 10);
    master.ok(&[
        "cluster",
        "pin",
        "add",
        &everywhere,
        "--replication-min",
        "-1",
        "--replication-max",
        "-1",
    ]);
    let two = add_file(first, dir.path(), 12, 64 << 10);
    first.ok(&[
        "cluster",
        "pin",
        "add",
        &two,
        "--replication-min",
        "2",
        "--replication-max",
        "2",
    ]);
    // The worker's pin reaches the master through the replicated state: wait for it.
    wait_until(30, "the master lists both pins", || {
        let ls = String::from_utf8(master.ok(&["cluster", "pin", "ls"])).unwrap();
        ls.contains(everywhere.as_str()) && ls.contains(two.as_str())
    });
    for cid in [&everywhere, &two] {
        assert_eq!(allocations(master, cid), trusted, "allocations of {cid}");
    }
    wait_until(60, "both pins are pinned on both trusted workers", || {
        [&everywhere, &two].iter().all(|cid| {
            let mut on = pinned_on(master, cid);
            on.sort();
            on == trusted && status(master, cid)["UnderReplicated"] == false
        })
    });
    // The stranger has the pinset (it applies everyone's changes), and holds none of it.
    wait_until(30, "the stranger sees both pins pinned", || {
        [&everywhere, &two]
            .iter()
            .all(|cid| pinned_on(stranger, cid).len() == 2)
    });
    for cid in [&everywhere, &two] {
        assert!(!locally_pinned(stranger, cid), "the stranger pinned {cid}");
        let peer_map = status(master, cid)["PeerMap"].clone();
        assert!(
            peer_map.get(&stranger.peer_id).is_none(),
            "the stranger in the status of {cid}: {peer_map}"
        );
    }
    // The peer table says why: the master hears the stranger, and does not trust it.
    let url = format!("{}/cluster/peers", master.api_base());
    let text = ureq::post(&url)
        .send_empty()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let peers: Value = serde_json::from_str(&text).unwrap();
    let listed = peers["Peers"].as_array().unwrap();
    let trust_of = |id: &str| {
        listed
            .iter()
            .find(|p| p["Peer"] == id)
            .map(|p| p["Trusted"].clone())
    };
    assert_eq!(trust_of(&stranger.peer_id), Some(Value::Bool(false)));
    assert_eq!(trust_of(&first.peer_id), Some(Value::Bool(true)));
}

#[test]
fn a_node_killed_while_catching_up_comes_back_consistent() {
    let mut c = cluster(&["master", "worker", "worker"], &[]);
    c.nodes[2].kill();
    let dir = tempfile::tempdir().unwrap();
    let cid = add_file(&c.nodes[0], dir.path(), 3, 1024);
    // Many small changes: each `pin update` is one delta.
    let mut from = cid.clone();
    wait_until(30, "the master hears the live worker", || {
        workers_heard(&c.nodes[0]) >= 1
    });
    c.nodes[0].ok(&["cluster", "pin", "add", &from, "--replication-min", "1"]);
    for k in 0..150 {
        let to = add_file(&c.nodes[0], dir.path(), 1_000 + k, 64);
        c.nodes[0].ok(&["cluster", "pin", "update", &from, &to]);
        from = to;
    }
    c.nodes[2].restart();
    std::thread::sleep(Duration::from_millis(300));
    c.nodes[2].kill();
    c.nodes[2].restart();
    let all: Vec<&Node> = c.nodes.iter().collect();
    wait_until(60, "the restarted node converges", || {
        let live = state(&c.nodes[0])["Live"].as_u64().unwrap();
        converged(&all, live)
    });
    let ls = String::from_utf8(c.nodes[2].ok(&["cluster", "pin", "ls"])).unwrap();
    assert_eq!(ls.lines().count(), 1, "{ls}");
    assert!(ls.starts_with(&from), "{ls}");
}
