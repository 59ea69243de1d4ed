//! SQL from outside against a real daemon: queries that act, abort DuckDB or exhaust memory
//! leave the node alive and small; answers are bounded in bytes; a `sql` task's answer is
//! capped; datasets are mounted only when a query names them.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// `POST /api/v0/query?arg=SQL&no-cache=true`: the status and the JSON body.
fn query(node: &Node, sql: &str, cache: bool) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(180)))
        .build()
        .into();
    let response = agent
        .post(format!("{}/query", node.api_base()))
        .query("arg", sql)
        .query("no-cache", if cache { "false" } else { "true" })
        .send_empty()
        .unwrap();
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The daemon's peak resident set (VmHWM), in MiB.
fn peak_mib(node: &Node) -> u64 {
    let pid = node.pid().unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        / 1024
}

fn alive(node: &Node) {
    let (status, body) = query(node, "SELECT 41 + 1 AS x", false);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Rows"][0][0], 42, "{body}");
}

#[test]
fn hostile_queries_leave_the_node_alive_and_small() {
    let node = Node::start_configured("worker", &[], Tuning::FAST);
    alive(&node);
    let start_mib = node.rss_kib() / 1024;
    let logs = tempfile::tempdir().unwrap();
    let logging = format!(
        "SELECT * FROM enable_logging(storage='file', storage_path='{}')",
        logs.path().display()
    );
    // Acting through a table function: refused before anything binds, twice (the second
    // time it used to abort the daemon) and with and without the cache.
    for cache in [false, true, false] {
        let (status, body) = query(&node, &logging, cache);
        assert_eq!(status, 400, "{body}");
        assert!(
            body["Message"].as_str().unwrap().contains("enable_logging"),
            "{body}"
        );
        alive(&node);
    }
    assert_eq!(std::fs::read_dir(logs.path()).unwrap().count(), 0);
    // Values built outside DuckDB's memory limit: the query's process is stopped, the node
    // is not.
    for sql in [
        "SELECT length(repeat('x', 3900000000)) AS n",
        "SELECT length(repeat('x', 1000000000)) AS n",
    ] {
        let (status, body) = query(&node, sql, false);
        assert_eq!(status, 400, "{sql}: {body}");
        alive(&node);
    }
    // 100 cells of 5 MB come out of DuckDB as one chunk of 500 MB, and DuckDB buffers
    // hundreds of MB of 20 kB cells before the first chunk streams out: more than the
    // query's process may map. Refused (DuckDB's out-of-memory error, or the process
    // stopped), or cut should DuckDB stream them one day; the node is untouched.
    for sql in [
        "SELECT repeat('x', 5000000) AS s FROM range(100)",
        "SELECT repeat('x', 20000) AS s FROM range(100000)",
    ] {
        let (status, body) = query(&node, sql, false);
        match status {
            400 => assert!(
                body["Message"].as_str().unwrap().contains("Out of Memory")
                    || body["Message"].as_str().unwrap().contains("MiB"),
                "{body}"
            ),
            200 => assert_eq!(body["Truncated"], true),
            other => panic!("{other}: {body}"),
        }
        alive(&node);
    }
    // Large answers are cut at the byte limit (32 MiB of cells), not at 100,000 rows.
    for (sql, cell) in [
        (
            "SELECT repeat('x', 1000000) AS s FROM range(100)",
            1_000_000,
        ),
        ("SELECT repeat('x', 2000) AS s FROM range(100000)", 2_000),
    ] {
        for cache in [false, true] {
            let (status, body) = query(&node, sql, cache);
            assert_eq!(status, 200, "{sql}: {body}");
            assert_eq!(body["Truncated"], true, "{sql}");
            let rows = body["Rows"].as_array().unwrap();
            assert!(!rows.is_empty(), "{sql}");
            assert!(
                rows.len() * cell <= 32 << 20,
                "{sql}: {} rows of {cell} bytes",
                rows.len()
            );
            assert_eq!(rows[0][0].as_str().unwrap().len(), cell);
        }
        alive(&node);
    }
    let peak = peak_mib(&node);
    assert!(peak < 1024, "the daemon peaked at {peak} MiB");
    // Back near where it started once the answers are gone.
    wait_until(30, "the daemon's memory goes back down", || {
        node.rss_kib() / 1024 < start_mib + 200
    });
    assert!(
        !node.repo().join(".tmp").exists() && !std::path::Path::new(".tmp").exists(),
        "DuckDB made a temporary directory"
    );
}

#[test]
fn an_sql_task_answer_is_capped() {
    let master = Node::start_configured("master", &[], Tuning::FAST);
    let flags = [
        "--bootstrap",
        &master.addr,
        "--trust-master",
        &master.peer_id,
    ];
    let worker = Node::start_configured("worker", &flags, Tuning::FAST);
    wait_until(60, "the master hears the worker", || {
        String::from_utf8(master.ok(&["cluster", "peers"]))
            .unwrap()
            .contains(&worker.peer_id)
    });
    // A submission before the master leads goes round by gossip, and a wait can then ask the
    // new leader's table before the task reaches it: submit once it leads.
    wait_until(60, "the master leads", || {
        String::from_utf8(master.ok(&["cluster", "master"]))
            .unwrap()
            .contains("this node: leading")
    });
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("one.csv");
    std::fs::write(&csv, "a\n1\n").unwrap();
    let added = master.first_line(&["dataset", "add", csv.to_str().unwrap(), "--name", "one"]);
    let cid = added.split_whitespace().nth(3).unwrap().to_string();
    // 30 million rows of 16 bytes: 480 MB, more than a worker should write for one answer.
    let out = String::from_utf8(master.ok(&[
        "task",
        "submit",
        "--kind",
        "sql",
        "--input",
        &cid,
        "--param",
        "query=SELECT random() AS r, i FROM range(30000000) t(i), datasets.input_1",
        "--wait",
    ]))
    .unwrap();
    let record_cid = out.lines().last().unwrap().trim().to_string();
    let record: Value = serde_json::from_slice(&master.ok(&["cat", &record_cid])).unwrap();
    assert_eq!(record["Metrics"]["Truncated"], true, "{record}");
    let rows = record["Metrics"]["Rows"].as_u64().unwrap();
    assert!(rows > 0 && rows <= 100_000, "{record}");
    let bytes = record["Metrics"]["Bytes"].as_u64().unwrap();
    assert!(bytes < 64 << 20, "{record}");
}

#[test]
fn datasets_are_mounted_only_when_named() {
    let a = Node::start_configured("worker", &[], Tuning::FAST);
    let flags = ["--bootstrap", &a.addr, "--trust-peer", &a.peer_id];
    let b = Node::start_configured("worker", &flags, Tuning::FAST);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("e.csv");
    std::fs::write(&csv, "k,v\n1,2\n").unwrap();
    let added = a.first_line(&["dataset", "add", csv.to_str().unwrap(), "--name", "e"]);
    let cid = added.split_whitespace().nth(3).unwrap().to_string();
    wait_until(60, "the dataset reaches the other node's state", || {
        String::from_utf8(b.ok(&["dataset", "ls"]))
            .unwrap()
            .contains(&cid)
    });
    // Its only holder goes away: the dataset cannot be fetched any more.
    drop(a);
    // A query that does not name the dataset never needs it ("e" is in "SELECT").
    let (status, body) = query(&b, "SELECT 'e' AS e", false);
    assert_eq!(status, 200, "{body}");
    // One that does gets a 4xx naming it.
    let (status, body) = query(&b, "SELECT count(*) FROM datasets.e", false);
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body["Message"].as_str().unwrap().contains("dataset e"),
        "{body}"
    );
}

#[test]
fn dataset_uploads_up_to_the_limit_and_bad_files_get_a_4xx() {
    let node = Node::start_configured("worker", &[], Tuning::FAST);
    let dir = tempfile::tempdir().unwrap();
    // Over axum's 2 MiB default body limit, well under the documented 1 GiB.
    let big = dir.path().join("big.csv");
    let mut text = String::from("name,score\n");
    let mut n = 0u64;
    while text.len() < 6 << 20 {
        text.push_str(&format!("a-longer-name-{n:012},{n}\n"));
        n += 1;
    }
    std::fs::write(&big, &text).unwrap();
    let added = node.first_line(&["dataset", "add", big.to_str().unwrap(), "--name", "big"]);
    assert!(added.starts_with("added dataset big "), "{added}");
    let (status, body) = query(&node, "SELECT count(*) AS n FROM datasets.big", false);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Rows"][0][0], n, "{body}");
    // A line longer than the CSV reader takes, and an empty file: a 400, nothing recorded.
    let wide = dir.path().join("wide.csv");
    std::fs::write(&wide, format!("a,b\n{},1\n", "x".repeat(50 << 20))).unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    for (file, name) in [(&wide, "wide"), (&empty, "empty")] {
        let out = node.cli(&["dataset", "add", file.to_str().unwrap(), "--name", name]);
        assert!(!out.status.success(), "{name} was added");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("400"), "{name}: {err}");
        assert!(!err.to_lowercase().contains("broken pipe"), "{name}: {err}");
    }
    let listed = String::from_utf8(node.ok(&["dataset", "ls"])).unwrap();
    assert!(
        !listed.contains("wide") && !listed.contains("empty"),
        "{listed}"
    );
}

#[test]
fn csv_answers_keep_every_digit() {
    let node = Node::start_configured("worker", &[], Tuning::FAST);
    let out = String::from_utf8(node.ok(&[
        "query",
        "SELECT 0.010665161::DOUBLE AS a, 123456.789012345::DOUBLE AS b",
        "--format",
        "csv",
    ]))
    .unwrap();
    assert_eq!(
        out.lines().nth(1),
        Some("0.010665161,123456.789012345"),
        "{out}"
    );
}
