//! The ipfsbench node library: the repo and its block store, Kubo-identical UnixFS import
//! and export, pins, garbage collection and CAR v1.
//!
//! A [`repo::Repo`] is the entry point: it owns the lock, the config, the node identity and
//! the stores. The pieces below it work on the [`store::BlockStore`] trait, so each can be
//! tested against a [`store::MemoryStore`].

pub mod daemon;
pub mod metrics;

pub use cid::Cid;
pub use ipfsbench_data::{index, state};
pub use ipfsbench_http::{api, gateway};
pub use ipfsbench_net::network;
pub use ipfsbench_protocols::codec;
pub use ipfsbench_store::{config, repo, store, unixfs};
