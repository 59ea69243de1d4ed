//! A standby master over real daemons on loopback: the master that schedules is killed with
//! tasks queued and running, and the standby finishes every one of them, each run to
//! completion once; submissions to the standby succeed before and after it takes over; the
//! results stay listed on every node after the first master is gone.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// Heartbeats and announcements every 200 ms, a leader silent for 2 s replaced, two attempts
/// at once per worker, `sleep` allowed.
const TUNING: Tuning = Tuning::FAST
    .announce_ms(200)
    .leader_lease_ms(2_000)
    .max_concurrent_tasks(2)
    .exec_programs(&[("sleep", "/bin/sleep")]);

fn json(node: &Node, args: &[&str]) -> Value {
    serde_json::from_slice(&node.ok(args)).unwrap()
}

fn submit_sleep(node: &Node, key: &str) -> String {
    node.first_line(&[
        "task",
        "submit",
        "--kind",
        "exec",
        "--param",
        "program=sleep",
        "--param",
        "arg=0.3",
        "--key",
        key,
    ])
}

/// Every task record `node` lists: id to state.
fn states(node: &Node) -> Vec<(String, String)> {
    String::from_utf8(node.ok(&["task", "ls", "--limit", "1000"]))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[2].to_string())
        })
        .filter(|(id, _)| id.len() == 32)
        .collect()
}

fn leading(node: &Node) -> bool {
    json(node, &["cluster", "stats"])["Role"] == "master"
        && String::from_utf8(node.ok(&["cluster", "master"]))
            .unwrap()
            .contains("this node: leading")
}

#[test]
fn a_standby_master_finishes_every_task_of_a_killed_master_once() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let repos: Vec<_> = dirs.iter().map(|d| d.path().join("repo")).collect();
    let ids: Vec<String> = repos.iter().map(|r| init_repo(r)).collect();
    let roles = ["master", "master", "worker", "worker"];
    let mut nodes: Vec<Node> = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        let mut flags: Vec<String> = Vec::new();
        for (j, id) in ids.iter().enumerate() {
            if j != i {
                flags.extend(["--trust-peer".to_string(), id.clone()]);
            }
        }
        for master in ids.iter().take(2) {
            flags.extend(["--trust-master".to_string(), master.clone()]);
        }
        if i > 0 {
            flags.extend(["--bootstrap".to_string(), nodes[0].addr.clone()]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        nodes.push(Node::start_in(&repos[i], role, &flags, TUNING));
    }
    let (first, standby) = (&nodes[0], &nodes[1]);
    wait_until(
        60,
        "the first master leads and the second stands by",
        || {
            leading(first)
                && String::from_utf8(standby.ok(&["cluster", "master"]))
                    .unwrap()
                    .contains(&format!("active master: {}", first.peer_id))
        },
    );
    assert!(!leading(standby));
    wait_until(60, "the leader hears both workers", || {
        let peers = String::from_utf8(first.ok(&["cluster", "peers"])).unwrap();
        ids[2..].iter().all(|w| peers.contains(w))
    });

    // 100 tasks to the leader, one to the standby (kept in the state until the leader takes
    // it).
    let mut tasks: Vec<String> = (0..100)
        .map(|n| submit_sleep(first, &format!("t{n}")))
        .collect();
    let early = submit_sleep(standby, "to-the-standby");
    tasks.push(early.clone());
    wait_until(60, "the leader took the standby's submission", || {
        states(first).iter().any(|(id, _)| *id == early)
    });
    wait_until(120, "some tasks are done and others wait", || {
        let s = states(first);
        let done = s.iter().filter(|(_, st)| st == "succeeded").count();
        done >= 10
    });
    let at_kill = states(first);
    let done = at_kill.iter().filter(|(_, st)| st == "succeeded").count();
    let mut nodes = nodes;
    nodes[0].kill();
    let killed = Instant::now();
    let standby = &nodes[1];

    wait_until(30, "the standby takes over", || leading(standby));
    eprintln!(
        "killed the leader with {done} of {} tasks done; the standby led {:.1} s later",
        tasks.len(),
        killed.elapsed().as_secs_f64()
    );
    let late = submit_sleep(standby, "after-the-takeover");
    tasks.push(late);
    wait_until(180, "every task succeeded under the new leader", || {
        let s = states(standby);
        tasks
            .iter()
            .all(|t| s.iter().any(|(id, st)| id == t && st == "succeeded"))
    });

    // Each task ran to completion once: the workers' counts of succeeded attempts add up to
    // the number of tasks.
    let completed: u64 = nodes[2..]
        .iter()
        .map(|w| {
            json(w, &["cluster", "stats"])["Completed"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        completed,
        tasks.len() as u64,
        "a task ran to completion twice"
    );

    // The results outlive the first master, on every node left.
    for node in &nodes[1..] {
        wait_until(30, "every node lists every result", || {
            let lines = String::from_utf8(node.ok(&["cluster", "results", "--json"])).unwrap();
            let listed: Vec<Value> = lines
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            tasks.iter().all(|t| {
                listed
                    .iter()
                    .any(|r| r["Id"] == t.as_str() && r["State"] == "succeeded")
            })
        });
    }
    let worker_view = String::from_utf8(nodes[2].ok(&["cluster", "master"])).unwrap();
    assert!(
        worker_view.contains(&nodes[1].peer_id),
        "a worker names the new leader: {worker_view}"
    );
}
