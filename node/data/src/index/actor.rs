//! The index's actor: buffered rows become partitions, peers' manifests are merged, the
//! views follow; and the query path with its cache.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use ipfsbench_protocols::index::{Announce, Partition, Table, MAX_REPLACES};
use ipfsbench_protocols::task::WireCid;
use ipfsbench_sql::{ident, literal, Answer, Cell};
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::command::Command;
use super::config::Config;
use super::config::RESULTS_TIME;
use super::error::Error;
use super::shared::Shared;
use super::spool::Manifest;
use super::status::Status;
use super::{content, sync};
use crate::hex;
use crate::trust::Refused;
use ipfsbench_net::network::PubsubMessage;

/// How long a peer whose partition failed its check is not asked again.
const BAN: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) struct Synced {
    peer: PeerId,
    result: Result<Manifest, Error>,
}

pub(crate) struct Actor {
    shared: Arc<Shared>,
    config: Config,
    me: PeerId,
    own: Manifest,
    peers: HashMap<PeerId, Manifest>,
    pending: BTreeMap<Table, Vec<Vec<Cell>>>,
    syncing: HashSet<PeerId>,
    banned: HashMap<PeerId, Instant>,
    labels: BTreeMap<Cid, (Option<String>, Option<String>)>,
    last_flush: Instant,
    last_announce: Instant,
    next_content: Option<Instant>,
    content_digest: [u8; 32],
    synced_tx: mpsc::Sender<Synced>,
    synced_rx: Option<mpsc::Receiver<Synced>>,
}

impl Actor {
    pub(crate) fn open(shared: Arc<Shared>, config: Config) -> Result<Self, Error> {
        let me = shared.repo.peer_id();
        let mut own = Manifest::default();
        let mut peers = HashMap::new();
        for (peer, manifest) in shared.spool.manifests() {
            if peer == me {
                own = manifest;
            } else {
                peers.insert(peer, manifest);
            }
        }
        {
            let mut shared_manifests = shared.manifests.write().unwrap_or_else(|e| e.into_inner());
            shared_manifests.insert(me, own.clone());
            for (peer, m) in &peers {
                if config.trusted.allows(peer) {
                    shared_manifests.insert(*peer, m.clone());
                }
            }
        }
        let (synced_tx, synced_rx) = mpsc::channel(64);
        let next_content = config
            .content_every
            .map(|_| Instant::now() + Duration::from_secs(2));
        let actor = Self {
            shared,
            config,
            me,
            own,
            peers,
            pending: BTreeMap::new(),
            syncing: HashSet::new(),
            banned: HashMap::new(),
            labels: BTreeMap::new(),
            last_flush: Instant::now(),
            last_announce: Instant::now(),
            next_content,
            content_digest: [0; 32],
            synced_tx,
            synced_rx: Some(synced_rx),
        };
        actor.refresh_views()?;
        Ok(actor)
    }

    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut announcements: mpsc::Receiver<PubsubMessage>,
    ) {
        let Some(mut synced) = self.synced_rx.take() else {
            return;
        };
        let mut trust = self.config.trusted.changed();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(message) = announcements.recv() => self.on_announce(message),
                Some(done) = synced.recv() => self.on_synced(done),
                Ok(()) = trust.changed() => self.on_trust_changed(),
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Append { table, rows } => {
                let pending = self.pending.entry(table).or_default();
                pending.extend(rows);
                if pending.len() >= self.config.flush_rows {
                    let _ = self.flush(table);
                }
            }
            Command::Flush(reply) => {
                let tables: Vec<Table> = self.pending.keys().copied().collect();
                let mut result = Ok(());
                for table in tables {
                    if let Err(e) = self.flush(table) {
                        result = Err(e);
                    }
                }
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Labels(labels) => self.labels = labels,
        }
    }

    fn status(&self) -> Status {
        let mut status = Status {
            latest: self.own.latest,
            pending: self.pending.values().map(|r| r.len() as u64).sum(),
            counters: self.shared.counters.snapshot(),
            ..Status::default()
        };
        let mut nodes = HashSet::new();
        for (peer, p) in self.visible() {
            nodes.insert(peer);
            *status.partitions.entry(p.table.name().into()).or_default() += 1;
            *status.rows.entry(p.table.name().into()).or_default() += p.rows;
        }
        status.nodes = nodes.len() as u64;
        status
    }

    /// The live partitions the views read: ours, and trusted peers' that are here.
    fn visible(&self) -> Vec<(PeerId, &Partition)> {
        let mut out: Vec<(PeerId, &Partition)> = self.own.live().map(|p| (self.me, p)).collect();
        for (peer, manifest) in &self.peers {
            if !self.config.trusted.allows(peer) {
                continue;
            }
            out.extend(
                manifest
                    .live()
                    .filter(|p| self.shared.spool.part(&p.cid.0).exists())
                    .map(|p| (*peer, p)),
            );
        }
        out
    }

    fn refresh_views(&self) -> Result<(), Error> {
        let visible = self.visible();
        let mut views = Vec::new();
        for table in Table::ALL {
            let schema = self.shared.spool.schema(table);
            let mut cids: Vec<Cid> = visible
                .iter()
                .filter(|(_, p)| p.table == table)
                .map(|(_, p)| p.cid.0)
                .collect();
            cids.sort();
            let name = ident(schema.name);
            let sql = if cids.is_empty() {
                let empty = ident(&format!("{}__empty", schema.name));
                format!(
                    "CREATE OR REPLACE TABLE {empty} {}; CREATE OR REPLACE VIEW {name} AS SELECT * FROM {empty};",
                    schema.columns_sql()
                )
            } else {
                let files: Vec<String> = cids
                    .iter()
                    .map(|c| literal(&self.shared.spool.part(c).display().to_string()))
                    .collect();
                format!(
                    "CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{}]);",
                    files.join(", ")
                )
            };
            views.push(sql);
            let mut h = Sha256::new();
            for c in &cids {
                h.update(c.to_bytes());
            }
            self.shared
                .set_input(&format!("view:{}", schema.name), hex::encode(&h.finalize()));
        }
        self.shared.define_views(views)
    }

    /// Writes the buffered rows of `table` as one partition.
    fn flush(&mut self, table: Table) -> Result<(), Error> {
        let rows = self.pending.remove(&table).unwrap_or_default();
        self.last_flush = Instant::now();
        if rows.is_empty() {
            return Ok(());
        }
        let replaces = match table {
            // A content listing is whole: it replaces the previous ones.
            Table::Content => self
                .own
                .live()
                .filter(|p| p.table == Table::Content)
                .map(|p| p.cid)
                .take(MAX_REPLACES)
                .collect(),
            Table::Results => Vec::new(),
        };
        let result = tokio::task::block_in_place(|| self.write(table, &rows, replaces));
        if let Err(e) = &result {
            tracing::warn!("writing a {} partition: {e}", table.name());
        }
        result
    }

    fn write(
        &mut self,
        table: Table,
        rows: &[Vec<Cell>],
        replaces: Vec<WireCid>,
    ) -> Result<(), Error> {
        let schema = *self.shared.spool.schema(table);
        let time = schema
            .index(match table {
                Table::Results => RESULTS_TIME,
                Table::Content => "listed_at",
            })
            .unwrap_or(0);
        let times = rows.iter().filter_map(|r| match r.get(time) {
            Some(Cell::TimeMs(ms)) => u64::try_from(*ms).ok(),
            _ => None,
        });
        let (first, last) = times.fold((u64::MAX, 0), |(a, b), t| (a.min(t), b.max(t)));
        let batch = schema.batch(rows)?;
        let tmp = self.shared.spool.scratch("part.parquet");
        let n = self
            .shared
            .engine()?
            .write_parquet(&schema, vec![batch], &tmp)?;
        self.add(table, &tmp, n, (first.min(last), last), replaces)
    }

    /// Adds the Parquet file `tmp` as our next partition.
    fn add(
        &mut self,
        table: Table,
        tmp: &Path,
        rows: u64,
        (first_ms, last_ms): (u64, u64),
        replaces: Vec<WireCid>,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let (cid, bytes) = shared.store_file(tmp, |spool, cid| spool.part(cid))?;
        let mut own = self.own.clone();
        own.latest += 1;
        own.partitions.push(Partition {
            seq: own.latest,
            cid: WireCid(cid),
            table,
            rows,
            bytes,
            first_ms,
            last_ms,
            written_ms: now_ms(),
            replaces: replaces.clone(),
        });
        shared.spool.save_manifest(&self.me, &own)?;
        self.own = own;
        shared
            .manifests
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.me, self.own.clone());
        shared
            .counters
            .rows_written
            .fetch_add(rows, Ordering::Relaxed);
        shared
            .counters
            .partitions_written
            .fetch_add(1, Ordering::Relaxed);
        for old in &replaces {
            self.drop_partition(&old.0);
        }
        self.refresh_views()?;
        self.announce();
        Ok(())
    }

    /// Lets go of a replaced partition: its file, and its blocks at the next GC.
    fn drop_partition(&self, cid: &Cid) {
        let _ = std::fs::remove_file(self.shared.spool.part(cid));
        let _ = self.shared.repo.pins().release(cid);
    }

    fn announce(&mut self) {
        self.last_announce = Instant::now();
        let announce = Announce {
            latest: self.own.latest,
            at_ms: now_ms(),
        };
        let Ok(data) = announce.encode() else {
            return;
        };
        let client = self.shared.client.clone();
        let topic = self.config.topic.clone();
        tokio::spawn(async move {
            let _ = client.publish(topic, data).await;
        });
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_flush) >= self.config.flush_every {
            let tables: Vec<Table> = self.pending.keys().copied().collect();
            for table in tables {
                let _ = self.flush(table);
            }
            self.last_flush = now;
        }
        if self.next_content.is_some_and(|t| now >= t) {
            self.next_content = self.config.content_every.map(|every| now + every);
            self.list_content();
        }
        if let Err(e) = tokio::task::block_in_place(|| self.compact()) {
            tracing::warn!("compacting partitions: {e}");
        }
        if now.duration_since(self.last_announce) >= self.config.announce_every {
            self.announce();
        }
        self.banned.retain(|_, until| *until > now);
    }

    /// Lists this node's content as a new partition, when it changed.
    fn list_content(&mut self) {
        let listed = tokio::task::block_in_place(|| content::list(&self.shared, &self.labels));
        match listed {
            Ok((digest, rows)) if digest != self.content_digest => {
                self.content_digest = digest;
                self.pending.insert(Table::Content, rows);
                let _ = self.flush(Table::Content);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("listing content: {e}"),
        }
    }

    /// Merges our oldest small results partitions into one, when there are enough.
    fn compact(&mut self) -> Result<(), Error> {
        let small: Vec<Partition> = self
            .own
            .live()
            .filter(|p| p.table == Table::Results && p.rows < self.config.compact_rows)
            .take(MAX_REPLACES)
            .cloned()
            .collect();
        if small.len() < self.config.compact_after.max(2) {
            return Ok(());
        }
        let files: Vec<String> = small
            .iter()
            .map(|p| literal(&self.shared.spool.part(&p.cid.0).display().to_string()))
            .collect();
        let tmp = self.shared.spool.scratch("merged.parquet");
        self.shared.engine()?.execute_trusted(&format!(
            "COPY (SELECT * FROM read_parquet([{}]) ORDER BY finished_at) TO {} (FORMAT parquet, COMPRESSION zstd)",
            files.join(", "),
            literal(&tmp.display().to_string())
        ))?;
        let rows = small.iter().map(|p| p.rows).sum();
        let first = small.iter().map(|p| p.first_ms).min().unwrap_or(0);
        let last = small.iter().map(|p| p.last_ms).max().unwrap_or(0);
        let replaces = small.iter().map(|p| p.cid).collect();
        self.add(Table::Results, &tmp, rows, (first, last), replaces)?;
        self.shared
            .counters
            .partitions_compacted
            .fetch_add(small.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn on_announce(&mut self, message: PubsubMessage) {
        let Some(peer) = message.from else {
            return;
        };
        if peer == self.me {
            return;
        }
        let Ok(announce) = Announce::decode(&message.data) else {
            return;
        };
        if !self.config.trusted.allows(&peer) {
            self.shared
                .counters
                .dropped_untrusted
                .fetch_add(1, Ordering::Relaxed);
            self.config.trusted.refuse(peer, Refused::Index);
            return;
        }
        if self.config.sync.is_empty()
            || self.banned.contains_key(&peer)
            || self.syncing.contains(&peer)
        {
            return;
        }
        let known = self.peers.get(&peer).cloned().unwrap_or_default();
        if announce.latest <= known.latest {
            return;
        }
        self.syncing.insert(peer);
        let shared = Arc::clone(&self.shared);
        let tables = self.config.sync.clone();
        let timeout = self.config.fetch_timeout;
        let done = self.synced_tx.clone();
        let trusted = self.config.trusted.writers();
        tokio::spawn(async move {
            let result = sync::pull(&shared, peer, known, &tables, &trusted, timeout).await;
            let _ = done.send(Synced { peer, result }).await;
        });
    }

    /// The trusted peers changed: the views read exactly their partitions from now on.
    fn on_trust_changed(&mut self) {
        {
            let mut manifests = self
                .shared
                .manifests
                .write()
                .unwrap_or_else(|e| e.into_inner());
            manifests.retain(|p, _| *p == self.me || self.config.trusted.allows(p));
            for (peer, m) in &self.peers {
                if self.config.trusted.allows(peer) {
                    manifests.insert(*peer, m.clone());
                }
            }
        }
        if let Err(e) = tokio::task::block_in_place(|| self.refresh_views()) {
            tracing::warn!("refreshing the views: {e}");
        }
    }

    fn on_synced(&mut self, synced: Synced) {
        self.syncing.remove(&synced.peer);
        match synced.result {
            Ok(manifest) => {
                let live: HashSet<Cid> = manifest.live().map(|p| p.cid.0).collect();
                if let Some(old) = self.peers.get(&synced.peer) {
                    for p in old.live() {
                        if !live.contains(&p.cid.0) {
                            self.drop_partition(&p.cid.0);
                        }
                    }
                }
                if let Err(e) = self.shared.spool.save_manifest(&synced.peer, &manifest) {
                    tracing::warn!("saving {}'s manifest: {e}", synced.peer);
                }
                self.shared
                    .manifests
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(synced.peer, manifest.clone());
                self.peers.insert(synced.peer, manifest);
                if let Err(e) = tokio::task::block_in_place(|| self.refresh_views()) {
                    tracing::warn!("refreshing the views: {e}");
                }
            }
            Err(e @ (Error::Rejected { .. } | Error::Misbehaved { .. })) => {
                tracing::warn!("index sync with {}: {e}", synced.peer);
                self.shared
                    .counters
                    .rejected
                    .fetch_add(1, Ordering::Relaxed);
                self.banned.insert(synced.peer, Instant::now() + BAN);
            }
            Err(e) => tracing::debug!("index sync with {}: {e}", synced.peer),
        }
    }
}

/// Answers `sql`, from the cache when allowed and present (see the module docs).
pub(crate) fn query(shared: &Shared, sql: &str, cache: bool) -> Result<Answer, Error> {
    let engine = shared.engine()?;
    if !cache {
        return Ok(engine.query(sql)?);
    }
    let text = engine.check(sql)?;
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update(shared.inputs_digest());
    let file = shared
        .spool
        .cache()
        .join(format!("{}.json", hex::encode(&h.finalize())));
    // An answer is at most the byte limit of cells; its JSON a few times that.
    let max_file = (engine.limits().max_bytes as u64).saturating_mul(8) + (4 << 20);
    let cached = std::fs::File::open(&file).ok().and_then(|f| {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, max_file), &mut body).ok()?;
        serde_json::from_slice::<Answer>(&body).ok()
    });
    if let Some(answer) = cached {
        shared.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::File::options()
            .append(true)
            .open(&file)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(answer);
    }
    shared.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
    let answer = engine.query(&text)?;
    let tmp = shared.spool.scratch("answer.json");
    let written = serde_json::to_vec(&answer)
        .map_err(|e| Error::Corrupt(e.to_string()))
        .and_then(|body| Ok(std::fs::write(&tmp, body)?))
        .and_then(|()| Ok(std::fs::rename(&tmp, &file)?));
    match written {
        Ok(()) => evict(&shared.spool.cache(), shared.cache_bytes, &file),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("caching an answer: {e}");
        }
    }
    Ok(answer)
}

/// Removes the least recently used answers until the cache fits `max` bytes (`keep` stays).
fn evict(dir: &Path, max: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        if path != keep {
            let _ = std::fs::remove_file(&path);
            total -= len;
        }
    }
}
