//! The service's loop and the state it owns. Inputs are decoded and authorised at the edge
//! ([`crate::gossip`]), then handed to the part of the node they concern: a master's part
//! (`crate::master::duty`: its table, leadership and takeover), a worker's
//! ([`crate::worker`]: its attempts), the submitter's waiters ([`crate::submitter`]) and the
//! cluster's peer table ([`crate::cluster`]). The loop only routes: a node has the parts of
//! its role (chosen when the loop is made), and each part decides what it does with an input.

mod commands;
mod messages;
mod owned;
mod reads;
mod turn;

pub(super) use owned::Actor;
