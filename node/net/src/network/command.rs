//! What a [`super::client::Client`] asks of the task that owns the swarm, and the answers that need a
//! type of their own. Both sides depend on this module; neither on the other's internals.

use crate::network;
use cid::Cid;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

/// Messages buffered per pubsub subscriber unless it asks for another bound; more are dropped.
pub(crate) const SUBSCRIBER_QUEUE: usize = 256;

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its id.
    pub peer: PeerId,
    /// The address of one of its connections.
    pub addr: Multiaddr,
}

/// A pubsub message delivered to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubMessage {
    /// The peer that published it.
    pub from: Option<PeerId>,
    /// The payload.
    pub data: Vec<u8>,
    /// The publisher's sequence number.
    pub seqno: Option<u64>,
    /// The topic.
    pub topic: String,
}

/// Counters of the pubsub messages this node received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PubsubStats {
    /// Messages that passed validation.
    pub delivered: u64,
    /// Messages on task topics that did not decode (or broke a limit): dropped, not forwarded.
    pub rejected: u64,
    /// Deliveries dropped because a subscriber's buffer was full.
    pub lagged: u64,
    /// Peers disconnected (and refused from then on) for relaying 8 invalid task messages.
    pub cut_off: u64,
}

/// Commands a [`Client`] sends; each carries its reply sender.
#[derive(Debug)]
pub(crate) enum Command {
    Stats {
        reply: oneshot::Sender<super::observe::NetStats>,
    },
    Listeners {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, network::error::Error>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Want {
        cid: Cid,
        providers: Vec<PeerId>,
        reply: oneshot::Sender<Result<Fetched, network::error::Error>>,
    },
    Cancel {
        cid: Cid,
    },
    Provide {
        cid: Cid,
    },
    FindProviders {
        cid: Cid,
        reply: oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), network::error::Error>>,
    },
    Subscribe {
        topic: String,
        capacity: usize,
        /// Whether the subscriber hears this node's own messages too.
        own: bool,
        reply: oneshot::Sender<Result<mpsc::Receiver<PubsubMessage>, network::error::Error>>,
    },
    Topics {
        reply: oneshot::Sender<Vec<String>>,
    },
    PubsubStats {
        reply: oneshot::Sender<PubsubStats>,
    },
    TopicPeers {
        topic: Option<String>,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    CutOff {
        peer: PeerId,
    },
}

/// The callers waiting for one block.
pub(crate) type Waiters = Vec<oneshot::Sender<Result<Fetched, network::error::Error>>>;

/// A block made local: who sent it, and its links and bytes when it came over the network
/// (`None` when it was already local and the caller must read it).
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) from: PeerId,
    pub(crate) links: Option<Vec<Cid>>,
    /// The block's bytes (shared among the callers waiting for it: no copy).
    pub(crate) data: Option<bytes::Bytes>,
}
