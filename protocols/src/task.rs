//! Task messages: what masters, workers and submitters say to each other over gossipsub.
//!
//! A payload is one version byte ([`VERSION`]) followed by the postcard encodings (compact:
//! varints, no field names) of one to [`MAX_BATCH`] [`Message`]s of one topic, back to back:
//! a node publishes what one turn produced for a topic as one gossip message, so one signature
//! covers them all. Decoding is the edge: a payload that is larger than [`MAX_MESSAGE_BYTES`],
//! has another version, does not decode, mixes topics or breaks a length limit is an
//! [`Error`] and must be dropped whole, never acted on.
//!
//! The sender of a message is not a field: gossipsub signs every message, and the verified
//! source is the author. Messages travel on per-cluster topics named by [`Topic`].
//!
//! The exchange: a submitter sends [`Submit`] (the master derives the [`TaskId`] from the
//! submitter and its idempotency key); the master sends [`Assign`] to a worker; the worker
//! answers [`Claim`] (accepted or not), may send [`Progress`], and ends with [`Report`]. Every
//! node sends [`Heartbeat`]s with its role and capacity; a worker's lists the attempts it runs,
//! which renews their leases. [`Cancel`] stops a task. A master answers a submission it will
//! not take (from a peer it does not list as a submitter, say) with a refusal: a [`Report`]
//! of a task that never ran ([`Report::refusal`]).

mod error;
mod figure;
mod ids;
mod limits;
mod messages;
mod payload;

pub use error::Error;
pub use figure::Figure;
pub use ids::{
    valid_cluster_name, BadTaskId, Kind, TaskId, Topic, UnknownKind, WireCid, WirePeer,
    TOPIC_PREFIX,
};
pub use limits::{
    MAX_BATCH, MAX_FIGURES, MAX_INPUTS, MAX_MESSAGE_BYTES, MAX_PARAMS, MAX_PROGRAMS, MAX_RUNNING,
    MAX_SHORT_TEXT, MAX_TAGS, MAX_TEXT, VERSION,
};
pub use messages::{
    Assign, Cancel, Capacity, Claim, Heartbeat, Message, Outcome, Progress, Repeat, Report, Spec,
    Submit, MAX_REFUSAL, REFUSED,
};
pub use payload::{pack, Packed};

#[cfg(test)]
mod tests;
