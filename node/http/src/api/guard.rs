//! What every API request passes before a handler sees it: the browser checks Kubo makes
//! (a web page may not drive the API), a `Host` check against DNS rebinding, bounds on the
//! URI and headers, and a minimum pace for request bodies.
//!
//! - **Origin.** A browser names the page's origin in `Origin` on every cross-origin request
//!   and every POST. A request carrying an `Origin` (or, without one, a `Referer`) is served
//!   only when that origin is the API's own (`http[s]://{127.0.0.1,localhost,[::1]}:<port>`,
//!   or the request's own `Host` once that passed the check below: the dashboard's page when
//!   the API is reached at another address) or listed in `daemon.api_allowed_origins`;
//!   others get 403. Requests without either (the CLI, curl, Kubo's RPC clients) are served.
//! - **Host.** A page on a DNS name the attacker controls can re-point that name at
//!   127.0.0.1; its requests then carry that name in `Host`. Only IP literals, `localhost`
//!   and the names in `daemon.api_allowed_hosts` are accepted.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::error::ApiError;

/// The longest request URI. Bytes.
pub const MAX_URI: usize = 16 << 10;
/// The most bytes of request headers, names and values together.
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// The most request headers.
pub const MAX_HEADERS: usize = 128;
/// A request body must deliver [`MIN_BODY_BYTES`] per this much time spent waiting for it.
pub const BODY_WINDOW: Duration = Duration::from_secs(30);
/// See [`BODY_WINDOW`].
pub const MIN_BODY_BYTES: usize = 1024;

/// Who may call the API from a browser, and under which host names.
#[derive(Debug, Clone, Default)]
pub struct Access {
    origins: Arc<Vec<String>>,
    hosts: Arc<Vec<String>>,
    /// The bearer token every call but the [`PUBLIC`] paths must carry, if any.
    token: Option<Arc<String>>,
}

/// Paths served without the token: probes, metrics, and the dashboard's page itself (its
/// calls to the API carry the token).
pub const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/debug/metrics/prometheus",
    "/metrics",
    "/dashboard",
];

fn is_public(path: &str) -> bool {
    PUBLIC.contains(&path) || path.starts_with("/dashboard/")
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    /// The API's own origins on `port`, plus `origins` (exact, like `https://app.example`;
    /// `*` allows every origin) and the host names in `hosts` besides IP literals and
    /// `localhost`.
    pub fn new(port: u16, origins: &[String], hosts: &[String]) -> Self {
        let mut all: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .flat_map(|h| ["http", "https"].map(|s| format!("{s}://{h}:{port}")))
            .collect();
        all.extend(
            origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
        );
        Self {
            origins: Arc::new(all),
            hosts: Arc::new(hosts.iter().map(|h| h.to_ascii_lowercase()).collect()),
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on every path but the [`PUBLIC`] ones, like
    /// Kubo's `API.Authorizations`.
    #[must_use]
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.map(Arc::new);
        self
    }

    /// Whether the request may pass the token check.
    fn authorized(&self, path: &str, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if is_public(path) {
            return true;
        }
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.origins.iter().any(|o| o == "*" || *o == origin)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            // [v6]:port
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n),
        };
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self.hosts.iter().any(|h| h == name)
    }

    /// Why the request is refused, if it is.
    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut same_origin = None;
        if let Some(host) = headers.get(header::HOST) {
            let host = host.to_str().unwrap_or("\u{fffd}");
            if !self.host_allowed(host) {
                return Err(ApiError::forbidden(format!(
                    "host {host:?} is not allowed (list it in daemon.api_allowed_hosts)"
                )));
            }
            same_origin = Some(host.to_ascii_lowercase());
        }
        let origin = match headers.get(header::ORIGIN) {
            Some(o) => Some(o.to_str().unwrap_or("\u{fffd}").to_string()),
            None => headers.get(header::REFERER).map(|r| {
                let r = r.to_str().unwrap_or("\u{fffd}");
                origin_of(r).unwrap_or(r).to_string()
            }),
        };
        if let Some(origin) = origin {
            // A page this server served at the address the request names (an allowed host).
            let own = same_origin.is_some_and(|host| {
                let origin = origin.trim_end_matches('/').to_ascii_lowercase();
                ["http://", "https://"]
                    .iter()
                    .any(|s| origin.strip_prefix(s) == Some(host.as_str()))
            });
            if !own && !self.origin_allowed(&origin) {
                return Err(ApiError::forbidden(format!(
                    "origin {origin:?} may not use this API (list it in \
                     daemon.api_allowed_origins)"
                )));
            }
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    Some(&url[..end])
}

/// The middleware: refuses what [`Access`] and the bounds refuse, paces the body.
pub async fn guard(State(access): State<Access>, request: Request, next: Next) -> Response {
    let uri_len = request.uri().to_string().len();
    if uri_len > MAX_URI {
        return ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            format!("request URI of {uri_len} bytes (at most {MAX_URI})"),
        )
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} headers of {header_bytes} bytes (at most {MAX_HEADERS} and \
                 {MAX_HEADER_BYTES})",
                headers.len()
            ),
        )
        .into_response();
    }
    if let Err(e) = access.check(headers) {
        return e.into_response();
    }
    if !access.authorized(request.uri().path(), headers) {
        let mut response = ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "this API requires a bearer token: send Authorization: Bearer <token>",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"ipfsbench\""),
        );
        return response;
    }
    next.run(request.map(paced)).await
}

fn too_slow() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "request body too slow: under {MIN_BODY_BYTES} bytes in {} s",
            BODY_WINDOW.as_secs()
        ),
    )
}

/// The body, failing once the client delivers under [`MIN_BODY_BYTES`] in a
/// [`BODY_WINDOW`] of waiting (time the handler spends elsewhere does not count).
fn paced(body: Body) -> Body {
    struct Pace {
        stream: axum::body::BodyDataStream,
        waited: Duration,
        got: usize,
    }
    let start = Pace {
        stream: body.into_data_stream(),
        waited: Duration::ZERO,
        got: 0,
    };
    Body::from_stream(futures::stream::unfold(Some(start), |state| async move {
        let mut p = state?;
        loop {
            let began = tokio::time::Instant::now();
            let left = BODY_WINDOW.saturating_sub(p.waited);
            let next = tokio::time::timeout(left, p.stream.next()).await;
            p.waited += began.elapsed();
            match next {
                Ok(Some(Ok(chunk))) => {
                    p.got += chunk.len();
                    if p.waited >= BODY_WINDOW {
                        if p.got < MIN_BODY_BYTES {
                            return Some((Err(too_slow()), None));
                        }
                        p.waited = Duration::ZERO;
                        p.got = 0;
                    }
                    return Some((Ok(chunk), Some(p)));
                }
                Ok(Some(Err(e))) => return Some((Err(io::Error::other(e)), None)),
                Ok(None) => return None,
                Err(_) if p.got >= MIN_BODY_BYTES => {
                    p.waited = Duration::ZERO;
                    p.got = 0;
                }
                Err(_) => return Some((Err(too_slow()), None)),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn own_origins_and_listed_ones_pass_others_do_not() {
        let access = Access::new(5101, &["https://Dash.Example/".into()], &[]);
        assert!(access.check(&headers(&[])).is_ok());
        for ok in [
            "http://127.0.0.1:5101",
            "http://localhost:5101",
            "http://[::1]:5101",
            "https://dash.example",
        ] {
            assert!(
                access.check(&headers(&[(header::ORIGIN, ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:5102",
            "null",
            "http://localhost:5101.evil.example",
        ] {
            let e = access
                .check(&headers(&[(header::ORIGIN, bad)]))
                .unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::FORBIDDEN, "{bad}");
        }
        // Without an Origin, the Referer's origin is checked.
        assert!(access
            .check(&headers(&[(header::REFERER, "http://evil.example/page?x")]))
            .is_err());
        assert!(access
            .check(&headers(&[(
                header::REFERER,
                "http://localhost:5101/dashboard"
            )]))
            .is_ok());
    }

    #[test]
    fn a_page_from_the_address_the_request_names_is_its_own_origin() {
        let access = Access::new(5101, &[], &["node1.lan".into()]);
        for (host, origin) in [
            ("10.1.2.3:5101", "http://10.1.2.3:5101"),
            ("NODE1.lan:5101", "http://node1.lan:5101"),
            ("[fd00::1]:5101", "https://[fd00::1]:5101"),
        ] {
            let h = headers(&[(header::HOST, host), (header::ORIGIN, origin)]);
            assert!(access.check(&h).is_ok(), "{host} {origin}");
        }
        for (host, origin) in [
            ("10.1.2.3:5101", "http://10.1.2.3:5102"),
            ("10.1.2.3:5101", "http://10.1.2.4:5101"),
            ("10.1.2.3:5101", "http://10.1.2.3:5101.evil.example"),
            ("evil.example:5101", "http://evil.example:5101"),
        ] {
            let h = headers(&[(header::HOST, host), (header::ORIGIN, origin)]);
            assert!(access.check(&h).is_err(), "{host} {origin}");
        }
    }

    #[test]
    fn hosts_are_ip_literals_localhost_or_listed() {
        let access = Access::new(5101, &[], &["node1.lan".into()]);
        for ok in [
            "127.0.0.1:5101",
            "[::1]:5101",
            "localhost:5101",
            "10.1.2.3",
            "NODE1.lan:5101",
        ] {
            assert!(
                access.check(&headers(&[(header::HOST, ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in ["evil.example:5101", "localhost.evil.example", "node2.lan"] {
            assert!(
                access.check(&headers(&[(header::HOST, bad)])).is_err(),
                "{bad}"
            );
        }
    }

    async fn drain(body: Body) -> (usize, Option<String>) {
        let mut stream = body.into_data_stream();
        let mut got = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => got += c.len(),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
        (got, None)
    }

    fn every(gap: Duration, chunk: usize, count: u32) -> Body {
        Body::from_stream(futures::stream::unfold(0u32, move |n| async move {
            if n == count {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok::<_, io::Error>(vec![b'x'; chunk]), n + 1))
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_drips_is_cut_off() {
        let started = tokio::time::Instant::now();
        let (got, error) = drain(paced(every(Duration::from_secs(10), 1, 1000))).await;
        let error = error.expect("cut off");
        assert!(error.contains("too slow"), "{error}");
        assert!(got < MIN_BODY_BYTES);
        assert!(started.elapsed() <= BODY_WINDOW + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_body_passes() {
        let (got, error) = drain(paced(every(Duration::from_secs(20), 4096, 10))).await;
        assert_eq!(error, None);
        assert_eq!(got, 40_960);
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(origin_of("http://a.b:1/x?y"), Some("http://a.b:1"));
        assert_eq!(origin_of("https://a.b"), Some("https://a.b"));
        assert_eq!(origin_of("nonsense"), None);
    }
}
