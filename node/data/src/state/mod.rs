//! The replicated cluster state: a Merkle-CRDT of keys and values that every node of the
//! cluster holds, converging after partitions.
//!
//! A local change becomes a delta, a DAG-CBOR block linked to the heads it was made on
//! ([`ipfsbench_protocols::state`]); the node stores it, applies it and announces its new
//! heads on the cluster's state topic. A node that hears of a head it lacks fetches it with
//! Bitswap, walks back through its parents to what it has, and applies the deltas in causal
//! order. Concurrent writes to one key resolve by the higher (stamp, writer) pair, stamps
//! from a hybrid logical clock ([`clock`]), so every node picks the same winner.
//!
//! Compaction: a node periodically writes a snapshot (the whole state as blocks, with the
//! version vector it covers) and lets go of the deltas the previous snapshot covered. A node
//! far behind starts from a peer's snapshot instead of walking its history. Tombstones are
//! dropped once they are older than every trusted writer's promise (each announcement says
//! "none of my later deltas carries an older stamp"), so no late delta can bring a removed
//! key back.
//!
//! Only deltas of trusted writers are applied; others are counted and dropped. The one
//! [`Replica`] actor owns the state; reads go straight to the database.

pub mod clock;
mod config;
pub mod db;
mod error;
mod handle;
mod replica;
mod snapshots;
mod status;
#[cfg(test)]
mod swarm_tests;
#[cfg(test)]
mod tests;
mod writes;

pub use config::Config;
pub use db::{Db, DbError, Summary, Version};
pub use error::Error;
pub use handle::Handle;
pub use ipfsbench_protocols::state::Op;
pub use replica::Replica;
pub use status::Status;
