//! The membership keeper: the one writer of a node's [`Members`] table, and so of whose
//! writes count ([`Trust`](ipfsbench_core::trust::Trust)).
//!
//! On a node that belongs to a cluster it
//! - answers `/ipfsbench/member/1.0.0` with the node's own certificate, and asks every peer
//!   that connects for its certificate (once per connection; peers without one are asked
//!   again at most once a minute);
//! - reads the replicated state's `member/<peer>` records (certificates, which any reader
//!   checks under the root, so who wrote them does not matter) and `revoked/<peer>` records
//!   (revocations the root signed); it publishes its own certificate there, and takes a
//!   renewed one a master wrote for it;
//! - cuts off a revoked peer (disconnected, its connections refused);
//! - on a master holding the root, renews the certificates of connected members once two
//!   thirds of their lifetime have passed.
//!
//! After each change the trusted writers are recomputed ([`Settings::state_writers`]), which
//! the replica and the index read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use ipfsbench_core::network::Client;
use ipfsbench_core::repo::Repo;
use ipfsbench_core::state;
use ipfsbench_protocols::index::{read_frame, write_frame};
use ipfsbench_protocols::membership::{Grant, MAX_CERT_BYTES, MEMBER_PROTOCOL};
use libp2p::identity::PublicKey;
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::members::{Cluster, Members};
use super::root::{self, Issuer};
use crate::settings::Settings;

/// How long one certificate exchange may take.
const EXCHANGE: Duration = Duration::from_secs(10);
/// Exchanges under way at once, each way.
const MAX_EXCHANGES: usize = 16;
/// How often expiry, renewal and peers not yet asked are looked at.
const TICK: Duration = Duration::from_secs(5);
/// A peer that presented no certificate is asked again after this long (it may have been
/// starting, or joining).
const ASK_AGAIN: Duration = Duration::from_secs(10);
/// A peer that connects again this soon is not asked again.
const RECONNECT: Duration = Duration::from_secs(5);
/// Peers remembered as asked, at most.
const MAX_ASKED: usize = 4096;
/// The state is read again at most this often while it changes.
const RESCAN: Duration = Duration::from_millis(300);

/// The state key of `peer`'s certificate.
pub fn member_key(peer: &PeerId) -> Vec<u8> {
    format!("member/{peer}").into_bytes()
}

/// The state key of `peer`'s revocation.
pub fn revoked_key(peer: &PeerId) -> Vec<u8> {
    format!("revoked/{peer}").into_bytes()
}

/// Whether a certificate issued at `issued` that expires at `expires` is due for renewal at
/// `now`: two thirds of its lifetime have passed, and it has not expired.
pub fn due_for_renewal(issued: u64, expires: u64, now: u64) -> bool {
    let lifetime = expires.saturating_sub(issued);
    now < expires && now >= issued.saturating_add(lifetime / 3 * 2)
}

/// A running keeper. See the module docs.
#[derive(Debug)]
pub struct Keeper {
    task: tokio::task::JoinHandle<()>,
    serve: tokio::task::JoinHandle<()>,
    joined: mpsc::Sender<()>,
}

/// What the keeper works with.
#[derive(Debug)]
pub struct Parts {
    /// The host.
    pub client: Client,
    /// The replicated state.
    pub state: state::Handle,
    /// The repo (its `cluster/` directory).
    pub repo: Arc<Repo>,
    /// The settings, whose `members` table the keeper fills.
    pub settings: Settings,
    /// The root, on a master holding it.
    pub issuer: Option<Arc<Issuer>>,
}

impl Keeper {
    /// Starts the keeper; it loads the cluster from the repo, if the repo belongs to one.
    pub fn start(parts: Parts) -> Self {
        let (joined, joined_rx) = mpsc::channel(1);
        let me = parts.repo.peer_id();
        let serve = tokio::spawn(serve(
            parts.client.clone(),
            parts.settings.members.clone(),
            me,
        ));
        let actor = Actor {
            me,
            asked: HashMap::new(),
            parts,
        };
        Self {
            task: tokio::spawn(actor.run(joined_rx)),
            serve,
            joined,
        }
    }

    /// Tells the keeper the repo now belongs to a cluster (the node just joined one).
    pub async fn joined(&self) {
        let _ = self.joined.send(()).await;
    }

    /// Stops the keeper.
    pub fn shutdown(self) {
        self.task.abort();
        self.serve.abort();
    }
}

/// Answers certificate requests with this node's certificate, a few at a time.
async fn serve(client: Client, members: Members, me: PeerId) {
    let mut incoming = match client.streams().accept(MEMBER_PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!("serving {MEMBER_PROTOCOL}: {e}");
            return;
        }
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_EXCHANGES));
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::debug!(%peer, "too many certificate requests at once; one dropped");
            continue;
        };
        let own = members.get(&me).map(|m| m.signed);
        tokio::spawn(async move {
            let answer = async {
                if let Some(own) = own {
                    if write_frame(&mut stream, &own).await.is_err() {
                        return;
                    }
                }
                let _ = futures::AsyncWriteExt::close(&mut stream).await;
            };
            let _ = tokio::time::timeout(EXCHANGE, answer).await;
            drop(permit);
        });
    }
}

/// Takes the cluster and this node's certificate from `repo` into `members`, if the repo
/// belongs to a cluster; whether it does. Called before the host starts, so that the node
/// presents its certificate from its first connection.
pub fn load_repo(repo: &Repo, members: &Members) -> bool {
    let info = match root::info(repo) {
        Ok(Some(info)) => info,
        Ok(None) => return false,
        Err(e) => {
            tracing::error!("reading the cluster of this repo: {e}");
            return false;
        }
    };
    let key = multibase::Base::Base64
        .decode(&info.root)
        .ok()
        .and_then(|b| PublicKey::try_decode_protobuf(&b).ok());
    let Some(root_key) = key else {
        tracing::error!("cluster.json: the root is not a public key");
        return false;
    };
    members.set_cluster(Cluster {
        name: info.name,
        root: root_key,
    });
    let path = root::dir(repo).join("member.cert");
    match std::fs::read(&path) {
        Ok(own) => {
            if let Err(e) = members.offer(&own, Some(repo.peer_id()), crate::clock::now_ms()) {
                tracing::warn!("this node's certificate does not hold: {e}");
            }
        }
        Err(e) => tracing::debug!("{}: {e}", path.display()),
    }
    true
}

/// Certificate requests under way.
type Asks = FuturesUnordered<BoxFuture<'static, (PeerId, Result<Vec<u8>, String>)>>;

/// Asks `peer` for its certificate.
async fn ask(client: Client, peer: PeerId) -> (PeerId, Result<Vec<u8>, String>) {
    let exchange = async {
        let mut stream = client
            .streams()
            .open_stream(peer, MEMBER_PROTOCOL)
            .await
            .map_err(|e| e.to_string())?;
        read_frame(&mut stream, MAX_CERT_BYTES)
            .await
            .map_err(|e| e.to_string())
    };
    let result = match tokio::time::timeout(EXCHANGE, exchange).await {
        Ok(r) => r,
        Err(_) => Err("no answer".into()),
    };
    (peer, result)
}

struct Actor {
    parts: Parts,
    me: PeerId,
    /// Peers asked for their certificate, and when.
    asked: HashMap<PeerId, Instant>,
}

impl Actor {
    fn members(&self) -> &Members {
        &self.parts.settings.members
    }

    async fn run(mut self, mut joined: mpsc::Receiver<()>) {
        let mut connected = self.parts.client.connected();
        let mut changes = self.parts.state.changes();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asks = Asks::new();
        let mut rescan: Option<Instant> = None;
        self.load().await;
        self.ask_connected(&mut asks).await;
        loop {
            tokio::select! {
                event = connected.recv() => match event {
                    Ok(peer) => self.ask_later(peer, &mut asks, RECONNECT),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                Some((peer, result)) = asks.next() => self.presented(peer, result).await,
                Ok(()) = changes.changed() => {
                    rescan.get_or_insert_with(|| Instant::now() + RESCAN);
                }
                () = sleep_until(rescan), if rescan.is_some() => {
                    rescan = None;
                    changes.borrow_and_update();
                    self.read_state().await;
                }
                _ = tick.tick() => self.on_tick(&mut asks).await,
                Some(()) = joined.recv() => {
                    // Just joined: learn the peers already connected (the masters among
                    // them) now, not at the next tick, so their first assignment counts.
                    self.asked.clear();
                    self.load().await;
                    self.ask_connected(&mut asks).await;
                }
            }
        }
    }

    /// Takes the cluster and this node's certificate from the repo, then the state's records.
    async fn load(&mut self) {
        if !load_repo(&self.parts.repo, self.members()) {
            return;
        }
        self.read_state().await;
        self.publish_own().await;
    }

    /// Applies the state's revocations and certificates.
    async fn read_state(&mut self) {
        if !self.members().active() {
            return;
        }
        let state = &self.parts.state;
        let now = crate::clock::now_ms();
        for kv in state.scan(b"revoked/") {
            let Ok((_, value)) = kv else { continue };
            match self.members().revoke(&value) {
                Ok(Some(peer)) => {
                    tracing::warn!(%peer, "removed from the cluster");
                    if peer == self.me {
                        tracing::error!("this node was removed from the cluster: nothing it writes counts any more");
                    } else {
                        let _ = self.parts.client.cut_off(peer).await;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("a revocation in the state does not hold: {e}"),
            }
        }
        let own_before = self.members().get(&self.me).map(|m| m.signed);
        for kv in state.scan(b"member/") {
            let Ok((key, value)) = kv else { continue };
            // The state is read again at every change: a record already held is not checked
            // again.
            let peer = std::str::from_utf8(&key[b"member/".len()..])
                .ok()
                .and_then(|p| p.parse::<PeerId>().ok());
            if let Some(peer) = peer {
                if self.members().get(&peer).is_some_and(|m| m.signed == value) {
                    continue;
                }
            }
            if let Err(e) = self.members().offer(&value, None, now) {
                tracing::debug!("a member record in the state does not hold: {e}");
            }
        }
        let own_after = self.members().get(&self.me).map(|m| m.signed);
        if let Some(renewed) = own_after.filter(|c| Some(c) != own_before.as_ref()) {
            if own_before.is_some() {
                match root::replace_certificate(&self.parts.repo, &renewed) {
                    Ok(()) => tracing::info!("this node's certificate was renewed"),
                    Err(e) => tracing::warn!("keeping the renewed certificate: {e}"),
                }
            }
        }
        self.update_trust();
    }

    /// Writes this node's certificate into the state when the state holds another (older)
    /// one or none; leechers' writes count nowhere, so they do not.
    async fn publish_own(&self) {
        let Some(own) = self.members().get(&self.me) else {
            return;
        };
        if own.certificate.grant == Grant::Leecher {
            return;
        }
        let key = member_key(&self.me);
        if self.parts.state.get(&key).ok().flatten().as_deref() == Some(&own.signed[..]) {
            return;
        }
        if let Err(e) = self.parts.state.put(key, own.signed).await {
            tracing::warn!("publishing this node's certificate: {e}");
        }
    }

    fn update_trust(&self) {
        let writers = self.parts.settings.state_writers(self.me);
        self.members().trust().set(writers);
    }

    /// Asks `peer` for its certificate, unless it was asked a moment ago or too many asks
    /// are under way (the tick asks again).
    fn ask_later(&mut self, peer: PeerId, asks: &mut Asks, again: Duration) {
        if !self.members().active() || peer == self.me || asks.len() >= MAX_EXCHANGES {
            return;
        }
        if self.asked.get(&peer).is_some_and(|at| at.elapsed() < again) {
            return;
        }
        if self.asked.len() >= MAX_ASKED {
            self.asked.retain(|_, at| at.elapsed() < ASK_AGAIN);
            if self.asked.len() >= MAX_ASKED {
                return;
            }
        }
        self.asked.insert(peer, Instant::now());
        asks.push(ask(self.parts.client.clone(), peer).boxed());
    }

    async fn presented(&mut self, peer: PeerId, result: Result<Vec<u8>, String>) {
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(%peer, "no certificate: {e}");
                return;
            }
        };
        match self
            .members()
            .offer(&bytes, Some(peer), crate::clock::now_ms())
        {
            Ok(true) => {
                tracing::info!(%peer, "a member connected");
                self.asked.remove(&peer);
                self.update_trust();
            }
            Ok(false) => {}
            Err(e) => {
                tracing::info!(%peer, "its certificate is refused: {e}");
                if self.members().is_revoked(&peer) {
                    let _ = self.parts.client.cut_off(peer).await;
                }
            }
        }
    }

    async fn on_tick(&mut self, asks: &mut Asks) {
        // Certificates that expired drop out of the trusted writers.
        self.update_trust();
        if !self.members().active() {
            return;
        }
        self.asked.retain(|_, at| at.elapsed() < ASK_AGAIN);
        self.ask_connected(asks).await;
        self.renew().await;
    }

    /// Asks the connected peers that are not members (nor removed) for their certificates.
    async fn ask_connected(&mut self, asks: &mut Asks) {
        if !self.members().active() {
            return;
        }
        if let Ok(peers) = self.parts.client.peers().await {
            for p in peers {
                if self.members().get(&p.peer).is_none() && !self.members().is_revoked(&p.peer) {
                    self.ask_later(p.peer, asks, ASK_AGAIN);
                }
            }
        }
    }

    /// On a master holding the root: renews connected members' certificates that are due.
    async fn renew(&self) {
        let Some(issuer) = &self.parts.issuer else {
            return;
        };
        let now = crate::clock::now_ms();
        let connected: HashSet<PeerId> = match self.parts.client.peers().await {
            Ok(peers) => peers.into_iter().map(|p| p.peer).collect(),
            Err(_) => return,
        };
        for member in self.members().list_at(now) {
            let c = &member.certificate;
            let peer = member.peer();
            if !(peer == self.me || connected.contains(&peer))
                || !due_for_renewal(c.issued_ms, c.expires_ms, now)
            {
                continue;
            }
            let lifetime = c.expires_ms.saturating_sub(c.issued_ms);
            match issuer
                .root
                .certify(peer, c.grant, c.tags.clone(), now, lifetime)
            {
                Ok(renewed) => {
                    if let Err(e) = self.parts.state.put(member_key(&peer), renewed).await {
                        tracing::warn!(%peer, "renewing a certificate: {e}");
                    } else {
                        tracing::info!(%peer, "renewed a member's certificate");
                    }
                }
                Err(e) => tracing::warn!(%peer, "renewing a certificate: {e}"),
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_renewed_in_their_last_third() {
        assert!(!due_for_renewal(0, 90, 10));
        assert!(!due_for_renewal(0, 90, 59));
        assert!(due_for_renewal(0, 90, 60));
        assert!(due_for_renewal(0, 90, 89));
        assert!(!due_for_renewal(0, 90, 90), "expired: too late");
    }
}
