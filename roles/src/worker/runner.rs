//! The worker's side: running one attempt of a task and turning it into a result record.
//!
//! A result record is a JSON file added to the worker's store and pinned there (task id, kind,
//! inputs, outputs, metrics, timings, worker PeerId and hardware), so any peer can fetch it by
//! its CID.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use ipfsbench_core::network::{Client, PeerId};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::unixfs::AddOptions;
use ipfsbench_protocols::task::{Assign, Kind, Message, Outcome, Progress, Spec};
use tokio::sync::mpsc;

use super::kinds::{
    self,
    common::{fail, size_param, RunError},
};
use crate::clock::now_ms;
use crate::results::record::{Metrics, ResultRecord};

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
    pub(crate) machine: crate::results::schema::Hardware,
    pub(crate) cluster: String,
    /// `sql` tasks run one at a time.
    pub(crate) sql_lock: tokio::sync::Mutex<()>,
}

impl Runner {
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
        if let Err(e) = index.append_results(vec![row.cells()]).await {
            tracing::warn!("recording a result row: {e}");
        }
    }

    /// Runs the attempt under its time limit; returns the result record's CID and its key
    /// figures.
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
        let (metrics, outputs) =
            tokio::time::timeout(limit, self.execute(&assign.spec, &report, &stop))
                .await
                .map_err(|_| RunError(format!("timed out after {} s", limit.as_secs())))??;
        let record = ResultRecord {
            task: assign.task.to_string(),
            attempt: assign.attempt,
            kind: assign.spec.kind.name().into(),
            inputs: assign.spec.inputs.iter().map(|c| c.0.to_string()).collect(),
            params: assign.spec.params.iter().cloned().collect(),
            outputs: outputs.iter().map(Cid::to_string).collect(),
            metrics,
            worker: self.peer.to_string(),
            hardware: self.hardware.clone(),
            started_unix_ms: started,
            finished_unix_ms: now_ms(),
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let figures = record
            .figures()
            .into_iter()
            .map(|(f, v)| (f.name().to_string(), v))
            .collect();
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
    ) -> Result<(Metrics, Vec<Cid>), RunError> {
        let stop = Arc::clone(stop);
        Ok(match spec.kind {
            Kind::Noop => (Metrics::default(), Vec::new()),
            Kind::BenchHash => {
                let size = size_param(spec, 256 << 20)?;
                let m = tokio::task::spawn_blocking(move || kinds::hash::run(size, &stop));
                (m.await.map_err(fail)??, Vec::new())
            }
            Kind::BenchStore => {
                let size = size_param(spec, 64 << 20)?;
                let dir = self.scratch("bench-store-")?;
                let m =
                    tokio::task::spawn_blocking(move || kinds::store::run(dir.path(), size, &stop));
                (m.await.map_err(fail)??, Vec::new())
            }
            Kind::BenchFetch | Kind::DagStat => (
                kinds::fetch::run(&self.client, &self.repo, spec, report).await?,
                Vec::new(),
            ),
            Kind::Exec => {
                let dir = self.scratch("exec-")?;
                let exec = kinds::exec::Exec {
                    repo: &self.repo,
                    client: &self.client,
                    programs: &self.programs,
                    output_cap: self.output_cap,
                    dir: dir.path(),
                };
                let (m, out) = exec.run(spec, report).await?;
                (m, vec![out])
            }
            Kind::Sql => {
                let (m, out) = kinds::sql::run(self.index.as_ref(), &self.sql_lock, spec).await?;
                (m, vec![out])
            }
        })
    }

    /// A directory under `<repo>/tmp`, removed when dropped (or at the next start, after a
    /// crash).
    fn scratch(&self, prefix: &str) -> Result<ipfsbench_core::repo::scratch::Dir, RunError> {
        self.repo.scratch_dir(prefix).map_err(fail)
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
