//! What every handler can reach: the repo, the network host, the node's metrics and the
//! turns for uploads.

use std::sync::Arc;

use super::error::ApiError;
use ipfsbench_net::metrics::Metrics;
use ipfsbench_net::network::Client;
use ipfsbench_store::repo::Repo;

/// Uploads (`add`, `dag/import`) received and imported at once; more wait their turn
/// before their bodies are read, so memory and spool space stay bounded.
pub const MAX_CONCURRENT_UPLOADS: usize = 4;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct State {
    /// The repo.
    pub repo: Arc<Repo>,
    /// The network host.
    pub net: Client,
    /// Turns for uploads, [`MAX_CONCURRENT_UPLOADS`] of them.
    uploads: Arc<tokio::sync::Semaphore>,
    /// The node's metrics.
    pub metrics: Metrics,
}

impl State {
    /// The state of an API serving `repo` and `net`.
    pub fn new(repo: Arc<Repo>, net: Client, metrics: Metrics) -> Self {
        Self {
            repo,
            net,
            uploads: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_UPLOADS)),
            metrics,
        }
    }

    /// Waits for an upload's turn; the turn ends when the permit drops.
    pub(crate) async fn upload_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.uploads)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the API is shutting down"))
    }
}
