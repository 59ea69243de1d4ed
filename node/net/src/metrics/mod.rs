//! The node's metrics, at Kubo's path `/debug/metrics/prometheus` (and `/metrics`), in
//! Prometheus' text format 0.0.4, or in OpenMetrics when the scrape asks for it ([`text`]). One [`Metrics`] per node holds a `prometheus-client` registry: the swarm's
//! events (libp2p-metrics), the transport's bytes by protocol and direction, HTTP requests by
//! endpoint (the HTTP layer's middleware), and what the node and its role read off their parts at each scrape
//! (refreshers: Bitswap, the store, the replicated state, the benchmark database, tasks).

mod registry;
pub mod text;

pub use registry::*;
pub use text::Format;
