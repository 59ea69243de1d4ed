//! A subscriber of a pubsub topic, as the event loop keeps it.

use tokio::sync::mpsc;

use crate::network::command::PubsubMessage;

/// One subscriber of a topic.
#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) tx: mpsc::Sender<PubsubMessage>,
    /// Whether it hears this node's own messages too (as Kubo's subscribers do).
    pub(super) own: bool,
}
