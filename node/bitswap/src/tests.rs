//! Swarm tests: real `Swarm<bitswap::Behaviour>`s over libp2p-swarm-test's memory transport
//! (plaintext + yamux), each serving from an in-memory store.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cid::Cid;
use futures::StreamExt as _;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::PeerId;
use libp2p_swarm_test::SwarmExt as _;
use multihash::Multihash;
use sha2::{Digest as _, Sha256};

use super::message::{Entry, Message, ProtocolVersion, WantType};
use super::{Behaviour, BlockSource, Config, Event};
use ipfsbench_protocols::codec::varint;

/// Upper bound of every scenario.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct MemStore(Mutex<HashMap<Cid, Vec<u8>>>);

impl MemStore {
    fn with(blocks: &[(Cid, Vec<u8>)]) -> Arc<Self> {
        let store = MemStore::default();
        store.0.lock().unwrap().extend(blocks.iter().cloned());
        Arc::new(store)
    }
}

impl BlockSource for MemStore {
    fn has(&self, cid: &Cid) -> bool {
        self.0.lock().unwrap().contains_key(cid)
    }
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(cid).cloned()
    }
}

/// A raw-codec CIDv1 block of `len` bytes, distinct per `seed`.
fn block(seed: u64, len: usize) -> (Cid, Vec<u8>) {
    let mut data: Vec<u8> = (0..len)
        .map(|j| (j as u64).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect();
    let tag = seed.to_le_bytes();
    let n = tag.len().min(len);
    data[..n].copy_from_slice(&tag[..n]);
    let mh = Multihash::wrap(0x12, &Sha256::digest(&data)).unwrap();
    (Cid::new_v1(0x55, mh), data)
}

fn blocks(from: u64, count: u64, len: usize) -> Vec<(Cid, Vec<u8>)> {
    (from..from + count).map(|i| block(i, len)).collect()
}

fn node(blocks: &[(Cid, Vec<u8>)], config: Config) -> Swarm<Behaviour> {
    let store = MemStore::with(blocks);
    Swarm::new_ephemeral_tokio(move |_| Behaviour::new(config, store))
}

/// Makes `server` listen and `client` connect to it.
async fn connect(client: &mut Swarm<Behaviour>, server: &mut Swarm<Behaviour>) {
    server.listen().with_memory_addr_external().await;
    client.connect(server).await;
}

/// Polls every swarm until `step` returns `Some`; `step` sees each swarm event (with the
/// swarm's index) and, every 20 ms, `None` so it can check state that raises no event.
async fn drive<T>(
    swarms: &mut [&mut Swarm<Behaviour>],
    mut step: impl FnMut(&mut [&mut Swarm<Behaviour>], Option<(usize, SwarmEvent<Event>)>) -> Option<T>,
) -> T {
    tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            let event = {
                let nexts = swarms
                    .iter_mut()
                    .enumerate()
                    .map(|(i, s)| Box::pin(async move { (i, s.select_next_some().await) }));
                tokio::select! {
                    (event, _, _) = futures::future::select_all(nexts) => Some(event),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => None,
                }
            };
            if let Some(out) = step(swarms, event) {
                return out;
            }
        }
    })
    .await
    .expect("scenario timed out")
}

/// Drives until `client` (index `client`) has received every block in `want`; returns who
/// sent each.
async fn fetch_all(
    swarms: &mut [&mut Swarm<Behaviour>],
    client: usize,
    want: &[(Cid, Vec<u8>)],
) -> HashMap<Cid, PeerId> {
    let expected: HashMap<Cid, &Vec<u8>> = want.iter().map(|(c, d)| (*c, d)).collect();
    let mut got = HashMap::new();
    drive(swarms, |_, event| {
        match event {
            Some((i, SwarmEvent::Behaviour(Event::Block { peer, cid, data }))) if i == client => {
                assert_eq!(
                    expected.get(&cid).map(|d| d.as_slice()),
                    Some(&data[..]),
                    "wrong bytes for {cid}"
                );
                assert!(got.insert(cid, peer).is_none(), "{cid} delivered twice");
            }
            Some((
                _,
                SwarmEvent::Behaviour(e @ (Event::NotFound { .. } | Event::Misbehaved { .. })),
            )) => {
                panic!("unexpected {e:?}")
            }
            _ => {}
        }
        (got.len() == expected.len()).then_some(())
    })
    .await;
    got
}

/// Frames `msg` as it goes on the wire.
fn frame(msg: &Message) -> Vec<u8> {
    let body = msg.encode(ProtocolVersion::V1_2_0);
    let mut out = Vec::new();
    varint::encode(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn serves_without_hint_via_have() {
    let big = block(1, 64 * 1024);
    let small = block(2, 100);
    let mut a = node(&[big.clone(), small.clone()], Config::default());
    let mut b = node(&[], Config::default());
    connect(&mut b, &mut a).await;
    let a_id = *a.local_peer_id();

    b.behaviour_mut().want(big.0, &[]);
    b.behaviour_mut().want(small.0, &[]);
    let got = fetch_all(&mut [&mut a, &mut b], 1, &[big.clone(), small.clone()]).await;
    assert_eq!(got[&big.0], a_id);
    assert!(b.behaviour().wants().next().is_none());
    // The big block was announced with HAVE, the small one sent in answer to want-have.
    assert_eq!(a.behaviour().stats().haves_sent, 1);
    assert_eq!(a.behaviour().stats().blocks_sent, 2);
    assert_eq!(b.behaviour().stats().blocks_received, 2);
    assert_eq!(b.behaviour().stats().unwanted_blocks, 0);
}

#[tokio::test]
async fn serves_with_hint_via_want_block() {
    let wanted = blocks(0, 3, 300 * 1024);
    let mut a = node(&wanted, Config::default());
    let mut b = node(&[], Config::default());
    connect(&mut b, &mut a).await;
    let a_id = *a.local_peer_id();

    for (cid, _) in &wanted {
        b.behaviour_mut().want(*cid, &[a_id]);
        // Idempotent.
        b.behaviour_mut().want(*cid, &[a_id]);
    }
    let got = fetch_all(&mut [&mut a, &mut b], 1, &wanted).await;
    assert!(got.values().all(|p| *p == a_id));
    // Asked straight for the blocks: no HAVE round trip, no duplicates.
    assert_eq!(a.behaviour().stats().haves_sent, 0);
    assert_eq!(a.behaviour().stats().blocks_sent, 3);
}

#[tokio::test]
async fn block_larger_than_message_target_is_sent_alone() {
    // 2 MiB blocks (the largest Kubo must handle) with the message target at 2 MiB.
    let wanted = blocks(10, 3, 2 * 1024 * 1024);
    let mut a = node(&wanted, Config::default());
    let mut b = node(&[], Config::default());
    connect(&mut b, &mut a).await;
    let a_id = *a.local_peer_id();
    for (cid, _) in &wanted {
        b.behaviour_mut().want(*cid, &[a_id]);
    }
    fetch_all(&mut [&mut a, &mut b], 1, &wanted).await;
    assert_eq!(a.behaviour().stats().messages_dropped, 0);
}

#[tokio::test]
async fn dont_have_yields_not_found() {
    let (missing, _) = block(99, 10);
    let (missing_hinted, _) = block(98, 10);
    let mut a = node(&blocks(0, 2, 10), Config::default());
    let mut b = node(&[], Config::default());
    connect(&mut b, &mut a).await;
    let a_id = *a.local_peer_id();

    b.behaviour_mut().want(missing, &[]);
    b.behaviour_mut().want(missing_hinted, &[a_id]);
    let mut not_found = HashSet::new();
    drive(&mut [&mut a, &mut b], |_, event| {
        match event {
            Some((1, SwarmEvent::Behaviour(Event::NotFound { cid }))) => {
                assert!(not_found.insert(cid), "NotFound emitted twice for {cid}");
            }
            Some((_, SwarmEvent::Behaviour(e))) => panic!("unexpected {e:?}"),
            _ => {}
        }
        (not_found.len() == 2).then_some(())
    })
    .await;
    assert!(not_found.contains(&missing) && not_found.contains(&missing_hinted));
    // The wants stay active until cancelled.
    assert!(b.behaviour().is_wanted(&missing));
    b.behaviour_mut().cancel(&missing);
    assert!(!b.behaviour().is_wanted(&missing));
    assert_eq!(a.behaviour().stats().dont_haves_sent, 2);
    // DONT_HAVE answers leave nothing in A's ledger for B.
    assert_eq!(a.behaviour().ledger_len(b.local_peer_id()), 0);
}

#[tokio::test]
async fn not_found_without_peers() {
    let mut b = node(&[], Config::default());
    let (cid, _) = block(5, 10);
    b.behaviour_mut().want(cid, &[]);
    let got = tokio::time::timeout(TEST_TIMEOUT, b.next_behaviour_event())
        .await
        .unwrap();
    assert!(matches!(got, Event::NotFound { cid: c } if c == cid));
}

#[tokio::test]
async fn many_wants_in_flight_complete() {
    let wanted = blocks(1000, 500, 8 * 1024);
    let config = Config {
        // Fewer slots than wants: most wait for a free slot.
        max_wants_in_flight: 16,
        ..Config::default()
    };
    let mut a = node(&wanted, Config::default());
    let mut b = node(&[], config);
    connect(&mut b, &mut a).await;
    let a_id = *a.local_peer_id();
    for (i, (cid, _)) in wanted.iter().enumerate() {
        // Half with a hint, half found through want-have.
        let hints = if i % 2 == 0 { vec![a_id] } else { vec![] };
        b.behaviour_mut().want(*cid, &hints);
    }
    let got = fetch_all(&mut [&mut a, &mut b], 1, &wanted).await;
    assert_eq!(got.len(), 500);
    assert_eq!(b.behaviour().stats().unwanted_blocks, 0);
    assert_eq!(a.behaviour().stats().blocks_sent, 500);
}

#[tokio::test]
async fn fetch_spreads_over_hinted_peers() {
    let wanted = blocks(2000, 200, 16 * 1024);
    let mut a1 = node(&wanted, Config::default());
    let mut a2 = node(&wanted, Config::default());
    let mut b = node(&[], Config::default());
    connect(&mut b, &mut a1).await;
    connect(&mut b, &mut a2).await;
    let ids = [*a1.local_peer_id(), *a2.local_peer_id()];
    for (cid, _) in &wanted {
        b.behaviour_mut().want(*cid, &ids);
    }
    let got = fetch_all(&mut [&mut a1, &mut a2, &mut b], 2, &wanted).await;
    let from_a1 = got.values().filter(|p| **p == ids[0]).count();
    assert!(
        (50..=150).contains(&from_a1),
        "load not spread: {from_a1} of 200 from the first peer"
    );
    // Nobody sent a block twice.
    let sent = a1.behaviour().stats().blocks_sent + a2.behaviour().stats().blocks_sent;
    assert_eq!(sent, 200);
}

#[tokio::test]
async fn dont_have_moves_want_block_to_have_peer() {
    let target = block(7, 4096);
    let mut empty = node(&[], Config::default());
    let mut holder = node(std::slice::from_ref(&target), Config::default());
    let mut b = node(&[], Config::default());
    connect(&mut b, &mut empty).await;
    connect(&mut b, &mut holder).await;
    let empty_id = *empty.local_peer_id();
    let holder_id = *holder.local_peer_id();
    // The hint is wrong: the want-block goes to `empty`, which says DONT_HAVE.
    b.behaviour_mut().want(target.0, &[empty_id]);
    let got = fetch_all(
        &mut [&mut empty, &mut holder, &mut b],
        2,
        std::slice::from_ref(&target),
    )
    .await;
    assert_eq!(got[&target.0], holder_id);
    assert_eq!(empty.behaviour().stats().dont_haves_sent, 1);
}

#[tokio::test]
async fn unanswered_want_block_times_out_and_moves() {
    let target = block(8, 4096);
    // A peer that never answers: serving never gets send credit.
    let stalled_config = Config {
        max_outbound_bytes: 0,
        ..Config::default()
    };
    let mut stalled = node(std::slice::from_ref(&target), stalled_config);
    let mut holder = node(std::slice::from_ref(&target), Config::default());
    let config = Config {
        want_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let mut b = node(&[], config);
    connect(&mut b, &mut stalled).await;
    connect(&mut b, &mut holder).await;
    let stalled_id = *stalled.local_peer_id();
    let holder_id = *holder.local_peer_id();
    let start = Instant::now();
    b.behaviour_mut().want(target.0, &[stalled_id]);
    let got = fetch_all(
        &mut [&mut stalled, &mut holder, &mut b],
        2,
        std::slice::from_ref(&target),
    )
    .await;
    assert_eq!(got[&target.0], holder_id);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(b.behaviour().stats().want_timeouts, 1);
}

#[tokio::test]
async fn silent_peer_does_not_hold_off_not_found() {
    let (cid, _) = block(12, 10);
    // Never answers anything (no send credit).
    let mut silent = node(
        &[],
        Config {
            max_outbound_bytes: 0,
            ..Config::default()
        },
    );
    let mut b = node(
        &[],
        Config {
            want_timeout: Duration::from_millis(200),
            ..Config::default()
        },
    );
    connect(&mut b, &mut silent).await;
    let start = Instant::now();
    b.behaviour_mut().want(cid, &[]);
    drive(&mut [&mut silent, &mut b], |_, event| match event {
        Some((1, SwarmEvent::Behaviour(Event::NotFound { cid: c }))) if c == cid => Some(()),
        Some((_, SwarmEvent::Behaviour(e))) => panic!("unexpected {e:?}"),
        _ => None,
    })
    .await;
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn newly_connected_peer_gets_our_wants() {
    let target = block(9, 2048);
    let mut a = node(std::slice::from_ref(&target), Config::default());
    let mut b = node(&[], Config::default());
    b.behaviour_mut().want(target.0, &[]);
    // No peer yet: NotFound first.
    let first = tokio::time::timeout(TEST_TIMEOUT, b.next_behaviour_event())
        .await
        .unwrap();
    assert!(matches!(first, Event::NotFound { .. }));
    connect(&mut b, &mut a).await;
    let got = fetch_all(&mut [&mut a, &mut b], 1, std::slice::from_ref(&target)).await;
    assert_eq!(got[&target.0], *a.local_peer_id());
}

/// A peer sending an oversized frame, then one sending garbage, get disconnected; the server
/// keeps serving a well-behaved peer.
#[tokio::test]
async fn misbehaving_peer_is_disconnected_others_still_served() {
    let target = block(11, 4096);
    let mut a = node(std::slice::from_ref(&target), Config::default());
    let mut good = node(&[], Config::default());
    let mut bad = node(&[], Config::default());
    connect(&mut good, &mut a).await;
    connect(&mut bad, &mut a).await;
    let a_id = *a.local_peer_id();
    let bad_id = *bad.local_peer_id();

    let mut oversized = Vec::new();
    varint::encode(5 * 1024 * 1024, &mut oversized);
    oversized.extend_from_slice(&[0u8; 64]);
    let garbage = vec![5u8, 0x0f, 0xff, 0xff, 0xff, 0xff];

    for raw in [oversized, garbage] {
        bad.behaviour_mut().send_raw(&a_id, raw);
        let (mut misbehaved, mut closed) = (false, false);
        drive(&mut [&mut a, &mut good, &mut bad], |_, event| {
            match event {
                Some((0, SwarmEvent::Behaviour(Event::Misbehaved { peer, .. }))) => {
                    assert_eq!(peer, bad_id);
                    misbehaved = true;
                }
                Some((2, SwarmEvent::ConnectionClosed { peer_id, .. })) if peer_id == a_id => {
                    closed = true;
                }
                _ => {}
            }
            (misbehaved && closed).then_some(())
        })
        .await;
        assert!(!bad.is_connected(&a_id));
        assert!(a.is_connected(good.local_peer_id()));
        // Reconnect for the next round.
        bad.connect(&mut a).await;
    }
    assert_eq!(a.behaviour().stats().misbehaviours, 2);

    good.behaviour_mut().want(target.0, &[a_id]);
    let got = fetch_all(
        &mut [&mut a, &mut good, &mut bad],
        1,
        std::slice::from_ref(&target),
    )
    .await;
    assert_eq!(got[&target.0], a_id);
}

#[tokio::test]
async fn wantlist_overflow_is_misbehaviour() {
    let config = Config {
        max_wantlist_entries: 4,
        ..Config::default()
    };
    let mut a = node(&[], config);
    let mut c = node(&[], Config::default());
    connect(&mut c, &mut a).await;
    let a_id = *a.local_peer_id();
    let c_id = *c.local_peer_id();
    // Want-haves without sendDontHave for missing blocks stay in the ledger.
    let entries = |from: u64, n: u64| Message {
        wantlist: (from..from + n)
            .map(|i| Entry::want(block(i, 8).0, WantType::Have, 1, false))
            .collect(),
        ..Message::default()
    };

    c.behaviour_mut().send_raw(&a_id, frame(&entries(0, 3)));
    drive(&mut [&mut a, &mut c], |s, _| {
        (s[0].behaviour().ledger_len(&c_id) == 3).then_some(())
    })
    .await;

    // A full wantlist replaces the ledger; a cancel removes an entry.
    let mut full = entries(10, 2);
    full.full = true;
    c.behaviour_mut().send_raw(&a_id, frame(&full));
    drive(&mut [&mut a, &mut c], |s, _| {
        (s[0].behaviour().ledger_len(&c_id) == 2).then_some(())
    })
    .await;
    let cancel = Message {
        wantlist: vec![Entry::cancel(block(10, 8).0)],
        ..Message::default()
    };
    c.behaviour_mut().send_raw(&a_id, frame(&cancel));
    drive(&mut [&mut a, &mut c], |s, _| {
        (s[0].behaviour().ledger_len(&c_id) == 1).then_some(())
    })
    .await;

    // 1 + 4 entries > 4.
    c.behaviour_mut().send_raw(&a_id, frame(&entries(20, 4)));
    let reason = drive(&mut [&mut a, &mut c], |_, event| match event {
        Some((0, SwarmEvent::Behaviour(Event::Misbehaved { peer, reason }))) => {
            assert_eq!(peer, c_id);
            Some(reason)
        }
        _ => None,
    })
    .await;
    assert!(reason.contains("wantlist"), "{reason}");
}

/// Throughput between two engines over loopback TCP (yamux, plaintext). Run with
/// `cargo test -p ipfsbench-protocols --release -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn throughput() {
    let wanted = blocks(5000, 400, 256 * 1024);
    let mut a = node(&wanted, Config::default());
    let mut b = node(&[], Config::default());
    a.listen().with_tcp_addr_external().await;
    b.connect(&mut a).await;
    let a_id = *a.local_peer_id();
    let start = Instant::now();
    for (cid, _) in &wanted {
        b.behaviour_mut().want(*cid, &[a_id]);
    }
    fetch_all(&mut [&mut a, &mut b], 1, &wanted).await;
    let secs = start.elapsed().as_secs_f64();
    let mb = (wanted.len() * 256 * 1024) as f64 / 1e6;
    println!("{mb:.0} MB in {secs:.2} s: {:.0} MB/s", mb / secs);
}
