//! The web dashboard, `GET /dashboard`: the cluster's peers, pins, tasks (with a submit form)
//! and benchmark results as charts, and this node's transfer rates. A static page of vanilla
//! JavaScript and CSS, embedded in the binary so that it works offline; it reads everything
//! through the same-origin API calls (`cluster/peers`, `cluster/pins/status`, `task/ls`,
//! `task/submit`, `query`, `results/compare`, `stats/bw`, `id`, `storage/tiers`), sending the
//! bearer token the user gives it when the API answers 401.
//!
//! The responses forbid framing and any script, style or connection from another origin
//! (`Content-Security-Policy`), and send the referrer to the same origin only: with
//! `no-referrer`, a browser would send `Origin: null` on the page's POSTs, which the API's
//! guard refuses.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the page is served.
pub const PATH: &str = "/dashboard";

/// One embedded file: its URL path, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the page. The scripts are ES modules importing each other by these paths.
const ASSETS: [Asset; 9] = [
    Asset {
        path: PATH,
        content_type: HTML,
        body: include_str!("index.html"),
    },
    Asset {
        path: "/dashboard/style.css",
        content_type: CSS,
        body: include_str!("style.css"),
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: JS,
        body: include_str!("app.js"),
    },
    Asset {
        path: "/dashboard/api.js",
        content_type: JS,
        body: include_str!("api.js"),
    },
    Asset {
        path: "/dashboard/format.js",
        content_type: JS,
        body: include_str!("format.js"),
    },
    Asset {
        path: "/dashboard/cluster.js",
        content_type: JS,
        body: include_str!("cluster.js"),
    },
    Asset {
        path: "/dashboard/tasks.js",
        content_type: JS,
        body: include_str!("tasks.js"),
    },
    Asset {
        path: "/dashboard/results.js",
        content_type: JS,
        body: include_str!("results.js"),
    },
    Asset {
        path: "/dashboard/chart.js",
        content_type: JS,
        body: include_str!("chart.js"),
    },
];

/// What the page may load and where it may connect: its own origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The routes: the page, `/dashboard/` redirected to it, and its files. GET only (and HEAD,
/// which axum answers from GET); other methods get the API's 405.
pub fn router() -> Router {
    let mut router =
        Router::new().route("/dashboard/", get(|| async { Redirect::permanent(PATH) }));
    for asset in &ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_scripts_import_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in &ASSETS {
            for line in asset.body.lines() {
                let line = line.trim();
                let Some(rest) = line.strip_prefix("import ") else {
                    continue;
                };
                let Some(from) = rest.split(" from ").nth(1) else {
                    continue;
                };
                let name = from.trim_matches(|c| c == '\'' || c == '"' || c == ';');
                let path = format!("/dashboard/{}", name.trim_start_matches("./"));
                assert!(served.contains(&path.as_str()), "{}: {path}", asset.path);
            }
            if asset.content_type == HTML {
                for needed in ["/dashboard/app.js", "/dashboard/style.css"] {
                    assert!(asset.body.contains(needed), "index.html loads {needed}");
                }
            }
        }
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        for asset in &ASSETS {
            for outside in ["http://", "https://", "//fonts.", "@import"] {
                let found = asset
                    .body
                    .lines()
                    .filter(|l| l.contains(outside))
                    // The SVG namespace is a name, not a URL that is fetched.
                    .filter(|l| !l.contains("http://www.w3.org/2000/svg"))
                    .count();
                assert_eq!(found, 0, "{} mentions {outside}", asset.path);
            }
        }
    }
}
