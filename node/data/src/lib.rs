//! The cluster's data, both kept on every node that asks for it: the replicated [`state`] (a
//! Merkle-CRDT over gossipsub and Bitswap holding the pinset, the task table and results) and
//! the benchmark database ([`index`]: Parquet partitions that are content, synced between
//! peers and queried with SQL).

mod hex;
pub mod index;
pub mod state;
pub mod trust;

#[cfg(test)]
mod testing;
