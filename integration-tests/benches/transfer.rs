//! Transfer benchmark: a file fetched between two nodes on loopback, for every pairing of our
//! daemon and Kubo, measured in one run, beside the physical limit: the same bytes over one
//! bare libp2p stream (TCP, noise, yamux: the transport stack our nodes use) between two
//! processes, checked byte for byte at the end. Ours and the bare stream run three times each
//! (medians); the Kubo pairings once. Plus the RSS of an idle daemon.
//!
//! Run: `cargo build --release -p ipfsbench-node && cargo bench -p ipfsbench-integration-tests
//! --bench transfer` (`BENCH_TRANSFER_BYTES` overrides the 256 MiB size, `BENCH_RUNS` the 3).

// A benchmark reports failures by panicking, like a test.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use ipfsbench_integration_tests::kubo::Kubo;
use ipfsbench_integration_tests::poll::wait_until;

/// Set in the child process that serves the bare stream: the file to send.
const SERVE_ENV: &str = "BENCH_BARE_STREAM_SERVE";
const BARE: StreamProtocol = StreamProtocol::new("/ipfsbench-bench/bare/1");
/// Bytes per write and read on the bare stream, as a block is.
const CHUNK: usize = 256 << 10;

fn main() {
    if let Ok(path) = std::env::var(SERVE_ENV) {
        serve_bare_stream(Path::new(&path));
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("transfer benchmark: run with `cargo bench -p ipfsbench-integration-tests --bench transfer`");
        return;
    }
    let bytes: u64 = std::env::var("BENCH_TRANSFER_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 << 20);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.bin");
    write_pseudo_random_file(&file, bytes, 77).unwrap();
    let mb = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let mut rows: Vec<(String, Duration)> = Vec::new();

    // Idle RSS: a fresh daemon once it has settled.
    let idle = Node::start("worker", &[]);
    let idle_rss = settled_rss(&idle);
    drop(idle);

    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // ours -> ours, each run to a fresh node; and the bare stream, alternating with it. The
    // source also listens on QUIC, for one more pairing over it.
    let quic = ["--listen", "/ip4/127.0.0.1/udp/0/quic-v1"];
    let a = Node::start("worker", &quic);
    let cid = String::from_utf8(a.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let b = Node::start("worker", &[]);
        b.connect(&a);
        ours.push(timed_cat(&b, &cid));
        drop(b);
        bare.push(bare_stream(&file, bytes));
    }
    // ours -> ours over QUIC: the same nodes, dialled at the source's QUIC address.
    let id: serde_json::Value = serde_json::from_slice(&a.ok(&["id"])).unwrap();
    let quic_addr = id["Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find(|v| v.contains("/quic-v1"))
        .unwrap()
        .to_string();
    let mut over_quic = Vec::new();
    for _ in 0..runs {
        let b = Node::start("worker", &quic);
        b.ok(&["swarm", "connect", &quic_addr]);
        over_quic.push(timed_cat(&b, &cid));
    }
    println!("  runs: ours -> ours {ours:.2?}, over QUIC {over_quic:.2?}, bare stream {bare:.2?}");
    let (ours, bare) = (median(ours), median(bare));
    rows.push(("bare stream".into(), bare));
    rows.push(("ours -> ours".into(), ours));
    rows.push(("ours -> ours, QUIC".into(), median(over_quic)));

    match Kubo::load() {
        Err(e) => println!("Kubo unavailable ({e}): Kubo pairings skipped"),
        Ok(kubo) => {
            // Kubo -> Kubo
            let ka = kubo.test_repo(Some(dir.path()), true).unwrap();
            let kb = kubo.test_repo(Some(dir.path()), true).unwrap();
            let kcid = kubo.add_file(ka.path(), &file, false).unwrap();
            assert_eq!(kcid, cid, "same CID on both sides");
            let ka_addr = kubo.tcp_addr(ka.path()).unwrap();
            kubo.connect(kb.path(), &ka_addr).unwrap();
            let dest = dir.path().join("k2k.out");
            let start = Instant::now();
            kubo.download(kb.path(), &cid, &dest, Duration::from_secs(600))
                .unwrap();
            rows.push(("Kubo -> Kubo".into(), start.elapsed()));
            std::fs::remove_file(&dest).unwrap();

            // Kubo -> ours
            let c = Node::start("worker", &[]);
            c.ok(&["swarm", "connect", &ka_addr]);
            rows.push(("Kubo -> ours".into(), timed_cat(&c, &cid)));

            // ours -> Kubo
            let kc = kubo.test_repo(Some(dir.path()), true).unwrap();
            kubo.connect(kc.path(), &a.addr).unwrap();
            let dest = dir.path().join("o2k.out");
            let start = Instant::now();
            kubo.download(kc.path(), &cid, &dest, Duration::from_secs(600))
                .unwrap();
            rows.push(("ours -> Kubo".into(), start.elapsed()));
        }
    }

    println!(
        "transfer of {:.0} MiB on loopback (MB = 10^6 bytes)",
        bytes as f64 / f64::from(1u32 << 20)
    );
    let k2k = rows
        .iter()
        .find(|(n, _)| n == "Kubo -> Kubo")
        .map(|(_, d)| *d);
    for (name, d) in &rows {
        let to_kubo = k2k
            .map(|k| format!("{:>6.2}x Kubo->Kubo", k.as_secs_f64() / d.as_secs_f64()))
            .unwrap_or_default();
        let to_bare = format!(
            "{:>5.0}% of the bare stream",
            100.0 * bare.as_secs_f64() / d.as_secs_f64()
        );
        println!(
            "  {name:<18} {:>7.2} s {:>8.1} MB/s  {to_bare}  {to_kubo}",
            d.as_secs_f64(),
            mb(*d)
        );
    }
    println!("  idle daemon RSS: {:.1} MiB", idle_rss as f64 / 1024.0);
}

fn timed_cat(node: &Node, cid: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(node.repo())
        .args(["cat", cid])
        .stdout(File::create("/dev/null").unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "cat failed");
    start.elapsed()
}

/// Samples of the RSS that must agree for it to count as settled: 30 taken 50 ms apart span
/// 1.5 s, more than a heartbeat (1 s), the idle daemon's most frequent work.
const RSS_SAMPLES: usize = 30;

/// `node`'s RSS in KiB once it has settled: the last of [`RSS_SAMPLES`] in a row that differ
/// by at most 1% (start-up allocations done).
///
/// # Panics
///
/// When it does not settle within 30 s.
fn settled_rss(node: &Node) -> u64 {
    let mut samples = std::collections::VecDeque::with_capacity(RSS_SAMPLES);
    wait_until(30, "the idle daemon's RSS settles", || {
        if samples.len() == RSS_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(node.rss_kib());
        let (low, high) = (samples.iter().min(), samples.iter().max());
        samples.len() == RSS_SAMPLES && low.zip(high).is_some_and(|(l, h)| (h - l) * 100 <= *h)
    });
    samples.back().copied().unwrap_or_default()
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// A bare libp2p peer: TCP (no delay, as our nodes), noise, yamux and plain streams.
fn bare_swarm() -> libp2p::Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// The child process: listens, prints its address, and sends `path` on each stream opened
/// to it, until its stdin closes.
fn serve_bare_stream(path: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut swarm = bare_swarm();
        let mut incoming = swarm.behaviour().new_control().accept(BARE).unwrap();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let peer = *swarm.local_peer_id();
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                println!("{address}/p2p/{peer}");
                std::io::stdout().flush().unwrap();
                break;
            }
        }
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let path = path.to_path_buf();
        tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let mut file = File::open(&path).unwrap();
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = file.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                }
                stream.close().await.unwrap();
            }
        });
        // Serve until the parent closes our stdin.
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
            .await
            .unwrap()
            .unwrap();
    });
}

/// Fetches `file` (`bytes` long) over one bare stream from a child process; the time from
/// the dial to the last byte. The bytes are compared with the file's as they arrive.
fn bare_stream(file: &Path, bytes: u64) -> Duration {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVE_ENV, file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: Multiaddr = line.trim().parse().unwrap();
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("no peer id in {addr}");
    };
    let mut expected = File::open(file).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let elapsed = runtime.block_on(async move {
        let mut swarm = bare_swarm();
        let mut control = swarm.behaviour().new_control();
        let start = Instant::now();
        swarm.dial(addr).unwrap();
        let driver = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let mut stream = control.open_stream(peer, BARE).await.unwrap();
        let (mut got, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let mut total = 0u64;
        loop {
            let n = stream.read(&mut got).await.unwrap();
            if n == 0 {
                break;
            }
            expected.read_exact(&mut want[..n]).unwrap();
            assert!(
                got[..n] == want[..n],
                "the bare stream's bytes differ at {total}"
            );
            total += n as u64;
        }
        let elapsed = start.elapsed();
        assert_eq!(total, bytes, "the bare stream ended early");
        driver.abort();
        elapsed
    });
    drop(child.stdin.take());
    let _ = child.wait();
    elapsed
}
