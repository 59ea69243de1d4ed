//! The task kinds a worker runs, one file each; what they share is in [`common`].

pub(crate) mod common;
pub(crate) mod exec;
pub(crate) mod fetch;
pub(crate) mod hash;
pub(crate) mod sql;
pub(crate) mod store;
