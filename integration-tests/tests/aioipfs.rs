//! aioipfs 0.7.1 (PyPI, with aiohttp 3.10.11) publishing and subscribing through our API.
//!
//! aioipfs reads `id`'s `AgentVersion` as a Kubo version and, for ours (`ipfsbench-node/…`,
//! below Kubo 0.11), speaks Kubo's pubsub form from before 0.11: plain topic names, the data
//! as a second `arg` of `pubsub/pub`, and messages with base64 fields. The API serves that form
//! beside the multibase one, without claiming to be a Kubo version it is not. The Python side
//! is `aioipfs/pubsub.py`.
//!
//! Without `python3` and aioipfs 0.7.1 the trial is reported as ignored, with the reason; with
//! `IPFSBENCH_REQUIRE_AIOIPFS=1` (as `.ci/test` sets, after installing both) it fails instead.
//! Run: `cargo build -p ipfsbench-node && cargo test -p ipfsbench-integration-tests --test aioipfs`.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipfsbench_integration_tests::child;
use ipfsbench_integration_tests::daemon::Node;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::{json, Value};

/// Set to `1` to make a missing aioipfs a failure rather than a skip.
const REQUIRE_ENV: &str = "IPFSBENCH_REQUIRE_AIOIPFS";
/// The aioipfs release the script is written for.
const AIOIPFS: &str = "0.7.1";

fn main() {
    let args = Arguments::from_args();
    let name = "aioipfs_pubsub_round_trip_with_plain_topics";
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    let trial = match aioipfs() {
        Ok(()) => Trial::test(name, pubsub_round_trip),
        Err(reason) if required => {
            let reason = format!("{reason} (and {REQUIRE_ENV}=1)");
            Trial::test(name, move || Err(reason.into()))
        }
        Err(reason) => {
            if !args.list {
                eprintln!("{name}: IGNORED: {reason}. Set {REQUIRE_ENV}=1 to fail instead.");
            }
            Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                .with_ignored_flag(true)
        }
    };
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// Whether `python3` imports aioipfs at the pinned version; else why not.
fn aioipfs() -> Result<(), String> {
    let probe = Command::new("python3")
        .args(["-c", "import aioipfs, aiohttp; print(aioipfs.__version__)"])
        .output()
        .map_err(|e| format!("python3 cannot run: {e}"))?;
    let version = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    if !probe.status.success() {
        return Err(format!(
            "aioipfs is not installed (pip install aioipfs=={AIOIPFS} aiohttp==3.10.11): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    if version != AIOIPFS {
        return Err(format!(
            "aioipfs {version} is installed, the test needs {AIOIPFS}"
        ));
    }
    Ok(())
}

fn pubsub_round_trip() -> Result<(), Failed> {
    let node = Node::start("worker", &[]);
    let port = node
        .api_base()
        .trim_end_matches("/api/v0")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    // Plain names; one starts with a multibase prefix (`b`, base32) without being multibase.
    // (Only characters that URL quoting leaves alone: see the script.)
    let topics = json!({
        "aioipfs-pubsub": ["hello", "a-second_message.~", "path/like/1"],
        "bench/results-1": ["one", "two"],
    });
    let spec = json!({ "api": format!("/ip4/127.0.0.1/tcp/{port}"), "topics": topics });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("aioipfs/pubsub.py");
    let run = child::run(
        Command::new("python3")
            .arg(&script)
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Some(Duration::from_secs(180)),
    )?;
    let stdout = run.stdout_text();
    let out: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).map_err(|e| {
            format!(
                "no JSON from pubsub.py ({e}): {stdout}; {}",
                run.stderr_text()
            )
        })?;
    if let Some(error) = out.get("error") {
        return Err(format!("aioipfs failed: {error}; stderr: {}", run.stderr_text()).into());
    }
    assert!(run.status.success(), "{}", run.stderr_text());
    // aioipfs took us for a Kubo before 0.11 (we claim no Kubo version), so this is the form
    // it used.
    assert_eq!(out["post011"], false, "{out:#}");
    for (topic, sent) in topics.as_object().unwrap() {
        let got = &out["topics"][topic];
        let messages = got["messages"].as_array().unwrap();
        let data: Vec<&Value> = messages.iter().map(|m| &m["data"]).collect();
        assert_eq!(
            data,
            sent.as_array().unwrap().iter().collect::<Vec<_>>(),
            "{topic}: {got:#}"
        );
        for m in messages {
            assert_eq!(m["from"], *node.peer_id, "{topic}: {m:#}");
            assert_eq!(m["topicIDs"], json!([topic]), "{topic}: {m:#}");
        }
        assert!(got["peers"]["Strings"].is_array(), "{topic}: {got:#}");
    }
    Ok(())
}
