//! The node's HTTP side: the Kubo-shaped RPC [`api`] (`/api/v0/...`, with its guard: origins,
//! hosts, bearer token, limits), the [`gateway`] (`/ipfs/<cid>`, ranges, trustless raw and
//! CAR answers) and the request [`metrics`] both servers keep. This is the only layer that
//! knows HTTP and [`api::ApiError`].

pub mod api;
pub mod gateway;
pub mod metrics;
