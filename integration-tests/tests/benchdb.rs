//! The benchmark database across real daemons on loopback: results written by two workers
//! are queryable on a leecher; SQL from outside is read-only and bounded; datasets are
//! stored and queried by name.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// `query SQL --format json` on `node`: the rows.
fn rows(node: &Node, sql: &str) -> Vec<Value> {
    let out = node.ok(&["query", sql, "--format", "json", "--no-cache"]);
    serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// (rows, sum of duration_ms) of `worker`'s own results as `node` sees them.
fn totals(node: &Node, worker: Option<&str>) -> (i64, f64) {
    let filter = worker.map_or(String::new(), |w| format!(" WHERE worker = '{w}'"));
    let r = &rows(
        node,
        &format!("SELECT count(*) AS n, coalesce(sum(duration_ms), 0) AS s FROM results{filter}"),
    )[0];
    (r["n"].as_i64().unwrap(), r["s"].as_f64().unwrap())
}

#[test]
fn results_of_two_workers_are_queryable_on_a_leecher() {
    let master = Node::start_configured("master", &[], Tuning::FAST);
    let flags = [
        "--bootstrap",
        &master.addr,
        "--trust-master",
        &master.peer_id,
    ];
    let w1 = Node::start_configured("worker", &flags, Tuning::FAST);
    let w2 = Node::start_configured("worker", &flags, Tuning::FAST);
    let mut leecher_flags = flags.to_vec();
    leecher_flags.extend(["--trust-peer", &w1.peer_id, "--trust-peer", &w2.peer_id]);
    let leecher = Node::start_configured("leecher", &leecher_flags, Tuning::FAST);
    wait_until(60, "the master hears both workers", || {
        let listed = String::from_utf8(master.ok(&["cluster", "peers"])).unwrap();
        listed.contains(&w1.peer_id) && listed.contains(&w2.peer_id)
    });
    for (i, w) in [&w1, &w2, &w1, &w2, &w1, &w2].iter().enumerate() {
        let kind = if i < 2 { "bench.hash" } else { "noop" };
        master.ok(&[
            "task",
            "submit",
            "--kind",
            kind,
            "--param",
            "size=1048576",
            "--target",
            &w.peer_id,
            "--wait",
        ]);
    }
    // Each worker holds its own three rows.
    wait_until(30, "each worker wrote its rows", || {
        totals(&w1, None).0 == 3 && totals(&w2, None).0 == 3
    });
    let (own1, own2) = (totals(&w1, None), totals(&w2, None));
    let start = Instant::now();
    wait_until(30, "the leecher synced both workers' rows", || {
        totals(&leecher, None).0 == 6
    });
    let synced_in = start.elapsed();
    assert_eq!(totals(&leecher, Some(&w1.peer_id)), own1);
    assert_eq!(totals(&leecher, Some(&w2.peer_id)), own2);
    let (n, sum) = totals(&leecher, None);
    assert_eq!(n, 6);
    assert!((sum - (own1.1 + own2.1)).abs() < 1e-6);
    // Typed figures arrived: bench.hash measured bytes and throughput.
    let hash = rows(
        &leecher,
        "SELECT min(bytes) AS b, min(mbps) AS m, count(DISTINCT cpu_model) AS c FROM results WHERE kind = 'bench.hash'",
    );
    assert_eq!(hash[0]["b"], 1_048_576);
    assert!(hash[0]["m"].as_f64().unwrap() > 0.0);
    // The comparison a benchmarker asks for, from the leecher's copy.
    let compare =
        String::from_utf8(leecher.ok(&["results", "compare", "--kind", "noop", "--by", "worker"]))
            .unwrap();
    assert!(
        compare.contains(&w1.peer_id) && compare.contains(&w2.peer_id),
        "{compare}"
    );
    // The replicated state's tables answer too.
    let tasks = rows(
        &leecher,
        "SELECT count(*) AS n FROM tasks WHERE state = 'succeeded'",
    );
    assert_eq!(tasks[0]["n"], 6);
    let report = String::from_utf8(leecher.ok(&["results", "report", "--format", "html"])).unwrap();
    assert!(
        report.contains("<svg") && report.contains("bench.hash"),
        "{report}"
    );
    eprintln!("the leecher had every row {synced_in:?} after the workers did");
}

#[test]
fn sql_from_outside_is_read_only_and_bounded() {
    let node = Node::start_configured("worker", &[], Tuning::FAST);
    let refused = [
        "CREATE TABLE t (a INT)",
        "COPY (SELECT 1) TO '/tmp/ipfsbench-benchdb-copy.csv'",
        "ATTACH '/tmp/ipfsbench-benchdb.db' AS other",
        "INSTALL httpfs",
        "PRAGMA database_list",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT 1; SELECT 2",
        "DROP VIEW results",
    ];
    for sql in refused {
        let out = node.cli(&["query", sql]);
        assert!(!out.status.success(), "{sql} ran");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("400"), "{sql}: {err}");
    }
    assert!(!std::path::Path::new("/tmp/ipfsbench-benchdb-copy.csv").exists());
    // A query that would run for hours is stopped at the time limit (30 s by default).
    let clock = Instant::now();
    let out = node.cli(&["query", "SELECT sum(range % 7) FROM range(10000000000000)"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("time limit"));
    assert!(clock.elapsed() < Duration::from_secs(90));
    // Still serving.
    assert_eq!(rows(&node, "SELECT 41 + 1 AS x")[0]["x"], 42);
    assert_eq!(rows(&node, "SELECT count(*) AS n FROM results")[0]["n"], 0);
}

#[test]
fn a_dataset_is_stored_and_queried_by_name() {
    let node = Node::start_configured("worker", &[], Tuning::FAST);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("scores.csv");
    let mut text = String::from("name,score\n");
    for i in 0..1000 {
        text.push_str(&format!("n{i},{i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let added = node.first_line(&["dataset", "add", csv.to_str().unwrap(), "--name", "scores"]);
    assert!(added.starts_with("added dataset scores "), "{added}");
    let r = rows(
        &node,
        "SELECT count(*) AS n, sum(score) AS s FROM datasets.scores",
    );
    assert_eq!(
        (r[0]["n"].as_i64(), r[0]["s"].as_i64()),
        (Some(1000), Some(499_500))
    );
    let listed = String::from_utf8(node.ok(&["dataset", "ls"])).unwrap();
    assert!(
        listed.contains("scores") && listed.contains("1000 rows"),
        "{listed}"
    );
    // Not a table: refused, nothing recorded.
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"not parquet at all").unwrap();
    let out = node.cli(&["dataset", "add", junk.to_str().unwrap(), "--name", "junk"]);
    assert!(!out.status.success());
    let listed = String::from_utf8(node.ok(&["dataset", "ls"])).unwrap();
    assert!(!listed.contains("junk"), "{listed}");
    let out = node.cli(&[
        "dataset",
        "add",
        csv.to_str().unwrap(),
        "--name",
        "bad name!",
    ]);
    assert!(!out.status.success());
}

#[test]
fn an_sql_task_runs_over_a_dataset_on_a_worker() {
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
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("runs.csv");
    let mut text = String::from("host,seconds\n");
    for i in 0..300 {
        text.push_str(&format!("h{},{}\n", i % 3, i));
    }
    std::fs::write(&csv, text).unwrap();
    let added = master.first_line(&["dataset", "add", csv.to_str().unwrap(), "--name", "runs"]);
    let cid = added.split_whitespace().nth(3).unwrap().to_string();
    let out = String::from_utf8(master.ok(&[
        "task",
        "submit",
        "--kind",
        "sql",
        "--input",
        &cid,
        "--param",
        "query=SELECT host, count(*) AS n, sum(seconds) AS s FROM datasets.input_1 GROUP BY host ORDER BY host",
        "--wait",
    ]))
    .unwrap();
    let record_cid = out.lines().last().unwrap().trim().to_string();
    let record: Value = serde_json::from_slice(&master.ok(&["cat", &record_cid])).unwrap();
    assert_eq!(record["Metrics"]["Rows"], 3, "{record}");
    let output = record["Outputs"][0].as_str().unwrap().to_string();
    let parquet = master.ok(&["cat", &output]);
    assert_eq!(&parquet[..4], b"PAR1");
    assert_eq!(&parquet[parquet.len() - 4..], b"PAR1");
    // Anything but a query fails the task, and changes nothing.
    let out = master.cli(&[
        "task",
        "submit",
        "--kind",
        "sql",
        "--input",
        &cid,
        "--param",
        "query=DROP VIEW results",
        "--wait",
    ]);
    assert!(!out.status.success());
    // Every attempt of it is a `results` row with the refusal (the master retries failures).
    let r = &rows(
        &worker,
        "SELECT count(*) FILTER (WHERE outcome = 'succeeded') AS ok, \
         count(*) FILTER (WHERE outcome = 'failed' AND error LIKE '%refused%') AS refused \
         FROM results WHERE kind = 'sql'",
    )[0];
    assert_eq!(r["ok"], 1, "{r}");
    assert!(r["refused"].as_i64().unwrap() >= 1, "{r}");
}
