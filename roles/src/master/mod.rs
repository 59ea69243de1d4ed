//! The master's side of scheduling: the durable task table and the decisions made on it.
//!
//! Every task record lives in a sled database in the repo (`<repo>/tasks`), written on every
//! change; the service flushes it before it acknowledges a submission or publishes what a
//! change decided, so a master restart loses no task and resumes the queue. Records of tasks
//! that are not over are also kept in memory, with the queue in submission order.
//!
//! [`Master`] is plain state: its methods take the time and return the messages to publish,
//! so the scheduling rules are tested without a network. `Duty` is what the role service does
//! as a master with it: the messages bound for masters, scheduling while it leads, and the
//! takeover of a standby (`standby`); `reads` is the table as any node reads it from the
//! replicated state.

pub(crate) mod duty;
pub(crate) mod gossip;
mod host;
pub mod lead;
pub(crate) mod reads;
mod record;
mod replicate;
pub mod replicated;
mod standby;
mod table;

pub(crate) use host::host;

pub use record::{Config, Error, State, TaskRecord};
pub use table::{Master, ASSIGN_VALIDITY_MS, MAX_ACTIVE_TASKS, MAX_LIST_PAGE};
