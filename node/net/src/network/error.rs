//! Failures of the host.

use std::sync::Arc;

use libp2p::Multiaddr;

impl Error {
    /// A store failure, keeping its source.
    pub fn store(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// Failures of the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Building the swarm failed.
    #[error("network setup: {0}")]
    Setup(String),
    /// An address to listen on was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A multiaddr to dial lacks `/p2p/<peer id>` or is malformed.
    #[error("invalid peer address {0}: it must end with /p2p/<peer id>")]
    BadPeerAddr(String),
    /// Dialling failed.
    #[error("dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No peer provided a block before the timeout.
    #[error("block {cid} not found on the network within {secs} s")]
    Timeout {
        /// The block.
        cid: cid::Cid,
        /// The timeout.
        secs: u64,
    },
    /// Every peer asked said it does not have the block and no provider was found.
    #[error("block {0} not found: no connected peer or provider has it")]
    NotFound(cid::Cid),
    /// Publishing failed.
    #[error("pubsub: {0}")]
    Publish(#[from] libp2p::gossipsub::PublishError),
    /// Subscribing failed.
    #[error("pubsub: {0}")]
    Subscribe(#[from] libp2p::gossipsub::SubscriptionError),
    /// Storing or reading a fetched block failed. Shared: one failure answers every caller
    /// waiting for the block.
    #[error("storing a fetched block: {0}")]
    Store(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The host has stopped.
    #[error("the network task has stopped")]
    Stopped,
}
