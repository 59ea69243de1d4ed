//! The index's files: Parquet partitions by CID (what DuckDB reads), the manifests (ours and
//! each peer's), fetched datasets, the query cache and a scratch area.
//!
//! A partition enters `parts/` only whole and checked: written (or fetched) under `tmp/`,
//! hashed to its CID, then renamed. Manifests are replaced atomically (write, fsync,
//! rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use cid::Cid;
use ipfsbench_protocols::index::{Partition, Table};
use ipfsbench_sql::{literal, Engine, TableSchema, Value};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::schema::CONTENT;
use ipfsbench_store::unixfs::{self, AddOptions, Sink};

/// A partition file's size, at most.
pub const MAX_PARTITION_BYTES: u64 = 512 << 20;

/// The directories under `<repo>/index`.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    pub(crate) root: PathBuf,
    /// The `results` table's schema, as the layer that writes results declares it.
    results: TableSchema,
}

/// One node's manifest as kept on disk: every entry, replaced ones included (peers ask
/// "after sequence N").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) latest: u64,
    pub(crate) partitions: Vec<Partition>,
}

impl Manifest {
    /// The entries no later entry replaces.
    pub(crate) fn live(&self) -> impl Iterator<Item = &Partition> {
        let replaced: std::collections::HashSet<Cid> = self
            .partitions
            .iter()
            .flat_map(|p| p.replaces.iter().map(|c| c.0))
            .collect();
        self.partitions
            .iter()
            .filter(move |p| !replaced.contains(&p.cid.0))
    }
}

impl Spool {
    /// Opens (creating) the directories; the scratch area is emptied.
    pub(crate) fn open(root: &Path, results: TableSchema) -> std::io::Result<Self> {
        let spool = Self {
            root: root.to_path_buf(),
            results,
        };
        let _ = std::fs::remove_dir_all(spool.tmp());
        for dir in [
            spool.tmp(),
            spool.root.join("parts"),
            spool.root.join("manifests"),
            spool.root.join("datasets"),
            spool.tables(),
            spool.cache(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(spool)
    }

    /// The schema of `table`.
    pub(crate) fn schema(&self, table: Table) -> &TableSchema {
        match table {
            Table::Results => &self.results,
            Table::Content => &CONTENT,
        }
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Where the tables loaded from the replicated state (`pins`, `tasks`) are written as
    /// Parquet, one file per version.
    pub(crate) fn tables(&self) -> PathBuf {
        self.root.join("tables")
    }

    /// The directories the engine may read and write: what the views read, and the
    /// scratch area where files are written before they are moved. (Not the manifests, nor
    /// the answer cache.)
    pub(crate) fn allowed(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("parts"),
            self.root.join("datasets"),
            self.tables(),
            self.tmp(),
        ]
    }

    /// Where the partition with `cid` lives once accepted.
    pub(crate) fn part(&self, cid: &Cid) -> PathBuf {
        self.root.join("parts").join(format!("{cid}.parquet"))
    }

    /// Where the dataset with `cid` lives once fetched.
    pub(crate) fn dataset(&self, cid: &Cid) -> PathBuf {
        self.root.join("datasets").join(format!("{cid}.parquet"))
    }

    /// A fresh scratch path.
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.tmp()
            .join(format!("{}-{n}-{name}", std::process::id()))
    }

    fn manifest_path(&self, peer: &PeerId) -> PathBuf {
        self.root.join("manifests").join(format!("{peer}.bin"))
    }

    /// Every manifest kept, by node.
    pub(crate) fn manifests(&self) -> Vec<(PeerId, Manifest)> {
        let Ok(entries) = std::fs::read_dir(self.root.join("manifests")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let peer: PeerId = name.strip_suffix(".bin")?.parse().ok()?;
                let bytes = std::fs::read(e.path()).ok()?;
                let manifest = postcard::from_bytes(&bytes).ok()?;
                Some((peer, manifest))
            })
            .collect()
    }

    /// Replaces `peer`'s manifest on disk.
    pub(crate) fn save_manifest(&self, peer: &PeerId, manifest: &Manifest) -> Result<(), Error> {
        let bytes = postcard::to_stdvec(manifest).map_err(|e| Error::Corrupt(e.to_string()))?;
        let tmp = self.scratch("manifest");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.manifest_path(peer))?;
        Ok(())
    }

    /// Checks the file at `file` is partition `p`: its UnixFS CID, its size, its columns
    /// (names and types of `p.table`'s schema) and its row count; then moves it into place.
    pub(crate) fn accept(&self, engine: &Engine, file: &Path, p: &Partition) -> Result<(), Error> {
        let bad = |reason: String| Error::Rejected {
            cid: p.cid.0,
            reason,
        };
        let size = std::fs::metadata(file)?.len();
        if size != p.bytes {
            return Err(bad(format!("{size} bytes, the manifest says {}", p.bytes)));
        }
        let added = unixfs::add_path(file, &AddOptions::default(), &mut Sink::only_hash())
            .map_err(|e| bad(e.to_string()))?;
        match added.last() {
            Some(a) if a.cid == p.cid.0 => {}
            Some(a) => return Err(bad(format!("the bytes hash to {}", a.cid))),
            None => return Err(bad("empty".into())),
        }
        check_parquet(engine, file, self.schema(p.table), Some(p.rows)).map_err(bad)?;
        std::fs::rename(file, self.part(&p.cid.0))?;
        Ok(())
    }
}

/// Checks that `file` is Parquet with exactly `schema`'s columns (and `rows` rows).
pub(crate) fn check_parquet(
    engine: &Engine,
    file: &Path,
    schema: &TableSchema,
    rows: Option<u64>,
) -> Result<(), String> {
    let source = format!("read_parquet({})", literal(&file.display().to_string()));
    let described = engine
        .answer(&format!(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {source})"
        ))
        .map_err(|e| e.to_string())?;
    let found: Vec<(String, String)> = described
        .rows
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&r[0]), text(&r[1]))
        })
        .collect();
    let expected: Vec<(String, String)> = schema
        .fields
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                f.ty.sql()
                    .replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
            )
        })
        .collect();
    if found != expected {
        return Err(format!(
            "its columns are not the {} table's: {found:?}",
            schema.name
        ));
    }
    if let Some(rows) = rows {
        let counted = engine
            .answer(&format!("SELECT count(*) FROM {source}"))
            .map_err(|e| e.to_string())?;
        let n = counted
            .rows
            .first()
            .and_then(|r| r[0].as_f64())
            .unwrap_or(-1.0);
        if n != rows as f64 {
            return Err(format!("{n} rows, the manifest says {rows}"));
        }
    }
    Ok(())
}
