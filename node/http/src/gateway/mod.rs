//! The HTTP gateway: `GET /ipfs/{cid}[/path]` on its own listener, as Kubo's path gateway
//! serves it. Files come with a sniffed `Content-Type`, `Range` requests (206, read in
//! constant memory, fetching only the blocks the range covers), an `ETag` and an immutable
//! `Cache-Control`; directories redirect to their `/` form, then serve their `index.html` or
//! an HTML listing. The trustless responses are `?format=raw` (the one block) and
//! `?format=car` (the path's blocks, then the whole DAG), also chosen by `Accept:
//! application/vnd.ipld.raw` or `application/vnd.ipld.car`. Content not stored here is
//! fetched over Bitswap; what does not arrive within the fetch timeout is a 504. A malformed
//! path is a 400. The gateway only reads: it never writes to the repo but for fetched blocks.

mod failure;
mod listing;
mod request;
mod respond;
mod server;
pub mod sniff;
mod state;

pub use server::Server;
