//! Blocks received over Bitswap go to the store on a thread of their own, in arrival order, so
//! that a slow write (a direct write-out of several MiB, a full disk's error) never stalls the
//! swarm. Whoever waits for a block is answered once it is stored; a want for a block still
//! being stored waits for the same write instead of fetching it again.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use crate::network::command::Waiters;
use crate::network::{self, command::Fetched};
use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::block::Hash;
use ipfsbench_store::store::Block;

type Shared = Arc<dyn std::error::Error + Send + Sync>;

/// A block to store.
struct Job {
    peer: PeerId,
    cid: Cid,
    data: Bytes,
}

/// A block stored (its links read while the bytes were at hand), or why not.
pub(super) struct Stored {
    peer: PeerId,
    cid: Cid,
    data: Bytes,
    result: Result<Vec<Cid>, Shared>,
}

/// Blocks queued for the writer at most; past it (a disk far slower than the network) a block
/// is stored on the swarm's task, which slows the fetch down to the disk.
const QUEUE: usize = 1024;

/// The writer thread's handle, and who waits for the blocks it has not stored yet.
pub(super) struct Storing {
    repo: Arc<Repo>,
    jobs: mpsc::Sender<Job>,
    stored: mpsc::Receiver<Stored>,
    waiting: HashMap<Hash, Waiters>,
}

/// Stores one block, reading its links while the bytes are at hand (so that a DAG walk need
/// not read it back).
fn store_now(repo: &Repo, job: Job) -> Stored {
    let result = ipfsbench_store::store::dag::links(&job.cid, &job.data)
        .map_err(|e| Arc::new(e) as Shared)
        .and_then(|links| {
            let block = Block::verified_upstream(job.cid, job.data.clone());
            repo.store()
                .put(&block)
                .map_err(|e| Arc::new(e) as Shared)?;
            Ok(links)
        });
    Stored {
        peer: job.peer,
        cid: job.cid,
        data: job.data,
        result,
    }
}

impl Storing {
    /// Starts the writer for `repo`; it stops when this is dropped.
    pub(super) fn start(repo: Arc<Repo>) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE);
        let (done, stored) = mpsc::channel(QUEUE);
        let writer = Arc::clone(&repo);
        let spawned = std::thread::Builder::new()
            .name("block-writer".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    if done.blocking_send(store_now(&writer, job)).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the thread every block is stored on the swarm's task (see `store`).
            tracing::error!(error = %e, "could not start the block writer thread");
        }
        Self {
            repo,
            jobs,
            stored,
            waiting: HashMap::new(),
        }
    }

    /// Hands a received block to the writer; `waiters` are answered once it is stored.
    pub(super) fn store(&mut self, peer: PeerId, cid: Cid, data: Bytes, waiters: Waiters) {
        self.waiting.entry(*cid.hash()).or_default().extend(waiters);
        match self.jobs.try_send(Job { peer, cid, data }) {
            Ok(()) => {}
            // The writer is behind (or gone): store it here.
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                let stored = store_now(&self.repo, job);
                self.answer(stored);
            }
        }
    }

    /// Joins `reply` to the waiters of `hash` if it is being stored; else hands it back.
    pub(super) fn join(
        &mut self,
        hash: &Hash,
        reply: oneshot::Sender<Result<Fetched, network::error::Error>>,
    ) -> Option<oneshot::Sender<Result<Fetched, network::error::Error>>> {
        match self.waiting.get_mut(hash) {
            Some(waiters) => {
                waiters.push(reply);
                None
            }
            None => Some(reply),
        }
    }

    /// The next block stored. Cancel-safe (for `select!`).
    pub(super) async fn next(&mut self) -> Option<Stored> {
        self.stored.recv().await
    }

    /// Answers the waiters of a stored block.
    pub(super) fn answer(&mut self, stored: Stored) {
        let Some(waiters) = self.waiting.remove(stored.cid.hash()) else {
            return;
        };
        for reply in waiters {
            let _ = reply.send(match &stored.result {
                Ok(links) => Ok(Fetched {
                    from: stored.peer,
                    links: Some(links.clone()),
                    data: Some(stored.data.clone()),
                }),
                Err(e) => Err(network::error::Error::Store(Arc::clone(e))),
            });
        }
    }
}
