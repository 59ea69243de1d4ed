//! A cluster formed with invites only, with the real binary: one `cluster init`, one root
//! import and four `--join`s, no peer id typed anywhere. Pins, tasks and the results database
//! work across it; a removed member's writes stop counting, its pins move and it is
//! disconnected; a peer holding the swarm key but no certificate connects and counts for
//! nothing, and every node says so.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// Heartbeats and announcements every 200 ms, re-allocation after 3 s of silence.
const TUNING: Tuning = Tuning::FAST.announce_ms(200).reallocate_after_secs(3);

fn ok(repo: &Path, args: &[&str]) -> String {
    let out = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("IPFSBENCH_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `cluster init --name lab` (with `extra`) on a new repo `<dir>/master`, then its daemon.
fn first_master(dir: &Path, extra: &[&str]) -> Node {
    let repo = dir.join("master");
    init_repo(&repo);
    let mut args = vec!["cluster", "init", "--name", "lab"];
    args.extend(extra);
    ok(&repo, &args);
    Node::start_in(&repo, "master", &[], TUNING)
}

fn text(node: &Node, args: &[&str]) -> String {
    String::from_utf8(node.ok(args)).unwrap()
}

fn json(node: &Node, args: &[&str]) -> Value {
    serde_json::from_slice(&node.ok(args)).unwrap()
}

fn invite(master: &Node, args: &[&str]) -> String {
    let mut all = vec!["cluster", "invite"];
    all.extend(args);
    text(master, &all).trim().to_string()
}

fn wait_joined(node: &Node) {
    let cert = node.repo().join("cluster/member.cert");
    wait_until(60, "the node joins", || cert.exists());
}

/// `call` of `node`'s API, its JSON answer.
fn api(node: &Node, call: &str) -> Value {
    let url = format!("{}/{call}", node.api_base());
    let mut answer = ureq::post(&url).send_empty().unwrap();
    serde_json::from_reader(answer.body_mut().as_reader()).unwrap()
}

/// The members `node` knows, by peer id, with their roles.
fn members(node: &Node) -> Vec<(String, String)> {
    let v = api(node, "cluster/members");
    v["Members"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| {
                    (
                        m["Peer"].as_str().unwrap().to_string(),
                        m["Role"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn add_file(node: &Node, dir: &Path, seed: u64) -> String {
    let path = dir.join(format!("data-{seed}"));
    ipfsbench_integration_tests::data::write_pseudo_random_file(&path, 256 << 10, seed).unwrap();
    text(node, &["add", "-q", path.to_str().unwrap()])
        .trim()
        .to_string()
}

fn pinned_on(node: &Node, cid: &str) -> Vec<String> {
    let s = json(node, &["cluster", "pin", "status", cid, "--json"]);
    let mut on: Vec<String> = s["PeerMap"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Status"] == "pinned")
        .map(|(p, _)| p.clone())
        .collect();
    on.sort();
    on
}

fn allocations(node: &Node, cid: &str) -> Vec<String> {
    let pins = text(node, &["cluster", "pin", "ls", "--json"]);
    let pin = pins
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|p| p["Cid"] == cid)
        .unwrap_or(Value::Null);
    let mut out: Vec<String> = pin["Allocations"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn has_pin(node: &Node, cid: &str) -> bool {
    text(node, &["cluster", "pin", "ls"]).contains(cid)
}

fn connected_to(node: &Node, peer: &str) -> bool {
    text(node, &["swarm", "peers"]).contains(peer)
}

/// Rows of `results` on `node`, of `worker` only when given.
fn result_rows(node: &Node, worker: Option<&str>) -> i64 {
    let filter = worker.map_or(String::new(), |w| format!(" WHERE worker = '{w}'"));
    let sql = format!("SELECT count(*) AS n FROM results{filter}");
    let out = node.ok(&["query", &sql, "--format", "json", "--no-cache"]);
    serde_json::from_slice::<Value>(&out).unwrap()[0]["n"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_cluster_formed_with_invites_only_pins_runs_syncs_and_removes_a_member() {
    let tmp = tempfile::tempdir().unwrap();
    let (master_repo, standby_repo) = (tmp.path().join("master"), tmp.path().join("standby"));
    // One `cluster init`, one root export and import: the only set-up by hand.
    init_repo(&master_repo);
    ok(
        &master_repo,
        &["cluster", "init", "--name", "lab", "--private"],
    );
    let root_file = tmp.path().join("lab.root");
    ok(
        &master_repo,
        &["cluster", "root", "export", root_file.to_str().unwrap()],
    );
    init_repo(&standby_repo);
    ok(
        &standby_repo,
        &["cluster", "root", "import", root_file.to_str().unwrap()],
    );
    let master = Node::start_in(&master_repo, "master", &[], TUNING);

    // Four `--join`s. The standby holds the root already: its token only names the masters.
    let for_master = invite(&master, &["--role", "master"]);
    let for_workers = invite(&master, &["--role", "worker", "--uses", "2"]);
    let for_leecher = invite(&master, &["--role", "leecher"]);
    let standby = Node::start_in(&standby_repo, "master", &["--join", &for_master], TUNING);
    let w1 = Node::start_configured("worker", &["--join", &for_workers], TUNING);
    let w2 = Node::start_configured("worker", &["--join", &for_workers], TUNING);
    let leecher = Node::start_configured("leecher", &["--join", &for_leecher], TUNING);
    for n in [&w1, &w2, &leecher] {
        wait_joined(n);
    }

    // Every node learns every member, each with the role its invite granted.
    let mut expected: Vec<(String, String)> = vec![
        (master.peer_id.clone(), "master".into()),
        (standby.peer_id.clone(), "master".into()),
        (w1.peer_id.clone(), "worker".into()),
        (w2.peer_id.clone(), "worker".into()),
        (leecher.peer_id.clone(), "leecher".into()),
    ];
    expected.sort();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while members(&master) != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "the master knows {:#?}, not {expected:#?}",
            members(&master)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    wait_until(60, "the standby knows the writing members", || {
        let known = members(&standby);
        [&master, &w1, &w2]
            .iter()
            .all(|n| known.iter().any(|(p, _)| *p == n.peer_id))
    });
    wait_until(60, "the master hears both workers", || {
        let peers = text(&master, &["cluster", "peers"]);
        peers.contains(&w1.peer_id) && peers.contains(&w2.peer_id)
    });

    // A pin with replication 2 lands on both workers.
    let dir = tempfile::tempdir().unwrap();
    let cid = add_file(&master, dir.path(), 1);
    master.ok(&[
        "cluster",
        "pin",
        "add",
        &cid,
        "--replication-min",
        "2",
        "--replication-max",
        "2",
    ]);
    let mut workers = vec![w1.peer_id.clone(), w2.peer_id.clone()];
    workers.sort();
    wait_until(60, "both workers pin it", || {
        pinned_on(&master, &cid) == workers
    });

    // Tasks run on both workers; the leecher syncs their rows and lists the results.
    for w in [&w1, &w2, &w1, &w2] {
        master.ok(&[
            "task", "submit", "--kind", "noop", "--target", &w.peer_id, "--wait",
        ]);
    }
    wait_until(60, "the leecher syncs all four rows", || {
        result_rows(&leecher, None) == 4
    });
    wait_until(30, "the leecher lists the replicated results", || {
        let listed = text(&leecher, &["cluster", "results", "--json"]);
        listed.lines().count() == 4 && listed.contains(&w1.peer_id) && listed.contains(&w2.peer_id)
    });
    assert_eq!(result_rows(&leecher, Some(&w1.peer_id)), 2);

    // Removing the first worker: it is disconnected, its pins move, its rows stop counting.
    let said = text(
        &master,
        &[
            "cluster",
            "member",
            "rm",
            &w1.peer_id,
            "--reason",
            "retired",
        ],
    );
    assert!(said.contains(&w1.peer_id), "{said}");
    wait_until(30, "every node cuts the removed worker off", || {
        [&master, &standby, &w2, &leecher]
            .iter()
            .all(|n| !connected_to(n, &w1.peer_id))
    });
    wait_until(60, "its pin moves off it", || {
        allocations(&master, &cid) == vec![w2.peer_id.clone()]
    });
    wait_until(30, "the leecher drops its rows", || {
        result_rows(&leecher, Some(&w1.peer_id)) == 0 && result_rows(&leecher, None) == 2
    });
    let listed = text(&master, &["cluster", "members"]);
    assert!(
        listed.contains(&format!("removed: {}", w1.peer_id)) && listed.contains("retired"),
        "{listed}"
    );
    // Its later writes reach nobody: a pin it adds never arrives, while one the live worker
    // adds after it does.
    let late = add_file(&w1, dir.path(), 2);
    w1.ok(&["cluster", "pin", "add", &late]);
    let live = add_file(&w2, dir.path(), 3);
    w2.ok(&["cluster", "pin", "add", &live]);
    wait_until(30, "the live worker's pin arrives", || {
        has_pin(&master, &live) && has_pin(&standby, &live)
    });
    assert!(!has_pin(&master, &late) && !has_pin(&standby, &late));
    // Its certificate is refused from then on: it cannot come back by dialing.
    let out = master.cli(&["swarm", "connect", &w1.addr]);
    assert!(!out.status.success(), "a removed member reconnected");
    assert!(!connected_to(&master, &w1.peer_id));
}

#[test]
fn a_peer_with_the_swarm_key_but_no_certificate_counts_for_nothing_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let master_repo = tmp.path().join("master");
    init_repo(&master_repo);
    ok(
        &master_repo,
        &["cluster", "init", "--name", "lab", "--private"],
    );
    let master = Node::start_in(&master_repo, "master", &[], TUNING);
    let worker = Node::start_configured(
        "worker",
        &["--join", &invite(&master, &["--role", "worker"])],
        TUNING,
    );
    wait_joined(&worker);

    // The intruder has the network's key and the cluster's name, and dials the master.
    let intruder_repo = tmp.path().join("intruder");
    init_repo(&intruder_repo);
    std::fs::copy(
        master_repo.join("swarm.key"),
        intruder_repo.join("swarm.key"),
    )
    .unwrap();
    let intruder = Node::start_in(
        &intruder_repo,
        "worker",
        &["--bootstrap", &master.addr, "--cluster", "lab"],
        TUNING,
    );
    wait_until(30, "the intruder connects", || {
        connected_to(&master, &intruder.peer_id)
    });

    // What it writes is dropped, and the master says so per peer.
    let dir = tempfile::tempdir().unwrap();
    let its_pin = add_file(&intruder, dir.path(), 9);
    intruder.ok(&["cluster", "pin", "add", &its_pin]);
    wait_until(30, "the master names the intruder in cluster peers", || {
        text(&master, &["cluster", "peers"])
            .contains(&format!("{}: not a member: ", intruder.peer_id))
    });
    let alerts = text(&master, &["cluster", "alerts"]);
    assert!(
        alerts.contains(&format!("not a member: {}", intruder.peer_id)),
        "{alerts}"
    );
    let metrics = scrape(&master);
    assert!(
        metrics.contains(&format!(
            "ipfsbench_refused_messages_total{{peer=\"{}\"",
            intruder.peer_id
        )),
        "{metrics}"
    );

    // A pin meant for every eligible peer goes to the member only, and the intruder's own
    // pin never arrives.
    let cid = add_file(&master, dir.path(), 10);
    master.ok(&[
        "cluster",
        "pin",
        "add",
        &cid,
        "--replication-min",
        "-1",
        "--replication-max",
        "-1",
    ]);
    wait_until(60, "the member pins it", || {
        pinned_on(&master, &cid) == vec![worker.peer_id.clone()]
    });
    assert_eq!(allocations(&master, &cid), vec![worker.peer_id.clone()]);
    assert!(!has_pin(&master, &its_pin));
    let peers = api(&master, "cluster/peers");
    let listed = peers["Peers"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|p| p["Peer"] != intruder.peer_id.as_str()),
        "the master took the intruder's heartbeats: {peers:#}"
    );
    let member = listed
        .iter()
        .find(|p| p["Peer"] == worker.peer_id.as_str())
        .unwrap();
    assert_eq!(member["Member"], "worker");
}

/// The node's metrics page.
fn scrape(node: &Node) -> String {
    let root = node.api_base();
    let url = format!(
        "{}/debug/metrics/prometheus",
        root.trim_end_matches("/api/v0")
    );
    let mut answer = ureq::get(&url).call().unwrap();
    answer.body_mut().read_to_string().unwrap()
}

#[test]
fn a_short_lived_certificate_is_renewed_while_its_member_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let master = first_master(tmp.path(), &[]);
    let token = invite(&master, &["--role", "worker", "--cert-ttl", "21s"]);
    let refused = master.cli(&["cluster", "invite", "--cert-ttl", "1s"]);
    assert!(!refused.status.success(), "a 1 s certificate was accepted");
    let worker = Node::start_configured("worker", &["--join", &token], TUNING);
    wait_joined(&worker);
    let cert = worker.repo().join("cluster/member.cert");
    let first = std::fs::read(&cert).unwrap();
    let expires = || {
        api(&master, "cluster/members")["Members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Peer"] == worker.peer_id.as_str())
            .map(|m| m["ExpiresMs"].as_u64().unwrap())
    };
    wait_until(30, "the master knows the worker", || expires().is_some());
    let first_expiry = expires().unwrap();
    // Two thirds into its life the master renews it, and the worker keeps the new one.
    wait_until(30, "the worker's certificate is renewed", || {
        std::fs::read(&cert).unwrap() != first
    });
    assert!(expires().unwrap() > first_expiry);
    // Past the first certificate's expiry it is still a member, and still given tasks.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    while now() <= first_expiry + 500 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(expires().is_some_and(|e| e > now()), "no longer a member");
    master.ok(&[
        "task",
        "submit",
        "--kind",
        "noop",
        "--target",
        &worker.peer_id,
        "--wait",
    ]);
}

#[test]
fn a_member_away_past_its_certificate_joins_again_with_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let master = first_master(tmp.path(), &[]);
    let token = invite(
        &master,
        &["--role", "worker", "--uses", "2", "--cert-ttl", "10s"],
    );
    let mut worker = Node::start_configured("worker", &["--join", &token], TUNING);
    wait_joined(&worker);
    let cert = worker.repo().join("cluster/member.cert");
    let first = std::fs::read(&cert).unwrap();
    wait_until(30, "the master lists it", || {
        members(&master).iter().any(|(p, _)| *p == worker.peer_id)
    });
    // Stopped, it is not renewed; once its certificate has expired it is no member.
    worker.stop();
    wait_until(30, "the master no longer lists it", || {
        !members(&master).iter().any(|(p, _)| *p == worker.peer_id)
    });
    // Started again with the same token, it joins again (a second use), whole.
    worker.restart();
    wait_until(30, "it holds a new certificate", || {
        std::fs::read(&cert).is_ok_and(|c| c != first)
    });
    wait_until(30, "the master lists it again", || {
        members(&master).contains(&(worker.peer_id.clone(), "worker".to_string()))
    });
    let listed = text(&master, &["cluster", "invites"]);
    assert!(listed.contains("2/2"), "{listed}");
}
