//! HTTP requests counted and timed by server (`api`, `gateway`) and endpoint. The endpoint is
//! the route that matched (`/api/v0/add`, `/ipfs/{*path}`), never the raw path, so a client
//! cannot grow the label set.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use ipfsbench_net::metrics::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Served {
    server: &'static str,
    endpoint: String,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Endpoint {
    server: &'static str,
    endpoint: String,
}

/// The request metrics of one server.
#[derive(Debug, Clone)]
pub struct Http {
    server: &'static str,
    requests: Family<Served, Counter>,
    durations: Family<Endpoint, Histogram>,
}

/// The families, registered once per [`Metrics`] and shared by its servers.
#[derive(Debug, Clone)]
struct Families {
    requests: Family<Served, Counter>,
    durations: Family<Endpoint, Histogram>,
}

impl Http {
    /// Request metrics for the server named `server`, registered with `metrics` (the first
    /// server registers the families; later ones share them).
    pub fn new(metrics: &Metrics, server: &'static str) -> Self {
        let families = metrics.shared(|| {
            let f = Families {
                requests: Family::default(),
                durations: Family::new_with_constructor(|| {
                    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
                }),
            };
            metrics.register(|r| {
                r.register(
                    "ipfsbench_http_requests",
                    "HTTP requests answered, by server, endpoint and status code",
                    f.requests.clone(),
                );
                r.register(
                    "ipfsbench_http_request_duration_seconds",
                    "Time to answer an HTTP request (until the headers), by server and endpoint",
                    f.durations.clone(),
                );
            });
            f
        });
        Self {
            server,
            requests: families.requests,
            durations: families.durations,
        }
    }
}

/// Middleware that counts and times each request.
pub async fn track(State(http): State<Http>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    http.durations
        .get_or_create(&Endpoint {
            server: http.server,
            endpoint: endpoint.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    http.requests
        .get_or_create(&Served {
            server: http.server,
            endpoint,
            code: response.status().as_u16(),
        })
        .inc();
    response
}
