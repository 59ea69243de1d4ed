//! Payloads: each message's checks, and messages encoded into, packed into and decoded from
//! gossip payloads.

use super::error::{limit, Error};
use super::ids::Topic;
use super::limits::{
    MAX_BATCH, MAX_FIGURES, MAX_MESSAGE_BYTES, MAX_PROGRAMS, MAX_RUNNING, MAX_SHORT_TEXT, MAX_TAGS,
    MAX_TEXT, VERSION,
};
use super::messages::{Message, Outcome, Repeat};

impl Message {
    /// The topic the message travels on.
    pub fn topic(&self) -> Topic {
        match self {
            Message::Submit(_) | Message::Assign(_) | Message::Cancel(_) => Topic::Tasks,
            Message::Claim(_) | Message::Progress(_) | Message::Report(_) | Message::Repeat(_) => {
                Topic::Reports
            }
            Message::Heartbeat(_) => Topic::Heartbeats,
        }
    }

    /// Checks every length limit.
    pub fn check(&self) -> Result<(), Error> {
        match self {
            Message::Submit(m) => {
                limit(m.key.len() <= MAX_SHORT_TEXT, "idempotency key too long")?;
                m.spec.check()
            }
            Message::Assign(m) => m.spec.check(),
            Message::Claim(m) => limit(m.reason.len() <= MAX_TEXT, "reason too long"),
            Message::Heartbeat(m) => {
                let c = &m.capacity;
                limit(m.running.len() <= MAX_RUNNING, "too many running attempts")?;
                limit(c.hardware.len() <= MAX_TEXT, "hardware text too long")?;
                limit(c.programs.len() <= MAX_PROGRAMS, "too many programs")?;
                limit(
                    c.programs.iter().all(|p| p.len() <= MAX_SHORT_TEXT),
                    "program name too long",
                )?;
                limit(c.tags.len() <= MAX_TAGS, "too many tags")?;
                limit(c.tags.iter().all(|t| t.len() <= 64), "tag too long")
            }
            Message::Progress(m) => {
                limit(m.permille <= 1000, "progress over 1000 permille")?;
                limit(m.note.len() <= MAX_TEXT, "note too long")
            }
            Message::Report(m) | Message::Repeat(Repeat { report: m, .. }) => match &m.outcome {
                Outcome::Done { figures, .. } => {
                    limit(figures.len() <= MAX_FIGURES, "too many figures")?;
                    limit(
                        figures
                            .iter()
                            .all(|(n, v)| !n.is_empty() && n.len() <= 64 && v.is_finite()),
                        "figure name empty or too long, or value not finite",
                    )
                }
                Outcome::Failed { error } => limit(error.len() <= MAX_TEXT, "error too long"),
            },
            Message::Cancel(_) => Ok(()),
        }
    }

    /// Encodes the message alone in a payload (checking its limits first).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = vec![VERSION];
        self.append(&mut out)?;
        Ok(out)
    }

    /// Checks the message, then appends its body to `out` if the payload stays within
    /// [`MAX_MESSAGE_BYTES`]; `out` is unchanged on an error.
    fn append(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        let body = postcard::to_stdvec(self).map_err(|e| Error::Malformed(e.to_string()))?;
        if out.len() + body.len() > MAX_MESSAGE_BYTES {
            return Err(Error::TooLarge(out.len() + body.len()));
        }
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Decodes a payload that holds exactly one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut all = Self::decode_batch(bytes)?;
        match (all.pop(), all.is_empty()) {
            (Some(message), true) => Ok(message),
            _ => Err(Error::Malformed(format!(
                "{} messages, not one",
                all.len() + 1
            ))),
        }
    }

    /// Decodes and checks a payload: its messages in order, all of one topic.
    pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(Error::TooLarge(bytes.len()));
        }
        let mut body = match bytes.split_first() {
            Some((&VERSION, body)) => body,
            Some((&other, _)) => return Err(Error::Version(Some(other))),
            None => return Err(Error::Version(None)),
        };
        let mut out: Vec<Message> = Vec::new();
        loop {
            let (message, rest): (Message, &[u8]) =
                postcard::take_from_bytes(body).map_err(|e| Error::Malformed(e.to_string()))?;
            message.check()?;
            if out
                .first()
                .is_some_and(|first| first.topic() != message.topic())
            {
                return Err(Error::Invalid("messages of several topics".into()));
            }
            out.push(message);
            if rest.is_empty() {
                return Ok(out);
            }
            limit(out.len() < MAX_BATCH, "too many messages")?;
            body = rest;
        }
    }
}

/// Payloads ready to publish, each on its topic.
#[derive(Debug, Default)]
pub struct Packed {
    /// Each payload with its topic, in the order of the messages within a topic.
    pub payloads: Vec<(Topic, Vec<u8>)>,
    /// The messages that could not be encoded, with why.
    pub refused: Vec<(Message, Error)>,
}

/// Packs `messages` into as few payloads as the limits allow: one topic per payload, at most
/// [`MAX_BATCH`] messages and [`MAX_MESSAGE_BYTES`] bytes each, order kept within a topic.
pub fn pack(messages: Vec<Message>) -> Packed {
    let mut packed = Packed::default();
    for topic in Topic::ALL {
        let mut payload = vec![VERSION];
        let mut count = 0;
        for message in messages.iter().filter(|m| m.topic() == topic) {
            if count == MAX_BATCH {
                packed
                    .payloads
                    .push((topic, std::mem::replace(&mut payload, vec![VERSION])));
                count = 0;
            }
            let appended = match message.append(&mut payload) {
                Err(Error::TooLarge(_)) if count > 0 => {
                    packed
                        .payloads
                        .push((topic, std::mem::replace(&mut payload, vec![VERSION])));
                    count = 0;
                    message.append(&mut payload)
                }
                other => other,
            };
            match appended {
                Ok(()) => count += 1,
                Err(e) => packed.refused.push((message.clone(), e)),
            }
        }
        if count > 0 {
            packed.payloads.push((topic, payload));
        }
    }
    packed
}
