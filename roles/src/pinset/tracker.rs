//! Each node's pin tracker: it pins what the pinset allocates to this node, reports how it
//! goes (`status/<cid>/<peer>`), unpins what is no longer allocated here, notices local pins
//! removed by hand, and retries failures when a pin's recover counter moves.
//!
//! Which CIDs the tracker pinned is kept locally (`local.cluster-pins`), so it only ever
//! unpins its own pins, never a user's.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use ipfsbench_core::network::{Client, DagProgress};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::pins::PinKind;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use ipfsbench_core::state::Op;

use super::pin::Pin;
use super::set::Pinset;
use super::status::{PeerStatus, Tracking};

/// Pins fetched at once.
const JOBS: usize = 16;
/// Progress of a running pin is reported this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// The pinset is checked this often even without changes (local pins removed by hand).
const RESCAN: Duration = Duration::from_secs(5);
/// Changes arriving within this long are handled in one pass.
const SETTLE: Duration = Duration::from_millis(200);
/// Reports written in one change, at most.
const REPORT_BATCH: usize = 512;

/// A finished fetch: the pin, and the blocks and bytes it has (or why not).
type Fetched = (Pin, Result<(u64, u64), String>);
/// A fetch in flight.
type Job = BoxFuture<'static, Fetched>;

/// The running tracker.
#[derive(Debug)]
pub struct Tracker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Tracker {
    /// Starts tracking this node's allocations in `pinset`.
    pub fn start(repo: Arc<Repo>, client: Client, pinset: Pinset) -> Result<Self, String> {
        let local = repo
            .local_tree("cluster-pins")
            .map_err(|e| format!("opening the tracker's records: {e}"))?;
        let (stop, stopped) = oneshot::channel();
        let state = State {
            repo,
            client,
            pinset,
            local,
            jobs: FuturesUnordered::new(),
            running: HashSet::new(),
            queue: VecDeque::new(),
        };
        let task = tokio::spawn(state.run(stopped));
        Ok(Self { stop, task })
    }

    /// Stops tracking; pins in flight are abandoned (and resumed at the next start).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

struct State {
    repo: Arc<Repo>,
    client: Client,
    pinset: Pinset,
    /// CIDs this tracker pinned or reports on.
    local: sled::Tree,
    jobs: FuturesUnordered<Job>,
    running: HashSet<Cid>,
    /// Pins to fetch and pin, in the order found.
    queue: VecDeque<Pin>,
}

impl State {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut changes = self.pinset.state().changes();
        // The next pass over the pinset: now, after a burst of changes has settled, or at the
        // periodic rescan. Fetches go on meanwhile.
        let mut next_pass = Some(tokio::time::Instant::now());
        let mut rescan = tokio::time::Instant::now() + RESCAN;
        let mut settle = SETTLE;
        loop {
            let now = tokio::time::Instant::now();
            if next_pass.is_some_and(|t| t <= now) || rescan <= now {
                let clock = std::time::Instant::now();
                self.reconcile().await;
                // A pass over a large pinset is not cheap: the next waits at least twice as
                // long as this one took, so passes take at most a third of the time.
                settle = SETTLE.max(clock.elapsed() * 2);
                next_pass = None;
                rescan = tokio::time::Instant::now() + RESCAN;
            }
            self.start_queued();
            let wake = next_pass.map_or(rescan, |t| t.min(rescan));
            tokio::select! {
                _ = &mut stopped => return,
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    changes.borrow_and_update();
                    next_pass.get_or_insert_with(|| tokio::time::Instant::now() + settle);
                }
                _ = tokio::time::sleep_until(wake) => {}
                Some(done) = self.jobs.next(), if !self.jobs.is_empty() => {
                    // Every fetch done by now is pinned in one batch (one flush).
                    let mut batch = vec![done];
                    while let Some(Some(more)) = self.jobs.next().now_or_never() {
                        batch.push(more);
                    }
                    self.finish(batch).await;
                }
            }
        }
    }

    fn me(&self) -> ipfsbench_core::network::PeerId {
        self.pinset.state().peer_id()
    }

    fn report(&self, cid: &Cid) -> Option<PeerStatus> {
        let key = PeerStatus::key(cid, &self.me());
        let bytes = self.pinset.state().get(&key).ok().flatten()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Brings this node in line with the pinset. Pins are looked at one by one as they are
    /// read: what stays in memory is the set of CIDs allocated here and the queue of those to
    /// fetch, not every pin.
    async fn reconcile(&mut self) {
        let now = crate::clock::now_ms();
        let me = self.me();
        let mut mine: HashSet<Cid> = HashSet::new();
        let mut whole = true;
        // Reports written in batches: many pins' reports share a delta.
        let mut reports: Vec<Op> = Vec::new();
        self.queue.clear();
        let pinset = self.pinset.clone();
        for pin in pinset.naming(&me) {
            match pin {
                Ok(pin) if pin.allocations.contains(&me) && !pin.expired(now) => {
                    mine.insert(pin.cid);
                    self.consider(pin, &mut reports);
                }
                Ok(_) => {}
                Err(e) => {
                    whole = false;
                    tracing::warn!("reading the pinset: {e}");
                }
            }
        }
        if !whole {
            // Part of the pinset did not read: unpin nothing on a partial view.
            self.flush_reports(reports).await;
            return;
        }
        // What is no longer allocated here: unpin it (only what this tracker pinned).
        let stale: Vec<Cid> = self
            .local
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| Cid::try_from(k.as_ref()).ok()))
            .filter(|c| !mine.contains(c) && !self.running.contains(c))
            .collect();
        for cid in stale {
            match self.release(&cid).await {
                Ok(()) => reports.push(Op {
                    key: PeerStatus::key(&cid, &me),
                    value: None,
                }),
                Err(e) => tracing::warn!(%cid, "unpinning a pin no longer allocated here: {e}"),
            }
        }
        self.flush_reports(reports).await;
    }

    /// Whether `pin`, allocated here, is to be fetched (queued), reported, or left alone.
    fn consider(&mut self, pin: Pin, reports: &mut Vec<Op>) {
        if self.running.contains(&pin.cid) {
            return;
        }
        let report = self.report(&pin.cid);
        let retry = report.as_ref().is_some_and(|r| r.recover < pin.recover);
        let held = matches!(self.repo.pins().get(&pin.cid), Ok(Some(PinKind::Recursive)));
        let start = match report.as_ref().map(|r| r.status) {
            None | Some(Tracking::PinQueued | Tracking::Pinning | Tracking::Remote) => true,
            Some(Tracking::PinError | Tracking::UnexpectedlyUnpinned) => retry,
            Some(Tracking::Pinned) if !held => {
                if !retry {
                    reports.push(self.report_op(
                        &pin.cid,
                        Tracking::UnexpectedlyUnpinned,
                        pin.recover,
                    ));
                }
                retry
            }
            Some(Tracking::Pinned) => false,
        };
        let ours = self.local.contains_key(pin.cid.to_bytes()).unwrap_or(false);
        if start && held && !ours {
            // Pinned here already, by the user: report it, and never unpin it.
            reports.push(self.report_op(&pin.cid, Tracking::Pinned, pin.recover));
        } else if start {
            self.queue.push_back(pin);
        }
    }

    /// Writes `reports`, [`REPORT_BATCH`] to a change.
    async fn flush_reports(&mut self, reports: Vec<Op>) {
        for chunk in reports.chunks(REPORT_BATCH) {
            if let Err(e) = self.pinset.state().write(chunk.to_vec()).await {
                tracing::warn!("reporting pins' status: {e}");
            }
        }
    }

    /// This node's report on `cid`, as a change to write.
    fn report_op(&self, cid: &Cid, status: Tracking, recover: u64) -> Op {
        let report = PeerStatus {
            status,
            bytes: 0,
            blocks: 0,
            error: None,
            recover,
            updated_at_ms: crate::clock::now_ms(),
        };
        Op {
            key: PeerStatus::key(cid, &self.me()),
            value: serde_json::to_vec(&report).ok(),
        }
    }

    async fn release(&mut self, cid: &Cid) -> Result<(), String> {
        let repo = Arc::clone(&self.repo);
        let c = *cid;
        tokio::task::spawn_blocking(move || match repo.pins().remove(repo.store(), &c) {
            Ok(_) | Err(ipfsbench_core::store::pins::Error::NotPinned(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        })
        .await
        .map_err(|e| e.to_string())??;
        self.local
            .remove(cid.to_bytes())
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Starts queued pins while there is room.
    fn start_queued(&mut self) {
        while self.running.len() < JOBS {
            let Some(pin) = self.queue.pop_front() else {
                return;
            };
            if !self.running.contains(&pin.cid) {
                self.start_job(pin);
            }
        }
    }

    fn start_job(&mut self, pin: Pin) {
        if let Err(e) = self.local.insert(pin.cid.to_bytes(), &[]) {
            tracing::warn!(cid = %pin.cid, "recording a cluster pin: {e}");
            return;
        }
        self.running.insert(pin.cid);
        let (repo, client, pinset) = (
            Arc::clone(&self.repo),
            self.client.clone(),
            self.pinset.clone(),
        );
        self.jobs.push(Box::pin(async move {
            let result = fetch_one(repo, client, pinset, &pin).await;
            (pin, result)
        }));
    }

    /// Pins the fetched DAGs of `batch` with one flush, announces them, and reports every
    /// outcome in one change.
    async fn finish(&mut self, batch: Vec<Fetched>) {
        let fetched: Vec<Cid> = batch
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(p, _)| p.cid)
            .collect();
        let repo = Arc::clone(&self.repo);
        let pinned = tokio::task::spawn_blocking(move || repo.pin_add_many(&fetched))
            .await
            .unwrap_or_default();
        let mut pinned = pinned.into_iter();
        let me = self.me();
        let mut reports = Vec::new();
        for (pin, fetched) in batch {
            self.running.remove(&pin.cid);
            let outcome = fetched.and_then(|counts| match pinned.next() {
                Some(Ok(())) => Ok(counts),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("pinning did not finish".to_string()),
            });
            let (status, (blocks, bytes), error) = match outcome {
                Ok(counts) => {
                    let _ = self.client.provide(pin.cid).await;
                    (Tracking::Pinned, counts, None)
                }
                Err(e) => {
                    tracing::warn!(cid = %pin.cid, "cluster pin failed: {e}");
                    let e: String = e.chars().take(super::input::MAX_TEXT).collect();
                    (Tracking::PinError, (0, 0), Some(e))
                }
            };
            let report = PeerStatus {
                status,
                bytes,
                blocks,
                error,
                recover: pin.recover,
                updated_at_ms: crate::clock::now_ms(),
            };
            reports.push(Op {
                key: PeerStatus::key(&pin.cid, &me),
                value: serde_json::to_vec(&report).ok(),
            });
        }
        self.flush_reports(reports).await;
    }
}

/// Fetches one allocated pin's DAG, reporting progress while it takes long; the blocks and
/// bytes it has.
async fn fetch_one(
    repo: Arc<Repo>,
    client: Client,
    pinset: Pinset,
    pin: &Pin,
) -> Result<(u64, u64), String> {
    let cid = pin.cid;
    let mut report = PeerStatus {
        status: Tracking::Pinning,
        bytes: 0,
        blocks: 0,
        error: None,
        recover: pin.recover,
        updated_at_ms: crate::clock::now_ms(),
    };
    // `pinning` is reported by the first progress tick: a DAG that is local (or small)
    // goes straight to `pinned`.
    let progress = DagProgress::default();
    let fetch = client.fetch_dag_counted(&repo, cid, &progress);
    tokio::pin!(fetch);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut fetch => break r.map_err(|e| e.to_string()),
            _ = tick.tick() => {
                report.bytes = progress.bytes.load(Ordering::Relaxed);
                report.blocks = progress.blocks.load(Ordering::Relaxed);
                report.updated_at_ms = crate::clock::now_ms();
                write(&pinset, &cid, &report).await;
            }
        }
    };
    result.map(|_| {
        (
            progress.blocks.load(Ordering::Relaxed),
            progress.bytes.load(Ordering::Relaxed),
        )
    })
}

async fn write(pinset: &Pinset, cid: &Cid, report: &PeerStatus) {
    let key = PeerStatus::key(cid, &pinset.state().peer_id());
    match serde_json::to_vec(report) {
        Ok(value) => {
            if let Err(e) = pinset.state().put(key, value).await {
                tracing::warn!(%cid, "reporting a pin's status: {e}");
            }
        }
        Err(e) => tracing::warn!(%cid, "encoding a pin's status: {e}"),
    }
}
