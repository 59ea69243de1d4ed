//! Failures of the index.

use cid::Cid;
use libp2p::PeerId;

/// Failures of the index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// DuckDB refused or failed.
    #[error(transparent)]
    Sql(#[from] ipfsbench_sql::Error),
    /// A file could not be read or written.
    #[error("index files: {0}")]
    Io(#[from] std::io::Error),
    /// The repo failed.
    #[error("storing a partition: {0}")]
    Repo(#[from] ipfsbench_store::repo::Error),
    /// The network failed.
    #[error(transparent)]
    Network(#[from] ipfsbench_net::network::Error),
    /// A peer's partition failed its check.
    #[error("partition {cid} rejected: {reason}")]
    Rejected {
        /// The partition.
        cid: Cid,
        /// Why.
        reason: String,
    },
    /// A peer broke the protocol (an oversized or malformed manifest).
    #[error("peer {peer}: {reason}")]
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
    /// A dataset could not be read.
    #[error("dataset: {0}")]
    Dataset(String),
    /// Something on disk does not decode.
    #[error("corrupt index file: {0}")]
    Corrupt(String),
    /// The `results` schema it was given cannot be used.
    #[error("the results schema: {0}")]
    Schema(String),
    /// The index has stopped.
    #[error("the benchmark database has stopped")]
    Stopped,
}

impl Error {
    /// Whether the caller (their SQL, their file) is at fault: an API answers 400.
    pub fn is_caller_fault(&self) -> bool {
        match self {
            Self::Sql(e) => e.is_caller_fault(),
            Self::Dataset(_) => true,
            _ => false,
        }
    }
}
