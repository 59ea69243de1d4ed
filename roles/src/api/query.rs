//! The benchmark database over HTTP: `/api/v0/query` (one read-only SQL query over the
//! `results`, `content`, `pins` and `tasks` views and the datasets), `/api/v0/results/...`
//! (ls, compare, regressions, report), `/api/v0/dataset/add|ls` and `/api/v0/index/status`.
//! A bad query is a 400 with DuckDB's message.

use std::path::PathBuf;

use axum::extract::{DefaultBodyLimit, Multipart, State as Extract};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ipfsbench_core::api::{ApiError, Args};
use ipfsbench_core::index::{self, DatasetFormat, Handle as Index};
use ipfsbench_core::state::Handle as State;
use ipfsbench_sql::Answer;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::results::{self, report, tables, GroupBy, Regression};

/// An uploaded dataset's bytes, at most.
pub const MAX_DATASET_BYTES: u64 = 1 << 30;
/// The prefix of datasets' keys in the replicated state.
pub const DATASET_PREFIX: &str = "dataset/";

/// A dataset as the cluster knows it (`dataset/<name>` in the replicated state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatasetEntry {
    /// Its name: queried as `datasets."name"`.
    pub name: String,
    /// The Parquet file's CID.
    pub cid: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Columns and types.
    pub columns: Vec<(String, String)>,
    /// When it was added, Unix ms.
    pub added_ms: u64,
}

#[derive(Debug, Clone)]
struct Api {
    index: Index,
    state: State,
}

fn api_error(e: index::Error) -> ApiError {
    if e.is_caller_fault() {
        ApiError::bad_request(e.to_string())
    } else {
        ApiError::internal(e.to_string())
    }
}

/// The routes, on the node's index and replicated state.
pub fn router(index: Index, state: State) -> Router {
    Router::new()
        .route("/api/v0/query", post(query))
        .route("/api/v0/index/status", post(status))
        .route("/api/v0/results/ls", post(list))
        .route("/api/v0/results/compare", post(compare))
        .route("/api/v0/results/regressions", post(regressions))
        .route("/api/v0/results/report", post(report_call))
        // The upload's own cap is checked as it arrives; the body may carry the multipart
        // framing around it. (Without this layer axum's 2 MiB default would apply.)
        .route(
            "/api/v0/dataset/add",
            post(dataset_add).layer(DefaultBodyLimit::max(
                MAX_DATASET_BYTES as usize + (1 << 20),
            )),
        )
        .route("/api/v0/dataset/ls", post(dataset_ls))
        .with_state(Api { index, state })
}

fn flag(args: &Args, name: &str) -> bool {
    args.get(name).is_some_and(|v| v.is_empty() || v == "true")
}

/// How long a query waits for a dataset it names to be fetched.
const MOUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Loads the state's tables and mounts the datasets `sql` names (only those), then answers
/// it.
pub async fn answer(
    index: &Index,
    state: &State,
    sql: String,
    cache: bool,
) -> Result<Answer, index::Error> {
    tables::refresh(index, state).await?;
    // The datasets the statement names (`datasets."x"`), read from its parse tree; one that
    // does not parse is left for the query to refuse with DuckDB's reason.
    let named: Vec<String> = match index.names(sql.clone()).await {
        Ok(names) => names
            .tables
            .into_iter()
            .filter(|(schema, _)| schema.eq_ignore_ascii_case("datasets"))
            .map(|(_, name)| name)
            .collect(),
        Err(_) => Vec::new(),
    };
    if !named.is_empty() {
        let known = datasets(state);
        for name in named {
            let Some(entry) = known.iter().find(|d| d.name.eq_ignore_ascii_case(&name)) else {
                // Unknown: DuckDB says so when it binds the query.
                continue;
            };
            let cid = entry.cid.parse().map_err(|_| {
                index::Error::Dataset(format!("dataset {} has a bad CID", entry.name))
            })?;
            let unreachable = |why: String| {
                index::Error::Dataset(format!(
                    "dataset {} ({cid}) cannot be read here: {why}",
                    entry.name
                ))
            };
            tokio::time::timeout(MOUNT_TIMEOUT, index.mount_dataset(&entry.name, cid))
                .await
                .map_err(|_| unreachable(format!("not fetched within {MOUNT_TIMEOUT:?}")))?
                .map_err(|e| unreachable(e.to_string()))?;
        }
    }
    index.query(sql, cache).await
}

async fn query(Extract(api): Extract<Api>, args: Args) -> Result<Json<Answer>, ApiError> {
    let sql = args.arg()?.to_string();
    let answer = answer(&api.index, &api.state, sql, !flag(&args, "no-cache")).await;
    Ok(Json(answer.map_err(api_error)?))
}

async fn status(Extract(api): Extract<Api>) -> Result<Json<index::Status>, ApiError> {
    Ok(Json(api.index.status().await.map_err(api_error)?))
}

/// `1h`, `30m`, `7d`, `45s` → milliseconds.
fn duration_ms(text: &str) -> Result<u64, ApiError> {
    let bad = || ApiError::bad_request(format!("{text:?} is not a duration like 30m, 12h or 7d"));
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

async fn list(Extract(api): Extract<Api>, args: Args) -> Result<Json<Answer>, ApiError> {
    let since = args
        .get("since")
        .map(duration_ms)
        .transpose()?
        .map(|d| crate::clock::now_ms().saturating_sub(d));
    let answer = results::list(&api.index, args.get("kind"), args.get("worker"), since).await;
    Ok(Json(answer.map_err(api_error)?))
}

async fn compare(Extract(api): Extract<Api>, args: Args) -> Result<Json<Answer>, ApiError> {
    let kind = args
        .get("kind")
        .ok_or_else(|| ApiError::bad_request("argument \"kind\" is required"))?;
    let by: GroupBy = args
        .get("by")
        .unwrap_or("cpu")
        .parse()
        .map_err(ApiError::bad_request)?;
    let figure = args
        .get("figure")
        .map(results::figure)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let answer = results::compare(&api.index, kind, by, figure).await;
    Ok(Json(answer.map_err(api_error)?))
}

fn threshold(args: &Args) -> Result<f64, ApiError> {
    let t: f64 = args
        .get("threshold")
        .unwrap_or("10")
        .parse()
        .map_err(|_| ApiError::bad_request("threshold is a percentage, like 10"))?;
    if !(0.0..=1000.0).contains(&t) {
        return Err(ApiError::bad_request(
            "threshold must be between 0 and 1000",
        ));
    }
    Ok(t)
}

async fn regressions(
    Extract(api): Extract<Api>,
    args: Args,
) -> Result<Json<Vec<Regression>>, ApiError> {
    let found = results::regressions(&api.index, threshold(&args)?).await;
    Ok(Json(found.map_err(api_error)?))
}

async fn report_call(Extract(api): Extract<Api>, args: Args) -> Result<Response, ApiError> {
    let format = args.get("format").unwrap_or("md").to_string();
    let built = report::build(&api.index, threshold(&args)?)
        .await
        .map_err(api_error)?;
    Ok(match format.as_str() {
        "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report::markdown(&built),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::html(&built),
        )
            .into_response(),
        "json" => Json(built).into_response(),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}: md, html or json"
            )))
        }
    })
}

/// Every dataset the state names.
pub fn datasets(state: &State) -> Vec<DatasetEntry> {
    state
        .scan(DATASET_PREFIX.as_bytes())
        .filter_map(Result::ok)
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect()
}

async fn dataset_ls(Extract(api): Extract<Api>) -> Json<Vec<DatasetEntry>> {
    Json(datasets(&api.state))
}

async fn dataset_add(
    Extract(api): Extract<Api>,
    args: Args,
    multipart: Multipart,
) -> Result<Json<DatasetEntry>, ApiError> {
    let (name, format) = dataset_request(&args)?;
    let path = receive_upload(&api.index, multipart).await?;
    let entry = store_dataset(&api, name, path, format).await?;
    Ok(Json(entry))
}

/// The upload's name and format, checked before its bytes are read.
fn dataset_request(args: &Args) -> Result<(String, DatasetFormat), ApiError> {
    let name = args
        .get("name")
        .ok_or_else(|| ApiError::bad_request("argument \"name\" is required"))?
        .to_string();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::bad_request(format!(
            "{name:?} is not a dataset name: 1 to 64 letters, digits, '_' or '-'"
        )));
    }
    let format = match args.get("format").unwrap_or("csv") {
        "csv" => DatasetFormat::Csv,
        "parquet" => DatasetFormat::Parquet,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}: csv or parquet"
            )))
        }
    };
    Ok((name, format))
}

/// Writes the form's first file to a scratch file of the index and returns its path; an
/// upload that is missing, empty, over [`MAX_DATASET_BYTES`] or cut short leaves no file.
async fn receive_upload(index: &Index, mut multipart: Multipart) -> Result<PathBuf, ApiError> {
    let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
    else {
        return Err(ApiError::bad_request("no file in the upload"));
    };
    let path = index.scratch("upload");
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut written = 0u64;
    let received = async {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?
        {
            written += chunk.len() as u64;
            if written > MAX_DATASET_BYTES {
                return Err(ApiError::bad_request(format!(
                    "the dataset is over {MAX_DATASET_BYTES} bytes"
                )));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        file.flush()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    }
    .await;
    let received = received.and_then(|()| {
        if written == 0 {
            Err(ApiError::bad_request("the dataset file is empty"))
        } else {
            Ok(())
        }
    });
    if let Err(e) = received {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    Ok(path)
}

/// Imports the uploaded file at `path` (removed after) as the dataset `name`, and records it
/// in the replicated state.
async fn store_dataset(
    api: &Api,
    name: String,
    path: PathBuf,
    format: DatasetFormat,
) -> Result<DatasetEntry, ApiError> {
    let imported = api.index.import_dataset(path.clone(), format).await;
    let _ = tokio::fs::remove_file(&path).await;
    let dataset = imported.map_err(api_error)?;
    let entry = DatasetEntry {
        name: name.clone(),
        cid: dataset.cid,
        rows: dataset.rows,
        bytes: dataset.bytes,
        columns: dataset.columns,
        added_ms: crate::clock::now_ms(),
    };
    let value = serde_json::to_vec(&entry).map_err(|e| ApiError::internal(e.to_string()))?;
    api.state
        .put(format!("{DATASET_PREFIX}{name}").into_bytes(), value)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(entry)
}
