//! Why a certificate or an invite is refused.

/// Why a certificate or an invite is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Its bytes do not decode, have another version, or break a size limit.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// A certificate or an invite.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The root's signature does not verify.
    #[error("the certificate is not signed by this cluster's root")]
    BadSignature,
    /// It belongs to another cluster.
    #[error("the certificate is for cluster {found:?}, not {expected:?}")]
    OtherCluster {
        /// The cluster it names.
        found: String,
        /// This node's cluster.
        expected: String,
    },
    /// It names another peer than the one presenting it.
    #[error("the certificate is for another peer")]
    OtherPeer,
    /// It has expired.
    #[error("the certificate expired at {expired_ms} (Unix ms)")]
    Expired {
        /// When.
        expired_ms: u64,
    },
}
