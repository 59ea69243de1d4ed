//! A submission over pubsub that the master will not take is refused at once: the submitter
//! gets a clear error, instead of waiting forever for an outcome that never comes.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// How long a refused submission may take to fail: a round trip over gossipsub, with room
/// for a slow machine. Without a refusal it would wait forever.
const PROMPT: Duration = Duration::from_secs(20);

fn json(node: &Node, args: &[&str]) -> Value {
    serde_json::from_slice(&node.ok(args)).unwrap()
}

/// Runs the CLI against `node`, killed if it has not finished within `limit`: its exit
/// status (`None` when it was killed), stderr and how long it ran.
fn run_bounded(
    node: &Node,
    args: &[&str],
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(node.repo())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    (status, err, started.elapsed())
}

#[test]
fn a_submission_from_a_peer_the_master_does_not_list_fails_at_once() {
    let master = Node::start_configured("master", &[], Tuning::FAST);
    // The stranger trusts the master (it takes its outcomes); the master lists no submitter.
    let stranger = Node::start_configured(
        "leecher",
        &[
            "--bootstrap",
            &master.addr,
            "--trust-master",
            &master.peer_id,
        ],
        Tuning::FAST,
    );
    wait_until(60, "the master leads and hears the stranger", || {
        let view = String::from_utf8(master.ok(&["cluster", "master"])).unwrap();
        let peers = String::from_utf8(master.ok(&["cluster", "peers"])).unwrap();
        view.contains("this node: leading") && peers.contains(&stranger.peer_id)
    });
    wait_until(30, "the stranger sees the master on the task topic", || {
        String::from_utf8(stranger.ok(&["pubsub", "peers", "/ipfsbench/default/tasks/3"]))
            .unwrap()
            .contains(&master.peer_id)
    });

    let (status, err, took) = run_bounded(
        &stranger,
        &["task", "submit", "--kind", "noop", "--key", "k1", "--wait"],
        PROMPT,
    );
    let status = status.unwrap_or_else(|| panic!("still waiting after {took:?}: {err}"));
    assert!(!status.success(), "the submission succeeded: {err}");
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains(&master.peer_id), "names the master: {err}");
    assert!(err.contains("tasks.submitters"), "says why: {err}");
    println!("refused in {took:?}");

    // Waiting for the refused task afterwards answers at once too.
    let id = String::from_utf8(stranger.ok(&["task", "submit", "--kind", "noop", "--key", "k2"]))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let (status, err, took) = run_bounded(&stranger, &["task", "result", &id, "--wait"], PROMPT);
    let status = status.unwrap_or_else(|| panic!("still waiting after {took:?}: {err}"));
    assert!(!status.success());
    assert!(err.contains("refused"), "{err}");

    // The master took nothing, and counted both.
    let stats = json(&master, &["cluster", "stats"]);
    assert!(
        stats["Messages"]["Unauthorised"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    let listed = String::from_utf8(master.ok(&["task", "ls"])).unwrap();
    assert!(!listed.contains(&id), "{listed}");
}
