//! Why a pinset call fails.

use cid::Cid;
use ipfsbench_core::state;

use super::allocate::AllocError;
use crate::service;

/// Why a pinset call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The replicated state failed.
    #[error(transparent)]
    State(#[from] state::Error),
    /// The state's database failed.
    #[error(transparent)]
    Db(#[from] state::DbError),
    /// The role service failed.
    #[error(transparent)]
    Service(#[from] service::Error),
    /// No allocation is possible.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The CID is not in the pinset.
    #[error("{0} is not pinned in the cluster")]
    NotPinned(Cid),
    /// A stored value does not decode.
    #[error("stored pinset entry {key}: {source}")]
    Corrupt {
        /// Its key.
        key: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}
