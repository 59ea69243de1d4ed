//! Failures of the replicated state.

use cid::Cid;
use ipfsbench_protocols::state::StateError;

use super::db::DbError;

/// Failures of the replicated state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The block store failed.
    #[error("storing a state block: {0}")]
    Store(#[from] ipfsbench_store::store::Error),
    /// Keeping a block from GC failed.
    #[error("keeping a state block: {0}")]
    Keep(#[from] ipfsbench_store::store::pins::Error),
    /// A change breaks a limit (key or value too long, too many).
    #[error("invalid change: {0}")]
    Invalid(#[from] StateError),
    /// The network failed.
    #[error(transparent)]
    Network(#[from] ipfsbench_net::network::Error),
    /// A snapshot could not be fetched or read.
    #[error("snapshot {cid}: {reason}")]
    Snapshot {
        /// Its root.
        cid: Cid,
        /// What went wrong.
        reason: String,
    },
    /// The delta carrying this write (and others batched with it) failed.
    #[error("committing the change: {0}")]
    Commit(std::sync::Arc<Error>),
    /// The replica has stopped.
    #[error("the replicated state has stopped")]
    Stopped,
}
