//! The libp2p host: one task owns the `Swarm` ([`event_loop`]); everything else talks to it
//! through a cloneable [`Client`] over a bounded command channel.
//!
//! Transports: TCP and QUIC, noise, yamux ([`muxer`]: no stream window larger than a frame
//! yamux decodes), DNS, relay client. Protocols: identify, ping, Kademlia (`/ipfs/kad/1.0.0`),
//! gossipsub, mDNS (optional), AutoNAT, relay server (masters), DCUtR and Bitswap
//! (`ipfsbench_bitswap`).

mod behaviour;
mod blocks;
mod client;
mod command;
mod config;
mod error;
mod event_loop;
mod host;
mod keep;
mod muxer;
mod observe;
mod offences;
pub mod ping;
mod providers;
mod refresh;

pub use behaviour::MAX_PUBSUB_MESSAGE;
pub use client::{Client, DagProgress, PeerInfo, PubsubMessage, PubsubStats};
pub use config::{Config, TopicRule};
pub use error::Error;
pub use host::{spawn, Host};
pub use libp2p::pnet::PreSharedKey as SwarmKey;
pub use libp2p::{Multiaddr, PeerId};
pub use observe::{NetStats, MAX_LISTED_WANTS};
pub use refresh::register as register_metrics;
