//! The metrics of real daemons (a master and a worker that moved content and ran a task, so
//! that the roles' families have samples too) as scrapers get them: Prometheus' text format
//! 0.0.4 unless the scrape asks for OpenMetrics, and `promtool check metrics` (from Debian's
//! `prometheus` package) finds no problem in the plain format.
//!
//! promtool is found at `$IPFSBENCH_PROMTOOL`, on the `PATH`, or where `.ci/test` unpacks it
//! (`~/.cache/ipfsbench/tools/prometheus/usr/bin/promtool`). Without it the promtool trial is
//! reported as ignored; with `IPFSBENCH_REQUIRE_PROMTOOL=1` a missing promtool fails it.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

const PROMTOOL_ENV: &str = "IPFSBENCH_PROMTOOL";
const REQUIRE_ENV: &str = "IPFSBENCH_REQUIRE_PROMTOOL";
const PLAIN: &str = "text/plain; version=0.0.4";
const OPENMETRICS: &str = "application/openmetrics-text";
/// What Prometheus 2 sends when it may take OpenMetrics.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn main() {
    let args = Arguments::from_args();
    let name = "promtool_finds_no_problem_in_a_master_and_a_worker";
    let check = match promtool() {
        Ok(promtool) => Trial::test(name, move || promtool_check(&promtool)),
        Err(reason) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
            Trial::test(name, move || {
                Err(format!("{reason} (and {REQUIRE_ENV}=1)").into())
            })
        }
        Err(reason) => {
            eprintln!("{name}: IGNORED: {reason}");
            Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                .with_ignored_flag(true)
        }
    };
    let trials = vec![
        Trial::test("the_format_follows_the_accept_header", negotiation),
        check,
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// promtool, or why it is missing.
fn promtool() -> Result<PathBuf, String> {
    let candidates =
        std::env::var_os(PROMTOOL_ENV)
            .map(PathBuf::from)
            .into_iter()
            .chain(std::env::var_os("PATH").into_iter().flat_map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("promtool"))
                    .collect::<Vec<_>>()
            }))
            .chain(std::env::var_os("HOME").map(|h| {
                PathBuf::from(h).join(".cache/ipfsbench/tools/prometheus/usr/bin/promtool")
            }));
    for candidate in candidates {
        let runs = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if runs {
            return Ok(candidate);
        }
    }
    Err(format!(
        "promtool is missing (set {PROMTOOL_ENV}, or unpack Debian's `prometheus` package: \
         apt-get download prometheus && dpkg -x prometheus_*.deb DIR)"
    ))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A scrape of `node` with `accept` (none when `None`): its content type and text.
fn scrape(node: &Node, accept: Option<&str>) -> Result<(String, String), Failed> {
    let root = node.api_base().trim_end_matches("/api/v0").to_string();
    let mut request = agent().get(format!("{root}/debug/metrics/prometheus"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let resp = request.call()?;
    if resp.status().as_u16() != 200 {
        return Err(format!("scrape answered {}", resp.status()).into());
    }
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((kind, resp.into_body().read_to_string()?))
}

/// A master and a worker that trusts it, connected, after a transfer and a task.
fn busy_pair() -> Result<(Node, Node), Failed> {
    let master = Node::start("master", &[]);
    let worker = Node::start("worker", &["--trust-master", master.peer_id.as_str()]);
    worker.connect(&master);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("f.bin");
    write_pseudo_random_file(&file, 1 << 20, 5)?;
    let cid = String::from_utf8(worker.ok(&["add", "-Q", file.to_str().unwrap_or_default()]))?
        .trim()
        .to_string();
    if master.ok(&["cat", &cid]).len() != 1 << 20 {
        return Err("cat through the master came back short".into());
    }
    let task = master.first_line(&["task", "submit", "--kind", "noop", "--wait"]);
    if task.is_empty() {
        return Err("the task gave no answer".into());
    }
    Ok((master, worker))
}

fn negotiation() -> Result<(), Failed> {
    let node = Node::start("worker", &[]);
    for accept in [None, Some(PLAIN), Some("text/plain"), Some("*/*")] {
        let (kind, text) = scrape(&node, accept)?;
        if !kind.starts_with(PLAIN) {
            return Err(format!("Accept {accept:?} got {kind}").into());
        }
        for openmetrics_only in ["# EOF", "# UNIT ", "_created"] {
            if text.contains(openmetrics_only) {
                return Err(format!("Accept {accept:?}: {openmetrics_only:?} in {text}").into());
            }
        }
        // Each counter's HELP and TYPE name its samples.
        if !text.contains("# TYPE ipfsbench_http_requests_total counter\n") {
            return Err(format!("Accept {accept:?}: no counter family in {text}").into());
        }
    }
    for accept in [OPENMETRICS, PROMETHEUS_ACCEPT] {
        let (kind, text) = scrape(&node, Some(accept))?;
        if !kind.starts_with(OPENMETRICS) || !text.ends_with("# EOF\n") {
            return Err(format!("Accept {accept:?} got {kind}, ending {:?}", tail(&text)).into());
        }
        if !text.contains("# TYPE ipfsbench_http_requests counter\n") {
            return Err(format!("Accept {accept:?}: no OpenMetrics counter in {text}").into());
        }
    }
    Ok(())
}

fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(80)..]
}

fn promtool_check(promtool: &PathBuf) -> Result<(), Failed> {
    let (master, worker) = busy_pair()?;
    for (role, node) in [("master", &master), ("worker", &worker)] {
        for accept in [Some(PLAIN), None] {
            let (kind, text) = scrape(node, accept)?;
            let mut child = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child
                .stdin
                .take()
                .ok_or("promtool's stdin")?
                .write_all(text.as_bytes())?;
            let out = child.wait_with_output()?;
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() || !said.trim().is_empty() {
                return Err(format!(
                    "promtool check metrics on the {role}'s scrape ({} lines): {}\n{said}",
                    text.lines().count(),
                    out.status
                )
                .into());
            }
            if !kind.starts_with(PLAIN) {
                return Err(format!("{role}: Accept {accept:?} got {kind}").into());
            }
        }
        let families = text_families(&scrape(node, Some(PLAIN))?.1);
        eprintln!("{role}: promtool found no problem in {families} families");
    }
    Ok(())
}

fn text_families(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("# TYPE ")).count()
}
