//! Bitswap, compatible with Kubo (boxo): fetch blocks from peers and serve ours.
//!
//! Spec: <https://specs.ipfs.tech/bitswap-protocol/>. Protocol ids `/ipfs/bitswap/1.2.0`
//! (offered first), `/1.1.0`, `/1.0.0` and `/ipfs/bitswap`; each message is
//! `uvarint(length) ‖ protobuf` ([`message`] has the schema). Streams are one-way: every
//! inbound stream is read until EOF, and we send on one long-lived outbound stream per
//! connection, opened lazily and reopened when it fails.
//!
//! The engine knows nothing about storage: it serves from a [`BlockSource`] and hands fetched
//! blocks to the caller as [`Event::Block`] after checking that their bytes hash to their CID
//! (sha2-256, sha2-512 or identity; blocks under other hash functions are dropped).
//!
//! # Fetching
//! [`Behaviour::want`] takes a CID and optional provider hints. A want-block goes to one
//! candidate (a hinted peer or one that said HAVE), the least loaded one with a free slot of
//! [`Config::max_wants_in_flight`], rotating among equals; every other connected peer gets a
//! want-have with `sendDontHave`. A HAVE makes its sender a candidate, a DONT_HAVE from the
//! block peer moves the want-block to another candidate, and when nobody is left to ask the
//! engine emits [`Event::NotFound`] once. A want-block unanswered for [`Config::want_timeout`]
//! moves to another candidate or is re-broadcast; wants nobody serves are re-broadcast every
//! [`Config::rebroadcast_interval`]. Newly connected peers get our wants; hinted providers
//! that are not connected are dialed. When a block arrives the other peers asked get a CANCEL.
//! Outgoing entries are batched into one message per peer per poll. A peer silent on a
//! want-have for [`Config::want_timeout`] no longer holds off [`Event::NotFound`].
//!
//! The behaviour's timers are tokio timers: poll it inside a tokio runtime (the swarm's tokio
//! executor does).
//!
//! # Serving
//! Each peer's wants go into its ledger (at most [`Config::max_wantlist_entries`]; more
//! closes the connection). Want-block for a held block: the block; want-have: HAVE, or the
//! block when it is at most [`Config::small_block_bytes`]; missing with `sendDontHave`:
//! DONT_HAVE; otherwise the want stays in the ledger until cancelled. Serving pauses while
//! [`Config::max_outbound_bytes`] of blocks wait to be written to the peer, so a fast asker
//! cannot make us queue without bound.
//!
//! # Usage
//! ```no_run
//! use std::sync::Arc;
//! use ipfsbench_bitswap::{self as bitswap, BlockSource};
//! # use cid::Cid;
//! # struct Store;
//! # impl BlockSource for Store {
//! #     fn has(&self, _: &Cid) -> bool { false }
//! #     fn get(&self, _: &Cid) -> Option<Vec<u8>> { None }
//! # }
//! let mut behaviour = bitswap::Behaviour::new(bitswap::Config::default(), Arc::new(Store));
//! # let cid = Cid::default();
//! behaviour.want(cid, &[]);
//! // Put it in a Swarm (tokio executor) and wait for `bitswap::Event::Block`.
//! ```

mod behaviour;
pub mod codec;
mod config;
mod handler;
pub mod message;
mod protobuf;
mod serving;
mod state;
mod timeouts;

pub use behaviour::Behaviour;
pub use config::{BlockSource, Config, Event, Stats};
pub use handler::{Handler, HandlerIn, HandlerOut, Received, Upgrade};
pub use message::{Message, ProtocolVersion};

#[cfg(test)]
mod tests;
