//! The roles a node runs as, and the work each takes: masters schedule tasks, workers run
//! them, leechers consume their results.
//!
//! Everything here is built on the node crate's client handle and repo. Tasks travel as the
//! typed messages of [`ipfsbench_protocols::task`] on per-cluster gossipsub topics:
//!
//! - [`master`]: the durable task table and the scheduling rules (capacity-based assignment,
//!   leases renewed by heartbeats, retries with capped exponential backoff, cancellation,
//!   idempotent submission);
//! - [`service`]: the per-node task that owns the role's state, speaks gossipsub and answers
//!   the API;
//! - [`api`]: the `/api/v0/task/...` and `/api/v0/cluster/...` calls.

pub mod api;
mod assignments;
mod cluster;
pub mod master;
pub mod service;
mod system;
mod worker;

pub use cluster::Counters;
pub use ipfsbench_core::config::Role;
pub use service::{Service, Settings};

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
