//! The roles a node runs as: master, worker or leecher.
//!
//! The role itself is [`Role`], defined by the node crate because it already changes what the
//! host does (Kademlia mode, relay server). The work each role takes (scheduling, running tasks,
//! caching) builds on the node's client handle and lives here as it arrives.

pub use ipfsbench_core::config::Role;
