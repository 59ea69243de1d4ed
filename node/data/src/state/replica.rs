//! The actor that owns the replicated state: it writes local changes as deltas, announces
//! heads, fetches what peers announce, applies deltas in causal order, and compacts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use ipfsbench_protocols::state::delta::{MAX_DELTA_BYTES, MAX_OPS};
use ipfsbench_protocols::state::{Announce, Delta, DeltaRef, Op, StateError, WireRef};
use ipfsbench_protocols::task::WireCid;
use libp2p::PeerId;

use crate::trust::Refused;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::clock::{self, Clock};
use super::config::Config;
use super::db::{Applied, Db};
use super::error::Error;
use super::handle::{Command, Handle};
use super::snapshots::{self, FLOOR_KEY, SNAPSHOT_KEY};
use super::status::Status;
use super::writes::{blocking, check_ops, size, BATCH_BYTES};
use crate::hex;
use ipfsbench_net::network::{Client, PubsubMessage};
use ipfsbench_store::repo::Repo;

/// Blocks fetched at once.
const FETCHES: usize = 32;
/// Announcements come at most this often, however fast the state changes.
const ANNOUNCE_GAP: Duration = Duration::from_millis(50);
/// The clock reserve written ahead: a restart starts past every promise made. Milliseconds.
const CLOCK_RESERVE_MS: u64 = 60_000;
/// Waiting gossip messages, at most; more are dropped by the host and counted there.
const GOSSIP_QUEUE: usize = 4_096;
/// Snapshots remembered as tried, at most (then forgotten, and tried again if announced).
const MAX_TRIED_SNAPSHOTS: usize = 1_024;
/// Parents of pending deltas asked again per announcement, at most.
const REWANT_PER_ANNOUNCE: usize = 1_024;
/// A snapshot that failed to load is tried again after this long.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(30);
/// Bytes of fetched deltas waiting for their parents, at most; past it, fetched deltas are
/// dropped and fetched again later.
const MAX_PENDING_BYTES: usize = 256 << 20;
/// The meta key of the clock reserve.
const CLOCK_KEY: &str = "clock";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Fetch = BoxFuture<'static, (DeltaRef, PeerId, bool)>;
type WriteReply = oneshot::Sender<Result<DeltaRef, Error>>;

/// The running replica.
#[derive(Debug)]
pub struct Replica {
    handle: Handle,
    task: JoinHandle<()>,
}

impl Replica {
    /// Starts the replica of `repo`'s state on `client`'s network (on the current tokio
    /// runtime).
    pub fn start(repo: Arc<Repo>, client: Client, config: Config) -> Result<Self, Error> {
        let db = Db::open(repo.db())?;
        let me = repo.peer_id();
        let mut start = db.meta_u64(CLOCK_KEY)?.unwrap_or(0);
        for v in db.versions()? {
            start = start.max(v.stamp);
        }
        let (tx, rx) = mpsc::channel(1_024);
        let (changes, watch) = tokio::sync::watch::channel(0u64);
        let actor = Actor {
            changes,
            repo,
            client,
            db: db.clone(),
            config,
            me,
            clock: Clock::starting_after(start),
            reserve: start,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            waiting: HashSet::new(),
            refused: HashSet::new(),
            queue: VecDeque::new(),
            fetches: FuturesUnordered::new(),
            promises: HashMap::new(),
            snapshots: HashMap::new(),
            tried_snapshots: HashMap::new(),
            heard: HashMap::new(),
            since_snapshot: 0,
            announce_due: Some(Instant::now()),
            last_announce: Instant::now(),
            status: Status::default(),
        };
        let task = tokio::spawn(async move {
            let topic = actor.config.topic.clone();
            match actor
                .client
                .subscribe_with_capacity(topic, GOSSIP_QUEUE)
                .await
            {
                Ok(gossip) => actor.run(rx, gossip).await,
                Err(e) => tracing::error!("the replicated state cannot subscribe: {e}"),
            }
        });
        Ok(Self {
            handle: Handle::new(tx, db, me, watch),
            task,
        })
    }

    /// A handle to write and read through.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops the actor and waits for it.
    pub async fn shutdown(self) {
        let _ = self.handle.tx.send(Command::Stop).await;
        let _ = self.task.await;
    }
}

/// Refused deltas remembered, at most; past it the memory starts again.
const MAX_REFUSED_DELTAS: usize = 4096;

struct Actor {
    /// Moved on every change of the state.
    changes: tokio::sync::watch::Sender<u64>,
    repo: Arc<Repo>,
    client: Client,
    db: Db,
    config: Config,
    me: PeerId,
    clock: Clock,
    /// The clock stamp written ahead in the database.
    reserve: u64,
    /// Fetched deltas waiting for their parents, by (writer, seq), with their sizes.
    pending: BTreeMap<(PeerId, u64), (Cid, Delta, usize)>,
    /// Bytes of the pending deltas.
    pending_bytes: usize,
    /// Deltas pending, queued or being fetched.
    waiting: HashSet<Cid>,
    /// Deltas refused for writing keys their writer may not write (at most
    /// [`MAX_REFUSED_DELTAS`]): not fetched again.
    refused: HashSet<Cid>,
    /// Deltas to fetch, with the peer to ask.
    queue: VecDeque<(DeltaRef, PeerId)>,
    fetches: FuturesUnordered<Fetch>,
    /// Each trusted peer's latest promise: (its own sequence, its clock).
    promises: HashMap<PeerId, (u64, u64)>,
    /// Each peer's newest snapshot.
    snapshots: HashMap<PeerId, Cid>,
    /// Snapshots tried (loaded or failed), not tried again.
    /// Snapshots tried: loaded (`None`), or failed at a moment.
    tried_snapshots: HashMap<Cid, Option<Instant>>,
    /// The highest sequence heard of, per writer.
    heard: HashMap<PeerId, u64>,
    since_snapshot: u64,
    announce_due: Option<Instant>,
    last_announce: Instant,
    status: Status,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut gossip: mpsc::Receiver<PubsubMessage>,
    ) {
        let mut ticker = tokio::time::interval(self.config.announce_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.announce_due;
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(cmd) => if blocking(|| self.on_command(cmd, &mut rx)) { break },
                },
                Some(m) = gossip.recv() => self.on_gossip(m).await,
                Some((r, from, ok)) = self.fetches.next(), if !self.fetches.is_empty() => {
                    self.on_fetched(r, from, ok).await;
                }
                _ = ticker.tick() => blocking(|| self.on_tick()),
                _ = sleep_until(due), if due.is_some() => self.announce().await,
            }
            self.start_fetches();
        }
        if let Err(e) = self.db.flush() {
            tracing::warn!("flushing the replicated state: {e}");
        }
    }

    /// Handles `cmd`; `true` when the actor is to stop.
    fn on_command(&mut self, cmd: Command, rx: &mut mpsc::Receiver<Command>) -> bool {
        match cmd {
            Command::Write { ops, reply } => {
                let mut batch = vec![(ops, reply)];
                let mut deferred = None;
                let (mut count, mut bytes) = size(&batch[0].0);
                // Batch the writes already waiting into one delta, within its limits; a
                // write that would pass them starts the next batch.
                while count < MAX_OPS / 2 && bytes < BATCH_BYTES / 2 {
                    match rx.try_recv() {
                        Ok(Command::Write { ops, reply }) => {
                            let (c, b) = size(&ops);
                            if count + c > MAX_OPS / 2 || bytes + b > BATCH_BYTES {
                                deferred = Some(Command::Write { ops, reply });
                                break;
                            }
                            count += c;
                            bytes += b;
                            batch.push((ops, reply));
                        }
                        Ok(other) => {
                            deferred = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.write(batch);
                if let Some(cmd) = deferred {
                    return self.on_command(cmd, rx);
                }
            }
            Command::Status { reply } => {
                let _ = reply.send(self.report());
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::Stop => return true,
        }
        false
    }

    /// Commits a batch of writes as one delta; a write that breaks a limit fails alone.
    fn write(&mut self, batch: Vec<(Vec<Op>, WriteReply)>) {
        let mut ops: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut replies = Vec::new();
        for (write, reply) in batch {
            if let Err(e) = check_ops(&write) {
                let _ = reply.send(Err(e.into()));
                continue;
            }
            for op in write {
                ops.insert(op.key, op.value);
            }
            replies.push(reply);
        }
        if replies.is_empty() {
            return;
        }
        let ops = ops
            .into_iter()
            .map(|(key, value)| Op { key, value })
            .collect();
        let result = self.commit(ops).map_err(Arc::new);
        for reply in replies {
            let _ = reply.send(match &result {
                Ok(r) => Ok(*r),
                Err(e) => Err(Error::Commit(Arc::clone(e))),
            });
        }
    }

    fn commit(&mut self, ops: Vec<Op>) -> Result<DeltaRef, Error> {
        let own = self.db.version(&self.me)?;
        let parents = self.db.heads()?;
        let delta = Delta {
            writer: self.me,
            seq: own.map_or(0, |v| v.seq) + 1,
            height: parents.iter().map(|p| p.height).max().unwrap_or(0) + 1,
            stamp: self.clock.tick(now_ms()),
            parents,
            ops,
        };
        delta.check()?;
        let bytes = delta.encode();
        if bytes.len() > MAX_DELTA_BYTES {
            return Err(StateError::TooLarge(bytes.len()).into());
        }
        let cid = snapshots::put_kept(&self.repo, bytes)?;
        self.repo.store().flush()?;
        match self.db.apply(cid, &delta)? {
            Applied::Changed(_) => {}
            other => {
                tracing::error!(?other, "a local delta did not apply");
                return Err(StateError::Invalid("local delta did not apply").into());
            }
        }
        self.db.flush()?;
        self.status.written += 1;
        self.since_snapshot += 1;
        self.changed();
        Ok(delta.reference(cid))
    }

    fn changed(&mut self) {
        self.changes.send_modify(|n| *n += 1);
        if self.announce_due.is_none() {
            self.announce_due = Some((self.last_announce + ANNOUNCE_GAP).max(Instant::now()));
        }
    }

    fn on_tick(&mut self) {
        self.announce_due = Some(Instant::now());
        let every = self.config.snapshot_every;
        if every > 0 && self.since_snapshot >= every {
            if let Err(e) = self.snapshot() {
                tracing::warn!("writing a state snapshot: {e}");
            }
        }
    }

    async fn announce(&mut self) {
        self.announce_due = None;
        self.last_announce = Instant::now();
        match self.announcement() {
            Ok(payload) => {
                if let Err(e) = self
                    .client
                    .publish(self.config.topic.clone(), payload)
                    .await
                {
                    // No peers on the topic yet is normal; the next tick tries again.
                    tracing::debug!("announcing state heads: {e}");
                }
            }
            Err(e) => tracing::warn!("state announcement: {e}"),
        }
    }

    fn announcement(&mut self) -> Result<Vec<u8>, Error> {
        // Promise only what a restart cannot break: write the clock reserve ahead first.
        let stamp = self.clock.tick(now_ms());
        if stamp > self.reserve {
            self.reserve = stamp.saturating_add(clock::from_millis(CLOCK_RESERVE_MS));
            self.db.set_meta_u64(CLOCK_KEY, self.reserve)?;
            self.db.flush()?;
        }
        let summary = self.db.summary()?;
        let snapshot = self
            .db
            .meta_bytes(SNAPSHOT_KEY)?
            .and_then(|b| Cid::try_from(b.as_slice()).ok())
            .map(WireCid);
        let announce = Announce {
            heads: self.db.heads()?.into_iter().map(WireRef::from).collect(),
            own_seq: self.db.version(&self.me)?.map_or(0, |v| v.seq),
            stamp,
            entries: summary.live + summary.tombstones,
            digest: summary.digest,
            snapshot,
        };
        Ok(announce.encode()?)
    }

    async fn on_gossip(&mut self, m: PubsubMessage) {
        let Some(from) = m.from.filter(|p| *p != self.me) else {
            return;
        };
        if !self.config.trusted.allows(&from) {
            self.status.dropped_untrusted += 1;
            self.config.trusted.refuse(from, Refused::State);
            return;
        }
        // The host checked the payload before delivering it.
        let Ok(announce) = Announce::decode(&m.data) else {
            self.status.invalid += 1;
            return;
        };
        self.promises
            .insert(from, (announce.own_seq, announce.stamp));
        // A snapshot's entries name their writers without their signatures: it is taken only
        // from a peer that may write every key.
        if let Some(snapshot) = announce
            .snapshot
            .filter(|_| self.config.trusted.full_writer(&from))
        {
            self.snapshots.insert(from, snapshot.0);
        }
        let heads: Vec<DeltaRef> = announce.heads.into_iter().map(DeltaRef::from).collect();
        let mut behind = 0u64;
        for h in heads
            .iter()
            .filter(|h| self.config.trusted.allows(&h.writer))
        {
            let seen = self.heard.entry(h.writer).or_default();
            *seen = (*seen).max(h.seq);
            let have = self
                .db
                .version(&h.writer)
                .ok()
                .flatten()
                .map_or(0, |v| v.seq);
            behind += h.seq.saturating_sub(have);
        }
        if behind > self.config.catch_up_from_snapshot {
            self.catch_up(from).await;
        }
        for h in heads {
            self.want(h, from);
        }
        // Parents of waiting deltas whose fetch failed before: ask again (the lowest
        // sequences first, a bounded number per announcement).
        let missing: Vec<DeltaRef> = self
            .pending
            .values()
            .flat_map(|(_, d, _)| d.parents.iter().copied())
            .take(REWANT_PER_ANNOUNCE)
            .collect();
        for p in missing {
            self.want(p, from);
        }
    }

    /// Starts from `from`'s snapshot, if it has one not tried yet.
    async fn catch_up(&mut self, from: PeerId) {
        let Some(cid) = self.snapshots.get(&from).copied() else {
            return;
        };
        if self.tried_snapshots.len() >= MAX_TRIED_SNAPSHOTS {
            self.tried_snapshots.clear();
        }
        // Each snapshot is tried once, and again only if the last try failed a while ago.
        match self.tried_snapshots.get(&cid) {
            Some(None) => return,
            Some(Some(failed)) if failed.elapsed() < SNAPSHOT_RETRY => return,
            _ => {}
        }
        self.tried_snapshots.insert(cid, None);
        let timeout = self.config.fetch_timeout;
        match snapshots::load(&self.repo, &self.client, &self.db, cid, from, timeout).await {
            Ok(root) => {
                tracing::info!(%cid, entries = root.entries, "started from a peer's snapshot");
                self.status.snapshots_loaded += 1;
                for c in &root.covered {
                    self.clock.observe(c.stamp);
                }
                self.drain();
                // This node's own snapshot now covers what it loaded, before any history
                // is let go.
                if let Err(e) = self.snapshot() {
                    tracing::warn!("writing a state snapshot: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("loading snapshot {cid}: {e}");
                self.tried_snapshots.insert(cid, Some(Instant::now()));
            }
        }
    }

    /// Queues a fetch of `r` from `from` unless it is applied, waiting, refused or untrusted.
    fn want(&mut self, r: DeltaRef, from: PeerId) {
        if self.waiting.contains(&r.cid)
            || self.refused.contains(&r.cid)
            || self.db.has(&r).unwrap_or(true)
        {
            return;
        }
        if !self.config.trusted.allows(&r.writer) {
            self.status.dropped_untrusted += 1;
            self.config.trusted.refuse(r.writer, Refused::State);
            return;
        }
        if self.waiting.len() >= self.config.max_pending {
            // Over the bound: drop; the next announcement asks again.
            return;
        }
        self.waiting.insert(r.cid);
        self.queue.push_back((r, from));
    }

    fn start_fetches(&mut self) {
        while self.fetches.len() < FETCHES {
            let Some((r, from)) = self.queue.pop_front() else {
                return;
            };
            let client = self.client.clone();
            let timeout = self.config.fetch_timeout;
            self.fetches.push(Box::pin(async move {
                let ok = matches!(
                    tokio::time::timeout(timeout, client.fetch_block(r.cid, vec![from])).await,
                    Ok(Ok(_))
                );
                (r, from, ok)
            }));
        }
    }

    async fn on_fetched(&mut self, r: DeltaRef, from: PeerId, ok: bool) {
        if !ok {
            self.waiting.remove(&r.cid);
            self.status.fetch_failures += 1;
            // The delta may be compacted away there: its snapshot covers it.
            self.catch_up(from).await;
            return;
        }
        let (delta, bytes) = match self.read_delta(&r) {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(cid = %r.cid, "dropping a delta: {e}");
                self.waiting.remove(&r.cid);
                self.status.invalid += 1;
                return;
            }
        };
        for p in &delta.parents {
            self.want(*p, from);
        }
        if self.pending_bytes + bytes > MAX_PENDING_BYTES {
            self.waiting.remove(&r.cid);
            return;
        }
        self.pending_bytes += bytes;
        if let Some((_, _, old)) = self
            .pending
            .insert((r.writer, r.seq), (r.cid, delta, bytes))
        {
            self.pending_bytes -= old;
        }
        self.drain();
    }

    /// The fetched delta `r`, checked against what named it; kept from GC.
    fn read_delta(&mut self, r: &DeltaRef) -> Result<(Delta, usize), Error> {
        let bytes = self
            .repo
            .store()
            .get(&r.cid)?
            .ok_or(StateError::Invalid("fetched block is gone"))?;
        let delta = Delta::decode(&bytes)?;
        if delta.reference(r.cid) != *r {
            return Err(StateError::Invalid("delta is not what its link says").into());
        }
        self.repo.pins().keep(&r.cid)?;
        Ok((delta, bytes.len()))
    }

    /// Forgets the pending delta `k`.
    fn unpend(&mut self, k: &(PeerId, u64)) {
        if let Some((cid, _, bytes)) = self.pending.remove(k) {
            self.waiting.remove(&cid);
            self.pending_bytes -= bytes;
        }
    }

    /// Applies every pending delta whose parents are applied, in causal order.
    fn drain(&mut self) {
        loop {
            let mut progress = false;
            let writers: Vec<PeerId> = {
                let mut w: Vec<PeerId> = self.pending.keys().map(|(w, _)| *w).collect();
                w.dedup();
                w
            };
            for writer in writers {
                let have = self.db.version(&writer).ok().flatten().map_or(0, |v| v.seq);
                // Anything at or below what is applied is done.
                let stale: Vec<(PeerId, u64)> = self
                    .pending
                    .range((writer, 0)..=(writer, have))
                    .map(|(k, _)| *k)
                    .collect();
                for k in stale {
                    self.unpend(&k);
                }
                let Some((cid, delta, _)) = self.pending.get(&(writer, have + 1)) else {
                    continue;
                };
                let (cid, stamp) = (*cid, delta.stamp);
                if let Some(op) = delta
                    .ops
                    .iter()
                    .find(|op| !self.config.trusted.may_write(&writer, &op.key))
                {
                    // A key its writer may not write: the whole delta is refused, here and on
                    // every node that applies the same rule, and not fetched again.
                    tracing::warn!(%writer, %cid, key = %String::from_utf8_lossy(&op.key), "a delta writes a key its writer may not write; refused");
                    self.status.dropped_untrusted += 1;
                    self.config.trusted.refuse(writer, Refused::State);
                    if self.refused.len() >= MAX_REFUSED_DELTAS {
                        self.refused.clear();
                    }
                    self.refused.insert(cid);
                    self.unpend(&(writer, have + 1));
                    continue;
                }
                match self.db.apply(cid, delta) {
                    Ok(Applied::NotReady) => continue,
                    Ok(Applied::Changed(_)) => {
                        self.status.applied += 1;
                        self.since_snapshot += 1;
                        self.clock.observe(stamp);
                        progress = true;
                    }
                    Ok(Applied::Already) => progress = true,
                    Ok(Applied::Invalid) => self.status.invalid += 1,
                    Err(e) => tracing::warn!("applying delta {cid}: {e}"),
                }
                self.unpend(&(writer, have + 1));
            }
            if !progress {
                break;
            }
            self.changed();
        }
    }

    /// Writes a snapshot now.
    fn snapshot(&mut self) -> Result<Cid, Error> {
        let floor = self.floor()?;
        let (cid, collected) = snapshots::write(&self.repo, &self.db, floor)?;
        self.db.flush()?;
        self.status.tombstones_collected += collected;
        self.since_snapshot = 0;
        self.changed();
        Ok(cid)
    }

    /// The stamp at or below which no delta this node lacks can be: the lowest promise of
    /// the trusted writers whose promised deltas are all applied here (0 if one has none).
    fn floor(&self) -> Result<u64, Error> {
        // Only trusted writers' deltas are ever applied here, so only they can bring a late
        // write.
        let mut floor = self.clock.last();
        for m in self
            .config
            .trusted
            .writers()
            .iter()
            .filter(|m| **m != self.me)
        {
            let have = self.db.version(m)?.map_or(0, |v| v.seq);
            match self.promises.get(m) {
                Some(&(seq, stamp)) if seq <= have => floor = floor.min(stamp),
                _ => return Ok(self.db.meta_u64(FLOOR_KEY)?.unwrap_or(0)),
            }
        }
        Ok(floor.max(self.db.meta_u64(FLOOR_KEY)?.unwrap_or(0)))
    }

    fn report(&self) -> Result<Status, Error> {
        let summary = self.db.summary()?;
        let heads = self.db.heads()?;
        let versions = self.db.versions()?;
        let lag = self
            .heard
            .iter()
            .map(|(w, seq)| {
                let have = versions
                    .iter()
                    .find(|v| v.delta.writer == *w)
                    .map_or(0, |v| v.seq);
                seq.saturating_sub(have)
            })
            .max()
            .unwrap_or(0);
        Ok(Status {
            live: summary.live,
            tombstones: summary.tombstones,
            digest: hex::encode(&summary.digest),
            height: heads.iter().map(|h| h.height).max().unwrap_or(0),
            heads: heads.iter().map(|h| h.cid.to_string()).collect(),
            writers: versions
                .iter()
                .map(|v| (v.delta.writer.to_string(), v.seq))
                .collect(),
            pending: self.pending.len(),
            fetching: self.fetches.len() + self.queue.len(),
            snapshot: self
                .db
                .meta_bytes(SNAPSHOT_KEY)?
                .and_then(|b| Cid::try_from(b.as_slice()).ok())
                .map(|c| c.to_string()),
            lag,
            ..self.status.clone()
        })
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}
