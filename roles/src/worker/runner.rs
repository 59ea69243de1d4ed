//! The worker's side: running one attempt of a task and turning it into a result record.
//!
//! A result record is a JSON file added to the worker's store and pinned there (task id, kind,
//! inputs, outputs, metrics, timings, worker PeerId and hardware), so any peer can fetch it by
//! its CID.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::block::RAW;
use ipfsbench_core::store::{Block, BlockStore, PackStore, PackStoreConfig};
use ipfsbench_core::unixfs::AddOptions;
use ipfsbench_protocols::task::{self, Assign, Kind, Message, Outcome, Progress, Spec};
use rand::RngCore;
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::clock::now_ms;

/// The largest `size` a benchmark task may ask for. Bytes.
pub(crate) const MAX_BENCH_BYTES: u64 = 16 << 30;
/// The most bytes of an `exec` program's stdout or stderr kept in its record.
pub(crate) const MAX_CAPTURE: usize = 16 << 10;

/// What a worker needs to run attempts.
#[derive(Debug)]
pub(crate) struct Runner {
    pub(crate) repo: Arc<Repo>,
    pub(crate) client: Client,
    pub(crate) peer: PeerId,
    pub(crate) hardware: String,
    pub(crate) programs: BTreeMap<String, PathBuf>,
    pub(crate) output_cap: u64,
    pub(crate) default_timeout: Duration,
    /// Where finished attempts are recorded as `results` rows, with what they name.
    pub(crate) index: Option<ipfsbench_core::index::Handle>,
    pub(crate) machine: super::rows::Hardware,
    pub(crate) cluster: String,
    /// `sql` tasks run one at a time.
    pub(crate) sql_lock: tokio::sync::Mutex<()>,
}

/// An attempt that failed, with the reason the master records.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RunError(String);

fn fail(e: impl std::fmt::Display) -> RunError {
    RunError(e.to_string())
}

/// What a task produced: its metrics and the CIDs of its outputs.
struct Produced {
    metrics: Map<String, Value>,
    outputs: Vec<Cid>,
}

impl Runner {
    /// Runs the attempt under its time limit; returns the result record's CID and its key
    /// figures.
    /// Records the attempt's `results` row in the benchmark database (buffered; written as
    /// a partition within a second).
    pub(crate) async fn record(&self, attempt: &super::rows::Attempt, outcome: &Outcome) {
        let Some(index) = &self.index else {
            return;
        };
        let row = super::rows::row(
            attempt,
            outcome,
            now_ms(),
            self.peer,
            &self.machine,
            &self.cluster,
        );
        if let Err(e) = index.append_results(&[row]).await {
            tracing::warn!("recording a result row: {e}");
        }
    }

    pub(crate) async fn run(
        self: Arc<Self>,
        assign: Assign,
        progress: mpsc::Sender<Message>,
    ) -> Result<(Cid, Vec<(String, f64)>), RunError> {
        let started = now_ms();
        let clock = Instant::now();
        let limit = match assign.spec.timeout_secs {
            0 => self.default_timeout,
            secs => Duration::from_secs(u64::from(secs)).min(self.default_timeout),
        };
        let report = |permille: u16, note: &str| {
            let _ = progress.try_send(Message::Progress(Progress {
                task: assign.task,
                attempt: assign.attempt,
                permille,
                note: note.to_string(),
            }));
        };
        // Set when this attempt is dropped (cancelled, timed out, aborted): the blocking
        // benchmark loops watch it, so they stop with it instead of running on unseen.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let produced = tokio::time::timeout(limit, self.execute(&assign.spec, &report, &stop))
            .await
            .map_err(|_| RunError(format!("timed out after {} s", limit.as_secs())))??;
        let finished = now_ms();
        let params: Map<String, Value> = assign
            .spec
            .params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let record = json!({
            "Task": assign.task.to_string(),
            "Attempt": assign.attempt,
            "Kind": assign.spec.kind.name(),
            "Inputs": assign.spec.inputs.iter().map(|c| c.0.to_string()).collect::<Vec<_>>(),
            "Params": params,
            "Outputs": produced.outputs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "Metrics": produced.metrics,
            "Worker": self.peer.to_string(),
            "Hardware": self.hardware,
            "StartedUnixMs": started,
            "FinishedUnixMs": finished,
            "DurationMs": clock.elapsed().as_millis() as u64,
        });
        let figures = figures(&record);
        let bytes = serde_json::to_vec_pretty(&record).map_err(fail)?;
        let repo = Arc::clone(&self.repo);
        let added = tokio::task::spawn_blocking(move || {
            repo.add_reader(
                Box::new(std::io::Cursor::new(bytes)),
                &AddOptions::default(),
                true,
                &mut |_| {},
            )
        })
        .await
        .map_err(fail)?
        .map_err(fail)?;
        let _ = self.client.provide(added.cid).await;
        Ok((added.cid, figures))
    }

    async fn execute(
        &self,
        spec: &Spec,
        report: &(dyn Fn(u16, &str) + Sync),
        stop: &Arc<AtomicBool>,
    ) -> Result<Produced, RunError> {
        let mut metrics = Map::new();
        let mut outputs = Vec::new();
        match spec.kind {
            Kind::Noop => {}
            Kind::BenchHash => {
                let size = size_param(spec, 256 << 20)?;
                let stop = Arc::clone(stop);
                metrics = tokio::task::spawn_blocking(move || bench_hash(size, &stop))
                    .await
                    .map_err(fail)??;
            }
            Kind::BenchStore => {
                let size = size_param(spec, 64 << 20)?;
                let dir = self.scratch("bench-store-")?;
                let stop = Arc::clone(stop);
                metrics = tokio::task::spawn_blocking(move || bench_store(dir.path(), size, &stop))
                    .await
                    .map_err(fail)??;
            }
            Kind::BenchFetch | Kind::DagStat => metrics = self.fetch_inputs(spec, report).await?,
            Kind::Exec => {
                let (m, out) = self.exec(spec, report).await?;
                metrics = m;
                outputs.push(out);
            }
            Kind::Sql => {
                let (m, out) = self.sql(spec).await?;
                metrics = m;
                outputs.push(out);
            }
        }
        Ok(Produced { metrics, outputs })
    }

    /// Runs the `bench.fetch` and `dag.stat` kinds: every input's DAG fetched and counted,
    /// with the totals over them (and, for `bench.fetch`, the whole fetch's time and rate).
    async fn fetch_inputs(
        &self,
        spec: &Spec,
        report: &(dyn Fn(u16, &str) + Sync),
    ) -> Result<Map<String, Value>, RunError> {
        let mut metrics = Map::new();
        let mut per_input = Vec::new();
        for (i, input) in spec.inputs.iter().enumerate() {
            per_input.push(self.fetch_input(spec, input.0).await?);
            let done = (i + 1) * 1000 / spec.inputs.len();
            report(u16::try_from(done).unwrap_or(1000), "input fetched");
        }
        let total = |key: &str| {
            per_input
                .iter()
                .filter_map(|m| m[key].as_u64())
                .sum::<u64>()
        };
        metrics.insert("Blocks".into(), json!(total("Blocks")));
        metrics.insert("Bytes".into(), json!(total("Bytes")));
        metrics.insert("BlocksFetched".into(), json!(total("BlocksFetched")));
        if spec.kind == Kind::BenchFetch {
            // The whole fetch, over every input: the figure the cluster keeps.
            let seconds: f64 = per_input.iter().filter_map(|m| m["Seconds"].as_f64()).sum();
            metrics.insert("Seconds".into(), json!(seconds));
            if total("BlocksFetched") > 0 {
                let mbps = total("Bytes") as f64 / 1e6 / seconds.max(1e-9);
                metrics.insert("MBps".into(), json!(mbps));
            }
        }
        metrics.insert("Inputs".into(), Value::Array(per_input));
        Ok(metrics)
    }

    /// Fetches one input's DAG and counts its blocks and bytes (for `bench.fetch`, with the
    /// fetch's time and rate).
    async fn fetch_input(&self, spec: &Spec, root: Cid) -> Result<Value, RunError> {
        let clock = Instant::now();
        let fetched = self
            .client
            .fetch_dag(&self.repo, root)
            .await
            .map_err(fail)?;
        let seconds = clock.elapsed().as_secs_f64();
        let repo = Arc::clone(&self.repo);
        let (blocks, bytes) = tokio::task::spawn_blocking(move || dag_stat(repo.store(), &root))
            .await
            .map_err(fail)??;
        let mut m = json!({
            "Cid": root.to_string(),
            "Blocks": blocks,
            "Bytes": bytes,
            "BlocksFetched": fetched,
        });
        if spec.kind == Kind::BenchFetch {
            m["Seconds"] = json!(seconds);
            // Throughput means something only when the DAG came over the network.
            m["MBps"] = if fetched > 0 {
                json!(bytes as f64 / 1e6 / seconds.max(1e-9))
            } else {
                Value::Null
            };
        }
        Ok(m)
    }

    /// Runs the `sql` kind: the inputs mounted as `datasets.input_N`, one read-only query,
    /// its answer stored as a Parquet file (the output). One at a time, as the mounts are
    /// names shared by the node.
    async fn sql(&self, spec: &Spec) -> Result<(Map<String, Value>, Cid), RunError> {
        let index = self
            .index
            .as_ref()
            .ok_or_else(|| RunError("this node has no benchmark database".into()))?;
        let query = spec
            .param("query")
            .ok_or_else(|| RunError("the sql kind needs a query (param query=SQL)".into()))?
            .to_string();
        let _one_at_a_time = self.sql_lock.lock().await;
        for (i, input) in spec.inputs.iter().enumerate() {
            index
                .mount_dataset(&format!("input_{}", i + 1), input.0)
                .await
                .map_err(fail)?;
        }
        let clock = Instant::now();
        let (answer, truncated) = index.query_to_content(query).await.map_err(fail)?;
        let cid: Cid = answer.cid.parse().map_err(fail)?;
        let mut metrics = Map::new();
        metrics.insert("Rows".into(), json!(answer.rows));
        metrics.insert("Truncated".into(), json!(truncated));
        metrics.insert("Bytes".into(), json!(answer.bytes));
        metrics.insert("Seconds".into(), json!(clock.elapsed().as_secs_f64()));
        let columns: Vec<String> = answer
            .columns
            .iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect();
        metrics.insert("Columns".into(), json!(columns));
        Ok((metrics, cid))
    }

    /// A directory under `<repo>/tmp`, removed when dropped (or at the next start, after a
    /// crash).
    fn scratch(&self, prefix: &str) -> Result<ipfsbench_core::repo::scratch::Dir, RunError> {
        self.repo.scratch_dir(prefix).map_err(fail)
    }

    /// Runs an allowed program without a shell: inputs materialised under `inputs/<cid>`,
    /// outputs collected from `outputs/` and added to the store.
    async fn exec(
        &self,
        spec: &Spec,
        report: &(dyn Fn(u16, &str) + Sync),
    ) -> Result<(Map<String, Value>, Cid), RunError> {
        let name = spec.param("program").unwrap_or_default();
        let program = self.programs.get(name).ok_or_else(|| {
            RunError(format!(
                "program {name:?} is not on this worker's allowlist (tasks.exec_programs)"
            ))
        })?;
        let dir = self.scratch("exec-")?;
        let inputs = dir.path().join("inputs");
        let outputs = dir.path().join("outputs");
        std::fs::create_dir_all(&inputs).map_err(fail)?;
        std::fs::create_dir_all(&outputs).map_err(fail)?;
        self.materialise(spec, &inputs).await?;
        report(100, "inputs ready");
        let args: Vec<&str> = spec
            .params
            .iter()
            .filter(|(k, _)| k == "arg")
            .map(|(_, v)| v.as_str())
            .collect();
        let clock = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("IPFSBENCH_INPUTS", &inputs)
            .env("IPFSBENCH_OUTPUTS", &outputs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RunError(format!("starting {}: {e}", program.display())))?;
        let stdout = capture(child.stdout.take());
        let stderr = capture(child.stderr.take());
        let status = self.wait_capped(&mut child, &outputs).await?;
        let seconds = clock.elapsed().as_secs_f64();
        let (stdout, stderr) = (stdout.await.map_err(fail)?, stderr.await.map_err(fail)?);
        let used = dir_size(&outputs);
        if used > self.output_cap {
            return Err(RunError(format!(
                "outputs reached {used} bytes, over the {}-byte cap",
                self.output_cap
            )));
        }
        if !status.success() {
            return Err(RunError(format!(
                "{name} exited with {status}: {}",
                stderr.trim()
            )));
        }
        report(900, "adding outputs");
        let root = self.add_outputs(&outputs).await?;
        let _ = self.client.provide(root).await;
        let mut metrics = Map::new();
        metrics.insert("Program".into(), json!(name));
        metrics.insert("ExitCode".into(), json!(status.code()));
        metrics.insert("Seconds".into(), json!(seconds));
        metrics.insert("OutputBytes".into(), json!(used));
        metrics.insert("Stdout".into(), json!(stdout));
        metrics.insert("Stderr".into(), json!(stderr));
        Ok((metrics, root))
    }

    /// Waits for the program, killing it once its outputs pass the cap.
    async fn wait_capped(
        &self,
        child: &mut tokio::process::Child,
        outputs: &std::path::Path,
    ) -> Result<std::process::ExitStatus, RunError> {
        let mut check = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                status = child.wait() => return status.map_err(fail),
                _ = check.tick() => {
                    let used = dir_size(outputs);
                    if used > self.output_cap {
                        let _ = child.kill().await;
                        return Err(RunError(format!(
                            "outputs reached {used} bytes, over the {}-byte cap",
                            self.output_cap
                        )));
                    }
                }
            }
        }
    }

    /// Fetches each input and writes it under `dir/<cid>`.
    async fn materialise(&self, spec: &Spec, dir: &std::path::Path) -> Result<(), RunError> {
        for input in &spec.inputs {
            self.client
                .fetch_dag(&self.repo, input.0)
                .await
                .map_err(fail)?;
            let repo = Arc::clone(&self.repo);
            let (cid, dest) = (input.0, dir.join(input.0.to_string()));
            tokio::task::spawn_blocking(move || {
                ipfsbench_core::unixfs::get(repo.store(), &cid, &dest)
            })
            .await
            .map_err(fail)?
            .map_err(fail)?;
        }
        Ok(())
    }

    /// Adds and pins what a program wrote; the root of `outputs/`.
    async fn add_outputs(&self, outputs: &std::path::Path) -> Result<Cid, RunError> {
        let repo = Arc::clone(&self.repo);
        let out_dir = outputs.to_path_buf();
        let added = tokio::task::spawn_blocking(move || {
            let options = AddOptions {
                hidden: true,
                ..AddOptions::default()
            };
            repo.add_path(&out_dir, &options, true, &mut |_| {})
        })
        .await
        .map_err(fail)?
        .map_err(fail)?;
        added
            .iter()
            .find(|a| a.name == "outputs")
            .map(|a| a.cid)
            .ok_or_else(|| RunError("adding the outputs gave no root".into()))
    }
}

/// Reads a child's pipe to the end, keeping the first [`MAX_CAPTURE`] bytes.
fn capture<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    pipe: Option<R>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = MAX_CAPTURE.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Bytes of the regular files under `dir`.
/// A result record's key figures: its finite numeric metrics in name order, then its
/// duration, at most [`task::MAX_FIGURES`].
fn figures(record: &Value) -> Vec<(String, f64)> {
    let metrics = record["Metrics"].as_object().into_iter().flatten();
    let mut out: Vec<(String, f64)> = metrics
        .filter(|(name, _)| name.len() <= 64)
        .filter_map(|(name, v)| Some((name.clone(), v.as_f64().filter(|f| f.is_finite())?)))
        .take(task::MAX_FIGURES - 1)
        .collect();
    if let Some(ms) = record["DurationMs"].as_f64() {
        out.push(("DurationMs".into(), ms));
    }
    out
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => total += entry.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

/// The `size` parameter in bytes, or `default`.
fn size_param(spec: &Spec, default: u64) -> Result<u64, RunError> {
    let size = match spec.param("size") {
        None => default,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| RunError(format!("size: {v:?} is not a number of bytes")))?,
    };
    if size == 0 || size > MAX_BENCH_BYTES {
        return Err(RunError(format!(
            "size must be between 1 and {MAX_BENCH_BYTES} bytes"
        )));
    }
    Ok(size)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut buf);
    buf
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn check_stop(stop: &AtomicBool) -> Result<(), RunError> {
    if stop.load(Ordering::Relaxed) {
        return Err(RunError("stopped".into()));
    }
    Ok(())
}

/// sha2-256 over `size` bytes of random data, 1 MiB at a time.
fn bench_hash(size: u64, stop: &AtomicBool) -> Result<Map<String, Value>, RunError> {
    use sha2::{Digest, Sha256};
    let buf = random_bytes(1 << 20);
    let clock = Instant::now();
    let mut left = size;
    let mut digest = Sha256::new();
    while left > 0 {
        check_stop(stop)?;
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        digest.update(&buf[..n]);
        left -= n as u64;
    }
    let _ = digest.finalize();
    let seconds = clock.elapsed().as_secs_f64();
    let mut m = Map::new();
    m.insert("Algorithm".into(), json!("sha2-256"));
    m.insert("Bytes".into(), json!(size));
    m.insert("Seconds".into(), json!(seconds));
    m.insert("MBps".into(), json!(size as f64 / 1e6 / seconds.max(1e-9)));
    Ok(m)
}

/// Writes `size` bytes of 256 KiB random blocks to a fresh pack store in `dir` (durably:
/// flushed), then reads them all back.
fn bench_store(dir: &Path, size: u64, stop: &AtomicBool) -> Result<Map<String, Value>, RunError> {
    const BLOCK: usize = 256 << 10;
    let store = PackStore::open(dir, PackStoreConfig::default()).map_err(fail)?;
    let mut data = random_bytes(BLOCK);
    let count = size.div_ceil(BLOCK as u64);
    let mut cids = Vec::new();
    let clock = Instant::now();
    for i in 0..count {
        check_stop(stop)?;
        data[..8].copy_from_slice(&i.to_le_bytes());
        let block = Block::hash(RAW, data.clone(), false);
        cids.push(*block.cid());
        store.put(&block).map_err(fail)?;
    }
    store.flush().map_err(fail)?;
    let write = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let mut read_bytes = 0u64;
    for cid in &cids {
        check_stop(stop)?;
        let bytes = store
            .get(cid)
            .map_err(fail)?
            .ok_or_else(|| RunError(format!("block {cid} written but not read back")))?;
        read_bytes += bytes.len() as u64;
    }
    let read = clock.elapsed().as_secs_f64();
    let written = count * BLOCK as u64;
    let mut m = Map::new();
    m.insert("Blocks".into(), json!(count));
    m.insert("Bytes".into(), json!(written));
    m.insert("WriteSeconds".into(), json!(write));
    m.insert(
        "WriteMBps".into(),
        json!(written as f64 / 1e6 / write.max(1e-9)),
    );
    m.insert("ReadSeconds".into(), json!(read));
    m.insert(
        "ReadMBps".into(),
        json!(read_bytes as f64 / 1e6 / read.max(1e-9)),
    );
    Ok(m)
}

/// Blocks and bytes of the DAG under `root`, which must be local.
fn dag_stat(store: &dyn BlockStore, root: &Cid) -> Result<(u64, u64), RunError> {
    let mut blocks = 0u64;
    let mut bytes = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut sizes = Vec::new();
    ipfsbench_core::store::dag::walk(store, root, false, &mut seen, &mut |cid, data| {
        blocks += 1;
        match data {
            Some(d) => bytes += d.len() as u64,
            None => sizes.push(*cid),
        }
        Ok(())
    })
    .map_err(fail)?;
    for cid in sizes {
        bytes += store.size(&cid).map_err(fail)?.unwrap_or(0);
    }
    Ok((blocks, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_measure_what_they_say() {
        let running = AtomicBool::new(false);
        let m = bench_hash(4 << 20, &running).unwrap();
        assert_eq!(m["Bytes"], json!(4 << 20));
        assert!(m["MBps"].as_f64().unwrap() > 0.0);
        let dir = tempfile::tempdir().unwrap();
        let m = bench_store(dir.path(), 1 << 20, &running).unwrap();
        assert_eq!(m["Blocks"], json!(4));
        assert_eq!(m["Bytes"], json!(1 << 20));
        assert!(m["ReadMBps"].as_f64().unwrap() > 0.0);
        // A stopped benchmark ends at once.
        let stopped = AtomicBool::new(true);
        assert!(bench_hash(16 << 30, &stopped).is_err());
        assert!(bench_store(dir.path(), 16 << 30, &stopped).is_err());
    }

    #[test]
    fn sizes_are_checked() {
        let mut spec = Spec::new(Kind::BenchHash);
        assert_eq!(size_param(&spec, 7).unwrap(), 7);
        spec.params.push(("size".into(), "0".into()));
        assert!(size_param(&spec, 7).is_err());
        spec.params[0].1 = "lots".into();
        assert!(size_param(&spec, 7).is_err());
    }

    #[test]
    fn dag_stat_counts_blocks_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("repo")).unwrap();
        let data = random_bytes((3 << 20) + 5);
        let added = repo
            .add_reader(
                Box::new(std::io::Cursor::new(data)),
                &AddOptions::default(),
                false,
                &mut |_| {},
            )
            .unwrap();
        let (blocks, bytes) = dag_stat(repo.store(), &added.cid).unwrap();
        // 13 leaves of at most 256 KiB and one root.
        assert_eq!(blocks, 14);
        assert!(bytes > (3 << 20) + 5 && bytes < (3 << 20) + 4096);
    }
}
