//! The task table's tests, and the settings and workers the gossip handlers' tests share.

use super::*;
use ipfsbench_protocols::task::Capacity;
use ipfsbench_protocols::task::WireCid;

/// The scheduling settings of these tests (and the gossip handlers').
pub(in crate::master) fn config() -> Config {
    Config {
        lease_ms: 1000,
        leadership_lease_ms: 10_000,
        max_attempts: 3,
        backoff_base_ms: 100,
        backoff_max_ms: 250,
        worker_silence_ms: 3000,
        table_cache_bytes: 1 << 20,
    }
}

/// `id` heard as a worker with `max` slots at `now`.
pub(in crate::master) fn worker(peers: &mut Peers, id: PeerId, max: u16, now: u64) {
    peers.heard(
        id,
        &Heartbeat {
            role: Role::Worker,
            seq: now,
            capacity: Capacity {
                cores: 2,
                memory_total_bytes: 0,
                memory_available_bytes: 0,
                store_free_bytes: 0,
                running: 0,
                max_concurrent: max,
                hardware: String::new(),
                programs: vec!["sort".into()],
                tags: Vec::new(),
            },
            running: Vec::new(),
            leads: None,
        },
        now,
    );
}

fn assigned(messages: &[Message]) -> Vec<(TaskId, u32, PeerId)> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Assign(a) => Some((a.task, a.attempt, a.worker.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn tasks_go_to_the_roomiest_worker_and_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Master::open(dir.path(), config(), 0).unwrap();
    let me = PeerId::random();
    let (big, small) = (PeerId::random(), PeerId::random());
    let mut peers = Peers::default();
    worker(&mut peers, big, 3, 1);
    worker(&mut peers, small, 1, 1);
    for i in 0..5 {
        m.submit(me, &format!("k{i}"), Spec::new(Kind::Noop), 10)
            .unwrap();
    }
    let out = assigned(&m.tick(&peers, 20).unwrap());
    assert_eq!(out.len(), 4, "only four slots exist");
    assert_eq!(out.iter().filter(|a| a.2 == big).count(), 3);
    assert_eq!(out.iter().filter(|a| a.2 == small).count(), 1);
    let (task, attempt, w) = out[0];
    assert!(m
        .on_claim(
            w,
            &Claim {
                task,
                attempt,
                accepted: true,
                started_unix_ms: 25,
                reason: String::new()
            },
            25
        )
        .unwrap());
    // A report from another peer is not taken.
    let done = Report {
        task,
        attempt,
        started_unix_ms: 25,
        outcome: Outcome::Done {
            record: WireCid(
                "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
                    .parse()
                    .unwrap(),
            ),
            figures: Vec::new(),
        },
    };
    assert!(!m.on_report(PeerId::random(), &done, 30).unwrap());
    // While the attempt is current, a repeat of its report is taken, not answered.
    assert_eq!(m.stale_report(&done).unwrap(), None);
    assert!(m.on_report(w, &done, 30).unwrap());
    assert_eq!(m.get(&task).unwrap().unwrap().state, State::Succeeded);
    // Once the task is over, a repeat is answered by cancelling the attempt.
    assert_eq!(
        m.stale_report(&done).unwrap(),
        Some(Message::Cancel(Cancel { task, attempt }))
    );
    // Attempts never given out, and unknown tasks, get no answer.
    let never = Report {
        attempt: attempt + 1,
        ..done.clone()
    };
    assert_eq!(m.stale_report(&never).unwrap(), None);
    let unknown = Report {
        task: TaskId([9; 16]),
        ..done.clone()
    };
    assert_eq!(m.stale_report(&unknown).unwrap(), None);
    assert_eq!(m.take_finished().len(), 1);
    // The freed slot takes the fifth task.
    assert_eq!(assigned(&m.tick(&peers, 40).unwrap()).len(), 1);
}

#[test]
fn submission_is_idempotent_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let me = PeerId::random();
    let id = {
        let mut m = Master::open(dir.path(), config(), 0).unwrap();
        let (a, new_a) = m.submit(me, "same", Spec::new(Kind::Noop), 1).unwrap();
        let (b, new_b) = m.submit(me, "same", Spec::new(Kind::BenchHash), 2).unwrap();
        assert!(new_a && !new_b);
        assert_eq!(a, b);
        m.submit(me, "other", Spec::new(Kind::Noop), 3).unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(m.flush())
            .unwrap();
        a.id
    };
    let m = Master::open(dir.path(), config(), 100).unwrap();
    let record = m.get(&id).unwrap().unwrap();
    assert_eq!(record.state, State::Queued);
    assert_eq!(m.counts().get(&State::Queued), Some(&2));
    assert_eq!(m.list(None, None, 10).unwrap().0.len(), 2);
}

#[test]
fn listing_pages_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let me = PeerId::random();
    let mut ids = Vec::new();
    {
        let mut m = Master::open(dir.path(), config(), 0).unwrap();
        for i in 0..25 {
            let (r, _) = m
                .submit(me, &format!("k{i}"), Spec::new(Kind::Noop), i)
                .unwrap();
            ids.push(r.id);
        }
        for id in ids.iter().step_by(3) {
            m.cancel(id, 50).unwrap();
        }
        // A table from before the index: it is rebuilt on open.
        m.db.drop_tree("tasks_by_seq").unwrap();
    }
    let m = Master::open(dir.path(), config(), 100).unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (page, next) = m.list(None, after, 10).unwrap();
        assert!(page.len() <= 10);
        seen.extend(page.into_iter().map(|r| r.id));
        pages += 1;
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    let (cancelled, next) = m.list(Some(State::Cancelled), None, 100).unwrap();
    let expected: Vec<_> = ids.iter().step_by(3).cloned().collect();
    assert_eq!(cancelled.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert_eq!(next, None);
    // Task 24 was cancelled, so the queued ones after 22 are task 23 alone.
    let (page, next) = m.list(Some(State::Queued), Some(22), 5).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, ids[23]);
    assert_eq!(next, None);
    // One call never returns more than a page, whatever it asks for.
    assert_eq!(m.list(None, None, usize::MAX).unwrap().0.len(), 25);
    assert!(m.list(None, Some(u64::MAX), 5).unwrap().0.is_empty());
}

#[test]
fn expired_leases_retry_with_backoff_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Master::open(dir.path(), config(), 0).unwrap();
    let w = PeerId::random();
    let mut peers = Peers::default();
    let (record, _) = m
        .submit(PeerId::random(), "k", Spec::new(Kind::Noop), 0)
        .unwrap();
    let id: TaskId = record.id;
    let mut now = 0;
    let mut waits = Vec::new();
    for attempt in 1..=3 {
        worker(&mut peers, w, 1, now);
        let out = assigned(&m.tick(&peers, now).unwrap());
        assert_eq!(out, vec![(id, attempt, w)]);
        // The lease runs out without a heartbeat naming the attempt.
        now += 1000;
        worker(&mut peers, w, 1, now);
        assert!(m.tick(&peers, now).unwrap().is_empty());
        let r = m.get(&id).unwrap().unwrap();
        if attempt < 3 {
            assert_eq!(r.state, State::Queued);
            waits.push(r.not_before_ms - now);
            now = r.not_before_ms;
        } else {
            assert_eq!(r.state, State::Failed);
            assert!(r.last_error.unwrap().contains("lease expired"));
        }
    }
    assert_eq!(waits, vec![100, 200], "doubling backoff");
}

#[test]
fn heartbeats_renew_leases_and_cancel_stops_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Master::open(dir.path(), config(), 0).unwrap();
    let w = PeerId::random();
    let mut peers = Peers::default();
    worker(&mut peers, w, 1, 0);
    let (record, _) = m
        .submit(PeerId::random(), "k", Spec::new(Kind::Noop), 0)
        .unwrap();
    let id: TaskId = record.id;
    assert_eq!(assigned(&m.tick(&peers, 0).unwrap()).len(), 1);
    let hb = Heartbeat {
        role: Role::Worker,
        seq: 900,
        capacity: peers.get(&w).unwrap().capacity.clone(),
        running: vec![(id, 1)],
        leads: None,
    };
    assert!(m.on_heartbeat(w, &hb, 900).unwrap().is_empty());
    worker(&mut peers, w, 1, 1500);
    assert!(m.tick(&peers, 1500).unwrap().is_empty());
    assert_eq!(m.get(&id).unwrap().unwrap().state, State::Assigned);
    let (r, stop) = m.cancel(&id, 1600).unwrap();
    assert_eq!(r.state, State::Cancelled);
    assert_eq!(
        stop,
        Some(Message::Cancel(Cancel {
            task: id,
            attempt: 1
        }))
    );
}

#[test]
fn exec_and_targets_only_go_where_they_can_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Master::open(dir.path(), config(), 0).unwrap();
    let (a, b) = (PeerId::random(), PeerId::random());
    let mut peers = Peers::default();
    worker(&mut peers, a, 4, 0);
    worker(&mut peers, b, 4, 0);
    let mut on_b = Spec::new(Kind::Noop);
    on_b.target = Some(WirePeer(b));
    let mut exec = Spec::new(Kind::Exec);
    exec.params.push(("program".into(), "gcc".into()));
    m.submit(a, "1", on_b, 0).unwrap();
    m.submit(a, "2", exec, 0).unwrap();
    let out = assigned(&m.tick(&peers, 1).unwrap());
    assert_eq!(out.len(), 1, "nobody offers gcc");
    assert_eq!(out[0].2, b);
    assert!(Master::programs(&peers).contains("sort"));
}
