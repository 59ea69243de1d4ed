//! The HTTP API: a Kubo-shaped `/api/v0/...` subset, so that Kubo RPC clients work for these
//! calls, served with axum. Every call is a POST with `arg=` query parameters; malformed
//! requests get a 4xx with Kubo's JSON error (`{"Message", "Code", "Type": "error"}`), never a
//! 200. Bound to loopback unless configured otherwise; what browsers may do is in [`guard`].

mod args;
mod content;
mod dag;
mod error;
pub mod guard;
mod multipart;
mod net;
mod node;
mod observe;
pub(crate) mod read;
mod refs;
mod routes;
pub mod server;
mod state;
mod storage;
pub(crate) mod stream;
mod tarball;
pub mod wire;

pub use args::{Args, MAX_ARGS};
pub use error::ApiError;
pub use guard::Access;
pub use net::ndjson;
pub use routes::{bind, router, serve, MAX_SMALL_BODY, MAX_UPLOAD};
pub use state::{State, MAX_CONCURRENT_UPLOADS};
