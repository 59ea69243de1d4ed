//! The node's libp2p host ([`network`]): TCP and QUIC with Noise and our yamux, Kubo-compatible
//! Bitswap serving and fetching through the repo's block store, the Kademlia DHT, gossipsub,
//! mDNS, relays and hole punching, run by one event loop behind a cloneable client; and the
//! node's [`metrics`] registry, which every layer above registers into.

pub mod metrics;
pub mod network;
