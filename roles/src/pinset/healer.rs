//! Keeping the replication factors: a master re-allocates the pins of peers silent past
//! `cluster.reallocate_after`, tops up under-replicated pins when peers appear, and removes
//! expired pins.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ipfsbench_core::network::PeerId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::allocate::{self, AllocError, Candidate};
use super::error::Error;
use super::pin::Pin;
use super::set::Pinset;

/// The running healer.
#[derive(Debug)]
pub struct Healer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Healer {
    /// Starts checking `pinset` periodically.
    pub fn start(pinset: Pinset) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let after = pinset.settings().reallocate_after;
            let every = (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
            let started = Instant::now();
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(every) => {}
                }
                // A master that just started has not heard everyone yet.
                if started.elapsed() < after {
                    continue;
                }
                if let Err(e) = heal(&pinset, crate::clock::now_ms()).await {
                    tracing::warn!("re-allocating pins: {e}");
                }
            }
        });
        Self { stop, task }
    }

    /// Stops it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One pass: every pin whose allocations include a silent peer, or that is
/// under-replicated, is allocated again; expired pins are removed. Returns the pins changed.
pub async fn heal(pinset: &Pinset, now_ms: u64) -> Result<usize, Error> {
    let mut candidates = pinset.candidates(None).await?;
    let live: Vec<PeerId> = candidates.iter().map(|c| c.peer).collect();
    let mut changed = 0;
    let pins: Vec<Pin> = pinset.list().collect::<Result<_, _>>()?;
    for pin in pins {
        if pin.expired(now_ms) {
            pinset.remove(&pin.cid).await?;
            changed += 1;
            continue;
        }
        let gone: Vec<PeerId> = pin
            .allocations
            .iter()
            .filter(|p| !live.contains(p))
            .copied()
            .collect();
        // "Everywhere" pins are checked against the live peers on every pass.
        let everywhere = pin.replication_factor_max.is_none();
        if gone.is_empty() && !pin.under_replicated && !everywhere {
            continue;
        }
        if let Some(updated) = reallocate(&pin, &gone, &candidates, pinset) {
            // Read again just before writing, in this node's write turn: a pin removed or
            // changed meanwhile (here or by a peer) is left as it now is, and no update or
            // removal here can slip in between the check and the write.
            let turn = pinset.write_turn().await;
            if pinset.get(&pin.cid)?.as_ref() != Some(&pin) {
                continue;
            }
            tracing::info!(cid = %pin.cid, ?gone, to = ?updated.allocations, "re-allocated");
            count(&mut candidates, &pin.allocations, &updated.allocations);
            pinset.put(&updated).await?;
            // The reports of peers that no longer hold it go with them.
            let reports: Vec<_> = gone
                .iter()
                .map(|p| ipfsbench_core::state::Op {
                    key: super::status::PeerStatus::key(&pin.cid, p),
                    value: None,
                })
                .collect();
            if !reports.is_empty() {
                pinset.state().write(reports).await?;
            }
            drop(turn);
            changed += 1;
        }
    }
    Ok(changed)
}

/// `pin` allocated again without the `gone` peers; `None` when nothing changes.
fn reallocate(
    pin: &Pin,
    gone: &[PeerId],
    candidates: &[Candidate],
    pinset: &Pinset,
) -> Option<Pin> {
    let mut wanted = pin.wanted(pinset.settings());
    wanted.keep.retain(|p| !gone.contains(p));
    wanted.user.retain(|p| !gone.contains(p));
    let (allocations, under_replicated) = match allocate::allocate(&wanted, candidates) {
        Ok(a) => (a.peers, a.under_replicated),
        // Not enough peers left: keep the ones that are alive, and say so.
        Err(AllocError::NotEnoughPeers { .. } | AllocError::Ineligible(..)) => (wanted.keep, true),
    };
    if allocations == pin.allocations && under_replicated == pin.under_replicated {
        return None;
    }
    Some(Pin {
        allocations,
        under_replicated,
        ..pin.clone()
    })
}

/// Moves the pin counts of the candidates from `before` to `after`, for balance within a
/// pass.
fn count(candidates: &mut [Candidate], before: &[PeerId], after: &[PeerId]) {
    let mut delta: HashMap<PeerId, i64> = HashMap::new();
    for p in before {
        *delta.entry(*p).or_default() -= 1;
    }
    for p in after {
        *delta.entry(*p).or_default() += 1;
    }
    for c in candidates {
        if let Some(d) = delta.get(&c.peer) {
            c.pins = c.pins.saturating_add_signed(*d);
        }
    }
}
