use super::*;
use crate::Role;
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
