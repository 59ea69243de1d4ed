//! What the gateway's handlers reach: the API's state and the fetch timeout.

use std::time::Duration;

use crate::api::State;

/// What the gateway's handlers reach.
#[derive(Debug, Clone)]
pub(super) struct Gateway {
    /// What the API's handlers reach: the repo, the host, the metrics.
    pub(super) state: State,
    /// How long one missing block may take to arrive.
    pub(super) timeout: Duration,
}
