//! The handle the rest of the program uses to drive the host.

use crate::network;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::command::{Command, Fetched, SUBSCRIBER_QUEUE};
pub use super::command::{PeerInfo, PubsubMessage, PubsubStats};
use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::block::{Hash, RAW};
use ipfsbench_store::store::dag;

/// Blocks fetched concurrently while walking a DAG.
const DAG_FETCH_CONCURRENCY: usize = 256;

/// How far a DAG fetch got: blocks and bytes local so far.
#[derive(Debug, Default)]
pub struct DagProgress {
    /// Blocks of the DAG made local (fetched or already there).
    pub blocks: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
}

/// A cloneable handle to the host. The host stops when the last handle is dropped.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    fetch_timeout: Duration,
    streams: libp2p_stream::Control,
    connected: tokio::sync::broadcast::Sender<PeerId>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("fetch_timeout", &self.fetch_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        fetch_timeout: Duration,
        streams: libp2p_stream::Control,
        connected: tokio::sync::broadcast::Sender<PeerId>,
    ) -> Self {
        Self {
            commands,
            fetch_timeout,
            streams,
            connected,
        }
    }

    /// Peers as they connect (their first connection); a receiver that lags loses the
    /// oldest.
    pub fn connected(&self) -> tokio::sync::broadcast::Receiver<PeerId> {
        self.connected.subscribe()
    }

    /// Disconnects `peer` and refuses its connections from then on (until the host stops).
    pub async fn cut_off(&self, peer: PeerId) -> Result<(), network::error::Error> {
        self.commands
            .send(Command::CutOff { peer })
            .await
            .map_err(|_| network::error::Error::Stopped)
    }

    /// Opens and accepts plain streams of request-response protocols that run outside the
    /// event loop.
    pub fn streams(&self) -> libp2p_stream::Control {
        self.streams.clone()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, network::error::Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| network::error::Error::Stopped)?;
        rx.await.map_err(|_| network::error::Error::Stopped)
    }

    /// The addresses the host listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, network::error::Error> {
        self.call(|reply| Command::Listeners { reply }).await
    }

    /// Dials `addr` (which must end with `/p2p/<peer id>`) and waits for the connection.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, network::error::Error> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, network::error::Error> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// Fetches one block over Bitswap into the repo's store; returns the peer that sent it.
    /// `providers` are peers likely to have it (may be empty).
    pub async fn fetch_block(
        &self,
        cid: Cid,
        providers: Vec<PeerId>,
    ) -> Result<PeerId, network::error::Error> {
        Ok(self.fetch(cid, providers).await?.from)
    }

    /// Fetches one block over Bitswap into the repo's store and hands back its bytes, or
    /// `None` when it was local already (the caller reads it from the store).
    pub async fn fetch_data(
        &self,
        cid: Cid,
    ) -> Result<Option<bytes::Bytes>, network::error::Error> {
        Ok(self.fetch(cid, Vec::new()).await?.data)
    }

    async fn fetch(
        &self,
        cid: Cid,
        providers: Vec<PeerId>,
    ) -> Result<Fetched, network::error::Error> {
        let fetch = self.call(|reply| Command::Want {
            cid,
            providers,
            reply,
        });
        match tokio::time::timeout(self.fetch_timeout, fetch).await {
            Ok(result) => result?,
            Err(_) => {
                let _ = self.commands.try_send(Command::Cancel { cid });
                Err(network::error::Error::Timeout {
                    cid,
                    secs: self.fetch_timeout.as_secs(),
                })
            }
        }
    }

    /// Makes the whole DAG under `root` local, fetching missing blocks with many wants in
    /// flight, each child asked first of the peer that sent its parent. Returns the number of
    /// blocks fetched. Fetched blocks are flushed to disk before this returns.
    pub async fn fetch_dag(
        &self,
        repo: &Arc<Repo>,
        root: Cid,
    ) -> Result<u64, network::error::Error> {
        self.fetch_dag_counted(repo, root, &DagProgress::default())
            .await
    }

    /// [`Client::fetch_dag`], counting the DAG's blocks and bytes in `progress` as they
    /// become local (fetched or found), so a caller can show how far it got.
    pub async fn fetch_dag_counted(
        &self,
        repo: &Arc<Repo>,
        root: Cid,
        progress: &DagProgress,
    ) -> Result<u64, network::error::Error> {
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut queue: Vec<(Cid, Vec<PeerId>)> = vec![(root, Vec::new())];
        let mut running = FuturesUnordered::new();
        let mut fetched = 0u64;
        loop {
            while running.len() < DAG_FETCH_CONCURRENCY {
                let Some((cid, hints)) = queue.pop() else {
                    break;
                };
                if !seen.insert(*cid.hash()) {
                    continue;
                }
                let repo = Arc::clone(repo);
                let client = self.clone();
                running.push(async move {
                    let local = repo
                        .store()
                        .has(cid.hash())
                        .map_err(network::error::Error::store)?;
                    let (from, links) = if local {
                        (None, None)
                    } else {
                        let fetched = client.fetch(cid, hints).await?;
                        (Some(fetched.from), fetched.links)
                    };
                    let links = if let Some(links) = links {
                        links
                    } else if cid.codec() == RAW {
                        Vec::new()
                    } else {
                        let data = repo
                            .store()
                            .get(&cid)
                            .map_err(network::error::Error::store)?
                            .ok_or(network::error::Error::NotFound(cid))?;
                        dag::links(&cid, &data).map_err(network::error::Error::store)?
                    };
                    let size = repo
                        .store()
                        .size(&cid)
                        .map_err(network::error::Error::store)?;
                    Ok::<_, network::error::Error>((from, links, size.unwrap_or(0)))
                });
            }
            let Some(done) = running.next().await else {
                break;
            };
            let (from, links, size) = done?;
            progress.blocks.fetch_add(1, Ordering::Relaxed);
            progress.bytes.fetch_add(size, Ordering::Relaxed);
            if from.is_some() {
                fetched += 1;
            }
            let hints: Vec<PeerId> = from.into_iter().collect();
            // Reversed so that the stack pops children in link order.
            queue.extend(links.into_iter().rev().map(|c| (c, hints.clone())));
        }
        if fetched > 0 {
            let repo = Arc::clone(repo);
            tokio::task::spawn_blocking(move || repo.store().flush())
                .await
                .map_err(network::error::Error::store)?
                .map_err(network::error::Error::store)?;
        }
        Ok(fetched)
    }

    /// Announces this node as a provider of `cid` on the DHT (refreshed by Kademlia).
    pub async fn provide(&self, cid: Cid) -> Result<(), network::error::Error> {
        self.commands
            .send(Command::Provide { cid })
            .await
            .map_err(|_| network::error::Error::Stopped)
    }

    /// Asks the DHT who provides `cid`.
    pub async fn find_providers(
        &self,
        cid: Cid,
    ) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, network::error::Error> {
        self.call(|reply| Command::FindProviders { cid, reply })
            .await
    }

    /// Publishes `data` on `topic`.
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<(), network::error::Error> {
        self.call(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Subscribes to `topic`; messages arrive on the receiver until it is dropped. Up to 256
    /// wait in the receiver; more are dropped.
    pub async fn subscribe(
        &self,
        topic: String,
    ) -> Result<mpsc::Receiver<PubsubMessage>, network::error::Error> {
        self.subscribe_with_capacity(topic, SUBSCRIBER_QUEUE).await
    }

    /// Subscribes to `topic` with room for `capacity` waiting messages (at most 65536).
    pub async fn subscribe_with_capacity(
        &self,
        topic: String,
        capacity: usize,
    ) -> Result<mpsc::Receiver<PubsubMessage>, network::error::Error> {
        self.call(|reply| Command::Subscribe {
            topic,
            capacity,
            own: false,
            reply,
        })
        .await?
    }

    /// Subscribes to `topic` as Kubo's `pubsub sub` does: this node's own messages on it are
    /// delivered too, once each. Up to 256 wait in the receiver; more are dropped.
    pub async fn subscribe_hearing_own(
        &self,
        topic: String,
    ) -> Result<mpsc::Receiver<PubsubMessage>, network::error::Error> {
        self.call(|reply| Command::Subscribe {
            topic,
            capacity: SUBSCRIBER_QUEUE,
            own: true,
            reply,
        })
        .await?
    }

    /// Bitswap's counters, the wantlist and the connected peers.
    pub async fn stats(&self) -> Result<network::observe::NetStats, network::error::Error> {
        self.call(|reply| Command::Stats { reply }).await
    }

    /// What the host has counted of received pubsub messages.
    pub async fn pubsub_stats(&self) -> Result<PubsubStats, network::error::Error> {
        self.call(|reply| Command::PubsubStats { reply }).await
    }

    /// The topics this node subscribes to.
    pub async fn topics(&self) -> Result<Vec<String>, network::error::Error> {
        self.call(|reply| Command::Topics { reply }).await
    }

    /// Peers subscribed to `topic` (any topic when `None`).
    pub async fn topic_peers(
        &self,
        topic: Option<String>,
    ) -> Result<Vec<PeerId>, network::error::Error> {
        self.call(|reply| Command::TopicPeers { topic, reply })
            .await
    }
}
