//! The cluster's pinset, kept in the replicated state: what the cluster keeps, on how many
//! peers, and how each allocated peer is doing.
//!
//! - `pin/<cid>` → a [`Pin`] (JSON): name, replication factors, allocations, metadata,
//!   expiry, and a recover counter that makes every holder retry its errors.
//! - `status/<cid>/<peer>` → a [`PeerStatus`] (JSON), written by that peer's [`tracker`].
//!
//! A request is checked ([`input`]) and allocated ([`allocate`]) where the pin is added, only
//! to peers whose reports this node applies; masters re-allocate the pins of peers silent
//! past `cluster.reallocate_after` ([`healer`]).

pub mod allocate;
mod error;
pub mod healer;
pub mod input;
mod pin;
mod set;
pub mod status;
pub mod tracker;

pub use error::Error;
pub use input::{MAX_ALLOCATIONS, MAX_EXPIRY, MAX_METADATA, MAX_TEXT};
pub use pin::{Pin, PinRequest};
pub use set::Pinset;
pub use status::{PeerStatus, PinStatus, Tracking};
