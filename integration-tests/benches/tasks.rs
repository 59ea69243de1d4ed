//! Task dispatch benchmark: rounds of 1,000 `noop` tasks through a master and two workers on
//! loopback (separate processes), submitted over the HTTP API by 8 concurrent clients.
//! Reports the time until every task is done, the submit-to-start latency (from the task
//! records: the master's submission time to the worker's start time, same machine clock) and
//! each daemon's RSS after every round.
//!
//! Run: `cargo build --release -p ipfsbench-node && cargo bench -p ipfsbench-integration-tests
//! --bench tasks` (`BENCH_TASKS` overrides the 1,000 tasks per round, `BENCH_ROUNDS` the 3
//! rounds; `BENCH_PAUSE_SECS` idles that long at the end).

// A benchmark reports failures by panicking, like a test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use serde_json::Value;

/// Concurrent submitting clients.
const CLIENTS: usize = 8;
/// Tasks submitted one at a time to measure unloaded latency.
const LATENCY_SAMPLES: usize = 100;

/// Heartbeats every 250 ms, 16 attempts at once per worker; `BENCH_CACHE_BYTES` sets both
/// sled page caches (block index, task table), to tell what they hold from what grows
/// elsewhere.
fn tuning() -> Tuning<'static> {
    let tuning = Tuning::NONE.heartbeat_ms(250).max_concurrent_tasks(16);
    match std::env::var("BENCH_CACHE_BYTES") {
        Ok(bytes) => {
            let bytes = bytes
                .parse()
                .unwrap_or_else(|e| panic!("BENCH_CACHE_BYTES={bytes:?}: {e}"));
            tuning.index_cache_bytes(bytes).table_cache_bytes(bytes)
        }
        Err(_) => tuning,
    }
}

fn post(agent: &ureq::Agent, url: &str) -> Value {
    let mut resp = agent.post(url).send_empty().unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.body_mut().read_json().unwrap()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "tasks benchmark: run with `cargo bench -p ipfsbench-integration-tests --bench tasks`"
        );
        return;
    }
    let per_round: usize = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let pause = Duration::from_secs(
        std::env::var("BENCH_PAUSE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let master = Node::start_configured("master", &[], tuning());
    let flags = [
        "--bootstrap",
        master.addr.as_str(),
        "--trust-master",
        master.peer_id.as_str(),
    ];
    let workers = [
        Node::start_configured("worker", &flags, tuning()),
        Node::start_configured("worker", &flags, tuning()),
    ];
    let base = master.api_base();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let peers = post(&agent, &format!("{base}/cluster/peers"));
        let heard = peers["Peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| workers.iter().any(|w| p["Peer"] == w.peer_id.as_str()))
            .count();
        // The master schedules once it leads (it listens for another leader first).
        let leads = post(&agent, &format!("{base}/cluster/master"))["ThisNode"] == "leading";
        if heard == workers.len() && leads {
            break;
        }
        assert!(Instant::now() < deadline, "the workers never reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss = |label: &str| {
        let now = [&master, &workers[0], &workers[1]].map(|n| n.rss_kib() as f64 / 1024.0);
        println!(
            "RSS {label:<14} master {:>6.1} MiB, worker 1 {:>6.1} MiB, worker 2 {:>6.1} MiB",
            now[0], now[1], now[2]
        );
        now
    };
    // RSS after each round, "before" first.
    let mut history = vec![rss("before")];
    let mut after: Option<u64> = None;
    for round in 1..=rounds {
        let clock = Instant::now();
        std::thread::scope(|s| {
            for c in 0..CLIENTS {
                let (agent, base) = (&agent, &base);
                s.spawn(move || {
                    for i in (c..per_round).step_by(CLIENTS) {
                        let v = post(
                            agent,
                            &format!("{base}/task/submit?kind=noop&key=r{round}-{i}"),
                        );
                        assert_eq!(v["New"], true);
                    }
                });
            }
        });
        let submitted = clock.elapsed();
        loop {
            let stats = post(&agent, &format!("{base}/cluster/stats"));
            if stats["Tasks"].as_object().unwrap().is_empty() {
                break;
            }
            assert!(
                clock.elapsed() < Duration::from_secs(300),
                "round {round} did not finish: {stats}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let done = clock.elapsed();
        // This round's records: the pages after the last record of the previous rounds.
        let mut records = Vec::new();
        loop {
            let mut url = format!("{base}/task/ls?limit=1000");
            if let Some(a) = after {
                url.push_str(&format!("&after={a}"));
            }
            let page = post(&agent, &url);
            let tasks = page["Tasks"].as_array().unwrap();
            if let Some(last) = tasks.last() {
                after = last["Seq"].as_u64();
            }
            records.extend(tasks.iter().cloned());
            if page["Next"].is_null() {
                break;
            }
        }
        for r in &records {
            assert!(r["Key"]
                .as_str()
                .unwrap()
                .starts_with(&format!("r{round}-")));
        }
        assert_eq!(records.len(), per_round);
        let mut latency: Vec<u64> = records
            .iter()
            .map(|r| {
                assert_eq!(r["State"], "succeeded", "{r}");
                r["StartedMs"]
                    .as_u64()
                    .unwrap()
                    .saturating_sub(r["SubmittedMs"].as_u64().unwrap())
            })
            .collect();
        latency.sort_unstable();
        println!(
            "round {round}: {per_round} noop tasks submitted in {:.2} s, all done in {:.2} s \
             ({:.0} tasks/s); submit->start p50 {} ms, p95 {} ms, max {} ms",
            submitted.as_secs_f64(),
            done.as_secs_f64(),
            per_round as f64 / done.as_secs_f64(),
            percentile(&latency, 0.5),
            percentile(&latency, 0.95),
            latency.last().unwrap()
        );
        history.push(rss(&format!("after round {round}")));
    }
    // Unloaded latency: one client submits one task at a time, each after the previous one
    // started, so no task waits in the queue behind others.
    let mut latency = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let v = post(&agent, &format!("{base}/task/submit?kind=noop&key=lat-{i}"));
        let id = v["Id"].as_str().unwrap().to_string();
        loop {
            let r = post(&agent, &format!("{base}/task/status?arg={id}"));
            if let (Some(start), Some(submit)) =
                (r["StartedMs"].as_u64(), r["SubmittedMs"].as_u64())
            {
                latency.push(start.saturating_sub(submit));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    latency.sort_unstable();
    println!(
        "unloaded: {LATENCY_SAMPLES} noop tasks one at a time: submit->start p50 {} ms, p95 {} ms, max {} ms",
        percentile(&latency, 0.5),
        percentile(&latency, 0.95),
        latency.last().unwrap()
    );
    rss("at the end");
    // Flat means the growth stops: compare the first and the last third of the rounds.
    let third = rounds / 3;
    if third > 0 {
        let growth = |from: usize, to: usize| {
            let per = 1000.0 / ((to - from) * per_round) as f64;
            [0, 1, 2].map(|d| (history[to][d] - history[from][d]) * per)
        };
        let first = growth(0, third);
        let last = growth(rounds - third, rounds);
        println!(
            "RSS growth per 1,000 tasks, rounds 1-{third}: master {:+.2} MiB, workers {:+.2} / \
             {:+.2} MiB; rounds {}-{rounds}: master {:+.2} MiB, workers {:+.2} / {:+.2} MiB",
            first[0],
            first[1],
            first[2],
            rounds - third + 1,
            last[0],
            last[1],
            last[2]
        );
    }
    if pause > Duration::ZERO {
        // Time-bounded caches (gossipsub's seen-message cache keeps ids for 60 s) empty
        // during an idle spell; what is left after it is what the rounds retained.
        std::thread::sleep(pause);
        rss(&format!("after {} s idle", pause.as_secs()));
    }
    let stats = post(&agent, &format!("{base}/cluster/stats"));
    println!(
        "master counters: {} task messages received, {} dropped for lack of room",
        stats["Messages"]["Received"], stats["Lagged"]
    );
    println!("goals: 1000 tasks done in under 5 s, p50 submit->start under 20 ms, flat RSS");
}
