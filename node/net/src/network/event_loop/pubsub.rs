//! The event loop's pubsub: publishing, subscribers and delivering to them.
//!
//! Gossipsub never hands a node its own messages. Kubo's local subscribers hear their node's
//! own publications, though, so subscribers that ask for it (`pubsub/sub` through the API)
//! get each of this node's messages once, straight from [`EventLoop::publish`]; a copy that
//! comes back over the network is a duplicate that gossipsub drops.

use libp2p::{gossipsub, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::core::{EventLoop, MAX_SUBSCRIBER_QUEUE};
use super::subscriber::Subscriber;
use crate::network;
use crate::network::command::PubsubMessage;

impl EventLoop {
    pub(super) fn publish(
        &mut self,
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), network::error::Error>>,
    ) {
        let ident = gossipsub::IdentTopic::new(topic.clone());
        let hash = ident.hash();
        let result = match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(ident, data.clone())
        {
            Ok(id) => {
                self.last_seqno = Some(self.seqno_of(&id));
                Ok(())
            }
            // As in Kubo, publishing with nobody listening is not an error.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                self.last_seqno = Some(self.next_seqno());
                Ok(())
            }
            Err(e) => Err(network::error::Error::from(e)),
        };
        if result.is_ok() {
            let message = PubsubMessage {
                from: Some(*self.swarm.local_peer_id()),
                data,
                seqno: self.last_seqno,
                topic,
            };
            self.deliver(&hash, message, true);
        }
        let _ = reply.send(result);
    }

    /// The sequence number gossipsub gave a message of ours: the id of messages on topics
    /// without a rule is our peer id's bytes followed by it (Go's default id); messages on
    /// typed topics have content ids, so theirs is counted on from the last one known.
    fn seqno_of(&self, id: &gossipsub::MessageId) -> u64 {
        let me = self.swarm.local_peer_id().to_bytes();
        match id.0.strip_prefix(me.as_slice()) {
            Some(tail) if tail.len() == 8 => {
                let mut seqno = [0u8; 8];
                seqno.copy_from_slice(tail);
                u64::from_be_bytes(seqno)
            }
            _ => self.next_seqno(),
        }
    }

    /// A sequence number after the last known one (gossipsub counts up from the time in
    /// nanoseconds at start, so the clock seeds the first).
    fn next_seqno(&self) -> u64 {
        self.last_seqno.map_or_else(
            || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            },
            |n| n.wrapping_add(1),
        )
    }

    pub(super) fn subscribe(
        &mut self,
        topic: String,
        capacity: usize,
        own: bool,
        reply: oneshot::Sender<Result<mpsc::Receiver<PubsubMessage>, network::error::Error>>,
    ) {
        let ident = gossipsub::IdentTopic::new(topic.clone());
        let result = match self.swarm.behaviour_mut().gossipsub.subscribe(&ident) {
            Ok(_) => {
                let (tx, rx) = mpsc::channel(capacity.clamp(1, MAX_SUBSCRIBER_QUEUE));
                self.subscriptions
                    .entry(ident.hash())
                    .or_insert_with(|| (topic, Vec::new()))
                    .1
                    .push(Subscriber { tx, own });
                Ok(rx)
            }
            Err(e) => Err(network::error::Error::from(e)),
        };
        let _ = reply.send(result);
    }

    pub(super) fn topic_peers(
        &mut self,
        topic: Option<String>,
        reply: oneshot::Sender<Vec<PeerId>>,
    ) {
        let wanted = topic.map(|t| gossipsub::IdentTopic::new(t).hash());
        let peers = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| wanted.as_ref().is_none_or(|w| topics.contains(&w)))
            .map(|(p, _)| *p)
            .collect();
        let _ = reply.send(peers);
    }

    /// Drops subscribers that went away, and unsubscribes from topics nobody follows.
    pub(super) fn prune_subscriptions(&mut self) {
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        self.subscriptions.retain(|hash, (name, subscribers)| {
            subscribers.retain(|s| !s.tx.is_closed());
            if subscribers.is_empty() {
                let _ = gossipsub.unsubscribe(&gossipsub::IdentTopic::new(name.clone()));
                tracing::debug!(%hash, "unsubscribed");
                false
            } else {
                true
            }
        });
    }

    /// A message from the network: validated against its topic's rule, then delivered.
    pub(super) fn on_message(
        &mut self,
        propagation_source: PeerId,
        message_id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        // Topics with a rule carry typed messages: what is not well formed is rejected here,
        // at the edge: counted, not forwarded, and a peer that keeps relaying such messages
        // is cut off.
        let rule = self
            .topic_rules
            .iter()
            .find(|r| r.applies(message.topic.as_str()));
        let acceptance = match rule {
            Some(rule) if !(rule.valid)(&message.data) => {
                self.pubsub_stats.rejected += 1;
                tracing::debug!(%propagation_source, topic = %message.topic, "message rejected");
                self.count_invalid(propagation_source);
                gossipsub::MessageAcceptance::Reject
            }
            _ => gossipsub::MessageAcceptance::Accept,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        if acceptance != gossipsub::MessageAcceptance::Accept {
            return;
        }
        self.pubsub_stats.delivered += 1;
        let Some((name, _)) = self.subscriptions.get(&message.topic) else {
            return;
        };
        let delivered = PubsubMessage {
            from: message.source,
            data: message.data,
            seqno: message.sequence_number,
            topic: name.clone(),
        };
        self.deliver(&message.topic, delivered, false);
    }

    /// Hands `message` to the topic's subscribers (only those that hear their own when
    /// `own`); a subscriber whose buffer is full misses it, one that went away is dropped.
    fn deliver(&mut self, topic: &gossipsub::TopicHash, message: PubsubMessage, own: bool) {
        let Some((_, subscribers)) = self.subscriptions.get_mut(topic) else {
            return;
        };
        let mut lagged = 0;
        subscribers.retain(|s| {
            if own && !s.own {
                return true;
            }
            match s.tx.try_send(message.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    lagged += 1;
                    tracing::debug!("pubsub subscriber lagging: message dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.pubsub_stats.lagged += lagged;
    }
}
