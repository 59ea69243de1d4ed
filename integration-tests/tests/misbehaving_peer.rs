//! A peer that breaks the Bitswap protocol against a real daemon: it is disconnected, and the
//! daemon keeps serving others.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol};

const BITSWAP: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");

/// A bare libp2p peer: TCP, noise, yamux and raw streams, nothing else.
fn bare_swarm() -> libp2p::Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// Connects a bare libp2p peer to `addr`, writes `frame` on a Bitswap stream, and waits for
/// the daemon to close the connection. Returns whether it did within the time limit.
async fn send_and_expect_disconnect(addr: &str, frame: Vec<u8>) -> bool {
    let mut swarm = bare_swarm();
    let addr: Multiaddr = addr.parse().unwrap();
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("no peer id in {addr}");
    };
    let peer: PeerId = peer;
    swarm.dial(addr).unwrap();
    let mut control = swarm.behaviour().new_control();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let driver = tokio::spawn(async move {
        let mut closed_tx = Some(closed_tx);
        loop {
            if let SwarmEvent::ConnectionClosed { peer_id, .. } = swarm.select_next_some().await {
                if peer_id == peer {
                    if let Some(tx) = closed_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        }
    });
    let mut stream = control.open_stream(peer, BITSWAP).await.unwrap();
    // The write may fail once the daemon hangs up: that is the expected outcome too.
    let _ = stream.write_all(&frame).await;
    let _ = stream.flush().await;
    let closed = tokio::time::timeout(Duration::from_secs(30), closed_rx)
        .await
        .is_ok();
    driver.abort();
    closed
}

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[test]
fn protocol_breakers_are_cut_off_and_others_still_served() {
    let a = Node::start("worker", &[]);
    let honest = Node::start("leecher", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 2 << 20, 9).unwrap();
    let cid = String::from_utf8(a.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A frame announcing 64 MiB: far over the 4 MiB limit.
    let mut oversized = Vec::new();
    uvarint(64 << 20, &mut oversized);
    oversized.extend_from_slice(&[0u8; 1024]);
    assert!(
        runtime.block_on(send_and_expect_disconnect(&a.addr, oversized)),
        "oversized frame: not disconnected"
    );
    // A well-framed message that is not protobuf (wire type 7 does not exist).
    let mut garbage = Vec::new();
    uvarint(16, &mut garbage);
    garbage.extend_from_slice(&[0xff; 16]);
    assert!(
        runtime.block_on(send_and_expect_disconnect(&a.addr, garbage)),
        "garbage message: not disconnected"
    );

    // An endless wantlist: 9000 want-haves, over the 8192 entries a peer may keep.
    let mut wantlist = Vec::new();
    for i in 0u32..9000 {
        let mut cid = vec![0x01, 0x55, 0x12, 0x20];
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&i.to_be_bytes());
        cid.extend_from_slice(&digest);
        let mut entry = vec![0x0a];
        uvarint(cid.len() as u64, &mut entry);
        entry.extend_from_slice(&cid);
        entry.extend_from_slice(&[0x20, 0x01]); // wantType: Have
        wantlist.push(0x0a);
        uvarint(entry.len() as u64, &mut wantlist);
        wantlist.extend_from_slice(&entry);
    }
    let mut message = vec![0x0a];
    uvarint(wantlist.len() as u64, &mut message);
    message.extend_from_slice(&wantlist);
    let mut frame = Vec::new();
    uvarint(message.len() as u64, &mut frame);
    frame.extend_from_slice(&message);
    assert!(
        runtime.block_on(send_and_expect_disconnect(&a.addr, frame)),
        "endless wantlist: not disconnected"
    );

    honest.connect(&a);
    assert!(honest.ok(&["cat", &cid]) == std::fs::read(&file).unwrap());
}

#[test]
fn one_peer_cannot_open_connections_without_bound() {
    let a = Node::start("worker", &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let established = runtime.block_on(async {
        let mut swarm = bare_swarm();
        let addr: Multiaddr = a.addr.parse().unwrap();
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            panic!("no peer id in {addr}");
        };
        let mut plain = addr.clone();
        plain.pop();
        for _ in 0..20 {
            swarm
                .dial(
                    libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                        .addresses(vec![plain.clone()])
                        .condition(libp2p::swarm::dial_opts::PeerCondition::Always)
                        .build(),
                )
                .unwrap();
        }
        // Until every dial has ended one way or the other and the refusals have arrived, or
        // the time is up (then the count shows what stayed open).
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        let (mut opened, mut closed, mut failed) = (0u32, 0u32, 0u32);
        while opened + failed < 20 || opened - closed > 8 {
            tokio::select! {
                () = &mut deadline => break,
                event = swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => opened += 1,
                    SwarmEvent::ConnectionClosed { .. } => closed += 1,
                    SwarmEvent::OutgoingConnectionError { .. } => failed += 1,
                    _ => {}
                },
            }
        }
        assert!(opened > 0, "no connection at all");
        opened - closed
    });
    assert!(
        established <= 8,
        "{established} connections from one peer stay open (at most 8)"
    );
    // The daemon still serves others.
    let honest = Node::start("leecher", &[]);
    honest.connect(&a);
}
