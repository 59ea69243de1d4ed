//! The node's metrics: the registry and its text formats (from the host's layer), and the
//! HTTP servers' request metrics ([`http`]).

pub mod http;

pub use ipfsbench_net::metrics::*;
