//! Wire protocols and message types of ipfsbench-node.
//!
//! Each protocol's messages live in their own module, so nothing here knows about storage or
//! the network:
//!
//! - [`task`]: the typed task messages masters, workers and submitters exchange over
//!   gossipsub.
//! - [`state`]: the replicated cluster state (a Merkle-CRDT): deltas, snapshots and the
//!   announcements of heads.
//! - [`index`]: the benchmark database's manifests of Parquet partitions and their sync.
//! - [`codec`]: wire forms every layer shares: dag-pb, varints, DAG-CBOR, the IPLD data model.
//! - [`Role`]: what a node does in the cluster, announced in its heartbeats.

pub mod codec;
pub mod index;
pub mod membership;
mod role;
pub mod state;
pub mod task;

pub use role::Role;
