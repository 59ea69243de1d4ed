//! The ipfsbench node below its role, as one crate: the layers it is made of, re-exported
//! under the names the roles and the command line use, and [`daemon`], the two halves a role
//! starts them in.
//!
//! The layers, each its own crate under `node/`, each importing only those below it:
//! - `ipfsbench-store`: the repo, its config, the block store and UnixFS ([`repo`],
//!   [`config`], [`store`], [`unixfs`]);
//! - `ipfsbench-bitswap`: Bitswap as a libp2p behaviour;
//! - `ipfsbench-net`: the libp2p host and the metrics registry ([`network`], [`metrics`]);
//! - `ipfsbench-data`: the replicated state and the benchmark database ([`state`],
//!   [`index`]);
//! - `ipfsbench-http`: the RPC API, the gateway and the request metrics ([`api`],
//!   [`gateway`]).

pub mod daemon;
pub mod metrics;

pub use cid::Cid;
pub use ipfsbench_data::{index, state, trust};
pub use ipfsbench_http::{api, gateway};
pub use ipfsbench_net::network;
pub use ipfsbench_protocols::codec;
pub use ipfsbench_store::{config, repo, store, unixfs};
