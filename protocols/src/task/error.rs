//! Why a payload is dropped.

use super::limits::MAX_MESSAGE_BYTES;

/// A payload that must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Empty, or another encoding version.
    #[error("unsupported message version {0:?}")]
    Version(Option<u8>),
    /// The bytes do not decode.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A length limit is broken.
    #[error("message breaks a limit: {0}")]
    Limit(&'static str),
    /// The content is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

pub(super) fn limit(ok: bool, what: &'static str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Limit(what))
    }
}
