//! Wire protocols and message types of ipfsbench-node (Bitswap, index sync, gossip messages).
//!
//! Nothing is defined here yet: the storage core needs no wire protocol. The daemon work adds
//! the protocols behind narrow storage traits that the node crate implements.
