//! Each node's pin tracker: it pins what the pinset allocates to this node, reports how it
//! goes (`status/<cid>/<peer>`), unpins what is no longer allocated here, notices local pins
//! removed by hand, and retries failures when a pin's recover counter moves.
//!
//! Which CIDs the tracker pinned is kept locally (`local.cluster-pins`), so it only ever
//! unpins its own pins, never a user's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use ipfsbench_core::network::{Client, DagProgress};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::pins::PinKind;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{PeerStatus, Pin, Pinset, Tracking};

/// Pins fetched at once.
const JOBS: usize = 4;
/// Progress of a running pin is reported this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// The pinset is checked this often even without changes (local pins removed by hand).
const RESCAN: Duration = Duration::from_secs(5);

type Job = BoxFuture<'static, (Cid, Result<(), String>)>;

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
}

impl State {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut changes = self.pinset.state().changes();
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = &mut stopped => return,
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(RESCAN) => {}
                Some((cid, result)) = self.jobs.next(), if !self.jobs.is_empty() => {
                    self.running.remove(&cid);
                    if let Err(e) = result {
                        tracing::warn!(%cid, "cluster pin failed: {e}");
                    }
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

    /// Brings this node in line with the pinset.
    async fn reconcile(&mut self) {
        let now = crate::now_ms();
        let me = self.me();
        let mut mine: HashMap<Cid, Pin> = HashMap::new();
        let mut whole = true;
        for pin in self.pinset.list() {
            match pin {
                Ok(pin) if pin.allocations.contains(&me) && !pin.expired(now) => {
                    mine.insert(pin.cid, pin);
                }
                Ok(_) => {}
                Err(e) => {
                    whole = false;
                    tracing::warn!("reading the pinset: {e}");
                }
            }
        }
        for pin in mine.values() {
            if self.running.contains(&pin.cid) {
                continue;
            }
            let report = self.report(&pin.cid);
            let retry = report.as_ref().is_some_and(|r| r.recover < pin.recover);
            let held = matches!(self.repo.pins().get(&pin.cid), Ok(Some(PinKind::Recursive)));
            let start = match report.as_ref().map(|r| r.status) {
                None | Some(Tracking::PinQueued | Tracking::Pinning | Tracking::Remote) => true,
                Some(Tracking::PinError | Tracking::UnexpectedlyUnpinned) => retry,
                Some(Tracking::Pinned) if !held => {
                    if !retry {
                        self.write_status(&pin.cid, Tracking::UnexpectedlyUnpinned, pin.recover)
                            .await;
                    }
                    retry
                }
                Some(Tracking::Pinned) => false,
            };
            let ours = self.local.contains_key(pin.cid.to_bytes()).unwrap_or(false);
            if start && held && !ours {
                // Pinned here already, by the user: report it, and never unpin it.
                self.write_status(&pin.cid, Tracking::Pinned, pin.recover)
                    .await;
            } else if start && self.running.len() < JOBS {
                self.start_job(pin.clone());
            }
        }
        if !whole {
            // Part of the pinset did not read: unpin nothing on a partial view.
            return;
        }
        // What is no longer allocated here: unpin it (only what this tracker pinned).
        let stale: Vec<Cid> = self
            .local
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| Cid::try_from(k.as_ref()).ok()))
            .filter(|c| !mine.contains_key(c) && !self.running.contains(c))
            .collect();
        for cid in stale {
            if let Err(e) = self.release(&cid).await {
                tracing::warn!(%cid, "unpinning a pin no longer allocated here: {e}");
            }
        }
    }

    async fn release(&mut self, cid: &Cid) -> Result<(), String> {
        let repo = Arc::clone(&self.repo);
        let c = *cid;
        tokio::task::spawn_blocking(move || match repo.pins().remove(repo.store(), &c) {
            Ok(_) | Err(ipfsbench_core::store::pins::PinError::NotPinned(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        })
        .await
        .map_err(|e| e.to_string())??;
        let key = PeerStatus::key(cid, &self.me());
        self.pinset
            .state()
            .remove(key)
            .await
            .map_err(|e| e.to_string())?;
        self.local
            .remove(cid.to_bytes())
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn write_status(&mut self, cid: &Cid, status: Tracking, recover: u64) {
        let report = PeerStatus {
            status,
            bytes: 0,
            blocks: 0,
            error: None,
            recover,
            updated_at_ms: crate::now_ms(),
        };
        write(&self.pinset, cid, &report).await;
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
            let cid = pin.cid;
            (cid, pin_one(repo, client, pinset, pin).await)
        }));
    }
}

/// Fetches and pins one allocated pin, reporting as it goes.
async fn pin_one(repo: Arc<Repo>, client: Client, pinset: Pinset, pin: Pin) -> Result<(), String> {
    let cid = pin.cid;
    let mut report = PeerStatus {
        status: Tracking::Pinning,
        bytes: 0,
        blocks: 0,
        error: None,
        recover: pin.recover,
        updated_at_ms: crate::now_ms(),
    };
    write(&pinset, &cid, &report).await;
    let progress = DagProgress::default();
    let result = {
        let fetch = client.fetch_dag_counted(&repo, cid, &progress);
        tokio::pin!(fetch);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                r = &mut fetch => break r.map_err(|e| e.to_string()),
                _ = tick.tick() => {
                    report.bytes = progress.bytes.load(Ordering::Relaxed);
                    report.blocks = progress.blocks.load(Ordering::Relaxed);
                    report.updated_at_ms = crate::now_ms();
                    write(&pinset, &cid, &report).await;
                }
            }
        }
    };
    let result = match result {
        Ok(_) => {
            let r = Arc::clone(&repo);
            tokio::task::spawn_blocking(move || r.pin_add(&cid, true).map_err(|e| e.to_string()))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
        }
        Err(e) => Err(e),
    };
    report.bytes = progress.bytes.load(Ordering::Relaxed);
    report.blocks = progress.blocks.load(Ordering::Relaxed);
    report.updated_at_ms = crate::now_ms();
    match &result {
        Ok(()) => {
            report.status = Tracking::Pinned;
            let _ = client.provide(cid).await;
        }
        Err(e) => {
            report.status = Tracking::PinError;
            report.error = Some(e.chars().take(super::MAX_TEXT).collect());
        }
    }
    write(&pinset, &cid, &report).await;
    result
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
