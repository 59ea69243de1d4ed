//! What the actor of the index and its callers share: the engine, the spool, the repo, the
//! manifests and the counters.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use cid::Cid;
use ipfsbench_net::network::Client;
use ipfsbench_sql::{Engine, Limits};
use ipfsbench_store::repo::Repo;
use libp2p::PeerId;
use sha2::{Digest, Sha256};

use super::error::Error;
use super::spool::{Manifest, Spool};

/// Counters kept by the index.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rows_written: AtomicU64,
    pub(crate) partitions_written: AtomicU64,
    pub(crate) partitions_compacted: AtomicU64,
    pub(crate) partitions_fetched: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dropped_untrusted: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) manifests_served: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("RowsWritten".into(), get(&self.rows_written)),
            ("PartitionsWritten".into(), get(&self.partitions_written)),
            (
                "PartitionsCompacted".into(),
                get(&self.partitions_compacted),
            ),
            ("PartitionsFetched".into(), get(&self.partitions_fetched)),
            ("BytesFetched".into(), get(&self.bytes_fetched)),
            ("Rejected".into(), get(&self.rejected)),
            ("DroppedUntrusted".into(), get(&self.dropped_untrusted)),
            ("CacheHits".into(), get(&self.cache_hits)),
            ("CacheMisses".into(), get(&self.cache_misses)),
            ("ManifestsServed".into(), get(&self.manifests_served)),
        ])
    }
}

/// What the actor and the callers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The SQL engine, opened at first use (see [`Shared::engine`]).
    engine: OnceLock<Engine>,
    /// What opening the engine takes, and the statements that define the views.
    setup: Mutex<EngineSetup>,
    pub(crate) spool: Spool,
    pub(crate) repo: Arc<Repo>,
    pub(crate) client: Client,
    pub(crate) counters: Counters,
    /// This node's manifest and those of the trusted nodes it synced, read by the
    /// manifest server.
    pub(crate) manifests: RwLock<HashMap<PeerId, Manifest>>,
    /// The digest of everything the views read (partitions, loaded tables, datasets).
    pub(crate) inputs: Mutex<BTreeMap<String, String>>,
    pub(crate) cache_bytes: u64,
}

/// What opening the engine takes, and the views to define in it.
#[derive(Debug)]
pub(crate) struct EngineSetup {
    allowed: Vec<PathBuf>,
    limits: Limits,
    views: Vec<String>,
}

impl Shared {
    /// What the index at `spool` shares, its engine not yet open.
    pub(crate) fn new(
        spool: Spool,
        repo: Arc<Repo>,
        client: Client,
        limits: Limits,
        cache_bytes: u64,
    ) -> Self {
        let setup = EngineSetup {
            allowed: spool.allowed(),
            limits,
            views: Vec::new(),
        };
        Self {
            engine: OnceLock::new(),
            setup: Mutex::new(setup),
            spool,
            repo,
            client,
            counters: Counters::default(),
            manifests: RwLock::new(HashMap::new()),
            inputs: Mutex::new(BTreeMap::new()),
            cache_bytes,
        }
    }

    /// The SQL engine, opened at the first use with the views as they stand: a node whose
    /// database is not used (an idle one, a leecher that never queries) keeps DuckDB's
    /// pages out of memory.
    pub(crate) fn engine(&self) -> Result<&Engine, Error> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let setup = self.setup.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let engine = Engine::open(&setup.allowed, setup.limits.clone())?;
        for (i, sql) in setup.views.iter().enumerate() {
            engine.define(&format!("view:{i}"), sql)?;
        }
        Ok(self.engine.get_or_init(|| engine))
    }

    /// Sets the statements that define the views, running them now if the engine is open.
    pub(crate) fn define_views(&self, views: Vec<String>) -> Result<(), Error> {
        let mut setup = self.setup.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = self.engine.get() {
            for (i, sql) in views.iter().enumerate() {
                engine.define(&format!("view:{i}"), sql)?;
            }
        }
        setup.views = views;
        Ok(())
    }

    /// The digest of everything the views read.
    pub(crate) fn inputs_digest(&self) -> [u8; 32] {
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut h = Sha256::new();
        for (k, v) in inputs.iter() {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        h.finalize().into()
    }

    /// Keeps `cid`'s blocks from GC and cache eviction.
    pub(crate) fn keep(&self, cid: &Cid) -> Result<(), Error> {
        self.repo
            .pins()
            .keep(cid)
            .map_err(|e| Error::Corrupt(e.to_string()))
    }

    /// Adds the file `tmp` to the store as one UnixFS file, kept, and moves it to where
    /// `place` says for its CID; returns the CID and the size. `tmp` is gone either way.
    pub(crate) fn store_file(
        &self,
        tmp: &std::path::Path,
        place: impl FnOnce(&Spool, &Cid) -> PathBuf,
    ) -> Result<(Cid, u64), Error> {
        let stored = (|| {
            let added = self.repo.add_path(
                tmp,
                &ipfsbench_store::unixfs::AddOptions::default(),
                false,
                &mut |_| {},
            )?;
            let Some(cid) = added.last().map(|a| a.cid) else {
                return Err(Error::Corrupt(format!(
                    "adding {} gave no root",
                    tmp.display()
                )));
            };
            self.keep(&cid)?;
            let bytes = std::fs::metadata(tmp)?.len();
            std::fs::rename(tmp, place(&self.spool, &cid))?;
            Ok((cid, bytes))
        })();
        if stored.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        stored
    }

    pub(crate) fn set_input(&self, name: &str, version: String) {
        let mut inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        inputs.insert(name.to_string(), version);
    }
}
