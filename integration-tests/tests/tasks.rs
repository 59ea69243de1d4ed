//! Tasks across real daemons on loopback: a master schedules over gossipsub, workers run,
//! a leecher fetches the results; workers and masters die; untrusted and broken messages are
//! dropped.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// Heartbeats every 200 ms, so the cluster forms and notices deaths quickly; quick retries;
/// `sleep` allowed as an `exec` program; per test, the attempt lease (the leadership lease
/// too, which a restarted master honours before it leads again) and a worker's concurrency.
const fn tuning(lease_ms: u64, max_concurrent: u16) -> Tuning<'static> {
    Tuning::FAST
        .lease_ms(lease_ms)
        .leader_lease_ms(lease_ms)
        .backoff_base_ms(100)
        .max_concurrent_tasks(max_concurrent)
        .exec_programs(&[("sleep", "/bin/sleep")])
}

fn master(lease_ms: u64, extra: &[&str]) -> Node {
    Node::start_configured("master", extra, tuning(lease_ms, 0))
}

fn worker(master: &Node, max_concurrent: u16, extra: &[&str]) -> Node {
    let mut flags = vec![
        "--bootstrap",
        &master.addr,
        "--trust-master",
        &master.peer_id,
    ];
    flags.extend_from_slice(extra);
    Node::start_configured("worker", &flags, tuning(10_000, max_concurrent))
}

fn json(node: &Node, args: &[&str]) -> Value {
    serde_json::from_slice(&node.ok(args)).unwrap()
}

/// Waits until the master has heard heartbeats from every node in `nodes`.
fn wait_for_cluster(master: &Node, nodes: &[&Node]) {
    wait_until(60, "the master hears every node", || {
        let peers = json(master, &["cluster", "stats"]);
        assert!(peers["Role"] == "master");
        let listed = String::from_utf8(master.ok(&["cluster", "peers"])).unwrap();
        nodes.iter().all(|n| listed.contains(&n.peer_id))
    });
}

/// The default cluster's task topic.
const TASK_TOPIC: &str = "/ipfsbench/default/tasks/3";

/// Waits until `node` sees `master` subscribed to the task topic, so that what it publishes
/// there reaches the master.
fn wait_for_task_topic(node: &Node, master: &Node) {
    wait_until(30, "the node sees the master on the task topic", || {
        String::from_utf8(node.ok(&["pubsub", "peers", TASK_TOPIC]))
            .unwrap()
            .contains(&master.peer_id)
    });
}

/// Lists `master` in `node`'s trusted masters (read at start), restarts it and reconnects.
fn trust_and_restart(node: &mut Node, master: &Node) {
    Tuning::NONE
        .trusted_masters(&[master.peer_id.as_str()])
        .apply(node.repo());
    node.kill();
    node.restart();
    node.connect(master);
}

fn submit(node: &Node, args: &[&str]) -> String {
    let mut full = vec!["task", "submit"];
    full.extend_from_slice(args);
    node.first_line(&full)
}

/// Submits an `exec` task that sleeps `secs` seconds on its worker.
fn sleep_task(node: &Node, secs: &str) -> String {
    let arg = format!("arg={secs}");
    submit(
        node,
        &[
            "--kind",
            "exec",
            "--param",
            "program=sleep",
            "--param",
            &arg,
        ],
    )
}

fn status(master: &Node, id: &str) -> Value {
    json(master, &["task", "status", id])
}

/// `task ls` lines: (id, kind, state, result).
fn list(master: &Node) -> Vec<(String, String, String, String)> {
    String::from_utf8(master.ok(&["task", "ls"]))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .collect()
}

fn count_in(master: &Node, state: &str) -> usize {
    list(master).iter().filter(|t| t.2 == state).count()
}

/// `task ls` pages: the API's pages chain to the whole table in submission order, the CLI
/// stops at `--limit`, and a page size out of range is a 400 with a JSON error.
fn check_paging(m: &Node, all: &[(String, String, String, String)]) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = m.api_base();
    let mut ids = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut url = format!("{base}/task/ls?limit=64");
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        let mut resp = agent.post(&url).send_empty().unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.body_mut().read_json().unwrap();
        let tasks = page["Tasks"].as_array().unwrap();
        assert!(tasks.len() <= 64);
        ids.extend(tasks.iter().map(|t| t["Id"].as_str().unwrap().to_string()));
        match page["Next"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = all.iter().map(|t| t.0.clone()).collect();
    assert_eq!(ids, expected);
    let head = String::from_utf8(m.ok(&["task", "ls", "--limit", "150"])).unwrap();
    let head: Vec<&str> = head.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        head,
        expected[..150]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    for bad in ["limit=0", "limit=10001", "after=x"] {
        let mut resp = agent
            .post(&format!("{base}/task/ls?{bad}"))
            .send_empty()
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let err: Value = resp.body_mut().read_json().unwrap();
        assert!(err["Message"].as_str().is_some(), "{bad}: {err}");
    }
}

#[test]
fn two_hundred_tasks_complete_and_the_leecher_fetches_every_result() {
    let m = master(10_000, &[]);
    let w1 = worker(&m, 4, &[]);
    let w2 = worker(&m, 4, &[]);
    let leecher = Node::start_configured("leecher", &["--bootstrap", &m.addr], tuning(10_000, 0));
    wait_for_cluster(&m, &[&w1, &w2, &leecher]);
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = match i % 20 {
            0 => submit(&m, &["--kind", "bench.hash", "--param", "size=1048576"]),
            1 => submit(&m, &["--kind", "bench.store", "--param", "size=1048576"]),
            _ => submit(&m, &["--kind", "noop"]),
        };
        ids.push(id);
    }
    wait_until(120, "all 200 tasks succeed", || {
        let tasks = list(&m);
        assert!(
            tasks.iter().all(|t| t.2 != "failed"),
            "a task failed: {tasks:?}"
        );
        tasks.iter().filter(|t| t.2 == "succeeded").count() == 200
    });
    let tasks = list(&m);
    assert_eq!(tasks.len(), 200);
    check_paging(&m, &tasks);
    let mut ran_on = std::collections::HashSet::new();
    for (id, kind, _, result) in &tasks {
        assert!(ids.contains(id));
        // The leecher, connected only to the master, fetches the record from the worker.
        let record: Value = serde_json::from_slice(&leecher.ok(&["cat", result])).unwrap();
        assert_eq!(record["Task"].as_str(), Some(id.as_str()));
        assert_eq!(record["Kind"].as_str(), Some(kind.as_str()));
        if kind == "bench.hash" {
            assert_eq!(record["Metrics"]["Bytes"], 1_048_576);
            assert!(record["Metrics"]["MBps"].as_f64().unwrap() > 0.0);
        }
        ran_on.insert(record["Worker"].as_str().unwrap().to_string());
    }
    assert_eq!(ran_on.len(), 2, "both workers took tasks");
    assert!(ran_on.contains(&w1.peer_id) && ran_on.contains(&w2.peer_id));
}

#[test]
fn a_killed_workers_task_finishes_on_the_other_worker() {
    let m = master(1500, &[]);
    let mut w1 = worker(&m, 1, &[]);
    let w2 = worker(&m, 1, &[]);
    wait_for_cluster(&m, &[&w1, &w2]);
    let a = sleep_task(&m, "2");
    let b = sleep_task(&m, "2");
    wait_until(30, "both tasks run", || {
        status(&m, &a)["State"] == "running" && status(&m, &b)["State"] == "running"
    });
    let victim = if status(&m, &a)["Worker"] == w1.peer_id.as_str() {
        a.clone()
    } else {
        b.clone()
    };
    assert_eq!(status(&m, &victim)["Worker"], w1.peer_id.as_str());
    w1.kill();
    wait_until(60, "both tasks succeed", || {
        status(&m, &a)["State"] == "succeeded" && status(&m, &b)["State"] == "succeeded"
    });
    let record = status(&m, &victim);
    assert_eq!(record["Worker"], w2.peer_id.as_str());
    assert!(record["Attempt"].as_u64().unwrap() >= 2);
    assert!(
        record["LastError"]
            .as_str()
            .unwrap()
            .contains("lease expired"),
        "{record}"
    );
    let result = record["Result"].as_str().unwrap();
    let out: Value = serde_json::from_slice(&w2.ok(&["cat", result])).unwrap();
    assert_eq!(out["Metrics"]["ExitCode"], 0);
}

#[test]
fn a_master_killed_and_restarted_loses_no_task() {
    let mut m = master(1500, &[]);
    let w = worker(&m, 2, &[]);
    wait_for_cluster(&m, &[&w]);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(sleep_task(&m, "0.2"));
    }
    // Every submission was acknowledged, so it is durable: kill the master mid-queue.
    m.kill();
    m.restart();
    w.connect(&m);
    let tasks = list(&m);
    assert_eq!(tasks.len(), 30, "the restarted master lists every task");
    wait_until(120, "all 30 tasks succeed after the restart", || {
        count_in(&m, "succeeded") == 30
    });
    for id in &ids {
        assert_eq!(status(&m, id)["State"], "succeeded");
    }
}

#[test]
fn workers_come_back_by_themselves_to_a_master_restarted_on_its_address() {
    let listen = format!(
        "/ip4/127.0.0.1/tcp/{}",
        ipfsbench_integration_tests::daemon::free_port()
    );
    let mut m = Node::start_listening(&listen, "master", &[], tuning(10_000, 0));
    let w = worker(&m, 1, &[]);
    wait_for_cluster(&m, &[&w]);
    // The cluster is idle when the master dies: no running task, no result to announce,
    // nothing of the worker's own that would dial the master again.
    m.kill();
    // Down for a while, as a master is when it crashes and is restarted: the worker notices,
    // and whatever it tries to reach the master meanwhile fails. A listener on the master's
    // port stands in for it meanwhile: it takes each connection the worker opens there and
    // closes it unanswered, so the worker's dial fails; two of them are the worker's first
    // redial and one more after a failure.
    let port = listen.rsplit('/').next().unwrap();
    let stand_in = std::net::TcpListener::bind(format!("127.0.0.1:{port}")).unwrap();
    stand_in.set_nonblocking(true).unwrap();
    wait_until(30, "the worker sees the master gone", || {
        !String::from_utf8(w.ok(&["swarm", "peers"]))
            .unwrap()
            .contains(&m.peer_id)
    });
    let mut failed_dials = 0;
    wait_until(30, "two of the worker's dials to the master fail", || {
        while let Ok((connection, _)) = stand_in.accept() {
            drop(connection);
            failed_dials += 1;
        }
        failed_dials >= 2
    });
    drop(stand_in);
    m.restart();
    assert!(m.addr.starts_with(&listen), "{} is not on {listen}", m.addr);
    // Queued on a master whose workers are away. No `swarm connect` here: the worker redials
    // its bootstrap peer on its own.
    let ids: Vec<String> = (0..8).map(|_| submit(&m, &["--kind", "noop"])).collect();
    wait_until(30, "every queued task finishes after the restart", || {
        ids.iter().all(|id| status(&m, id)["State"] == "succeeded")
    });
}

#[test]
fn a_report_sent_while_the_master_is_down_arrives_after_its_restart() {
    // A lease far longer than the test waits: the task can only succeed by its report.
    let mut m = master(60_000, &[]);
    let w = worker(&m, 1, &[]);
    wait_for_cluster(&m, &[&w]);
    let id = sleep_task(&m, "1");
    wait_until(30, "the task runs", || {
        status(&m, &id)["State"] == "running"
    });
    m.kill();
    // The worker finishes and reports to nobody.
    wait_until(30, "the worker finishes the task", || {
        json(&w, &["cluster", "stats"])["Running"] == 0
    });
    m.restart();
    w.connect(&m);
    wait_until(
        30,
        "the repeated report reaches the restarted master",
        || status(&m, &id)["State"] == "succeeded",
    );
    let record = status(&m, &id);
    assert_eq!(record["Attempt"], 1, "{record}");
    assert_eq!(record["Failures"], 0, "{record}");
    assert_eq!(record["Worker"], w.peer_id.as_str());
    let result = record["Result"].as_str().unwrap();
    let out: Value = serde_json::from_slice(&m.ok(&["cat", result])).unwrap();
    assert_eq!(out["Task"], id.as_str());
}

#[test]
fn assignments_from_an_untrusted_master_are_ignored() {
    let m = master(10_000, &[]);
    let rogue = master(10_000, &[]);
    let w = worker(&m, 2, &["--bootstrap", &rogue.addr]);
    wait_for_cluster(&m, &[&w]);
    wait_for_cluster(&rogue, &[&w]);
    let ignored = submit(&rogue, &["--kind", "noop"]);
    wait_until(30, "the worker drops the rogue assignment", || {
        json(&w, &["cluster", "stats"])["Messages"]["Unauthorised"]
            .as_u64()
            .unwrap()
            >= 1
    });
    // The trusted master's work still runs.
    let out = String::from_utf8(m.ok(&["task", "submit", "--kind", "noop", "--wait"])).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    let rogue_task = status(&rogue, &ignored);
    assert_ne!(rogue_task["State"], "succeeded");
    assert_ne!(rogue_task["State"], "running");
    assert!(rogue_task["Result"].is_null());
}

#[test]
fn garbage_oversized_and_unauthorised_gossip_is_dropped() {
    let m = master(10_000, &[]);
    let w = worker(&m, 2, &[]);
    let p = Node::start_configured("leecher", &["--bootstrap", &m.addr], tuning(10_000, 0));
    wait_for_cluster(&m, &[&w, &p]);
    let topic = TASK_TOPIC;
    wait_for_task_topic(&p, &m);
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"\x01this is not a task message").unwrap();
    let oversized = dir.path().join("oversized");
    std::fs::write(&oversized, vec![1u8; 100 << 10]).unwrap();
    p.ok(&["pubsub", "pub", topic, garbage.to_str().unwrap()]);
    p.ok(&["pubsub", "pub", topic, oversized.to_str().unwrap()]);
    // A well-formed submission from a peer the master does not list as a submitter.
    let refused = submit(&p, &["--kind", "noop"]);
    wait_until(30, "the master drops all three", || {
        let stats = json(&m, &["cluster", "stats"]);
        stats["RejectedByHost"].as_u64().unwrap() >= 2
            && stats["Messages"]["Unauthorised"].as_u64().unwrap() >= 1
    });
    assert!(!m.cli(&["task", "status", &refused]).status.success());
    // Rejected messages are not forwarded: the worker, reached only through the master,
    // never saw them.
    assert_eq!(json(&w, &["cluster", "stats"])["RejectedByHost"], 0);
    // Everyone is healthy: work still flows.
    let out = String::from_utf8(m.ok(&["task", "submit", "--kind", "noop", "--wait"])).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    // A peer that keeps sending garbage is cut off, and stays off.
    // Distinct garbage each time: identical messages share an id and count once.
    for i in 0..8 {
        let junk = dir.path().join(format!("junk-{i}"));
        std::fs::write(&junk, format!("\x01garbage number {i}")).unwrap();
        p.ok(&["pubsub", "pub", topic, junk.to_str().unwrap()]);
    }
    wait_until(30, "the master cuts the garbage sender off", || {
        json(&m, &["cluster", "stats"])["CutOffPeers"] == 1
    });
    wait_until(30, "the garbage sender is disconnected", || {
        !String::from_utf8(m.ok(&["swarm", "peers"]))
            .unwrap()
            .contains(&p.peer_id)
    });
    // Dialling again gets nowhere: the master drops the connection as it opens.
    let _ = p.cli(&["swarm", "connect", &m.addr]);
    let peers = String::from_utf8(m.ok(&["swarm", "peers"])).unwrap();
    assert!(!peers.contains(&p.peer_id), "{peers}");
    // The worker is still served.
    let out = String::from_utf8(m.ok(&["task", "submit", "--kind", "noop", "--wait"])).unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn bad_submissions_are_refused_with_clear_errors() {
    let m = master(10_000, &[]);
    let w = worker(&m, 1, &[]);
    wait_for_cluster(&m, &[&w]);
    for (args, message) in [
        (vec!["--kind", "bench.gpu"], "unknown task kind"),
        (
            vec!["--kind", "exec", "--param", "program=gcc"],
            "not on the exec allowlist",
        ),
        (vec!["--kind", "bench.fetch"], "needs an input"),
        (vec!["--kind", "noop", "--param", "novalue"], "key=value"),
    ] {
        let mut full = vec!["task", "submit"];
        full.extend_from_slice(&args);
        let out = m.cli(&full);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert!(list(&m).is_empty(), "nothing was queued");
    // The same idempotency key names the same task.
    let a = submit(&m, &["--kind", "noop", "--key", "once"]);
    let b = submit(&m, &["--kind", "noop", "--key", "once"]);
    assert_eq!(a, b);
    assert_eq!(list(&m).len(), 1);
    // A worker reads the task records the master replicates, and cannot change them.
    wait_until(30, "the worker lists the replicated record", || {
        String::from_utf8(w.ok(&["task", "ls"]))
            .unwrap()
            .contains(&a)
    });
    let out = w.cli(&["task", "cancel", &a]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the master that schedules"));
}

#[test]
fn a_master_with_a_worker_list_gives_nothing_to_other_workers() {
    // The listed worker first, so that the master can name it.
    let mut good = Node::start_configured("worker", &[], tuning(10_000, 4));
    let m = master(10_000, &["--trust-worker", &good.peer_id]);
    // Now the worker trusts the master.
    trust_and_restart(&mut good, &m);
    // A worker the master does not list, which trusts the master all the same.
    let rogue = worker(&m, 4, &[]);
    wait_for_cluster(&m, &[&good]);
    wait_until(
        30,
        "the master refuses the unlisted worker's heartbeats",
        || {
            json(&m, &["cluster", "stats"])["Messages"]["Unauthorised"]
                .as_u64()
                .unwrap()
                >= 1
        },
    );
    for _ in 0..20 {
        submit(&m, &["--kind", "noop"]);
    }
    wait_until(60, "all 20 succeed", || count_in(&m, "succeeded") == 20);
    for (id, ..) in list(&m) {
        assert_eq!(status(&m, &id)["Worker"], good.peer_id.as_str());
    }
    // The master's peer table does not hold the unlisted worker; it is named among the peers
    // whose messages were dropped.
    let peers = String::from_utf8(m.ok(&["cluster", "peers"])).unwrap();
    let (heard, dropped): (Vec<&str>, Vec<&str>) =
        peers.lines().partition(|l| !l.contains(": not a member: "));
    assert!(!heard.iter().any(|l| l.contains(&rogue.peer_id)), "{peers}");
    assert!(
        dropped
            .iter()
            .any(|l| l.starts_with(&format!("{}: not a member: ", rogue.peer_id))),
        "{peers}"
    );
}

#[test]
fn a_submitter_that_is_not_a_master_learns_outcomes_from_its_master() {
    // The leecher submits; the master lists it as a submitter, it trusts the master.
    let mut leecher = Node::start_configured("leecher", &[], tuning(10_000, 0));
    let m = master(10_000, &["--submitter", &leecher.peer_id]);
    let w = worker(&m, 2, &[]);
    trust_and_restart(&mut leecher, &m);
    wait_for_cluster(&m, &[&w, &leecher]);
    wait_for_task_topic(&leecher, &m);
    let out =
        String::from_utf8(leecher.ok(&["task", "submit", "--kind", "noop", "--wait"])).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(status(&m, lines[0])["Result"], lines[1]);
    // A task that fails: the waiting submitter is told, not left hanging.
    let failed = leecher.cli(&[
        "task",
        "submit",
        "--kind",
        "exec",
        "--param",
        "program=sleep",
        "--param",
        "arg=not-a-number",
        "--max-attempts",
        "1",
        "--wait",
    ]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("failed"), "{err}");
}
