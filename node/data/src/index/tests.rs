//! The index on real hosts over loopback TCP: typed rows round-trip, peers sync what they
//! trust, tampered partitions are refused, small partitions merge, answers are cached.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipfsbench_protocols::index::{self as wire, Partition, Table};
use ipfsbench_protocols::task::WireCid;
use ipfsbench_sql::{Cell, ColumnType as T, Field, TableSchema, Value};
use libp2p::{Multiaddr, PeerId};

use super::{Config, Handle, Index};
use crate::testing::{repo, Host};
use ipfsbench_store::repo::Repo;

const TOPIC: &str = "/ipfsbench/test/index/1";
const DEADLINE: Duration = Duration::from_secs(30);

struct Node {
    host: Host,
    index: Index,
}

impl Node {
    fn handle(&self) -> Handle {
        self.index.handle()
    }

    async fn addr(&self) -> Multiaddr {
        self.host.addr().await
    }

    async fn stop(self) {
        self.index.shutdown().await;
        self.host.stop().await;
    }
}

async fn start(
    (dir, repo): (tempfile::TempDir, Repo),
    trusted: &HashSet<PeerId>,
    bootstrap: Vec<Multiaddr>,
    tune: impl FnOnce(&mut Config),
) -> Node {
    let host = Host::start((dir, repo), bootstrap, wire::TOPIC_SUFFIX, |data| {
        wire::Announce::decode(data).is_ok()
    });
    let mut config = Config::new(TOPIC.to_string(), trusted.clone(), RESULTS);
    config.announce_every = Duration::from_millis(200);
    config.content_every = None;
    config.fetch_timeout = Duration::from_secs(10);
    tune(&mut config);
    let index = Index::start(Arc::clone(&host.repo), host.client.clone(), config).expect("index");
    Node { host, index }
}

/// A `results` table as a layer above declares one: typed columns of every kind.
const RESULTS: TableSchema = TableSchema {
    name: "results",
    fields: &[
        Field::required("task_id", T::Text, "the task"),
        Field::required("attempt", T::Int64, "the attempt"),
        Field::required("worker", T::Text, "who ran it"),
        Field::required("cores", T::Int64, "its cores"),
        Field::required("memory_bytes", T::Int64, "its memory"),
        Field::optional("error", T::Text, "why it failed"),
        Field::optional("master", T::Text, "who assigned it"),
        Field::required("finished_at", T::Timestamp, "when it ended"),
        Field::required("duration_ms", T::Float64, "how long it ran"),
        Field::optional("bytes", T::Int64, "bytes"),
        Field::optional("seconds", T::Float64, "seconds"),
        Field::optional("mbps", T::Float64, "MB/s"),
        Field::optional("exit_code", T::Int64, "exit code"),
    ],
};

/// A succeeded attempt of `worker`'s, the `n`th.
fn row(worker: &str, n: i64) -> Vec<Cell> {
    vec![
        Cell::Text(format!("task-{worker}-{n}")),
        Cell::Int(1),
        Cell::Text(worker.into()),
        Cell::Int(2),
        Cell::Int(1 << 30),
        Cell::Null,
        Cell::Text("master-peer".into()),
        Cell::TimeMs(1_700_000_000_500 + n * 1000),
        Cell::Float(500.0),
        Cell::Int(1_048_576),
        Cell::Float(0.25),
        Cell::Float(4.0 + n as f64),
        Cell::Null,
    ]
}

/// A failed attempt: an error and an exit code, no throughput.
fn failed(worker: &str, n: i64) -> Vec<Cell> {
    let mut cells = row(worker, n);
    let at = |name: &str| RESULTS.index(name).expect(name);
    cells[at("attempt")] = Cell::Int(2);
    cells[at("error")] = Cell::Text("exit 3, \"quoted\"".into());
    cells[at("mbps")] = Cell::Null;
    cells[at("exit_code")] = Cell::Int(3);
    cells
}

async fn scalar(h: &Handle, sql: &str) -> Value {
    let answer = h.query(sql.into(), false).await.expect(sql);
    answer.rows[0][0].clone()
}

async fn wait_for(h: &Handle, sql: &str, want: Value) {
    let start = Instant::now();
    loop {
        let got = scalar(h, sql).await;
        if got == want {
            return;
        }
        if start.elapsed() > DEADLINE {
            let status = h.status().await;
            panic!("{sql}: {got:?}, wanted {want:?}; {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_row_reads_back_with_every_typed_column() {
    let (dir, repo) = repo();
    let trusted = HashSet::from([repo.peer_id()]);
    let node = start((dir, repo), &trusted, vec![], |_| {}).await;
    let h = node.handle();
    h.append_results(vec![row("w", 1), failed("w", 7)])
        .await
        .expect("append");
    h.flush().await.expect("flush");
    let answer = h
        .query(
            "SELECT * FROM results ORDER BY attempt, task_id".into(),
            false,
        )
        .await
        .expect("query");
    let col = |name: &str| answer.index(name).expect(name);
    assert_eq!(answer.columns.len(), RESULTS.fields.len());
    let ok = &answer.rows[0];
    assert_eq!(ok[col("task_id")], Value::Text("task-w-1".into()));
    assert_eq!(ok[col("cores")], Value::Int(2));
    assert_eq!(ok[col("memory_bytes")], Value::Int(1 << 30));
    assert_eq!(ok[col("bytes")], Value::Int(1_048_576));
    assert_eq!(ok[col("mbps")], Value::Float(5.0));
    assert_eq!(ok[col("seconds")], Value::Float(0.25));
    assert_eq!(ok[col("duration_ms")], Value::Float(500.0));
    assert_eq!(ok[col("error")], Value::Null);
    assert_eq!(ok[col("master")], Value::Text("master-peer".into()));
    assert!(
        matches!(&ok[col("finished_at")], Value::Text(t) if t.starts_with("2023-11-14T22:13:21.500")),
        "{:?}",
        ok[col("finished_at")]
    );
    let bad = &answer.rows[1];
    assert_eq!(bad[col("error")], Value::Text("exit 3, \"quoted\"".into()));
    assert_eq!(bad[col("exit_code")], Value::Int(3));
    assert_eq!(bad[col("mbps")], Value::Null);
    let types = h
        .query(
            "SELECT typeof(finished_at), typeof(mbps), typeof(bytes) FROM results LIMIT 1".into(),
            false,
        )
        .await
        .expect("types");
    assert_eq!(
        types.rows[0],
        vec![
            Value::Text("TIMESTAMP WITH TIME ZONE".into()),
            Value::Text("DOUBLE".into()),
            Value::Text("BIGINT".into())
        ]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_two_workers_reach_a_third_node_and_an_untrusted_one_is_ignored() {
    let repos: Vec<_> = (0..4).map(|_| repo()).collect();
    let trusted: HashSet<PeerId> = repos.iter().take(3).map(|(_, r)| r.peer_id()).collect();
    let mut repos = repos.into_iter();
    let reader = start(repos.next().expect("repo"), &trusted, vec![], |c| {
        c.sync = vec![Table::Results];
    })
    .await;
    let boot = vec![reader.addr().await];
    let a = start(repos.next().expect("repo"), &trusted, boot.clone(), |_| {}).await;
    let b = start(repos.next().expect("repo"), &trusted, boot.clone(), |_| {}).await;
    let stranger = start(repos.next().expect("repo"), &trusted, boot, |_| {}).await;
    for (node, name, n) in [(&a, "a", 300), (&b, "b", 200), (&stranger, "x", 50)] {
        let rows: Vec<Vec<Cell>> = (0..n).map(|i| row(name, i)).collect();
        for chunk in rows.chunks(100) {
            node.handle()
                .append_results(chunk.to_vec())
                .await
                .expect("append");
            node.handle().flush().await.expect("flush");
        }
    }
    let sql = "SELECT count(*) FROM results";
    wait_for(&reader.handle(), sql, Value::Int(500)).await;
    wait_for(&a.handle(), sql, Value::Int(500)).await;
    wait_for(&b.handle(), sql, Value::Int(500)).await;
    let sums = "SELECT sum(mbps) FROM results";
    let expected = scalar(&reader.handle(), sums).await;
    assert_eq!(scalar(&a.handle(), sums).await, expected);
    assert_eq!(scalar(&b.handle(), sums).await, expected);
    let status = reader.handle().status().await.expect("status");
    assert!(status.counters["DroppedUntrusted"] > 0, "{status:?}");
    assert_eq!(status.nodes, 2, "{status:?}");
    assert_eq!(
        scalar(
            &reader.handle(),
            "SELECT count(*) FROM results WHERE worker = 'x'"
        )
        .await,
        Value::Int(0)
    );
    for n in [reader, a, b, stranger] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_misdescribed_partition_is_rejected() {
    let (dir, repo) = repo();
    let trusted = HashSet::from([repo.peer_id()]);
    let node = start((dir, repo), &trusted, vec![], |_| {}).await;
    let h = node.handle();
    h.append_results(vec![row("w", 1), row("w", 2)])
        .await
        .expect("append");
    h.flush().await.expect("flush");
    let shared = &h.shared;
    let own = shared.manifests.read().expect("lock")[&h.peer_id()].clone();
    let p = own.partitions[0].clone();
    let original = std::fs::read(shared.spool.part(&p.cid.0)).expect("partition file");
    let try_accept = |bytes: &[u8], p: &Partition| {
        let tmp = shared.spool.scratch("t.parquet");
        std::fs::write(&tmp, bytes).expect("write");
        shared.spool.accept(shared.engine()?, &tmp, p)
    };
    let mut tampered = original.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    let err = try_accept(&tampered, &p).expect_err("tampered bytes");
    assert!(err.to_string().contains("hash to"), "{err}");
    let mut lying = p.clone();
    lying.rows = 3;
    let err = try_accept(&original, &lying).expect_err("wrong row count");
    assert!(err.to_string().contains("rows"), "{err}");
    let mut other_table = p.clone();
    other_table.table = Table::Content;
    let err = try_accept(&original, &other_table).expect_err("wrong table");
    assert!(err.to_string().contains("columns"), "{err}");
    let mut bigger = p.clone();
    bigger.bytes += 1;
    assert!(try_accept(&original, &bigger).is_err());
    // The real one passes.
    let mut unknown = p.clone();
    unknown.cid = WireCid(p.cid.0);
    try_accept(&original, &unknown).expect("the untouched partition is accepted");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_partitions_merge_and_answers_come_from_the_cache_until_inputs_change() {
    let (dir, repo) = repo();
    let trusted = HashSet::from([repo.peer_id()]);
    let node = start((dir, repo), &trusted, vec![], |c| c.compact_after = 4).await;
    let h = node.handle();
    for i in 0..6 {
        h.append_results(vec![row("w", i)]).await.expect("append");
        h.flush().await.expect("flush");
    }
    let start = Instant::now();
    loop {
        let status = h.status().await.expect("status");
        if status.partitions.get("results") == Some(&1) {
            assert_eq!(status.rows["results"], 6);
            assert_eq!(status.counters["PartitionsCompacted"], 6, "{status:?}");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sql = "SELECT count(*), sum(mbps) FROM results";
    let first = h.query(sql.into(), true).await.expect("query");
    let again = h.query(sql.into(), true).await.expect("query");
    assert_eq!(first, again);
    assert_eq!(first.rows[0][0], Value::Int(6));
    let counters = h.status().await.expect("status").counters;
    assert_eq!((counters["CacheMisses"], counters["CacheHits"]), (1, 1));
    h.append_results(vec![row("w", 99)]).await.expect("append");
    h.flush().await.expect("flush");
    let changed = h.query(sql.into(), true).await.expect("query");
    assert_eq!(changed.rows[0][0], Value::Int(7));
    let counters = h.status().await.expect("status").counters;
    assert_eq!(counters["CacheMisses"], 2);
    node.stop().await;
}
