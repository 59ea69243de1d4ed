//! Wire protocols and message types of ipfsbench-node.
//!
//! Each protocol lives in its own module behind a narrow trait that the node crate implements,
//! so nothing here knows about storage:
//!
//! - [`bitswap`]: block exchange compatible with Kubo (serves from a
//!   [`bitswap::BlockSource`], fetches blocks and verifies them against their CIDs).
//! - [`task`]: the typed task messages masters, workers and submitters exchange over
//!   gossipsub.
//! - [`state`]: the replicated cluster state (a Merkle-CRDT): deltas, snapshots and the
//!   announcements of heads.
//! - [`index`]: the benchmark database's manifests of Parquet partitions and their sync.
//! - [`codec`]: wire forms every layer shares: dag-pb, varints, DAG-CBOR, the IPLD data model.
//! - [`Role`]: what a node does in the cluster, announced in its heartbeats.

pub mod bitswap;
pub mod codec;
pub mod index;
mod role;
pub mod state;
pub mod task;

pub use role::Role;
