//! The event loop: the one task that owns the swarm, answering the client's commands and the
//! swarm's events ([`core`]), with pubsub delivery, block storing and provider announcements
//! beside it.

mod announce;
mod core;
mod pubsub;
mod storing;
mod subscriber;

pub(crate) use self::core::EventLoop;
