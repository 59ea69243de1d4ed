//! The replicated state across hosts in network namespaces: a partition splits the cluster,
//! both sides change the same pins, and after the links are joined again every node holds the
//! identical state (same digest); a master cut off from the leader leads its side, and steps
//! aside for one leader once the sides are joined. Needs root; without it every trial is reported as ignored,
//! with the reason.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use ipfsbench_integration_tests::netns::Lab;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// One trial's body.
type Check = fn() -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let trials: Vec<(&str, Check)> = vec![
        (
            "both_sides_of_a_partition_change_the_same_pins_and_converge",
            partition,
        ),
        (
            "a_master_cut_off_is_replaced_and_steps_down_when_the_partition_heals",
            two_leaders,
        ),
    ];
    let trials = trials
        .into_iter()
        .map(|(name, check)| match Lab::new(0) {
            Ok(_) => Trial::test(name, check),
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

/// Heartbeats and announcements every 200 ms, a leader silent for 2 s replaced.
const TUNING: Tuning = Tuning::FAST.announce_ms(200).leader_lease_ms(2_000);

fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Result<(), Failed> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn state(node: &Node) -> Value {
    serde_json::from_slice(&node.ok(&["cluster", "state"])).unwrap()
}

fn identical(nodes: &[Node]) -> bool {
    let states: Vec<Value> = nodes.iter().map(state).collect();
    states
        .iter()
        .all(|s| s["Digest"] == states[0]["Digest"] && s["Pending"] == 0)
}

fn name_of(node: &Node, cid: &str) -> Option<String> {
    let out = String::from_utf8(node.ok(&["cluster", "pin", "ls", "--json"])).unwrap();
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|p| p["Cid"] == cid)
        .map(|p| p["Name"].as_str().unwrap().to_string())
}

/// One node of each role in `roles` on the lab's hosts, in order, with throwaway repos (the
/// directories, kept while the nodes run), each trusting every other for the state and the
/// nodes numbered in `masters` as masters. Every node dials every node started before it: each
/// side of a partition stays connected within itself.
fn start(
    lab: &Lab,
    roles: &[&str],
    masters: &[usize],
) -> (Vec<tempfile::TempDir>, Vec<String>, Vec<Node>) {
    let dirs: Vec<tempfile::TempDir> = roles.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let repos: Vec<_> = dirs.iter().map(|d| d.path().join("repo")).collect();
    let ids: Vec<String> = repos.iter().map(|r| init_repo(r)).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        let mut flags: Vec<String> = Vec::new();
        for (j, id) in ids.iter().enumerate() {
            if j != i {
                flags.extend(["--trust-peer".to_string(), id.clone()]);
            }
        }
        for &m in masters {
            flags.extend(["--trust-master".to_string(), ids[m].clone()]);
        }
        for n in &nodes {
            flags.extend(["--bootstrap".to_string(), n.addr.clone()]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let h = &lab.hosts[i];
        nodes.push(Node::start_in_netns(
            &h.ns, &h.ip, repo, roles[i], &flags, TUNING,
        ));
    }
    (dirs, ids, nodes)
}

fn partition() -> Result<(), Failed> {
    let lab = Lab::new(4)?;
    let (_dirs, _ids, nodes) = start(&lab, &["master", "worker", "worker", "worker"], &[]);
    let data = tempfile::tempdir().unwrap();
    let mut cids = Vec::new();
    for k in 0..3u64 {
        let path = data.path().join(format!("f{k}"));
        ipfsbench_integration_tests::data::write_pseudo_random_file(&path, 64 * 1024, k).unwrap();
        let out = nodes[0].ok(&["add", "-Q", path.to_str().unwrap()]);
        cids.push(String::from_utf8(out).unwrap().trim().to_string());
    }
    wait_until(30, "the master hears the three workers", || {
        String::from_utf8(nodes[0].ok(&["cluster", "peers"]))
            .unwrap()
            .lines()
            .filter(|l| l.contains(" worker "))
            .count()
            == 3
    })?;
    for cid in &cids {
        nodes[0].ok(&[
            "cluster",
            "pin",
            "add",
            cid,
            "--name",
            "before",
            "--replication-min",
            "1",
        ]);
    }
    wait_until(60, "every node holds the three pins", || {
        identical(&nodes) && (0..4).all(|i| name_of(&nodes[i], &cids[2]).is_some())
    })?;

    // Split {0, 1} | {2, 3}; each side changes the same pins.
    lab.partition(&[2, 3])?;
    nodes[1].ok(&[
        "cluster",
        "pin",
        "add",
        &cids[0],
        "--name",
        "left",
        "--replication-min",
        "1",
    ]);
    nodes[0].ok(&["cluster", "pin", "rm", &cids[1]]);
    nodes[2].ok(&[
        "cluster",
        "pin",
        "add",
        &cids[0],
        "--name",
        "right",
        "--replication-min",
        "1",
    ]);
    nodes[3].ok(&[
        "cluster",
        "pin",
        "add",
        &cids[1],
        "--name",
        "right",
        "--replication-min",
        "1",
    ]);
    nodes[3].ok(&["cluster", "pin", "rm", &cids[2]]);
    // The sides differ while apart: each side holds its own changes.
    wait_until(30, "each side sees its own changes", || {
        name_of(&nodes[0], &cids[0]).as_deref() == Some("left")
            && name_of(&nodes[1], &cids[0]).as_deref() == Some("left")
            && name_of(&nodes[2], &cids[0]).as_deref() == Some("right")
            && name_of(&nodes[3], &cids[0]).as_deref() == Some("right")
    })?;

    lab.heal()?;
    wait_until(
        120,
        "every node holds the identical state after healing",
        || identical(&nodes),
    )?;
    let names: Vec<Option<String>> = nodes.iter().map(|n| name_of(n, &cids[0])).collect();
    assert!(names.iter().all(|n| n == &names[0]), "{names:?}");
    assert!(
        matches!(names[0].as_deref(), Some("left" | "right")),
        "{names:?}"
    );
    // The pin removed on one side and renamed on the other is in one state everywhere; the
    // one removed only on one side is gone everywhere.
    let second: Vec<Option<String>> = nodes.iter().map(|n| name_of(n, &cids[1])).collect();
    assert!(second.iter().all(|n| n == &second[0]), "{second:?}");
    assert!(nodes.iter().all(|n| name_of(n, &cids[2]).is_none()));
    Ok(())
}

fn master_view(node: &Node) -> String {
    String::from_utf8(node.ok(&["cluster", "master"])).unwrap()
}

fn leads(node: &Node) -> bool {
    master_view(node).contains("this node: leading")
}

/// Submits a noop task on `node` and waits for its outcome; its id.
fn run_noop(node: &Node, key: &str) -> String {
    node.first_line(&["task", "submit", "--kind", "noop", "--key", key, "--wait"])
}

/// Masters on hosts 0 and 2, workers on 1 and 3. Cut apart, the master without a leader
/// takes over its side, and each side runs its own task; joined again, the later leader keeps
/// leading, the other stands by and hands it the task it could not run, and every task's
/// result is listed everywhere.
fn two_leaders() -> Result<(), Failed> {
    let lab = Lab::new(4)?;
    let (_dirs, ids, nodes) = start(&lab, &["master", "worker", "master", "worker"], &[0, 2]);
    wait_until(60, "the first master leads and the other stands by", || {
        leads(&nodes[0]) && master_view(&nodes[2]).contains(&ids[0])
    })?;
    if leads(&nodes[2]) {
        return Err("two leaders before any partition".into());
    }

    lab.partition(&[2, 3])?;
    wait_until(30, "the cut-off side has a leader of its own", || {
        leads(&nodes[2])
    })?;
    if !leads(&nodes[0]) {
        return Err("the first master stopped leading its own side".into());
    }
    let left = run_noop(&nodes[0], "left");
    let right = run_noop(&nodes[2], "right");
    // A task for a worker on the other side waits on this side until the sides are joined:
    // then the master that stands down hands it to the leader.
    let out = nodes[0].ok(&["task", "submit", "--kind", "noop", "--target", &ids[3]]);
    let waiting = String::from_utf8(out).unwrap().trim().to_string();

    lab.heal()?;
    wait_until(60, "one leader again: the later one", || {
        !leads(&nodes[0]) && leads(&nodes[2])
    })?;
    for node in &nodes {
        wait_until(
            60,
            "every node names the leader and lists every result",
            || {
                let results =
                    String::from_utf8(node.ok(&["cluster", "results", "--json"])).unwrap();
                master_view(node).contains(&format!("active master: {}", ids[2]))
                    && results.contains(&left)
                    && results.contains(&right)
                    && results.contains(&waiting)
                    && node.cli(&["task", "status", &left]).status.success()
            },
        )?;
    }
    Ok(())
}
