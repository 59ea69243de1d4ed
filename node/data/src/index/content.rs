//! What a node holds, as `content` rows; and datasets: tables stored as content-addressed
//! Parquet, mounted as `datasets."name"` views.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use ipfsbench_sql::{ident, literal, Cell, Value};
use sha2::{Digest, Sha256};

use super::dataset::{Dataset, DatasetFormat};
use super::error::Error;
use super::shared::Shared;
use crate::hex;
use ipfsbench_store::store::block::RAW;
use ipfsbench_store::store::pins::{PinFilter, PinKind};
use ipfsbench_store::store::tiers::Mode;
use ipfsbench_store::store::BlockStore;
use ipfsbench_store::unixfs::{self, ReadError};

/// How long fetching a dataset may take.
const DATASET_FETCH: Duration = Duration::from_secs(120);

/// This node's roots (recursive and direct pins) as `content` rows, sorted by CID, with a
/// digest of what they say apart from the listing time.
pub(crate) fn list(
    shared: &Shared,
    labels: &BTreeMap<Cid, (Option<String>, Option<String>)>,
) -> Result<([u8; 32], Vec<Vec<Cell>>), Error> {
    let repo = &shared.repo;
    let store = repo.store();
    let node = repo.peer_id().to_string();
    let mut pins = Vec::new();
    for filter in [PinFilter::Recursive, PinFilter::Direct] {
        pins.extend(
            repo.pins()
                .list(store, filter)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
        );
    }
    pins.sort_by_key(|(c, _)| c.to_bytes());
    let tier = match repo.tiers().mode() {
        Some(Mode::Cache) => "cache",
        _ => "disk",
    };
    let added = repo.local_tree("index-added")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut digest = Sha256::new();
    let mut rows = Vec::with_capacity(pins.len());
    for (cid, kind) in pins {
        let (ty, size) = describe(store, &cid);
        let key = cid.to_bytes();
        let first = match added.get(&key).map_err(|e| Error::Corrupt(e.to_string()))? {
            Some(v) if v.len() == 8 => i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            _ => {
                let _ = added.insert(&key, &now.to_be_bytes());
                now
            }
        };
        let (name, tags) = labels.get(&cid).cloned().unwrap_or((None, None));
        let pin = match kind {
            PinKind::Recursive => "recursive",
            PinKind::Direct => "direct",
            PinKind::Indirect => "indirect",
        };
        digest.update(&key);
        digest.update(pin.as_bytes());
        digest.update(format!("{size:?}{name:?}{tags:?}").as_bytes());
        rows.push(vec![
            Cell::Text(node.clone()),
            Cell::Text(cid.to_string()),
            size.map_or(Cell::Null, Cell::Int),
            Cell::Text(ty.into()),
            Cell::Text(pin.into()),
            name.into(),
            tags.into(),
            Cell::TimeMs(first),
            Cell::Null,
            Cell::Null,
            Cell::Text(tier.into()),
            Cell::TimeMs(now),
        ]);
    }
    Ok((digest.finalize().into(), rows))
}

/// A root's UnixFS type and size, read from the root alone (directories: their entries').
fn describe(store: &dyn BlockStore, cid: &Cid) -> (&'static str, Option<i64>) {
    let block_size = || {
        store
            .size(cid)
            .ok()
            .flatten()
            .and_then(|n| i64::try_from(n).ok())
    };
    if cid.codec() == RAW {
        return ("raw", block_size());
    }
    match unixfs::file_size(store, cid) {
        Ok(n) => ("file", i64::try_from(n).ok()),
        Err(ReadError::IsDirectory(_)) => {
            let size = unixfs::ls(store, cid)
                .ok()
                .map(|entries| entries.iter().map(|e| e.size).sum::<u64>())
                .and_then(|n| i64::try_from(n).ok());
            ("directory", size)
        }
        Err(_) => ("other", block_size()),
    }
}

/// A dataset's name: letters, digits, `_` and `-`, at most 64.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Dataset(format!(
            "{name:?} is not a dataset name: 1 to 64 letters, digits, '_' or '-'"
        )))
    }
}

pub(crate) async fn mount_dataset(shared: &Arc<Shared>, name: &str, cid: Cid) -> Result<(), Error> {
    check_name(name)?;
    let path = shared.spool.dataset(&cid);
    if !path.exists() {
        tokio::time::timeout(DATASET_FETCH, shared.client.fetch_dag(&shared.repo, cid))
            .await
            .map_err(|_| Error::Dataset(format!("fetching dataset {name} ({cid}) timed out")))??;
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || {
            let tmp = shared.spool.scratch("dataset.parquet");
            let result = unixfs::get(shared.repo.store(), &cid, &tmp)
                .map_err(|e| Error::Dataset(e.to_string()))
                .and_then(|_| describe_parquet(&shared, &tmp).map(|_| ()));
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?;
            std::fs::rename(&tmp, shared.spool.dataset(&cid))?;
            shared.keep(&cid)
        })
        .await
        .map_err(|_| Error::Stopped)??;
    }
    shared.engine()?.define(
        &format!("dataset:{name}"),
        &format!(
            "CREATE SCHEMA IF NOT EXISTS datasets; CREATE OR REPLACE VIEW datasets.{} AS SELECT * FROM read_parquet({});",
            ident(name),
            literal(&path.display().to_string())
        ),
    )?;
    shared.set_input(&format!("dataset:{name}"), cid.to_string());
    Ok(())
}

/// Writes `batch` (all rows of the table `schema` names, at `version`) as a Parquet file
/// under the tables directory and points the view at it; the previous files of the table
/// go, but the one before (a query's process may still be reading it).
pub(crate) fn load_table(
    shared: &Shared,
    schema: &ipfsbench_sql::TableSchema,
    version: &str,
    batch: ipfsbench_sql::arrow::record_batch::RecordBatch,
) -> Result<(), Error> {
    let digest = hex::encode(&Sha256::digest(version.as_bytes())[..8]);
    let dir = shared.spool.tables();
    let file = dir.join(format!("{}-{digest}.parquet", schema.name));
    let engine = shared.engine()?;
    if !file.exists() {
        let tmp = shared.spool.scratch("table.parquet");
        if let Err(e) = engine.write_parquet(schema, vec![batch], &tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        std::fs::rename(&tmp, &file)?;
    }
    engine.define(
        &format!("table:{}", schema.name),
        &format!(
            "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet({});",
            ident(schema.name),
            literal(&file.display().to_string())
        ),
    )?;
    // Keep this file and the newest other one of the table.
    let prefix = format!("{}-", schema.name);
    let mut older: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(&dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix) && e.path() != file)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    older.sort();
    older.pop();
    for (_, path) in older {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

pub(crate) fn import_dataset(
    shared: &Shared,
    file: &Path,
    format: DatasetFormat,
) -> Result<Dataset, Error> {
    let source = literal(&file.display().to_string());
    let source = match format {
        DatasetFormat::Csv => format!("read_csv({source}, header = true)"),
        DatasetFormat::Parquet => format!("read_parquet({source})"),
    };
    let tmp = shared.spool.scratch("dataset.parquet");
    let copy = format!(
        "COPY (SELECT * FROM {source}) TO {} (FORMAT parquet, COMPRESSION zstd)",
        literal(&tmp.display().to_string())
    );
    if let Err(e) = shared.engine()?.execute_trusted(&copy) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Dataset(e.to_string()));
    }
    store_parquet(shared, &tmp)
}

/// Runs `sql` from outside and stores its answer (within the engine's row and byte
/// limits) as a Parquet file; the dataset says whether rows were cut.
pub(crate) fn query_to_content(shared: &Shared, sql: &str) -> Result<(Dataset, bool), Error> {
    let tmp = shared.spool.scratch("answer.parquet");
    let truncated = match shared.engine()?.query_to_parquet(sql, &tmp, None) {
        Ok((_, truncated)) => truncated,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    Ok((store_parquet(shared, &tmp)?, truncated))
}

/// Adds the Parquet file `tmp` to the store (kept) and moves it among the datasets.
fn store_parquet(shared: &Shared, tmp: &Path) -> Result<Dataset, Error> {
    let (rows, columns) = describe_parquet(shared, tmp).inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })?;
    let (cid, bytes) = shared.store_file(tmp, |spool, cid| spool.dataset(cid))?;
    Ok(Dataset {
        cid: cid.to_string(),
        rows,
        bytes,
        columns,
    })
}

/// A Parquet file's rows and columns (name, type); an error if DuckDB cannot read it.
fn describe_parquet(shared: &Shared, file: &Path) -> Result<(u64, Vec<(String, String)>), Error> {
    let source = format!("read_parquet({})", literal(&file.display().to_string()));
    let bad = |e: ipfsbench_sql::Error| Error::Dataset(format!("not a readable Parquet file: {e}"));
    let engine = shared.engine()?;
    let count = engine
        .answer(&format!("SELECT count(*) FROM {source}"))
        .map_err(bad)?;
    let rows = count
        .rows
        .first()
        .and_then(|r| r[0].as_f64())
        .unwrap_or(0.0) as u64;
    let described = engine
        .answer(&format!(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {source})"
        ))
        .map_err(bad)?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let columns = described
        .rows
        .iter()
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect();
    Ok((rows, columns))
}
