//! The service's loop and the state it owns. Inputs are decoded and authorised at the edge
//! ([`crate::gossip`]), then handed to the part of the node they concern: the master's table
//! ([`crate::master`]), the worker's attempts ([`crate::worker`]), the submitter's waiters
//! ([`crate::submitter`]) and the cluster's peer table ([`crate::cluster`]).

mod commands;
mod messages;
mod owned;
mod reads;
mod standby;
mod turn;

pub(super) use owned::Actor;
