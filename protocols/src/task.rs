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

use serde::{Deserialize, Serialize};

use crate::Role;

/// The encoding version, the first byte of every message.
pub const VERSION: u8 = 3;
/// The largest encoded message. Bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The most messages in one payload.
pub const MAX_BATCH: usize = 512;
/// The most input CIDs a task may name.
pub const MAX_INPUTS: usize = 64;
/// The most parameters a task may carry.
pub const MAX_PARAMS: usize = 32;
/// The longest parameter key or value, idempotency key or program name. Bytes.
pub const MAX_SHORT_TEXT: usize = 1024;
/// The longest free text (an error, a progress note, a hardware description). Bytes.
pub const MAX_TEXT: usize = 4096;
/// The most running attempts a heartbeat may list.
pub const MAX_RUNNING: usize = 1024;
/// The most programs a worker may advertise.
pub const MAX_PROGRAMS: usize = 64;
/// The most tags a node may announce.
pub const MAX_TAGS: usize = 16;
/// The most key figures a report carries.
pub const MAX_FIGURES: usize = 16;
/// The prefix of every cluster topic.
pub const TOPIC_PREFIX: &str = "/ipfsbench/";

mod ids;

pub use ids::{valid_cluster_name, BadTaskId, Kind, TaskId, Topic, UnknownKind, WireCid, WirePeer};

/// What to run: the part of a task that travels with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The kind.
    pub kind: Kind,
    /// Input DAGs.
    pub inputs: Vec<WireCid>,
    /// Kind-specific parameters, `key=value`.
    pub params: Vec<(String, String)>,
    /// The longest one attempt may run. Seconds; 0 takes the worker's default.
    pub timeout_secs: u32,
    /// Attempts before the task fails; 0 takes the master's default.
    pub max_attempts: u8,
    /// Run only on this worker, when set.
    pub target: Option<WirePeer>,
}

impl Spec {
    /// A spec of `kind` with no inputs or parameters and default limits.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            inputs: Vec::new(),
            params: Vec::new(),
            timeout_secs: 0,
            max_attempts: 0,
            target: None,
        }
    }

    /// The value of parameter `key`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the spec's limits and that the kind has what it needs.
    pub fn check(&self) -> Result<(), Error> {
        limit(self.inputs.len() <= MAX_INPUTS, "too many inputs")?;
        limit(self.params.len() <= MAX_PARAMS, "too many parameters")?;
        for (k, v) in &self.params {
            limit(
                !k.is_empty() && k.len() <= MAX_SHORT_TEXT && v.len() <= MAX_SHORT_TEXT,
                "parameter too long or empty",
            )?;
        }
        if self.kind.needs_input() && self.inputs.is_empty() {
            return Err(Error::Invalid(format!(
                "task kind {} needs an input CID",
                self.kind
            )));
        }
        if self.kind == Kind::Exec && self.param("program").is_none() {
            return Err(Error::Invalid(
                "task kind exec needs a `program` parameter".into(),
            ));
        }
        Ok(())
    }
}

/// A task submitted to the masters. The task's id is [`TaskId::derive`] of the (signed)
/// sender and `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit {
    /// The idempotency key: the same key from the same submitter is the same task.
    pub key: String,
    /// What to run.
    pub spec: Spec,
}

/// A master gives one attempt of a task to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assign {
    /// The task.
    pub task: TaskId,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The worker that is to run it.
    pub worker: WirePeer,
    /// How long the attempt's lease lasts without a heartbeat naming it. Milliseconds.
    pub lease_ms: u32,
    /// The assignment is void after this (Unix time, milliseconds): a worker ignores it,
    /// so an old assignment replayed by a peer never runs a task again.
    pub valid_until_unix_ms: u64,
    /// What to run.
    pub spec: Spec,
}

/// A worker takes (or refuses) an assigned attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Whether the worker started it.
    pub accepted: bool,
    /// When it started (Unix time, milliseconds), when accepted.
    pub started_unix_ms: u64,
    /// Why not, when refused.
    pub reason: String,
}

/// What a node can take on, as its heartbeat reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// CPU cores.
    pub cores: u16,
    /// Total memory. Bytes.
    pub memory_total_bytes: u64,
    /// Available memory. Bytes.
    pub memory_available_bytes: u64,
    /// Free space where the block store lives. Bytes.
    pub store_free_bytes: u64,
    /// Attempts running now.
    pub running: u16,
    /// The most attempts it runs at once (0 for nodes that run none).
    pub max_concurrent: u16,
    /// The CPU model and platform.
    pub hardware: String,
    /// The programs `exec` tasks may name on this node.
    pub programs: Vec<String>,
    /// Its tags, `key:value`, for pin allocation.
    pub tags: Vec<String>,
}

/// A node's periodic announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node's role.
    pub role: Role,
    /// Increases with every heartbeat of the same process.
    pub seq: u64,
    /// What it can take on.
    pub capacity: Capacity,
    /// The attempts it runs: their leases are renewed.
    pub running: Vec<(TaskId, u32)>,
    /// Set by the master that schedules: the epoch of its leadership. A standby master takes
    /// over when no leader has been heard for its lease; of two leaders, the higher epoch
    /// (then the higher PeerId) keeps scheduling.
    pub leads: Option<u64>,
}

/// How far an attempt has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// Done so far, in thousandths.
    pub permille: u16,
    /// What it is doing.
    pub note: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// It succeeded; the result record is this CID.
    Done {
        /// The result record (a JSON file in the worker's store).
        record: WireCid,
        /// Its key figures (at most [`MAX_FIGURES`]), by name: what the cluster's replicated
        /// results keep of the record.
        figures: Vec<(String, f64)>,
    },
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// The end of an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The task.
    pub task: TaskId,
    /// The attempt.
    pub attempt: u32,
    /// When it started on the worker (Unix time, milliseconds).
    pub started_unix_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the error of a refusal starts with (see [`Report::refusal`]).
pub const REFUSED: &str = "refused: ";
/// The longest reason a refusal gives. Bytes.
pub const MAX_REFUSAL: usize = 256;

impl Report {
    /// A master's answer to a submission it will not take: the outcome of a task that never
    /// ran (attempt 0, never started), failed with [`REFUSED`] and the reason, cut to
    /// [`MAX_REFUSAL`] bytes. It travels as every outcome does, so a submitter waiting for
    /// the task learns at once; a node that does not know refusals reads a failure.
    pub fn refusal(task: TaskId, reason: &str) -> Report {
        let mut cut = reason.len().min(MAX_REFUSAL);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        Report {
            task,
            attempt: 0,
            started_unix_ms: 0,
            outcome: Outcome::Failed {
                error: format!("{REFUSED}{}", &reason[..cut]),
            },
        }
    }

    /// The reason, when this report is a refusal ([`Report::refusal`]).
    pub fn refused(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Failed { error } if self.attempt == 0 && self.started_unix_ms == 0 => {
                error.strip_prefix(REFUSED)
            }
            _ => None,
        }
    }
}

/// A [`Report`] sent again, because no outcome from the master has acknowledged it (the master
/// may have been down when it was first sent). `round` counts the repetitions, so that each
/// is a new gossipsub message rather than a duplicate of the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    /// The report.
    pub report: Report,
    /// 1 for the first repetition, and so on.
    pub round: u32,
}

/// Stop a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The task.
    pub task: TaskId,
    /// The attempt to stop, when sent to its worker (0 from a submitter to the master).
    pub attempt: u32,
}

/// Every task message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Submitter to masters.
    Submit(Submit),
    /// Master to a worker.
    Assign(Assign),
    /// Worker to the master.
    Claim(Claim),
    /// Every node to every node.
    Heartbeat(Heartbeat),
    /// Worker to the master.
    Progress(Progress),
    /// Worker to the master (and to whoever waits for the result).
    Report(Report),
    /// Submitter to the master, or master to a worker.
    Cancel(Cancel),
    /// Worker to the master: a report not acknowledged yet.
    Repeat(Repeat),
}

/// A payload that must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Empty, or another encoding version.
    #[error("unsupported message version {0:?}")]
    Version(Option<u8>),
    /// The bytes do not decode.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A length limit is broken.
    #[error("message breaks a limit: {0}")]
    Limit(&'static str),
    /// The content is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

fn limit(ok: bool, what: &'static str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Limit(what))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use cid::Cid;
    use libp2p::PeerId;
    use proptest::prelude::*;

    fn cid() -> Cid {
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"
            .parse()
            .unwrap()
    }

    #[test]
    fn a_refusal_is_a_short_failed_report_of_no_attempt() {
        let task = TaskId::derive(&PeerId::random(), "k");
        let r = Report::refusal(task, "not a listed submitter");
        assert_eq!(r.refused(), Some("not a listed submitter"));
        assert_eq!(r.attempt, 0);
        // A long reason is cut (on a character boundary), so a refusal stays small.
        let long = Report::refusal(task, &"é".repeat(1000));
        assert!(long.refused().is_some_and(|e| e.len() <= MAX_REFUSAL));
        let bytes = Message::Report(long).encode().unwrap();
        assert!(bytes.len() < 300, "{} bytes", bytes.len());
        // A task cancelled before it ran, or an attempt that failed, is not a refusal.
        let cancelled = Report {
            task,
            attempt: 0,
            started_unix_ms: 0,
            outcome: Outcome::Failed {
                error: "cancelled".into(),
            },
        };
        assert_eq!(cancelled.refused(), None);
        let failed = Report {
            attempt: 1,
            started_unix_ms: 5,
            ..Report::refusal(task, "x")
        };
        assert_eq!(failed.refused(), None);
    }

    fn samples() -> Vec<Message> {
        let peer = PeerId::random();
        let task = TaskId::derive(&peer, "k");
        let mut spec = Spec::new(Kind::BenchFetch);
        spec.inputs.push(WireCid(cid()));
        spec.params.push(("size".into(), "1024".into()));
        spec.target = Some(WirePeer(peer));
        vec![
            Message::Submit(Submit {
                key: "k".into(),
                spec: spec.clone(),
            }),
            Message::Assign(Assign {
                task,
                attempt: 2,
                worker: WirePeer(peer),
                lease_ms: 10_000,
                valid_until_unix_ms: 1_700_000_300_000,
                spec,
            }),
            Message::Claim(Claim {
                task,
                attempt: 2,
                accepted: true,
                started_unix_ms: 1_700_000_000_000,
                reason: String::new(),
            }),
            Message::Heartbeat(Heartbeat {
                role: Role::Worker,
                seq: 7,
                capacity: Capacity {
                    cores: 2,
                    memory_total_bytes: 1 << 34,
                    memory_available_bytes: 1 << 33,
                    store_free_bytes: 1 << 40,
                    running: 1,
                    max_concurrent: 2,
                    hardware: "x86_64".into(),
                    programs: vec!["sort".into()],
                    tags: vec!["zone:a".into()],
                },
                running: vec![(task, 2)],
                leads: Some(3),
            }),
            Message::Progress(Progress {
                task,
                attempt: 2,
                permille: 500,
                note: "half".into(),
            }),
            Message::Report(Report {
                task,
                attempt: 2,
                started_unix_ms: 1,
                outcome: Outcome::Done {
                    record: WireCid(cid()),
                    figures: vec![("MBps".into(), 812.5)],
                },
            }),
            Message::Report(Report {
                task,
                attempt: 1,
                started_unix_ms: 1,
                outcome: Outcome::Failed {
                    error: "boom".into(),
                },
            }),
            Message::Cancel(Cancel { task, attempt: 0 }),
            Message::Repeat(Repeat {
                report: Report {
                    task,
                    attempt: 1,
                    started_unix_ms: 1,
                    outcome: Outcome::Done {
                        record: WireCid(cid()),
                        figures: Vec::new(),
                    },
                },
                round: 3,
            }),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let bytes = m.encode().unwrap();
            assert_eq!(bytes[0], VERSION);
            assert_eq!(Message::decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn encoding_is_compact() {
        let m = Message::Cancel(Cancel {
            task: TaskId([7; 16]),
            attempt: 3,
        });
        // Version, variant, 16 id bytes, one varint.
        assert_eq!(m.encode().unwrap().len(), 19);
    }

    #[test]
    fn bad_payloads_are_refused() {
        let good = samples()[0].encode().unwrap();
        assert_eq!(Message::decode(&[]), Err(Error::Version(None)));
        let mut other = good.clone();
        other[0] = 9;
        assert_eq!(Message::decode(&other), Err(Error::Version(Some(9))));
        assert!(matches!(
            Message::decode(&good[..good.len() - 1]),
            Err(Error::Malformed(_))
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            Message::decode(&trailing),
            Err(Error::Malformed(_))
        ));
        assert_eq!(
            Message::decode(&vec![VERSION; MAX_MESSAGE_BYTES + 1]),
            Err(Error::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        // A variant past the last kind.
        let mut unknown = Message::Submit(Submit {
            key: String::new(),
            spec: Spec::new(Kind::Noop),
        })
        .encode()
        .unwrap();
        assert_eq!(unknown[2], 0, "kind Noop is variant 0");
        unknown[2] = Kind::ALL.len() as u8;
        assert!(matches!(
            Message::decode(&unknown),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn limits_hold_both_ways() {
        let mut spec = Spec::new(Kind::Noop);
        spec.inputs = vec![WireCid(cid()); MAX_INPUTS + 1];
        let m = Message::Submit(Submit {
            key: "k".into(),
            spec,
        });
        assert_eq!(m.encode(), Err(Error::Limit("too many inputs")));
        // Encoded by hand past the check, the receiver still refuses it.
        let mut bytes = vec![VERSION];
        bytes.extend(postcard::to_stdvec(&m).unwrap());
        assert_eq!(
            Message::decode(&bytes),
            Err(Error::Limit("too many inputs"))
        );
        let exec = Message::Submit(Submit {
            key: "k".into(),
            spec: Spec::new(Kind::Exec),
        });
        assert!(matches!(exec.encode(), Err(Error::Invalid(_))));
        let fetch = Message::Submit(Submit {
            key: "k".into(),
            spec: Spec::new(Kind::BenchFetch),
        });
        assert!(matches!(fetch.encode(), Err(Error::Invalid(_))));
    }

    #[test]
    fn ids_and_names_parse() {
        let id = TaskId::derive(&PeerId::random(), "x");
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        assert!("xyz".parse::<TaskId>().is_err());
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
        }
        assert!("bench.gpu".parse::<Kind>().is_err());
        assert_eq!(Topic::Tasks.name("lab"), "/ipfsbench/lab/tasks/3");
        assert_eq!(
            Topic::parse("/ipfsbench/lab/reports/3", "lab"),
            Some(Topic::Reports)
        );
        assert_eq!(Topic::parse("/ipfsbench/lab/reports/1", "other"), None);
        assert!(valid_cluster_name("default"));
        assert!(!valid_cluster_name("a/b"));
        assert!(!valid_cluster_name(""));
    }

    #[test]
    fn batches_keep_order_per_topic_and_split_at_the_limits() {
        let peer = PeerId::random();
        let cancel = |n: u32| {
            Message::Cancel(Cancel {
                task: TaskId::derive(&peer, &n.to_string()),
                attempt: n,
            })
        };
        let claim = |n: u32| {
            Message::Claim(Claim {
                task: TaskId::derive(&peer, &n.to_string()),
                attempt: n,
                accepted: true,
                started_unix_ms: 0,
                reason: "x".repeat(1000),
            })
        };
        // Interleaved topics: one payload per topic, each in its messages' order.
        let packed = pack(vec![cancel(1), claim(1), cancel(2), claim(2)]);
        assert!(packed.refused.is_empty());
        let topics: Vec<Topic> = packed.payloads.iter().map(|(t, _)| *t).collect();
        assert_eq!(topics, [Topic::Tasks, Topic::Reports]);
        assert_eq!(
            Message::decode_batch(&packed.payloads[0].1).unwrap(),
            [cancel(1), cancel(2)]
        );
        assert_eq!(
            Message::decode_batch(&packed.payloads[1].1).unwrap(),
            [claim(1), claim(2)]
        );
        // A single-message payload is what `encode` makes.
        assert_eq!(
            pack(vec![cancel(7)]).payloads[0].1,
            cancel(7).encode().unwrap()
        );
        // Past MAX_BATCH messages, or past the byte limit, a new payload starts.
        let many: Vec<Message> = (0..MAX_BATCH as u32 + 1).map(cancel).collect();
        let packed = pack(many.clone());
        assert_eq!(packed.payloads.len(), 2);
        let back: Vec<Message> = packed
            .payloads
            .iter()
            .flat_map(|(_, p)| Message::decode_batch(p).unwrap())
            .collect();
        assert_eq!(back, many);
        let big: Vec<Message> = (0..100).map(claim).collect();
        let packed = pack(big.clone());
        assert!(packed.payloads.len() >= 2);
        assert!(packed
            .payloads
            .iter()
            .all(|(_, p)| p.len() <= MAX_MESSAGE_BYTES));
        let back: Vec<Message> = packed
            .payloads
            .iter()
            .flat_map(|(_, p)| Message::decode_batch(p).unwrap())
            .collect();
        assert_eq!(back, big);
        // A message over its limits is refused alone; the rest still go.
        let mut bad = Spec::new(Kind::Noop);
        bad.inputs = vec![WireCid(cid()); MAX_INPUTS + 1];
        let bad = Message::Submit(Submit {
            key: "k".into(),
            spec: bad,
        });
        let packed = pack(vec![bad, cancel(3)]);
        assert_eq!(packed.refused.len(), 1);
        assert_eq!(packed.payloads.len(), 1);
    }

    #[test]
    fn batches_that_mix_topics_or_run_long_are_refused_whole() {
        let peer = PeerId::random();
        let cancel = Message::Cancel(Cancel {
            task: TaskId::derive(&peer, "k"),
            attempt: 1,
        });
        let claim = Message::Claim(Claim {
            task: TaskId::derive(&peer, "k"),
            attempt: 1,
            accepted: true,
            started_unix_ms: 0,
            reason: String::new(),
        });
        let mut mixed = cancel.encode().unwrap();
        mixed.extend_from_slice(&claim.encode().unwrap()[1..]);
        assert!(matches!(
            Message::decode_batch(&mixed),
            Err(Error::Invalid(_))
        ));
        let mut long = vec![VERSION];
        for _ in 0..=MAX_BATCH {
            long.extend_from_slice(&cancel.encode().unwrap()[1..]);
        }
        assert_eq!(
            Message::decode_batch(&long),
            Err(Error::Limit("too many messages"))
        );
        // `decode` takes exactly one.
        let mut two = cancel.encode().unwrap();
        two.extend_from_slice(&cancel.encode().unwrap()[1..]);
        assert_eq!(Message::decode_batch(&two).unwrap().len(), 2);
        assert!(matches!(Message::decode(&two), Err(Error::Malformed(_))));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&bytes);
            let mut versioned = vec![VERSION];
            versioned.extend(bytes);
            let _ = Message::decode(&versioned);
        }

        #[test]
        fn specs_round_trip(
            key in ".{0,40}",
            params in proptest::collection::vec(("[a-z]{1,8}", ".{0,20}"), 0..8),
            timeout in any::<u32>(),
            attempts in any::<u8>(),
        ) {
            let mut spec = Spec::new(Kind::BenchHash);
            spec.params = params;
            spec.timeout_secs = timeout;
            spec.max_attempts = attempts;
            let m = Message::Submit(Submit { key, spec });
            prop_assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        }
    }
}
