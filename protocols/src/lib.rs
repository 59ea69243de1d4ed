//! Wire protocols of ipfsbench-node.
//!
//! Each protocol lives in its own module behind a narrow trait that the node crate implements,
//! so nothing here knows about storage:
//!
//! - [`bitswap`]: block exchange compatible with Kubo (serves from a
//!   [`bitswap::BlockSource`], fetches blocks and verifies them against their CIDs).

pub mod bitswap;
