//! The web dashboard (`GET /dashboard`) of a real master and worker on loopback: its files are
//! served with their types and headers, and in headless Chromium (driven by Playwright,
//! `web/dashboard.mjs`) it lists both peers and the cluster's pin, submits a task through its
//! form and follows it to done, draws the benchmark results as SVG charts, shows the transfer
//! rates (or "unavailable"), asks for the API token on a 401 and sends it, and loads nothing
//! from elsewhere. Screenshots of each section are kept (and copied to `$IPFSBENCH_TEST_OUT`).
//!
//! Needs Chromium (`/usr/bin/chromium`, or `$CHROMIUM`), Node.js and `npm ci` in
//! `integration-tests/web`; without them the browser trial is reported as ignored, with the
//! reason. Run: `cargo build -p ipfsbench-node && cargo test -p ipfsbench-integration-tests
//! --test dashboard`.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipfsbench_integration_tests::child;
use ipfsbench_integration_tests::daemon::{init_repo, Node, Tuning};
use ipfsbench_integration_tests::poll::wait_until;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;

/// Where the screenshots are copied when set.
const OUT_ENV: &str = "IPFSBENCH_TEST_OUT";
/// The longest the browser script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// A screenshot smaller than this is taken for blank. Bytes.
const MIN_SCREENSHOT_BYTES: u64 = 8_000;

fn main() {
    let args = Arguments::from_args();
    let browser = match browser() {
        Ok(b) => Trial::test("the_dashboard_works_in_headless_chromium", move || {
            in_chromium(&b)
        }),
        Err(reason) => {
            eprintln!("the_dashboard_works_in_headless_chromium: IGNORED: {reason}");
            Trial::ignorable_test("the_dashboard_works_in_headless_chromium", move || {
                Ok(Completion::ignored_with(reason))
            })
            .with_ignored_flag(true)
        }
    };
    let trials = vec![
        Trial::test("the_page_and_its_files_are_served_with_their_types", files),
        browser,
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// What the browser trial needs.
struct Browser {
    chromium: PathBuf,
    web: PathBuf,
}

/// Chromium, Node.js and the script's packages, or why they are missing.
fn browser() -> Result<Browser, String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        return Err(format!(
            "Chromium is missing at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Err("Node.js (`node`) is missing".into());
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    if !web
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            web.display()
        ));
    }
    Ok(Browser { chromium, web })
}

/// The API's `host:port`.
fn api(node: &Node) -> String {
    let base = node.api_base();
    base.trim_start_matches("http://")
        .trim_end_matches("/api/v0")
        .to_string()
}

/// One request; the status, the headers (names lowercase) and the body.
fn request(node: &Node, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(api(node)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        api(node)
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete answer");
    let head = String::from_utf8_lossy(&response[..at]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, response[at + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn files() -> Result<(), Failed> {
    let node = Node::start_configured("worker", &[], Tuning::FAST);
    let (status, headers, body) = request(&node, "GET", "/dashboard");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert_eq!(header(&headers, "referrer-policy"), "same-origin");
    let page = String::from_utf8(body).unwrap();
    for file in ["/dashboard/app.js", "/dashboard/style.css"] {
        assert!(page.contains(file), "the page loads {file}");
    }
    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("format.js", "text/javascript; charset=utf-8"),
        ("cluster.js", "text/javascript; charset=utf-8"),
        ("tasks.js", "text/javascript; charset=utf-8"),
        ("results.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = request(&node, "GET", &format!("/dashboard/{file}"));
        assert_eq!(status, 200, "{file}");
        assert_eq!(header(&headers, "content-type"), kind, "{file}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert!(body.len() > 500, "{file} has {} bytes", body.len());
    }
    let (status, headers, _) = request(&node, "GET", "/dashboard/");
    assert_eq!((status, header(&headers, "location")), (308, "/dashboard"));
    let (status, _, body) = request(&node, "HEAD", "/dashboard");
    assert_eq!((status, body.len()), (200, 0));
    // Other methods, and files that are not there, get the API's JSON errors.
    let (status, _, body) = request(&node, "POST", "/dashboard");
    assert_eq!(status, 405, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = request(&node, "GET", "/dashboard/nothing.js");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    Ok(())
}

/// `query SQL --format json` on `node`: the rows.
fn rows(node: &Node, sql: &str) -> Vec<Value> {
    let out = node.ok(&["query", sql, "--format", "json", "--no-cache"]);
    serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A PNG's width and height, if `bytes` is one.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    Some((be(16), be(20)))
}

fn in_chromium(browser: &Browser) -> Result<(), Failed> {
    // The master trusts the worker's rows of the benchmark database, so it can chart them.
    let dir = tempfile::tempdir().unwrap();
    let worker_repo = dir.path().join("worker");
    let worker_id = init_repo(&worker_repo);
    let master = Node::start_configured("master", &["--trust-peer", &worker_id], Tuning::FAST);
    let worker = Node::start_in(
        &worker_repo,
        "worker",
        &[
            "--bootstrap",
            &master.addr,
            "--trust-master",
            &master.peer_id,
            "--trust-peer",
            &master.peer_id,
        ],
        Tuning::FAST,
    );
    wait_until(60, "the master hears the worker", || {
        String::from_utf8(master.ok(&["cluster", "peers"]))
            .unwrap()
            .contains(&worker.peer_id)
    });
    // A benchmark result, queryable on the master.
    for _ in 0..2 {
        master.ok(&[
            "task",
            "submit",
            "--kind",
            "bench.hash",
            "--param",
            "size=1048576",
            "--wait",
        ]);
    }
    wait_until(60, "the master can query both results", || {
        rows(
            &master,
            "SELECT count(*) AS n FROM results WHERE kind = 'bench.hash'",
        )[0]["n"]
            == 2
    });
    let measured: Vec<f64> = rows(
        &master,
        "SELECT mbps FROM results WHERE kind = 'bench.hash'",
    )
    .iter()
    .map(|r| r["mbps"].as_f64().unwrap())
    .collect();
    // A pin of the cluster, held by the worker.
    let file = dir.path().join("pinned.txt");
    std::fs::write(
        &file,
        b"pinned through the cluster, listed by the dashboard\n",
    )
    .unwrap();
    let cid = String::from_utf8(master.ok(&["add", "-Q", file.to_str().unwrap()])).unwrap();
    let cid = cid.trim().to_string();
    master.ok(&["cluster", "pin", "add", &cid, "--name", "dashboard-pin"]);
    wait_until(60, "the worker holds the pin", || {
        String::from_utf8(master.ok(&["cluster", "pin", "status", &cid]))
            .unwrap()
            .contains(&format!("{} pinned", worker.peer_id))
    });
    // A peer the master does not trust: what it sends is dropped, and the page says so.
    let stranger = Node::start_configured("leecher", &["--bootstrap", &master.addr], Tuning::FAST);
    wait_until(
        60,
        "the master counts the stranger's dropped messages",
        || {
            String::from_utf8(master.ok(&["cluster", "peers"]))
                .unwrap()
                .contains(&format!("{}: not a member: ", stranger.peer_id))
        },
    );
    let bw_served = request(&master, "POST", "/api/v0/stats/bw").0 == 200;

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screens");
    let _ = std::fs::remove_dir_all(&out);
    let origin = format!("http://{}", api(&master));
    let run = child::run(
        Command::new("node")
            .arg(browser.web.join("dashboard.mjs"))
            .arg(&origin)
            .arg(&out)
            .current_dir(&browser.web)
            .env("CHROMIUM", &browser.chromium)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        Some(SCRIPT_TIMEOUT),
    )?;
    let stdout = run.stdout_text();
    let last = stdout.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last).map_err(|e| {
        format!(
            "no JSON summary ({e}); status {}, stdout:\n{stdout}\nstderr:\n{}",
            run.status,
            run.stderr_text()
        )
    })?;
    eprintln!("summary: {summary:#}");
    let list = |key: &str| summary[key].as_array().cloned().unwrap_or_default();
    assert!(list("failures").is_empty(), "steps failed: {summary:#}");
    assert!(list("pageErrors").is_empty(), "script errors: {summary:#}");
    assert!(
        list("consoleErrors").is_empty(),
        "console errors: {summary:#}"
    );
    assert!(
        list("external").is_empty(),
        "loaded from elsewhere: {summary:#}"
    );
    assert!(run.status.success(), "{}", run.stderr_text());

    // Cluster: both peers with their roles; the header names this node.
    let peers = list("peers");
    for (id, role) in [(&master.peer_id, "master"), (&worker.peer_id, "worker")] {
        assert!(
            peers.iter().any(|p| p["peer"] == **id && p["role"] == role),
            "{id} as {role} in {peers:#?}"
        );
    }
    assert_eq!(summary["node"], *master.peer_id);
    // The stranger, under the peers, with what was dropped.
    let refused = list("refused");
    assert!(
        refused.iter().any(|r| r["peer"] == *stranger.peer_id
            && r["text"].as_str().unwrap().contains("not a member")
            && r["text"].as_str().unwrap().contains("messages dropped")),
        "{refused:#?}"
    );
    // Pins: the cluster's pin, pinned by the worker.
    let pins = list("pins");
    let pin = pins
        .iter()
        .find(|p| p["cid"] == *cid)
        .expect("the pin listed");
    let text = pin["text"].as_str().unwrap();
    assert!(
        text.contains("dashboard-pin") && text.contains("pinned"),
        "{text}"
    );
    // Tasks: the one submitted through the form reached done, with the form's parameters.
    let task = &summary["task"];
    assert_eq!(task["state"], "succeeded", "{task:#}");
    let id = task["id"].as_str().unwrap();
    let record: Value = serde_json::from_slice(&master.ok(&["task", "status", id])).unwrap();
    assert_eq!(record["Kind"], "bench.hash");
    assert_eq!(record["Params"], serde_json::json!([["size", "262144"]]));
    assert!(
        summary["counters"]["done"].as_u64().unwrap() >= 3,
        "{summary:#}"
    );
    // Results: a chart of bench.hash with the measured points.
    let results = &summary["results"];
    assert!(results["charts"].as_u64().unwrap() >= 1, "{results:#}");
    assert!(results["points"].as_u64().unwrap() >= 2, "{results:#}");
    assert!(
        list_of(results, "kinds").contains(&Value::from("bench.hash")),
        "{results:#}"
    );
    let drawn: Vec<f64> = list_of(results, "values")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    for m in &measured {
        assert!(
            drawn.iter().any(|d| (d - m).abs() < 1e-6),
            "{m} MB/s not drawn: {drawn:?}"
        );
    }
    // Transfer rates: shown when the node serves them, "unavailable" otherwise.
    let bw = &summary["bandwidth"];
    let want = if bw_served { "ok" } else { "unavailable" };
    assert_eq!(bw["state"], want, "{bw:#}");
    // The token: asked for on 401, kept for the tab, sent on every call.
    let auth = &summary["auth"];
    assert_eq!(auth["prompted"], true, "{auth:#}");
    assert_eq!(auth["stored"], true, "{auth:#}");
    assert_eq!(auth["promptedAgain"], false, "{auth:#}");
    assert_eq!(auth["refusedAfterReload"], 0, "{auth:#}");
    assert!(auth["authorized"].as_u64().unwrap() > 0, "{auth:#}");

    // Screenshots: one per section, real images.
    let shots = list("screenshots");
    assert_eq!(shots.len(), 5, "{shots:?}");
    let copy_to = std::env::var_os(OUT_ENV).map(PathBuf::from);
    for shot in &shots {
        let path = PathBuf::from(shot.as_str().unwrap());
        let bytes = std::fs::read(&path)?;
        let (w, h) = png_size(&bytes).ok_or_else(|| format!("{} is no PNG", path.display()))?;
        assert!(
            bytes.len() as u64 >= MIN_SCREENSHOT_BYTES && w >= 800 && h >= 400,
            "{}: {} bytes, {w}x{h}",
            path.display(),
            bytes.len()
        );
        eprintln!("screenshot: {}", path.display());
        if let Some(dir) = &copy_to {
            std::fs::create_dir_all(dir)?;
            let to = dir.join(format!(
                "dashboard-{}",
                path.file_name().unwrap().to_string_lossy()
            ));
            std::fs::copy(&path, &to)?;
            eprintln!("screenshot copied: {}", to.display());
        }
    }
    Ok(())
}

fn list_of(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}
