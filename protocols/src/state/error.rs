//! Why a state block or message is refused.

use crate::codec::cbor::CborError;

/// Why a state block or message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not DAG-CBOR of the expected shape.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// Another encoding version.
    #[error("unknown version {0}")]
    Version(u64),
    /// Larger than its limit.
    #[error("{0} bytes is over the limit")]
    TooLarge(usize),
    /// A list or string over its limit.
    #[error("too many or too long: {0}")]
    Limit(&'static str),
    /// Well-formed but breaks a rule.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// An announcement that does not decode.
    #[error("malformed announcement: {0}")]
    Malformed(String),
}
