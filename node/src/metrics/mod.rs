//! The node's metrics: the registry and its text formats (from the host's layer), and the
//! HTTP servers' request metrics ([`http`]).

pub use ipfsbench_http::metrics as http;
pub use ipfsbench_net::metrics::*;
