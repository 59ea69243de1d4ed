//! The benchmark database's speed and memory, DuckDB and Kubo-free:
//! ingest of result rows into partitions on one node, a warm group-by over all of them, a
//! new peer syncing them over loopback, and the process's memory once idle.
//!
//! `cargo bench -p ipfsbench-roles --bench index` (ROWS=1000000 and PARTITIONS=50 by default).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipfsbench_core::daemon::{Node, Options};
use ipfsbench_core::index::{Config, Index};
use ipfsbench_core::network::TopicRule;
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::index as wire;
use ipfsbench_protocols::task::{Figure, Kind, TaskId};
use ipfsbench_protocols::Role;
use ipfsbench_roles::results::schema::{Ended, Hardware, ResultRow, RESULTS};

const TOPIC: &str = "/ipfsbench/bench/index/1";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn node(
    dir: &std::path::Path,
    trusted: &HashSet<libp2p::PeerId>,
    repo: Repo,
    bootstrap: Vec<libp2p::Multiaddr>,
) -> (Node, Index) {
    let _ = dir;
    let mut options = Options::new(Role::Worker, "127.0.0.1:0".parse().unwrap());
    options.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    options.bootstrap = bootstrap;
    options.topic_rules = vec![TopicRule {
        prefix: "/ipfsbench/",
        suffix: wire::TOPIC_SUFFIX,
        valid: |d| wire::Announce::decode(d).is_ok(),
    }];
    let daemon = Node::start(repo, &options).await.unwrap();
    let mut config = Config::new(TOPIC.into(), trusted.clone(), RESULTS);
    config.content_every = None;
    config.compact_after = usize::MAX;
    config.flush_rows = usize::MAX;
    config.flush_every = Duration::from_secs(3600);
    config.announce_every = Duration::from_millis(200);
    let index = Index::start(Arc::clone(daemon.repo()), daemon.client().clone(), config).unwrap();
    (daemon, index)
}

fn row(i: usize, workers: &[libp2p::PeerId], record: cid::Cid) -> ResultRow {
    let mut task = [0u8; 16];
    task[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let n = i as u64;
    ResultRow {
        task: TaskId(task),
        attempt: 1,
        kind: [
            Kind::BenchHash,
            Kind::BenchFetch,
            Kind::BenchStore,
            Kind::Noop,
        ][i % 4],
        params: vec![("size".into(), "67108864".into())],
        worker: workers[i % workers.len()],
        hardware: Hardware {
            cpu_model: ["Xeon", "EPYC"][i % 2].into(),
            cores: 2,
            memory_bytes: 8 << 30,
            os: "linux",
            arch: "x86_64",
        },
        ended: Ended::Succeeded { record },
        master: Some(workers[0]),
        cluster: "bench".into(),
        started_ms: 1_700_000_000_000 + n,
        finished_ms: 1_700_000_000_100 + n,
        figures: vec![
            (Figure::Bytes, 67_108_864.0),
            (Figure::Seconds, 0.05 + (i % 100) as f64 / 1000.0),
            (Figure::MBps, 1000.0 + (i % 997) as f64),
        ],
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = env("ROWS", 1_000_000);
    let partitions = env("PARTITIONS", 50).max(1);
    let dir = tempfile::tempdir().unwrap();
    let repo_a = Repo::init(&dir.path().join("a")).unwrap();
    let repo_b = Repo::init(&dir.path().join("b")).unwrap();
    let trusted: HashSet<_> = [repo_a.peer_id(), repo_b.peer_id()].into();
    let (daemon_a, index_a) = node(dir.path(), &trusted, repo_a, vec![]).await;
    let a = index_a.handle();

    // Ingest: rows built, buffered and written as `partitions` Parquet partitions.
    let per = rows.div_ceil(partitions);
    let workers: Vec<libp2p::PeerId> = (0..8).map(|_| libp2p::PeerId::random()).collect();
    let record: cid::Cid = "bafkqaaa".parse().unwrap();
    let clock = Instant::now();
    let mut build = Duration::ZERO;
    for p in 0..partitions {
        let b = Instant::now();
        let batch: Vec<_> = (p * per..((p + 1) * per).min(rows))
            .map(|i| row(i, &workers, record).cells())
            .collect();
        build += b.elapsed();
        a.append_results(batch).await.unwrap();
        a.flush().await.unwrap();
    }
    let ingest = clock.elapsed();
    let status = a.status().await.unwrap();
    assert_eq!(status.rows["results"], rows as u64);
    println!(
        "ingest: {rows} rows in {} partitions, {:.2} s: {:.0} rows/s (of which building the rows in Rust {:.2} s)",
        status.partitions["results"],
        ingest.as_secs_f64(),
        rows as f64 / ingest.as_secs_f64(),
        build.as_secs_f64()
    );

    // A warm group-by over every row (no answer cache).
    let sql = "SELECT kind, cpu_model, count(*) AS n, median(mbps) AS median, \
               quantile_cont(mbps, 0.1) AS p10, quantile_cont(mbps, 0.9) AS p90 \
               FROM results GROUP BY 1, 2 ORDER BY 1, 2";
    a.query(sql.into(), false).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let answer = a.query(sql.into(), false).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(answer.rows.len(), 4);
    }
    println!(
        "group-by over {rows} rows (median, p10, p90 by kind and CPU), warm: median {:.0} ms of 7 (min {:.0}, max {:.0})",
        median(times.clone()),
        times.iter().cloned().fold(f64::MAX, f64::min),
        times.iter().cloned().fold(0.0, f64::max)
    );
    let t = Instant::now();
    a.query(sql.into(), true).await.unwrap();
    let miss = t.elapsed();
    let t = Instant::now();
    a.query(sql.into(), true).await.unwrap();
    println!(
        "the same query through the answer cache: {:.0} ms to fill, {:.1} ms answered from it",
        miss.as_secs_f64() * 1000.0,
        t.elapsed().as_secs_f64() * 1000.0
    );

    // A new peer syncs every partition over loopback.
    let addr = loop {
        let addrs = daemon_a.client().listen_addrs().await.unwrap();
        if let Some(a) = addrs
            .into_iter()
            .find(|a| a.to_string().starts_with("/ip4/127.0.0.1/tcp/"))
        {
            break a.with(libp2p::multiaddr::Protocol::P2p(daemon_a.repo().peer_id()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let bytes: u64 = std::fs::read_dir(dir.path().join("a/index/parts"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let clock = Instant::now();
    let (daemon_b, index_b) = node(dir.path(), &trusted, repo_b, vec![addr]).await;
    let b = index_b.handle();
    loop {
        let s = b.status().await.unwrap();
        if s.rows.get("results") == Some(&(rows as u64)) {
            break;
        }
        assert!(clock.elapsed() < Duration::from_secs(300), "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let synced = clock.elapsed();
    println!(
        "a new peer synced {rows} rows in {partitions} partitions ({:.1} MiB) in {:.2} s (from its start, connection included): {:.0} MiB/s",
        bytes as f64 / (1 << 20) as f64,
        synced.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64 / synced.as_secs_f64()
    );
    let answer = b
        .query("SELECT count(*) FROM results".into(), false)
        .await
        .unwrap();
    assert_eq!(answer.rows[0][0].as_f64(), Some(rows as f64));

    index_b.shutdown().await;
    daemon_b.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "memory: this process (node A idle with {rows} rows, after node B stopped and the queries above): {:.0} MiB RSS",
        rss_mib()
    );
    index_a.shutdown().await;
    daemon_a.shutdown().await.unwrap();
}
