//! The role service: one task per node that owns the role's state (the master's task table,
//! the worker's attempts, the submitter's waiters, the cluster's peer table), fed by the
//! cluster's gossipsub topics, timers and the API's calls over a bounded channel.
//!
//! Each turn of its loop takes one input and then whatever else is ready (up to a batch),
//! applies them, makes the master's changes durable with one flush, and only then answers
//! callers and publishes what was decided: a group commit (see [`actor`]).
//!
//! The API talks to it through a [`Handle`], whose typed methods are the service's only
//! entry points.

mod actor;
pub(crate) mod command;
mod handle;
mod running;
pub(crate) mod views;

pub use handle::Handle;
pub use running::Service;
pub use views::{CapacityView, Error, Finished, MasterView, PeerView, Stats, Submitted};
