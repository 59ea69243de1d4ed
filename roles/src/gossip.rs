//! The cluster's gossip as the service takes it: decoded once, at the edge, and checked to
//! have come on its own topic. A payload carries one or more messages of one topic; one that
//! does not decode is counted and dropped whole, never acted on.

use ipfsbench_core::network::{PeerId, PubsubMessage};
use ipfsbench_protocols::task::{Message, Topic};

use crate::cluster::Counters;

/// The author and messages of `m`, if it is a well-formed payload of task messages of
/// `cluster` on their own topic; otherwise counted as malformed.
pub(crate) fn decode(
    m: &PubsubMessage,
    cluster: &str,
    counters: &mut Counters,
) -> Option<(PeerId, Vec<Message>)> {
    let Some(from) = m.from else {
        counters.malformed += 1;
        return None;
    };
    let messages = match Message::decode_batch(&m.data) {
        Ok(messages) => messages,
        Err(error) => {
            tracing::debug!(%from, %error, "task message dropped");
            counters.malformed += 1;
            return None;
        }
    };
    // A batch is of one topic: its first message's.
    if Topic::parse(&m.topic, cluster) != Some(messages[0].topic()) {
        counters.malformed += 1;
        return None;
    }
    counters.received += messages.len() as u64;
    Some((from, messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_protocols::task::{Cancel, TaskId};

    fn message(topic: Topic, from: Option<PeerId>, data: Vec<u8>) -> PubsubMessage {
        PubsubMessage {
            from,
            topic: topic.name("lab"),
            data,
            seqno: None,
        }
    }

    #[test]
    fn only_well_formed_messages_on_their_topic_pass() {
        let me = PeerId::random();
        let cancel = Message::Cancel(Cancel {
            task: TaskId::derive(&me, "k"),
            attempt: 1,
        });
        let bytes = cancel.encode().unwrap();
        let mut counters = Counters::default();
        let ok = decode(
            &message(Topic::Tasks, Some(me), bytes.clone()),
            "lab",
            &mut counters,
        );
        assert_eq!(ok, Some((me, vec![cancel.clone()])));
        let mut two = cancel.encode().unwrap();
        two.extend_from_slice(&cancel.encode().unwrap()[1..]);
        let both = decode(&message(Topic::Tasks, Some(me), two), "lab", &mut counters);
        assert_eq!(both, Some((me, vec![cancel.clone(), cancel])));
        assert!(decode(
            &message(Topic::Reports, Some(me), bytes.clone()),
            "lab",
            &mut counters
        )
        .is_none());
        assert!(decode(&message(Topic::Tasks, None, bytes), "lab", &mut counters).is_none());
        assert!(decode(
            &message(Topic::Tasks, Some(me), vec![1, 2, 3]),
            "lab",
            &mut counters
        )
        .is_none());
        assert_eq!((counters.received, counters.malformed), (3, 3));
    }
}
