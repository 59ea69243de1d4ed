//! The per-connection half of Bitswap: reads every inbound stream until EOF, writes our
//! messages on one long-lived outbound stream, and verifies received blocks (hashing runs here,
//! on the connection's task, not on the swarm's).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::task::{Context, Poll};

use cid::Cid;
use futures::future::{self, BoxFuture};
use futures::stream::{self, BoxStream, SelectAll};
use futures::{AsyncWriteExt as _, FutureExt as _, StreamExt as _};
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, Stream, StreamProtocol, StreamUpgradeError,
    SubstreamProtocol,
};

use super::codec::{read_frame, write_frame};
use super::message::{BlockError, Entry, Message, Presence, ProtocolVersion};

/// Consecutive failures to open or write the outbound stream after which queued messages are
/// dropped instead of retried.
const MAX_OUTBOUND_FAILURES: u32 = 3;
/// Bytes of encoded messages written between two flushes.
const WRITE_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The four protocol ids, newest first.
const PROTOCOLS: [StreamProtocol; 4] = [
    StreamProtocol::new("/ipfs/bitswap/1.2.0"),
    StreamProtocol::new("/ipfs/bitswap/1.1.0"),
    StreamProtocol::new("/ipfs/bitswap/1.0.0"),
    StreamProtocol::new("/ipfs/bitswap"),
];

/// Stream upgrade offering (outbound) or accepting (inbound) every Bitswap version.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upgrade;

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = [StreamProtocol; 4];

    fn protocol_info(&self) -> Self::InfoIter {
        PROTOCOLS
    }
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, info: StreamProtocol) -> Self::Future {
        future::ready(Ok((stream, info)))
    }
}

impl OutboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, stream: Stream, info: StreamProtocol) -> Self::Future {
        future::ready(Ok((stream, info)))
    }
}

/// Limits of one connection (taken from [`super::Config`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandlerConfig {
    pub(crate) max_message_bytes: usize,
    pub(crate) max_inbound_streams: usize,
    pub(crate) max_outbound_queue: usize,
}

/// A received message with its blocks verified.
#[derive(Debug)]
pub struct Received {
    /// Wantlist entries.
    pub wantlist: Vec<Entry>,
    /// Whether the wantlist replaces the previous one.
    pub full: bool,
    /// Blocks with the CID their bytes hash to.
    pub blocks: Vec<(Cid, bytes::Bytes)>,
    /// HAVE / DONT_HAVE answers.
    pub presences: Vec<Presence>,
    /// Blocks dropped because their hash function is not one we verify.
    pub unverifiable: usize,
}

/// Commands from the behaviour.
#[derive(Debug)]
pub enum HandlerIn {
    /// Queue a message; `credit` (block bytes) is handed back in [`HandlerOut::Sent`].
    Send {
        /// The message.
        message: Message,
        /// Opaque accounting returned once the message is written or dropped.
        credit: usize,
    },
    /// Write raw bytes on the outbound stream (tests of misbehaving peers).
    #[cfg(test)]
    SendRaw(Vec<u8>),
}

/// Reports to the behaviour.
#[derive(Debug)]
pub enum HandlerOut {
    /// A message arrived.
    Received(Received),
    /// Queued messages were written (or dropped: `dropped` of them).
    Sent {
        /// Sum of the credits of those messages.
        credit: usize,
        /// How many messages.
        messages: usize,
        /// How many of them were dropped rather than written.
        dropped: usize,
    },
    /// Our outbound stream speaks this version.
    Negotiated(ProtocolVersion),
    /// The peer does not speak Bitswap.
    Unsupported,
    /// An inbound stream was refused: too many open.
    InboundRefused,
    /// The peer broke the protocol: the connection should be closed.
    Misbehaved(String),
}

/// One item of an inbound stream.
enum Inbound {
    Message(Received),
    /// The stream failed (and ended); `true` when the peer is to blame.
    Failed {
        reason: String,
        misbehaved: bool,
    },
}

/// A queued outgoing message.
enum Outgoing {
    Message {
        message: Message,
        credit: usize,
    },
    #[cfg(test)]
    Raw(Vec<u8>),
}

impl Outgoing {
    fn credit(&self) -> usize {
        match self {
            Outgoing::Message { credit, .. } => *credit,
            #[cfg(test)]
            Outgoing::Raw(_) => 0,
        }
    }
}

/// A write of a batch of messages in progress, yielding the stream back.
type WriteFuture = BoxFuture<'static, io::Result<Stream>>;

enum OutboundState {
    /// No stream (never opened, or failed).
    None,
    /// Requested from the swarm.
    Opening,
    /// Open and ready for the next batch.
    Idle(Stream),
    /// Writing a batch of `messages` messages carrying `credit`.
    Writing {
        future: WriteFuture,
        credit: usize,
        messages: usize,
    },
}

/// The per-connection Bitswap handler.
pub struct Handler {
    config: HandlerConfig,
    inbound: SelectAll<BoxStream<'static, Inbound>>,
    outbound: OutboundState,
    version: ProtocolVersion,
    queue: VecDeque<Outgoing>,
    events: VecDeque<HandlerOut>,
    outbound_failures: u32,
    unsupported: bool,
}

impl Handler {
    pub(crate) fn new(config: HandlerConfig) -> Self {
        Handler {
            config,
            inbound: SelectAll::new(),
            outbound: OutboundState::None,
            version: ProtocolVersion::V1_2_0,
            queue: VecDeque::new(),
            events: VecDeque::new(),
            outbound_failures: 0,
            unsupported: false,
        }
    }

    fn enqueue(&mut self, item: Outgoing) {
        if self.unsupported || self.queue.len() >= self.config.max_outbound_queue {
            tracing::debug!(
                unsupported = self.unsupported,
                "dropping outgoing bitswap message"
            );
            self.events.push_back(HandlerOut::Sent {
                credit: item.credit(),
                messages: 1,
                dropped: 1,
            });
            return;
        }
        self.queue.push_back(item);
    }

    /// Drops every queued message, handing their credit back.
    fn drop_queue(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let messages = self.queue.len();
        let credit = self.queue.drain(..).map(|m| m.credit()).sum();
        self.events.push_back(HandlerOut::Sent {
            credit,
            messages,
            dropped: messages,
        });
    }

    /// Starts writing queued messages on `stream`.
    fn start_write(&mut self, mut stream: Stream) {
        let version = self.version;
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut credit = 0;
        while let Some(item) = self.queue.pop_front() {
            credit += item.credit();
            let frame = match item {
                Outgoing::Message { message, .. } => message.encode(version),
                #[cfg(test)]
                Outgoing::Raw(raw) => {
                    // Raw test bytes are written as they are, without a length prefix.
                    bytes += raw.len();
                    batch.push((raw, false));
                    continue;
                }
            };
            bytes += frame.len();
            batch.push((frame, true));
            if bytes >= WRITE_BATCH_BYTES {
                break;
            }
        }
        let messages = batch.len();
        let future = async move {
            for (frame, prefixed) in batch {
                if prefixed {
                    write_frame(&mut stream, &frame).await?;
                } else {
                    stream.write_all(&frame).await?;
                }
            }
            stream.flush().await?;
            Ok(stream)
        }
        .boxed();
        self.outbound = OutboundState::Writing {
            future,
            credit,
            messages,
        };
    }

    fn on_outbound_failure(&mut self, reason: &str) {
        self.outbound = OutboundState::None;
        self.outbound_failures += 1;
        tracing::debug!(
            reason,
            failures = self.outbound_failures,
            "bitswap outbound stream failed"
        );
        if self.outbound_failures >= MAX_OUTBOUND_FAILURES {
            self.drop_queue();
        }
    }
}

/// Reads frames from `stream` until EOF, decoding and verifying each.
fn read_stream(stream: Stream, max_message_bytes: usize) -> BoxStream<'static, Inbound> {
    stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match read_frame(&mut stream, max_message_bytes).await {
            Ok(Some(frame)) => match verify(&bytes::Bytes::from(frame)) {
                Ok(received) => Some((Inbound::Message(received), Some(stream))),
                Err(reason) => Some((
                    Inbound::Failed {
                        reason,
                        misbehaved: true,
                    },
                    None,
                )),
            },
            Ok(None) => None,
            Err(e) => Some((
                Inbound::Failed {
                    misbehaved: e.is_misbehaviour(),
                    reason: e.to_string(),
                },
                None,
            )),
        }
    })
    .boxed()
}

/// Decodes a frame and derives each block's CID from its bytes.
fn verify(frame: &bytes::Bytes) -> Result<Received, String> {
    let msg = Message::decode_shared(frame).map_err(|e| e.to_string())?;
    let mut blocks = Vec::with_capacity(msg.blocks.len());
    let mut unverifiable = 0;
    for payload in msg.blocks {
        match payload.cid() {
            Ok(cid) => blocks.push((cid, payload.data)),
            Err(BlockError::UnsupportedHash(code)) => {
                tracing::debug!(code, "dropping block with an unsupported hash function");
                unverifiable += 1;
            }
            Err(e @ BlockError::Invalid(_)) => return Err(e.to_string()),
        }
    }
    Ok(Received {
        wantlist: msg.wantlist,
        full: msg.full,
        blocks,
        presences: msg.presences,
        unverifiable,
    })
}

impl ConnectionHandler for Handler {
    type FromBehaviour = HandlerIn;
    type ToBehaviour = HandlerOut;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        SubstreamProtocol::new(Upgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        // Streams keep the connection alive on their own; this covers the gap while a new
        // outbound stream is being asked for.
        !self.queue.is_empty()
    }

    fn on_behaviour_event(&mut self, event: HandlerIn) {
        match event {
            HandlerIn::Send { message, credit } => {
                self.enqueue(Outgoing::Message { message, credit })
            }
            #[cfg(test)]
            HandlerIn::SendRaw(raw) => self.enqueue(Outgoing::Raw(raw)),
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, _protocol),
                ..
            }) => {
                if self.inbound.len() >= self.config.max_inbound_streams {
                    tracing::debug!("refusing inbound bitswap stream: too many open");
                    self.events.push_back(HandlerOut::InboundRefused);
                    drop(stream);
                    return;
                }
                self.inbound
                    .push(read_stream(stream, self.config.max_message_bytes));
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, protocol),
                ..
            }) => {
                let version = ProtocolVersion::from_protocol_id(protocol.as_ref())
                    .unwrap_or(ProtocolVersion::V1_2_0);
                if version != self.version {
                    self.events.push_back(HandlerOut::Negotiated(version));
                }
                self.version = version;
                self.outbound = OutboundState::Idle(stream);
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => match error {
                StreamUpgradeError::NegotiationFailed => {
                    self.outbound = OutboundState::None;
                    self.unsupported = true;
                    self.drop_queue();
                    self.events.push_back(HandlerOut::Unsupported);
                }
                StreamUpgradeError::Timeout => self.on_outbound_failure("timeout"),
                StreamUpgradeError::Io(e) => self.on_outbound_failure(&e.to_string()),
                StreamUpgradeError::Apply(never) => match never {},
            },
            _ => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
            }

            match self.poll_outbound(cx) {
                Step::Again => continue,
                Step::Open => {
                    return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: SubstreamProtocol::new(Upgrade, ()),
                    })
                }
                Step::Wait => {}
            }

            match self.inbound.poll_next_unpin(cx) {
                Poll::Ready(Some(Inbound::Message(received))) => {
                    return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                        HandlerOut::Received(received),
                    ));
                }
                Poll::Ready(Some(Inbound::Failed { reason, misbehaved })) => {
                    if misbehaved {
                        return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                            HandlerOut::Misbehaved(reason),
                        ));
                    }
                    tracing::debug!(%reason, "bitswap inbound stream failed");
                    continue;
                }
                // `None`: no inbound stream open; a new one comes with a connection event,
                // after which we are polled again.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// What one step of the outbound side asks of `poll`.
enum Step {
    /// Something changed: look again.
    Again,
    /// Ask the swarm for a new outbound stream.
    Open,
    /// Nothing to do until woken.
    Wait,
}

impl Handler {
    /// Advances the outbound stream: finishes a write, starts the next, or asks for a stream.
    fn poll_outbound(&mut self, cx: &mut Context<'_>) -> Step {
        match std::mem::replace(&mut self.outbound, OutboundState::None) {
            OutboundState::Writing {
                mut future,
                credit,
                messages,
            } => match future.poll_unpin(cx) {
                Poll::Ready(Ok(stream)) => {
                    self.outbound_failures = 0;
                    self.outbound = OutboundState::Idle(stream);
                    self.events.push_back(HandlerOut::Sent {
                        credit,
                        messages,
                        dropped: 0,
                    });
                    Step::Again
                }
                Poll::Ready(Err(e)) => {
                    self.events.push_back(HandlerOut::Sent {
                        credit,
                        messages,
                        dropped: messages,
                    });
                    self.on_outbound_failure(&e.to_string());
                    Step::Again
                }
                Poll::Pending => {
                    self.outbound = OutboundState::Writing {
                        future,
                        credit,
                        messages,
                    };
                    Step::Wait
                }
            },
            OutboundState::Idle(stream) => {
                if self.queue.is_empty() {
                    self.outbound = OutboundState::Idle(stream);
                    Step::Wait
                } else {
                    self.start_write(stream);
                    Step::Again
                }
            }
            OutboundState::Opening => {
                self.outbound = OutboundState::Opening;
                Step::Wait
            }
            OutboundState::None => {
                if !self.queue.is_empty() && !self.unsupported {
                    self.outbound = OutboundState::Opening;
                    Step::Open
                } else {
                    Step::Wait
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn outbound_queue_cap_drops_and_returns_credit() {
        let mut h = Handler::new(HandlerConfig {
            max_message_bytes: 1024,
            max_inbound_streams: 1,
            max_outbound_queue: 2,
        });
        for credit in [10, 20, 30] {
            h.on_behaviour_event(HandlerIn::Send {
                message: Message::default(),
                credit,
            });
        }
        assert_eq!(h.queue.len(), 2);
        assert!(matches!(
            h.events.pop_front(),
            Some(HandlerOut::Sent {
                credit: 30,
                messages: 1,
                dropped: 1
            })
        ));
        // A peer without Bitswap: the queue is dropped with its credit.
        h.unsupported = true;
        h.drop_queue();
        assert!(h.queue.is_empty());
        assert!(matches!(
            h.events.pop_front(),
            Some(HandlerOut::Sent {
                credit: 30,
                messages: 2,
                dropped: 2
            })
        ));
    }

    #[test]
    fn offers_every_version_newest_first() {
        let ids: Vec<String> = Upgrade
            .protocol_info()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let want: Vec<String> = ProtocolVersion::ALL
            .iter()
            .map(|v| v.protocol_id().to_string())
            .collect();
        assert_eq!(ids, want);
        assert_eq!(ids[0], "/ipfs/bitswap/1.2.0");
    }
}
