//! Failures of a block store.

/// Failures of a block store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a pack file failed.
    #[error("block store I/O on {path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The sled index failed.
    #[error("block index: {0}")]
    Index(#[from] sled::Error),
    /// An index entry is malformed.
    #[error("corrupt block index entry: {0}")]
    CorruptIndex(String),
    /// A write would leave less free space than the store keeps in reserve. Nothing was
    /// written; writes work again once space is freed (`repo gc`, or removing other files).
    #[error(
        "disk full: {free} bytes free under {}, and the store keeps {reserve} free \
         (store.min_free_bytes); free some space, for example with `repo gc`",
        path.display()
    )]
    DiskFull {
        /// The store's pack directory.
        path: std::path::PathBuf,
        /// Bytes free on its file system.
        free: u64,
        /// Bytes the store keeps free.
        reserve: u64,
    },
    /// An fsync failed earlier, so the store refuses writes until the node restarts (what was
    /// acknowledged before is safe; reopening resumes from it).
    #[error("the block store refuses writes after a failed fsync ({0}); restart the node")]
    Failed(String),
}
