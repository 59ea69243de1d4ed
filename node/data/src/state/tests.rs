//! The merge rules, on the database alone: any causal order of the same deltas gives the
//! same state; applying twice changes nothing; concurrent writes to a key pick one winner
//! everywhere; snapshots carry a state whole.

use std::collections::BTreeMap;

use cid::Cid;
use ipfsbench_protocols::state::{Delta, Op};
use libp2p::PeerId;
use proptest::prelude::*;

use super::db::{Applied, Db};

fn temp_db() -> Db {
    let sled = sled::Config::new()
        .temporary(true)
        .open()
        .expect("temporary sled");
    Db::open(&sled).expect("state trees")
}

/// A writer with its own database, writing deltas on its heads.
struct Node {
    me: PeerId,
    db: Db,
    clock: u64,
}

impl Node {
    fn new(clock_skew: u64) -> Self {
        Self {
            me: PeerId::random(),
            db: temp_db(),
            clock: clock_skew,
        }
    }

    fn write(&mut self, ops: Vec<Op>, log: &mut Vec<(Cid, Delta)>) {
        let parents = self.db.heads().expect("heads");
        let own = self.db.version(&self.me).expect("version");
        let seen = self
            .db
            .versions()
            .expect("versions")
            .iter()
            .map(|v| v.stamp)
            .max()
            .unwrap_or(0);
        self.clock = self.clock.max(seen) + 1;
        let delta = Delta {
            writer: self.me,
            seq: own.map_or(0, |v| v.seq) + 1,
            height: parents.iter().map(|p| p.height).max().unwrap_or(0) + 1,
            stamp: self.clock,
            parents,
            ops,
        };
        let (cid, _) = delta.to_block();
        assert_eq!(
            self.db.apply(cid, &delta).expect("apply"),
            Applied::Changed(delta.ops.len())
        );
        log.push((cid, delta));
    }
}

impl Node {
    /// Writes key `k` = `[v]` as one delta.
    fn set(&mut self, k: u8, v: u8, log: &mut Vec<(Cid, Delta)>) {
        let value = Some(vec![v]);
        self.write(vec![Op { key: key(k), value }], log);
    }

    /// Removes key `k` as one delta.
    fn remove_key(&mut self, k: u8, log: &mut Vec<(Cid, Delta)>) {
        self.write(
            vec![Op {
                key: key(k),
                value: None,
            }],
            log,
        );
    }
}

/// Applies every delta of `log` that `db` lacks, in passes, as the replica does.
fn sync(db: &Db, log: &[(Cid, Delta)]) {
    loop {
        let mut progress = false;
        for (cid, d) in log {
            if db.apply(*cid, d).expect("apply") == Applied::Changed(d.ops.len()) {
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
}

/// The version vector of `db`, as a snapshot of it would cover.
fn covered(db: &Db) -> Vec<ipfsbench_protocols::state::snapshot::Covered> {
    db.versions()
        .unwrap()
        .iter()
        .map(|v| ipfsbench_protocols::state::snapshot::Covered {
            delta: v.delta,
            stamp: v.stamp,
        })
        .collect()
}

fn live(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan(b"").map(|kv| kv.expect("entry")).collect()
}

/// A step of the simulation: writer `who` sets or removes key `key`, or pulls from `from`.
#[derive(Debug, Clone)]
enum Step {
    Set(usize, u8, u8),
    Remove(usize, u8),
    Pull(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 0..6u8, any::<u8>()).prop_map(|(w, k, v)| Step::Set(w, k, v)),
        (0..3usize, 0..6u8).prop_map(|(w, k)| Step::Remove(w, k)),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Step::Pull(a, b)),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("pin/{k}").into_bytes()
}

/// Runs `steps` on three writers with skewed clocks; returns them and every delta written.
fn simulate(steps: &[Step]) -> (Vec<Node>, Vec<(Cid, Delta)>) {
    let mut nodes = vec![Node::new(0), Node::new(5), Node::new(2)];
    let mut log = Vec::new();
    let mut known: Vec<Vec<usize>> = vec![Vec::new(); 3];
    for s in steps {
        match *s {
            Step::Set(w, k, v) => {
                let op = Op {
                    key: key(k),
                    value: Some(vec![v]),
                };
                nodes[w].write(vec![op], &mut log);
                known[w].push(log.len() - 1);
            }
            Step::Remove(w, k) => {
                nodes[w].write(
                    vec![Op {
                        key: key(k),
                        value: None,
                    }],
                    &mut log,
                );
                known[w].push(log.len() - 1);
            }
            Step::Pull(a, b) => {
                let theirs: Vec<(Cid, Delta)> = known[b].iter().map(|&i| log[i].clone()).collect();
                sync(&nodes[a].db, &theirs);
                let mut merged = known[a].clone();
                merged.extend(known[b].iter().copied());
                merged.sort_unstable();
                merged.dedup();
                known[a] = merged;
            }
        }
    }
    (nodes, log)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every node that has every delta holds the same state, whatever order it got them in,
    /// and the digest says so.
    #[test]
    fn every_order_converges(steps in proptest::collection::vec(step(), 1..40), seed in any::<u64>()) {
        let (nodes, log) = simulate(&steps);
        let reference = temp_db();
        sync(&reference, &log);
        // Another causal order: the log shuffled, applied in passes.
        let mut shuffled = log.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let other = temp_db();
        sync(&other, &shuffled);
        // Idempotent: everything again changes nothing.
        sync(&other, &log);
        prop_assert_eq!(live(&reference), live(&other));
        prop_assert_eq!(reference.summary().unwrap(), other.summary().unwrap());
        for node in &nodes {
            sync(&node.db, &log);
            prop_assert_eq!(live(&node.db), live(&reference));
            prop_assert_eq!(node.db.summary().unwrap().digest, reference.summary().unwrap().digest);
        }
    }
}

#[test]
fn concurrent_writes_to_one_key_pick_the_same_winner() {
    let mut a = Node::new(0);
    let mut b = Node::new(0);
    let mut log_a = Vec::new();
    let mut log_b = Vec::new();
    a.write(
        vec![Op {
            key: key(1),
            value: Some(b"a".to_vec()),
        }],
        &mut log_a,
    );
    b.write(
        vec![Op {
            key: key(1),
            value: Some(b"b".to_vec()),
        }],
        &mut log_b,
    );
    sync(&a.db, &log_b);
    sync(&b.db, &log_a);
    assert_eq!(a.db.get(&key(1)).unwrap(), b.db.get(&key(1)).unwrap());
    // Equal stamps: the higher writer id wins.
    let winner = if a.me.to_bytes() > b.me.to_bytes() {
        b"a"
    } else {
        b"b"
    };
    assert_eq!(a.db.get(&key(1)).unwrap().as_deref(), Some(&winner[..]));
}

#[test]
fn a_delta_waits_for_its_parents_and_a_writer_cannot_go_back_in_time() {
    let mut a = Node::new(0);
    let mut log = Vec::new();
    a.set(1, 1, &mut log);
    a.set(2, 2, &mut log);
    let b = temp_db();
    assert_eq!(b.apply(log[1].0, &log[1].1).unwrap(), Applied::NotReady);
    assert_eq!(b.apply(log[0].0, &log[0].1).unwrap(), Applied::Changed(1));
    assert_eq!(b.apply(log[0].0, &log[0].1).unwrap(), Applied::Already);
    let mut back = log[1].1.clone();
    back.stamp = log[0].1.stamp;
    assert_eq!(b.apply(back.to_block().0, &back).unwrap(), Applied::Invalid);
    assert_eq!(b.apply(log[1].0, &log[1].1).unwrap(), Applied::Changed(1));
    assert_eq!(b.heads().unwrap(), vec![log[1].1.reference(log[1].0)]);
}

#[test]
fn a_snapshot_merge_gives_the_same_state_and_drops_what_it_superseded() {
    let mut a = Node::new(0);
    let mut log = Vec::new();
    a.set(1, 1, &mut log);
    a.set(2, 2, &mut log);
    // A follower that saw the first delta only.
    let follower = temp_db();
    sync(&follower, &log[..1]);
    a.remove_key(1, &mut log);
    // Compaction on `a` drops the tombstone; the snapshot holds key 2 only.
    assert_eq!(a.db.collect_tombstones(u64::MAX).unwrap(), 1);
    let covered = covered(&a.db);
    let entries: Vec<_> = a.db.entries().map(|e| e.unwrap()).collect();
    follower
        .merge_snapshot(&covered, &a.db.heads().unwrap(), entries)
        .unwrap();
    assert_eq!(live(&follower), live(&a.db));
    assert_eq!(
        follower.summary().unwrap().digest,
        a.db.summary().unwrap().digest
    );
    assert_eq!(follower.heads().unwrap(), a.db.heads().unwrap());
    // The follower goes on from there: a new delta of `a` applies.
    a.set(3, 3, &mut log);
    sync(&follower, &log);
    assert_eq!(live(&follower), live(&a.db));
}

#[test]
fn an_older_snapshot_does_not_bring_back_a_removal_whose_tombstone_was_dropped() {
    let mut a = Node::new(0);
    let mut log = Vec::new();
    a.set(1, 1, &mut log);
    // A snapshot of `a` while key 1 is set.
    let covered = covered(&a.db);
    let old_entries: Vec<_> = a.db.entries().map(|e| e.unwrap()).collect();
    let old_heads = a.db.heads().unwrap();
    a.remove_key(1, &mut log);
    let follower = temp_db();
    sync(&follower, &log);
    assert_eq!(follower.collect_tombstones(u64::MAX).unwrap(), 1);
    follower
        .merge_snapshot(&covered, &old_heads, old_entries)
        .unwrap();
    assert_eq!(
        follower.get(&key(1)).unwrap(),
        None,
        "the removed key came back"
    );
    assert_eq!(follower.summary().unwrap().live, 0);
}

#[test]
fn a_snapshot_merged_in_pieces_gives_what_it_gives_whole() {
    use std::ops::Bound;
    let mut a = Node::new(0);
    let mut log = Vec::new();
    for k in 0..30 {
        a.set(k, k, &mut log);
    }
    // Two followers that saw the first ten deltas and wrote keys the snapshot covers but
    // no longer holds (removed by `a`, tombstones collected).
    let (whole, pieces) = (temp_db(), temp_db());
    for db in [&whole, &pieces] {
        sync(db, &log[..10]);
    }
    for k in [3, 17, 29] {
        a.remove_key(k, &mut log);
    }
    assert_eq!(a.db.collect_tombstones(u64::MAX).unwrap(), 3);
    let covered = covered(&a.db);
    let heads = a.db.heads().unwrap();
    let entries: Vec<_> = a.db.entries().map(|e| e.unwrap()).collect();
    whole
        .merge_snapshot(&covered, &heads, entries.clone())
        .unwrap();
    let applied = pieces.applied().unwrap();
    let mut lower = Bound::Unbounded;
    for part in entries.chunks(7) {
        let last = part.last().unwrap().key.clone();
        let upper = Bound::Included(last.clone());
        pieces
            .merge_snapshot_piece(&covered, &applied, (lower, upper), part)
            .unwrap();
        lower = Bound::Excluded(last);
    }
    pieces
        .merge_snapshot_piece(&covered, &applied, (lower, Bound::Unbounded), &[])
        .unwrap();
    pieces.finish_snapshot(&covered, &heads).unwrap();
    for db in [&whole, &pieces] {
        assert_eq!(live(db), live(&a.db));
        assert_eq!(db.summary().unwrap().digest, a.db.summary().unwrap().digest);
        assert_eq!(db.heads().unwrap(), heads);
    }
}
