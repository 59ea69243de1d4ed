//! The replicated cluster state's wire formats: a Merkle-CRDT.
//!
//! - [`delta`]: a batch of changes, a DAG-CBOR block linking to the heads it was made on.
//! - [`snapshot`]: the whole state as blocks, with the version vector it covers.
//! - [`Announce`]: what a node says on the cluster's state topic
//!   (`/ipfsbench/<cluster>/state/1`): its heads, its newest snapshot, a digest of its state and
//!   its clock's promise (none of its future deltas will carry an older stamp). One version
//!   byte, then postcard, bounded like the task messages; gossipsub signs it.
//!
//! Missing deltas and snapshot blocks move by Bitswap like any other block.

mod announce;
mod block;
pub mod delta;
mod error;
pub mod snapshot;

pub use crate::codec::cbor::DAG_CBOR;
pub use announce::{
    topic, Announce, WireRef, ANNOUNCE_VERSION, MAX_ANNOUNCE_BYTES, MAX_HEADS, TOPIC_SUFFIX,
};
pub use block::block_cid;
pub use delta::{Delta, DeltaRef, Op};
pub use error::StateError;
