//! Replicas on real hosts over loopback TCP: writes made on several nodes converge, an
//! untrusted writer is ignored, and a node that joins late starts from a snapshot.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ipfsbench_protocols::state::{self as wire, Op};
use libp2p::{Multiaddr, PeerId};

use super::{Config, Handle, Replica};
use crate::testing::{repo, trusting_repos, Host};
use ipfsbench_store::repo::Repo;

const TOPIC: &str = "/ipfsbench/test/state/1";
const DEADLINE: Duration = Duration::from_secs(20);

struct Node {
    host: Host,
    replica: Replica,
}

impl Node {
    fn handle(&self) -> Handle {
        self.replica.handle()
    }

    async fn addr(&self) -> Multiaddr {
        self.host.addr().await
    }

    async fn stop(self) {
        self.replica.shutdown().await;
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
    let mut config = Config::new(TOPIC.to_string(), trusted.clone());
    config.announce_every = Duration::from_millis(200);
    config.fetch_timeout = Duration::from_secs(5);
    tune(&mut config);
    let replica = Replica::start(
        std::sync::Arc::clone(&host.repo),
        host.client.clone(),
        config,
    )
    .expect("replica");
    Node { host, replica }
}

/// Snapshots on demand only.
fn no_auto_snapshot(c: &mut Config) {
    c.snapshot_every = 0;
}

/// Sets `pin/<n>` for every `n` of `range`, one write each.
async fn put_range(h: &Handle, range: std::ops::Range<u32>) {
    for n in range {
        let key = format!("pin/{n}").into_bytes();
        h.put(key, b"v".to_vec()).await.expect("put");
    }
}

/// Removes `pin/<n>` for every `n` of `range`, one write each.
async fn remove_range(h: &Handle, range: std::ops::Range<u32>) {
    for n in range {
        h.remove(format!("pin/{n}").into_bytes())
            .await
            .expect("remove");
    }
}

fn set(key: String, value: &[u8]) -> Op {
    Op {
        key: key.into_bytes(),
        value: Some(value.to_vec()),
    }
}

/// Waits until every handle holds `live` keys with one digest.
async fn converged(handles: &[Handle], live: u64) {
    let start = Instant::now();
    loop {
        let summaries: Vec<_> = handles
            .iter()
            .map(|h| h.summary().expect("summary"))
            .collect();
        if summaries
            .iter()
            .all(|s| s.live == live && s.digest == summaries[0].digest)
        {
            return;
        }
        if start.elapsed() > DEADLINE {
            let mut statuses = Vec::new();
            for h in handles {
                statuses.push(h.status().await);
            }
            panic!("no convergence within {DEADLINE:?}: {summaries:?} {statuses:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_three_nodes_converge_and_an_untrusted_writer_is_ignored() {
    let repos: Vec<_> = (0..4).map(|_| repo()).collect();
    let ids: Vec<PeerId> = repos.iter().map(|(_, r)| r.peer_id()).collect();
    // The fourth node is not trusted by the others (it trusts itself only).
    let trusted: HashSet<PeerId> = ids[..3].iter().copied().collect();
    let mut repos = repos.into_iter();
    let first = start(repos.next().expect("repo"), &trusted, vec![], |_| {}).await;
    let boot = vec![first.addr().await];
    let mut nodes = vec![first];
    for _ in 0..2 {
        nodes.push(start(repos.next().expect("repo"), &trusted, boot.clone(), |_| {}).await);
    }
    let stranger_trust: HashSet<PeerId> = [ids[3]].into_iter().collect();
    let stranger = start(
        repos.next().expect("repo"),
        &stranger_trust,
        boot.clone(),
        |_| {},
    )
    .await;
    stranger
        .handle()
        .put(b"pin/stranger".to_vec(), b"x".to_vec())
        .await
        .expect("stranger writes locally");

    // Concurrent writes on the three trusted nodes, some to the same keys.
    let mut writers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let h = node.handle();
        writers.push(tokio::spawn(async move {
            for n in 0..100 {
                h.write(vec![
                    set(format!("pin/{i}/{n}"), b"v"),
                    set(format!("pin/shared/{}", n % 10), &[i as u8]),
                ])
                .await
                .expect("write");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let handles: Vec<Handle> = nodes.iter().map(Node::handle).collect();
    converged(&handles, 310).await;
    for h in &handles {
        assert_eq!(h.get(b"pin/stranger").expect("get"), None);
    }
    // The stranger keeps announcing; the trusted nodes count and drop what it says.
    let start = Instant::now();
    loop {
        let status = handles[0].status().await.expect("status");
        assert_eq!(status.pending, 0);
        if status.dropped_untrusted > 0 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the stranger was never counted: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Removals replicate too.
    handles[1]
        .write(
            (0..100)
                .map(|n| Op {
                    key: format!("pin/0/{n}").into_bytes(),
                    value: None,
                })
                .collect(),
        )
        .await
        .expect("remove");
    converged(&handles, 210).await;
    stranger.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_starts_from_a_snapshot_and_history_is_let_go() {
    let (trusted, mut repos) = trusting_repos(2);
    let a = start(
        repos.next().expect("repo"),
        &trusted,
        vec![],
        no_auto_snapshot,
    )
    .await;
    let h = a.handle();
    put_range(&h, 0..400).await;
    remove_range(&h, 0..50).await;
    let first = h.snapshot().await.expect("snapshot");
    put_range(&h, 400..420).await;
    // A second snapshot lets go of the history the first covered.
    let second = h.snapshot().await.expect("snapshot");
    assert_ne!(first, second);
    let gc = a.host.repo.gc().expect("gc");
    assert!(gc.removed_blocks >= 400, "history not let go: {gc:?}");

    let boot = vec![a.addr().await];
    let b = start(repos.next().expect("repo"), &trusted, boot, |_| {}).await;
    converged(&[h.clone(), b.handle()], 370).await;
    let status = b.handle().status().await.expect("status");
    assert_eq!(status.snapshots_loaded, 1, "{status:?}");
    assert!(
        status.applied < 100,
        "walked the history instead: {status:?}"
    );
    // After the snapshot, new deltas flow as usual.
    h.put(b"pin/after".to_vec(), b"v".to_vec())
        .await
        .expect("put");
    converged(&[h.clone(), b.handle()], 371).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_dropped_once_every_trusted_writer_promised_past_them() {
    let (trusted, mut repos) = trusting_repos(2);
    let a = start(
        repos.next().expect("repo"),
        &trusted,
        vec![],
        no_auto_snapshot,
    )
    .await;
    let boot = vec![a.addr().await];
    let b = start(
        repos.next().expect("repo"),
        &trusted,
        boot,
        no_auto_snapshot,
    )
    .await;
    let (ha, hb) = (a.handle(), b.handle());
    put_range(&ha, 0..10).await;
    remove_range(&ha, 0..5).await;
    converged(&[ha.clone(), hb.clone()], 5).await;
    assert_eq!(ha.summary().expect("summary").tombstones, 5);
    // Once `b` has announced a clock past the removals (it saw them), `a` may drop them.
    let start = Instant::now();
    loop {
        ha.snapshot().await.expect("snapshot");
        if ha.summary().expect("summary").tombstones == 0 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "tombstones never dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ha.status().await.expect("status").tombstones_collected, 5);
    // The states still agree on what is live, and go on converging.
    hb.put(b"pin/after".to_vec(), b"v".to_vec())
        .await
        .expect("put");
    converged(&[ha.clone(), hb.clone()], 6).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_writer_that_never_announced_keeps_tombstones() {
    let (dir, repo) = repo();
    // Trusted, but never runs: no promise from it, so no removal may be forgotten.
    let trusted: HashSet<PeerId> = [repo.peer_id(), PeerId::random()].into_iter().collect();
    let a = start((dir, repo), &trusted, vec![], |c| c.snapshot_every = 0).await;
    let h = a.handle();
    h.put(b"pin/1".to_vec(), b"v".to_vec()).await.expect("put");
    h.remove(b"pin/1".to_vec()).await.expect("remove");
    for _ in 0..5 {
        h.snapshot().await.expect("snapshot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h.summary().expect("summary").tombstones, 1);
    assert_eq!(h.status().await.expect("status").tombstones_collected, 0);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_writer_that_writes_a_key_it_may_not_is_refused_and_its_snapshots_ignored() {
    let repos: Vec<_> = (0..2).map(|_| repo()).collect();
    let ids: Vec<PeerId> = repos.iter().map(|(_, r)| r.peer_id()).collect();
    let boss = ids[0];
    let trusted: HashSet<PeerId> = ids.iter().copied().collect();
    // Only the boss writes `task/` keys, and only its snapshots are taken.
    let rule = crate::trust::KeyRule {
        may_write: std::sync::Arc::new(move |peer, key| {
            *peer == boss || !key.starts_with(b"task/")
        }),
        writes_all: std::sync::Arc::new(move |peer| *peer == boss),
    };
    let mut repos = repos.into_iter();
    let rule_a = rule.clone();
    let a = start(repos.next().expect("repo"), &trusted, vec![], move |c| {
        c.trusted.set_rule(rule_a);
        no_auto_snapshot(c);
    })
    .await;
    let boot = vec![a.addr().await];
    let b = start(repos.next().expect("repo"), &trusted, boot, move |c| {
        c.trusted.set_rule(rule);
        no_auto_snapshot(c);
    })
    .await;
    let (ha, hb) = (a.handle(), b.handle());
    // The hand writes a pin, then a task record, then another pin; the boss a task record.
    hb.put(b"pin/1".to_vec(), b"v".to_vec()).await.expect("put");
    hb.put(b"task/forged".to_vec(), b"v".to_vec())
        .await
        .expect("put");
    hb.put(b"pin/2".to_vec(), b"v".to_vec()).await.expect("put");
    hb.snapshot()
        .await
        .expect("a snapshot announced by the hand");
    ha.put(b"task/real".to_vec(), b"v".to_vec())
        .await
        .expect("put");
    let start = Instant::now();
    loop {
        let status = ha.status().await.expect("status");
        let hand_pin = ha.get(b"pin/1").expect("get").is_some();
        let boss_task = hb.get(b"task/real").expect("get").is_some();
        if hand_pin && boss_task && status.dropped_untrusted > 0 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "pin {hand_pin}, boss's task {boss_task}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The forged record never lands, nor what its writer wrote after it (its chain stops
    // there), whether by delta or by the hand's snapshot.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ha.get(b"task/forged").expect("get"), None);
    assert_eq!(ha.get(b"pin/2").expect("get"), None);
    assert!(a.replica.handle().get(b"task/real").expect("get").is_some());
    a.stop().await;
    b.stop().await;
}
