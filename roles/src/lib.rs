//! The roles a node runs as, and the work each takes: masters schedule tasks, workers run
//! them, leechers consume their results.
//!
//! Everything here is built on the node crate's client handle and repo. Tasks travel as the
//! typed messages of [`ipfsbench_protocols::task`] on per-cluster gossipsub topics:
//!
//! - [`master`]: the durable task table and the scheduling rules (capacity-based assignment,
//!   leases renewed by heartbeats, retries with capped exponential backoff, cancellation,
//!   idempotent submission), and what a master does with the cluster's messages;
//! - `worker`: the attempts a worker runs and the reports it repeats until acknowledged,
//!   and the task kinds it runs;
//! - [`leecher`]: what a leecher decides for its host, and its defaults;
//! - `submitter`: callers waiting for outcomes, submissions published to the masters;
//! - `gossip`: the cluster's messages, decoded once at the edge;
//! - `cluster`: the peer table every node keeps from heartbeats;
//! - [`config`]: the roles' sections of `config.toml`, `[tasks]` and `[cluster]`;
//! - [`settings`]: those sections checked and typed;
//! - [`service`]: the per-node task that owns all of the above and answers the API through
//!   its [`service::Handle`]: one loop, which hands each input to the role's part it
//!   concerns (`master::duty::Duty`, `worker::Duty`);
//! - [`api`]: the `/api/v0/task/...` and `/api/v0/cluster/...` calls;
//! - [`results`]: what a benchmarker asks of the benchmark database (compare, regressions,
//!   reports with charts) and the replicated state as SQL tables;
//! - [`daemon`]: a node with its role, started and stopped as one.

pub mod api;
pub mod clock;
mod cluster;
pub mod config;
pub mod daemon;
mod gossip;
pub mod leecher;
pub mod master;
pub mod membership;
mod metrics;
pub mod pinset;
pub mod results;
pub mod service;
pub mod settings;
mod submitter;
mod system;
mod tags;
mod text;
mod turn;
mod worker;

pub use clock::now_ms;
pub use cluster::Counters;
pub use ipfsbench_protocols::Role;
pub use service::Service;
pub use settings::Settings;
