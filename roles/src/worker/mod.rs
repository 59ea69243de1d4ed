//! The worker: it runs the attempts its trusted masters assign, and reports each outcome until
//! a master acknowledges it.
//!
//! `Attempts` is the worker's bookkeeping: plain state that the service drives, with the
//! time passed in, so its rules are tested without a network. [`Duty`] is what the role
//! service does as a worker: it takes assignments and cancels from trusted masters, starts
//! attempts and hands their reports to the loop. `Runner` runs one attempt of a task kind
//! (`kinds`, one file each).

mod assignments;
mod attempts;
mod duty;
mod kinds;
mod rows;
mod runner;

pub(crate) use duty::{Duty, Parts};
