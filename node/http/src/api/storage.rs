//! Storage calls: `storage/tiers`, the memory, disk and peer tiers with their sizes and hit
//! counts (see [`ipfsbench_store::store::tiers`]). Answers GET as well as POST, as the issue asks for GET.

use std::sync::Arc;

use axum::extract::State as Extract;
use axum::Json;

use super::error::ApiError;
use super::state::State;
use ipfsbench_store::store::tiers::TiersReport;

pub(super) async fn tiers(Extract(s): Extract<State>) -> Result<Json<TiersReport>, ApiError> {
    let repo = Arc::clone(&s.repo);
    // Counting the store's blocks reads its index: off the async threads.
    let report = tokio::task::spawn_blocking(move || repo.tiers().report()).await??;
    Ok(Json(report))
}
