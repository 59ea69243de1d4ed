//! Bad input to `cluster/pins/add` against a real daemon: expiries past 100 years (or that
//! overflow), replication factors IPFS Cluster refuses, oversized names, tags and metadata
//! get a 400 with the API's JSON error; the CLI refuses them itself with a clear error and
//! a non-zero exit. Good input is still taken.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use serde_json::Value;

/// A master that may hold pins itself, so that one node is a cluster.
const TUNING: Tuning = Tuning::FAST.allocate_to_masters(true);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `cluster/pins/add?arg=CID&...`: the status and the JSON answer.
fn add(node: &Node, cid: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let mut req = agent()
        .post(format!("{}/cluster/pins/add", node.api_base()))
        .query("arg", cid);
    for (k, v) in query {
        req = req.query(*k, *v);
    }
    let resp = req.send_empty().unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text:?}"));
    (status, json)
}

/// The request is refused with a 400 and the API's JSON error, whose message contains
/// `expected`.
fn refused(node: &Node, cid: &str, query: &[(&str, &str)], expected: &str) {
    let (status, body) = add(node, cid, query);
    let what = format!(
        "{:?}",
        query.iter().map(|(k, v)| (k, clip(v))).collect::<Vec<_>>()
    );
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["Type"], "error", "{what}: {body}");
    assert!(body["Code"].is_number(), "{what}: {body}");
    let message = body["Message"].as_str().unwrap();
    assert!(message.contains(expected), "{what}: {message}");
    assert!(message.len() < 1024, "{what}: the error echoes the input");
}

fn clip(v: &str) -> String {
    v.chars().take(40).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

const YEAR_100_MS: u64 = 36_525 * 86_400_000;

#[test]
fn bad_pin_input_gets_a_json_400_and_good_input_is_taken() {
    let node = Node::start_configured("master", &[], TUNING);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, b"pin input").unwrap();
    let cid = String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    // The master has heard itself, so it can hold pins.
    wait_until(30, "the master can allocate", || {
        add(&node, &cid, &[("name", "probe")]).0 == 200
    });

    // Expiry: what overflowed into a pin that expires at once, and just past 100 years.
    for e in [
        "18446744073709551615s",
        "213503982335d",
        "18446744073709551615d",
        "36526d",
    ] {
        refused(&node, &cid, &[("expire-in", e)], "100 years");
    }
    refused(&node, &cid, &[("expire-in", "0s")], "at least 1s");
    // 100 years is taken, and kept as 100 years from now.
    let before = now_ms();
    let (status, pin) = add(&node, &cid, &[("expire-in", "36525d")]);
    assert_eq!(status, 200, "{pin}");
    let at = pin["ExpireAtMs"].as_u64().unwrap();
    assert!(
        at >= before + YEAR_100_MS && at <= now_ms() + YEAR_100_MS,
        "{at}"
    );

    // Replication: "everywhere" for one factor only, min above max, below -1.
    for (min, max) in [("-1", "1"), ("3", "-1")] {
        refused(
            &node,
            &cid,
            &[("replication-min", min), ("replication-max", max)],
            "both must be -1",
        );
    }
    refused(
        &node,
        &cid,
        &[("replication-min", "2"), ("replication-max", "1")],
        "above replication-max",
    );
    refused(&node, &cid, &[("replication-min", "-2")], "replication");
    // -1 for both is everywhere; 0 is the configured default (1..3), as in IPFS Cluster.
    let (status, pin) = add(
        &node,
        &cid,
        &[("replication-min", "-1"), ("replication-max", "-1")],
    );
    assert_eq!(status, 200, "{pin}");
    assert!(pin["ReplicationFactorMin"].is_null() && pin["ReplicationFactorMax"].is_null());
    let (status, pin) = add(
        &node,
        &cid,
        &[("replication-min", "0"), ("replication-max", "0")],
    );
    assert_eq!(status, 200, "{pin}");
    assert_eq!(
        (
            pin["ReplicationFactorMin"].as_u64(),
            pin["ReplicationFactorMax"].as_u64()
        ),
        (Some(1), Some(3))
    );

    // Names, tags and metadata are bounded.
    let long_name = "n".repeat(257);
    refused(&node, &cid, &[("name", &long_name)], "256 bytes");
    let tags: Vec<String> = (0..17).map(|i| format!("k{i}:v")).collect();
    let mut query: Vec<(&str, &str)> = tags.iter().map(|t| ("tag", t.as_str())).collect();
    refused(&node, &cid, &query, "at most 16 tags");
    let long_tag = format!("k:{}", "v".repeat(63));
    refused(&node, &cid, &[("tag", &long_tag)], "64 bytes");
    let metadata: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    query = metadata.iter().map(|m| ("metadata", m.as_str())).collect();
    refused(&node, &cid, &query, "metadata");
    let (status, pin) = add(
        &node,
        &cid,
        &[("name", &"n".repeat(256)), ("tag", "zone:a")],
    );
    // (No peer has the tag: refused for that, not for its size.)
    assert_eq!(status, 400, "{pin}");
    assert!(
        pin["Message"].as_str().unwrap().contains("eligible"),
        "{pin}"
    );

    // The CLI refuses the same itself, with a clear error and a non-zero exit: even a name
    // too large for a URL never reaches the daemon.
    let huge_name = "n".repeat(100_000);
    let many_tags: Vec<String> = (0..17)
        .flat_map(|i| ["--tag".to_string(), format!("k{i}:v")])
        .collect();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--expire-in", "18446744073709551615s"], "100 years"),
        (vec!["--expire-in", "213503982335d"], "100 years"),
        (
            vec!["--replication-min", "-1", "--replication-max", "1"],
            "both must be -1",
        ),
        (vec!["--name", &huge_name], "longer than 256 bytes"),
        (
            many_tags.iter().map(String::as_str).collect(),
            "at most 16 tags",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["cluster", "pin", "add", &cid];
        args.extend(&flags);
        let out = node.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        let shown: Vec<String> = flags.iter().map(|f| clip(f)).collect();
        assert!(!out.status.success(), "{shown:?} was accepted");
        assert!(err.contains(expected), "{shown:?}: {err}");
        assert!(err.len() < 1024, "{shown:?}: the error echoes the input");
    }
    // The pin stands as the last good request left it.
    let ls = String::from_utf8(node.ok(&["cluster", "pin", "ls"])).unwrap();
    assert_eq!(ls.lines().count(), 1, "{ls}");
    assert!(ls.contains("1..3"), "{ls}");
}
