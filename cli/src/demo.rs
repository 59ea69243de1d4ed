//! `ipfsbench-node demo`: a whole cluster on loopback, in separate processes of this binary.
//!
//! A master, two workers and a leecher start with throwaway repos, formed into a cluster the
//! way people form one: the master makes the cluster (`cluster init`) and issues invites, and
//! the others join with them (`--join`); no peer id is passed anywhere. The master adds an
//! input file; every benchmark kind runs on every worker in turn; the leecher
//! fetches every result record by its CID; a table of the results is printed, then the
//! cluster's results as the leecher's copy of the replicated state lists them, and every node
//! is stopped.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipfsbench_core::api::wire;
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::task::Kind;
use ipfsbench_roles::api::wire as tasks;
use ipfsbench_roles::results::record::ResultRecord;

use crate::args::DemoArgs;
use crate::client::{ndjson, Api, Part};

/// How long a node may take to start, or the cluster to form.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The benchmark kinds, in the order they run.
const KINDS: [&str; 3] = ["bench.hash", "bench.store", "bench.fetch"];

/// A child process, stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let child = &mut self.0;
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A node process and its API.
struct NodeProcess {
    name: &'static str,
    api: Api,
    // Dropped last: the node stops when this goes.
    _child: Guard,
}

impl NodeProcess {
    fn start(
        exe: &Path,
        dir: &Path,
        name: &'static str,
        role: &str,
        extra: &[String],
        setup: impl FnOnce(&Repo) -> Result<()>,
    ) -> Result<Self> {
        let repo = dir.join(name);
        let created = Repo::init(&repo).with_context(|| format!("creating the {name} repo"))?;
        setup(&created)?;
        created.close()?;
        // Announce often, so the cluster forms and notices changes quickly.
        let config = repo.join("config.toml");
        let text = std::fs::read_to_string(&config)?;
        std::fs::write(
            &config,
            text.replace("heartbeat_ms = 1000", "heartbeat_ms = 250"),
        )?;
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(exe)
            .arg("--repo")
            .arg(&repo)
            .args(["--role", role, "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--api", "127.0.0.1:0", "--mdns", "false"])
            .args(["--gateway", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let mut child = Guard(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.0.try_wait()? {
                bail!(
                    "the {name} exited with {status}; its log is {}",
                    log_path.display()
                );
            }
            if let Some(api) = Api::discover(&repo) {
                return Ok(Self {
                    name,
                    api,
                    _child: child,
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "the {name} did not start within {} s; its log is {}",
                    START_TIMEOUT.as_secs(),
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's PeerId and a loopback TCP address to dial it.
    fn identity(&self) -> Result<(String, String)> {
        let id: wire::Identity = self.api.json("id", &[])?;
        let addr = id
            .addresses
            .iter()
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .with_context(|| format!("the {} listens on no loopback TCP address", self.name))?;
        // `id` lists addresses with the /p2p/ suffix already.
        let addr = addr.split("/p2p/").next().unwrap_or(addr).to_string();
        Ok((id.id, addr))
    }
}

/// Deterministic pseudo-random bytes (xorshift), so the input does not deduplicate.
fn input_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn short(peer: &str) -> String {
    let tail = peer.len().saturating_sub(6);
    format!("…{}", &peer[tail..])
}

fn mbps(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.1} MB/s"))
}

/// The columns printed for one result record.
fn row(record: &ResultRecord) -> (String, String) {
    let m = &record.metrics;
    let first = m.inputs.as_deref().and_then(<[_]>::first);
    match record.kind.parse::<Kind>() {
        Ok(Kind::BenchHash) => (
            mbps(m.mbps),
            format!("{} MiB sha2-256", m.bytes.unwrap_or(0) >> 20),
        ),
        Ok(Kind::BenchStore) => (
            format!("write {}", mbps(m.write_mbps)),
            format!(
                "read {}, {} blocks",
                mbps(m.read_mbps),
                m.blocks.unwrap_or(0)
            ),
        ),
        Ok(Kind::BenchFetch) => (
            mbps(first.and_then(|i| i.mbps)),
            format!(
                "{} of {} blocks fetched, {:.2} s",
                m.blocks_fetched.unwrap_or(0),
                m.blocks.unwrap_or(0),
                first.and_then(|i| i.seconds).unwrap_or(0.0)
            ),
        ),
        _ => (record.kind.clone(), String::new()),
    }
}

/// Runs the demo.
pub(crate) fn run(args: DemoArgs) -> Result<std::process::ExitCode> {
    let clock = Instant::now();
    let size = usize::try_from(args.size).context("--size")?;
    if size == 0 || args.size > 4 << 30 {
        bail!("--size must be between 1 byte and 4 GiB");
    }
    let exe = std::env::current_exe().context("finding this program")?;
    let scratch;
    let dir = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            scratch = tempfile::tempdir().context("creating a scratch directory")?;
            scratch.path().to_path_buf()
        }
    };
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "starting a master, two workers and a leecher in {}",
        dir.display()
    )?;
    // `cluster init` on the master's repo: the cluster's root, and its first member.
    let master = NodeProcess::start(&exe, &dir, "master", "master", &[], |repo| {
        ipfsbench_roles::membership::root::init(repo, "demo", false, ipfsbench_roles::now_ms())?;
        Ok(())
    })?;
    // `cluster invite`: one token for both workers, one for the leecher.
    let join = |role: &str, uses: &str| -> Result<Vec<String>> {
        let issued: serde_json::Value = master.api.json(
            "cluster/invite",
            &[("role", role.into()), ("uses", uses.into())],
        )?;
        let token = issued["Token"].as_str().context("the invite's token")?;
        Ok(vec!["--join".to_string(), token.to_string()])
    };
    let worker_flags = join("worker", "2")?;
    let none = |_: &Repo| Ok(());
    let workers = [
        NodeProcess::start(&exe, &dir, "worker-1", "worker", &worker_flags, none)?,
        NodeProcess::start(&exe, &dir, "worker-2", "worker", &worker_flags, none)?,
    ];
    let worker_ids: Vec<String> = workers
        .iter()
        .map(|w| w.identity().map(|(id, _)| id))
        .collect::<Result<_>>()?;
    let leecher_flags = join("leecher", "1")?;
    let leecher = NodeProcess::start(&exe, &dir, "leecher", "leecher", &leecher_flags, none)?;
    wait_for_workers(&master, &worker_ids)?;
    writeln!(
        err,
        "cluster formed in {:.1} s; adding a {} MiB input on the master",
        clock.elapsed().as_secs_f64(),
        args.size >> 20
    )?;
    let input = add_input(&master, size)?;
    let results = run_tasks(&master, &worker_ids, &input, args.size, &mut err)?;
    let mut out = std::io::stdout().lock();
    print_results(&leecher, &results, &mut out)?;
    print_replicated(&leecher, &results, &mut out)?;
    print_compare(&leecher, &results, &mut out)?;
    let peers: tasks::ClusterPeers = master.api.json("cluster/peers", &[])?;
    let hardware = peers
        .peers
        .first()
        .map(|p| p.capacity.hardware.as_str())
        .unwrap_or_default();
    writeln!(out, "hardware: {hardware}")?;
    writeln!(
        out,
        "{} tasks on 2 workers, results fetched by the leecher; {:.1} s in all",
        results.len(),
        clock.elapsed().as_secs_f64()
    )?;
    drop((leecher, workers, master));
    Ok(std::process::ExitCode::SUCCESS)
}

/// Waits until the master has heard every worker: the cluster has formed.
fn wait_for_workers(master: &NodeProcess, worker_ids: &[String]) -> Result<()> {
    let workers = worker_ids.len();
    // The cluster has formed once the master has heard every worker.
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let peers: tasks::ClusterPeers = master.api.json("cluster/peers", &[])?;
        let heard = peers
            .peers
            .iter()
            .filter(|p| worker_ids.contains(&p.peer))
            .count();
        if heard == workers {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the master did not hear from both workers within {} s",
                START_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Adds the benchmark input on the master; its CID.
fn add_input(master: &NodeProcess, size: usize) -> Result<String> {
    let added = master.api.upload(
        "add",
        &[("quieter", "true".into())],
        vec![Part::Bytes {
            name: "input".into(),
            data: input_bytes(size),
        }],
    )?;
    let mut root = None;
    for entry in ndjson::<wire::Added>(added) {
        root = Some(entry?.hash);
    }
    root.context("the master's add answered no CID")
}

/// One task of each kind on each worker, waited for: (kind, worker, task, result).
fn run_tasks(
    master: &NodeProcess,
    worker_ids: &[String],
    input: &str,
    size: u64,
    err: &mut impl Write,
) -> Result<Vec<(&'static str, String, String, String)>> {
    let mut results = Vec::new();
    for kind in KINDS {
        for worker in worker_ids {
            let mut q = vec![
                ("kind", kind.to_string()),
                ("target", worker.clone()),
                ("wait", "true".to_string()),
            ];
            if kind == "bench.fetch" {
                q.push(("input", input.to_string()));
            } else {
                q.push(("param", format!("size={size}")));
            }
            let done: tasks::Outcome = master.api.json("task/submit", &q)?;
            let Some(result) = done.result else {
                bail!(
                    "{kind} on {worker} ended {}: {}",
                    done.state,
                    done.error.as_deref().unwrap_or("?")
                );
            };
            writeln!(
                err,
                "{kind:<11} on {}: done, result {result}",
                short(worker)
            )?;
            results.push((kind, worker.clone(), done.id, result));
        }
    }
    Ok(results)
}

/// Waits until the leecher's copy of the replicated state lists every task's outcome, then
/// prints them as `cluster results` does.
fn print_replicated(
    leecher: &NodeProcess,
    results: &[(&'static str, String, String, String)],
    out: &mut impl Write,
) -> Result<()> {
    use ipfsbench_roles::master::replicated::ResultEntry;
    let deadline = Instant::now() + START_TIMEOUT;
    let entries = loop {
        let entries: Vec<ResultEntry> = leecher
            .api
            .lines("cluster/results", &[])?
            .collect::<Result<_>>()?;
        let listed = |task: &String| entries.iter().any(|e| &e.id.to_string() == task);
        if results.iter().all(|(_, _, task, _)| listed(task)) {
            break entries;
        }
        if Instant::now() > deadline {
            bail!("the leecher's replicated state did not list every result in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    writeln!(
        out,
        "\nreplicated results, as the leecher's copy of the cluster state lists them:"
    )?;
    writeln!(
        out,
        "{:<34} {:<11} {:<10} {:<10} KEY FIGURES",
        "TASK", "KIND", "STATE", "WORKER"
    )?;
    for e in &entries {
        let worker = e.worker.map(|w| w.to_string()).unwrap_or_default();
        let figures: Vec<String> = e
            .figures
            .iter()
            .filter(|(k, _)| k.ends_with("MBps") || k.as_str() == "DurationMs")
            .map(|(k, v)| format!("{k}={v:.1}"))
            .collect();
        writeln!(
            out,
            "{:<34} {:<11} {:<10} {:<10} {}",
            e.id.to_string(),
            e.kind.to_string(),
            e.state.to_string(),
            short(&worker),
            figures.join(" ")
        )?;
    }
    Ok(())
}

/// Waits until the leecher's synced copy of the benchmark database holds a row for every
/// task, then prints `results compare --by worker` of each kind from it.
fn print_compare(
    leecher: &NodeProcess,
    results: &[(&'static str, String, String, String)],
    out: &mut impl Write,
) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let ids: Vec<String> = results
        .iter()
        .map(|(_, _, task, _)| format!("'{task}'"))
        .collect();
    let count = format!(
        "SELECT count(DISTINCT task_id) FROM results WHERE task_id IN ({})",
        ids.join(", ")
    );
    loop {
        let answer: ipfsbench_sql::Answer = leecher.api.json(
            "query",
            &[("arg", count.clone()), ("no-cache", "true".into())],
        )?;
        let synced = answer
            .rows
            .first()
            .and_then(|r| r[0].as_f64())
            .unwrap_or(0.0);
        if synced as usize >= results.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the leecher's benchmark database did not sync every result row in time");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut kinds: Vec<&str> = results.iter().map(|(kind, ..)| *kind).collect();
    kinds.dedup();
    for kind in kinds {
        let answer: ipfsbench_sql::Answer = leecher.api.json(
            "results/compare",
            &[("kind", kind.to_string()), ("by", "worker".into())],
        )?;
        let figure = ipfsbench_roles::results::schema::column(
            ipfsbench_roles::results::primary_figure(kind).0,
        );
        writeln!(
            out,
            "\nresults compare --kind {kind} --by worker ({figure}; the leecher's synced copy):"
        )?;
        write!(out, "{}", answer.render(ipfsbench_sql::Format::Table))?;
    }
    Ok(())
}

/// Has the leecher fetch every result record, checks it, and prints the table.
fn print_results(
    leecher: &NodeProcess,
    results: &[(&'static str, String, String, String)],
    out: &mut impl Write,
) -> Result<()> {
    // The leecher fetches every result record from the cluster.
    writeln!(
        out,
        "{:<10} {:<11} {:<18} {:<34} RESULT (fetched by the leecher)",
        "WORKER", "KIND", "THROUGHPUT", "DETAIL"
    )?;
    for (kind, worker, _task, result) in results {
        let mut body = String::new();
        leecher
            .api
            .stream("cat", &[("arg", result.clone())])?
            .read_to_string(&mut body)?;
        let record: ResultRecord = serde_json::from_str(&body)
            .with_context(|| format!("result record {result} is not a result record"))?;
        if record.kind != *kind || record.worker != *worker {
            bail!("result record {result} does not describe {kind} on {worker}");
        }
        let (throughput, detail) = row(&record);
        writeln!(
            out,
            "{:<10} {:<11} {:<18} {:<34} {}",
            short(worker),
            kind,
            throughput,
            detail,
            result
        )?;
    }
    Ok(())
}
