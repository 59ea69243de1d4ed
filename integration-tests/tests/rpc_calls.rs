//! The Kubo RPC calls clients use after add and cat, against real daemons over HTTP: `dag/get`,
//! `dag/put`, `dag/stat`, `refs`, `refs/local`, `ping`, `swarm/addrs/local`, `config/show`,
//! `name/resolve`, and pubsub delivering a node's own messages to its subscribers. Expected
//! CIDs and renderings come from Kubo 0.22's own `dag` tests (sharness t0053-dag.sh).

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::daemon::Node;
use serde_json::Value;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `call?query` with an optional one-part multipart body; the status and body text.
fn call(node: &Node, call: &str, parts: &[&[u8]]) -> (u16, String) {
    let url = format!("{}/{call}", node.api_base());
    let mut resp = if parts.is_empty() {
        agent().post(&url).send_empty().unwrap()
    } else {
        let boundary = "XyZzYbOuNdArY";
        let mut body = Vec::new();
        for data in parts {
            write!(
                body,
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .unwrap();
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        write!(body, "--{boundary}--\r\n").unwrap();
        agent()
            .post(&url)
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&body[..])
            .unwrap()
    };
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

fn ok(node: &Node, path: &str, parts: &[&[u8]]) -> String {
    let (status, body) = call(node, path, parts);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn bad(node: &Node, path: &str, parts: &[&[u8]], want: &str) {
    let (status, body) = call(node, path, parts);
    assert_eq!(status, 400, "{path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Type"], "error", "{body}");
    let message = v["Message"].as_str().unwrap();
    assert!(message.contains(want), "{path}: {message}");
}

fn add(node: &Node, content: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, content).unwrap();
    String::from_utf8(node.ok(&["add", "-Q", file.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn dag_put_get_and_stat_match_kubo() {
    let node = Node::start("worker", &[]);
    let (h1, h2, h3) = (
        add(&node, b"foo\n"),
        add(&node, b"bar\n"),
        add(&node, b"baz\n"),
    );
    let object = format!(
        r#"{{"hello":"world","cats":[{{"/":"{h1}"}},{{"water":{{"/":"{h2}"}}}}],"magic":{{"/":"{h3}"}},"sub":{{"dict":"ionary","beep":[0,"bop"]}}}}"#
    );
    // dag-json in, dag-cbor stored (the defaults): Kubo's CID.
    let put = lines(&ok(&node, "dag/put", &[object.as_bytes()]));
    let cid = put[0]["Cid"]["/"].as_str().unwrap().to_string();
    assert_eq!(
        cid,
        "bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde"
    );
    let put = lines(&ok(
        &node,
        "dag/put?store-codec=dag-json",
        &[object.as_bytes()],
    ));
    assert_eq!(
        put[0]["Cid"]["/"],
        "baguqeera6gviseelmbzn2ugoddo5vulxlshqs3kw5ymgsb6w4cabnoh4ldpa"
    );
    // Two parts, two nodes, in order.
    let two = lines(&ok(
        &node,
        "dag/put",
        &[br#"{"foo":"bar"}"#, br#"{"foo":"baz"}"#],
    ));
    assert_eq!(
        two[0]["Cid"]["/"],
        "bafyreiblaotetvwobe7cu2uqvnddr6ew2q3cu75qsoweulzku2egca4dxq"
    );
    assert_eq!(
        two[1]["Cid"]["/"],
        "bafyreibqp7zvp6dvrqhtkbwuzzk7jhtmfmngtiqjajqpm6gtw55o7kqzfi"
    );
    // pin=true pins the node recursively.
    let pinned = lines(&ok(&node, "dag/put?pin=true", &[br#"{"pin":"me"}"#]));
    let pinned = pinned[0]["Cid"]["/"].as_str().unwrap().to_string();
    let pins: Value = serde_json::from_str(&ok(&node, "pin/ls?type=recursive", &[])).unwrap();
    assert_eq!(pins["Keys"][&pinned]["Type"], "recursive", "{pins}");
    assert!(
        pins["Keys"].get(&cid).is_none(),
        "pin defaults to false: {pins}"
    );
    // dag-pb stored from its dag-json form.
    let pb = br#"{"Data":{"/":{"bytes":"AAECAwQ"}},"Links":[]}"#;
    let put = lines(&ok(&node, "dag/put?store-codec=dag-pb", &[pb]));
    let pb_cid = put[0]["Cid"]["/"].as_str().unwrap().to_string();
    assert_eq!(
        pb_cid,
        "bafybeibazl2z4vqp2tmwcfag6wirmtpnomxknqcgrauj7m2yisrz3qjbom"
    );
    assert_eq!(
        ok(&node, &format!("dag/get?arg={pb_cid}"), &[]),
        String::from_utf8_lossy(pb)
    );
    assert_eq!(
        ok(&node, &format!("dag/get?arg=/ipld/{pb_cid}/Data"), &[]),
        r#"{"/":{"bytes":"AAECAwQ"}}"#
    );
    // Paths into the object, and through its links, rendered as Kubo renders them.
    for (path, want) in [
        ("hello", r#""world""#),
        ("sub", r#"{"beep":[0,"bop"],"dict":"ionary"}"#),
        ("sub/beep", r#"[0,"bop"]"#),
        ("sub/beep/0", "0"),
        ("sub/beep/1", r#""bop""#),
        (
            "cats/0",
            r#"{"Data":{"/":{"bytes":"CAISBGZvbwoYBA"}},"Links":[]}"#,
        ),
    ] {
        assert_eq!(ok(&node, &format!("dag/get?arg={cid}/{path}"), &[]), want);
    }
    // A UnixFS file from add.
    let foobar = add(&node, b"foobar\n");
    assert_eq!(
        ok(&node, &format!("dag/get?arg={foobar}"), &[]),
        r#"{"Data":{"/":{"bytes":"CAISB2Zvb2JhcgoYBw"}},"Links":[]}"#
    );
    // Round trip through dag-cbor output.
    let (status, cbor) = {
        let url = format!(
            "{}/dag/get?arg={pb_cid}&output-codec=dag-cbor",
            node.api_base()
        );
        let mut resp = agent().post(&url).send_empty().unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_vec().unwrap(),
        )
    };
    assert_eq!(status, 200);
    let back = lines(&ok(
        &node,
        "dag/put?input-codec=dag-cbor&store-codec=dag-pb",
        &[&cbor],
    ));
    assert_eq!(back[0]["Cid"]["/"], pb_cid.as_str());

    // dag/stat: the object, the three leaves it links to (foo under cats/0, bar, baz).
    let stat = lines(&ok(
        &node,
        &format!("dag/stat?arg={cid}&progress=false"),
        &[],
    ));
    assert_eq!(stat.len(), 1);
    let s = &stat[0];
    assert_eq!(s["UniqueBlocks"], 4, "{s}");
    assert_eq!(s["Ratio"], 1, "{s}");
    assert_eq!(s["DagStats"][0]["Cid"], cid.as_str());
    assert_eq!(s["DagStats"][0]["NumBlocks"], 4);
    assert_eq!(s["DagStats"][0]["Size"], s["TotalSize"]);
    assert!(s.get("SharedSize").is_none(), "{s}");
    // With progress (the default): a line per block, then the summary.
    let progress = lines(&ok(&node, &format!("dag/stat?arg={cid}"), &[]));
    assert_eq!(progress.len(), 5);
    assert_eq!(progress[4], *s);

    // Bad input: a clear 400, nothing stored.
    bad(&node, "dag/put", &[b"{not json"], "invalid DAG-JSON");
    bad(&node, "dag/put?hash=sha3-512", &[b"{}"], "sha2-256 only");
    bad(
        &node,
        "dag/put?store-codec=dag-jose",
        &[b"{}"],
        "unsupported codec",
    );
    bad(
        &node,
        "dag/put?store-codec=dag-pb",
        &[b"{}"],
        "not a dag-pb node",
    );
    bad(&node, "dag/put", &[], "multipart");
    let big = format!("\"{}\"", "x".repeat((1 << 20) + 10));
    bad(&node, "dag/put", &[big.as_bytes()], "over");
    bad(
        &node,
        "dag/get?arg=bafyreiblwimnjbqcdoeafiobk6q27jcw64ew7n2fmmhdpldd63edmjecde&output-codec=yaml",
        &[],
        "unsupported codec",
    );
    let (status, _) = call(&node, &format!("dag/get?arg={cid}/nope"), &[]);
    assert_eq!(status, 404);
}

#[test]
fn refs_list_links_as_kubo_does() {
    let node = Node::start("worker", &[]);
    let leaf = add(&node, b"foo\n");
    let other = add(&node, b"bar\n");
    let mid = lines(&ok(
        &node,
        "dag/put",
        &[format!(r#"{{"a":{{"/":"{leaf}"}},"b":{{"/":"{leaf}"}}}}"#).as_bytes()],
    ))[0]["Cid"]["/"]
        .as_str()
        .unwrap()
        .to_string();
    let top = lines(&ok(
        &node,
        "dag/put",
        &[format!(r#"{{"m":{{"/":"{mid}"}},"o":{{"/":"{other}"}}}}"#).as_bytes()],
    ))[0]["Cid"]["/"]
        .as_str()
        .unwrap()
        .to_string();
    let refs = |query: &str| -> Vec<String> {
        lines(&ok(&node, &format!("refs?arg={top}{query}"), &[]))
            .iter()
            .map(|l| {
                assert_eq!(l["Err"], "");
                l["Ref"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(refs(""), [mid.clone(), other.clone()]);
    assert_eq!(
        refs("&recursive=true"),
        [mid.clone(), leaf.clone(), leaf.clone(), other.clone()]
    );
    assert_eq!(
        refs("&recursive=true&unique=true"),
        [mid.clone(), leaf.clone(), other.clone()]
    );
    assert_eq!(
        refs("&recursive=true&max-depth=1"),
        [mid.clone(), other.clone()]
    );
    assert_eq!(
        refs("&edges=true"),
        [format!("{top} -> {mid}"), format!("{top} -> {other}")]
    );
    assert_eq!(
        refs("&format=%3Csrc%3E:%3Cdst%3E"),
        [format!("{top}:{mid}"), format!("{top}:{other}")]
    );
    bad(
        &node,
        &format!("refs?arg={top}&edges=true&format=%3Csrc%3E"),
        &[],
        "not allowed",
    );
    bad(&node, "refs", &[], "required");

    // refs/local: every block, as CIDv1 raw.
    let local: Vec<String> = lines(&ok(&node, "refs/local", &[]))
        .iter()
        .map(|l| l["Ref"].as_str().unwrap().to_string())
        .collect();
    assert!(local.len() >= 4, "{local:?}");
    // A dag-cbor CIDv1 and the raw one of the same hash differ in one base32 letter.
    for cid in [&mid, &top] {
        let raw = format!("bafk{}", &cid[4..]);
        assert!(local.contains(&raw), "{cid} missing: {local:?}");
    }
    assert!(local.iter().all(|c| c.starts_with("bafk")), "{local:?}");
}

#[test]
fn node_calls_answer_in_kubos_shapes() {
    let a = Node::start("worker", &[]);
    let b = Node::start("worker", &[]);
    a.connect(&b);

    // swarm/addrs/local: sorted; with id, each ends in /p2p/<id>.
    let plain: Value = serde_json::from_str(&ok(&a, "swarm/addrs/local", &[])).unwrap();
    let plain = plain["Strings"].as_array().unwrap().clone();
    assert!(!plain.is_empty());
    let with_id: Value = serde_json::from_str(&ok(&a, "swarm/addrs/local?id=true", &[])).unwrap();
    let with_id = with_id["Strings"].as_array().unwrap();
    assert_eq!(with_id.len(), plain.len());
    for (p, w) in plain.iter().zip(with_id) {
        assert_eq!(
            w.as_str().unwrap(),
            format!("{}/p2p/{}", p.as_str().unwrap(), a.peer_id)
        );
    }

    // config/show: Kubo's identity section without a private key.
    let config: Value = serde_json::from_str(&ok(&a, "config/show", &[])).unwrap();
    assert_eq!(config["Identity"]["PeerID"], a.peer_id.as_str());
    assert!(config["Identity"].get("PrivKey").is_none());
    assert!(config["Addresses"]["Swarm"].is_array());
    let key = std::fs::read(a.repo().join("identity.key")).ok();
    let text = config.to_string();
    assert!(!text.to_lowercase().contains("privkey"), "{text}");
    if let Some(key) = key {
        let b64 = multibase::encode(multibase::Base::Base64Pad, &key);
        assert!(!text.contains(&b64[1..]), "the key leaked");
    }

    // name/resolve of /ipfs/ paths; IPNS names are a clear error.
    let cid = add(&a, b"resolve me");
    let r: Value =
        serde_json::from_str(&ok(&a, &format!("name/resolve?arg=/ipfs/{cid}"), &[])).unwrap();
    assert_eq!(r["Path"], format!("/ipfs/{cid}"));
    bad(
        &a,
        &format!("name/resolve?arg=/ipns/{}", a.peer_id),
        &[],
        "IPNS is not supported",
    );
    bad(
        &a,
        &format!("name/resolve?arg={}", a.peer_id),
        &[],
        "IPNS is not supported",
    );

    // ping: a PING line, one line per round with its time, then the average.
    let pings = lines(&ok(&a, &format!("ping?arg={}&count=2", b.peer_id), &[]));
    assert_eq!(pings.len(), 4, "{pings:?}");
    assert_eq!(pings[0]["Text"], format!("PING {}.", b.peer_id));
    for p in &pings[1..3] {
        assert_eq!(p["Success"], true, "{p}");
        assert!(p["Time"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["Text"], "");
    }
    assert!(pings[3]["Text"]
        .as_str()
        .unwrap()
        .starts_with("Average latency: "));
    bad(
        &a,
        &format!("ping?arg={}", a.peer_id),
        &[],
        "can't ping self",
    );
    bad(
        &a,
        &format!("ping?arg={}&count=0", b.peer_id),
        &[],
        "greater than 0",
    );
    bad(&a, "ping?arg=nobody", &[], "failed to parse peer address");
}

/// Reads `pubsub/sub` lines on a thread.
fn subscribe(node: &Node, topic: &str) -> mpsc::Receiver<Value> {
    let url = format!(
        "{}/pubsub/sub?arg={}",
        node.api_base(),
        multibase::encode(multibase::Base::Base64Url, topic)
    );
    let (tx, rx) = mpsc::sync_channel(64);
    std::thread::spawn(move || {
        let resp = agent().post(&url).send_empty().unwrap();
        let reader = BufReader::new(resp.into_body().into_reader());
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

fn publish(node: &Node, topic: &str, data: &[u8]) {
    let topic = multibase::encode(multibase::Base::Base64Url, topic);
    ok(node, &format!("pubsub/pub?arg={topic}"), &[data]);
}

/// Waits until `node` lists `topic` among its subscriptions.
fn wait_subscribed(node: &Node, topic: &str) {
    let encoded = multibase::encode(multibase::Base::Base64Url, topic);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok(node, "pubsub/ls", &[]).contains(&encoded) {
        assert!(Instant::now() < deadline, "never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pubsub_subscribers_hear_their_own_node_once() {
    let a = Node::start("worker", &[]);
    let b = Node::start("worker", &[]);
    a.connect(&b);
    let topic = "ipfsbench-self-delivery";
    // Alone on the topic, and then with a peer subscribed that could echo it back.
    let own = subscribe(&a, topic);
    wait_subscribed(&a, topic);
    publish(&a, topic, b"alone");
    let m = own.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(m["from"], a.peer_id.as_str());
    assert_eq!(
        m["data"],
        multibase::encode(multibase::Base::Base64Url, b"alone")
    );
    assert_eq!(
        m["topicIDs"][0],
        multibase::encode(multibase::Base::Base64Url, topic)
    );
    assert!(m["seqno"].as_str().unwrap().starts_with('u'));
    let theirs = subscribe(&b, topic);
    wait_subscribed(&b, topic);
    // Wait until a knows b's subscription, then publish once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let peers_url = format!(
        "pubsub/peers?arg={}",
        multibase::encode(multibase::Base::Base64Url, topic)
    );
    while !ok(&a, &peers_url, &[]).contains(&b.peer_id) {
        assert!(
            Instant::now() < deadline,
            "b's subscription never reached a"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    publish(&a, topic, b"with a peer");
    let m = own.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        m["data"],
        multibase::encode(multibase::Base::Base64Url, b"with a peer")
    );
    let r = theirs.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(r["data"], m["data"]);
    assert_eq!(r["seqno"], m["seqno"], "the same message, the same seqno");
    // Exactly once: nothing more arrives on either side. A second copy would come from b
    // forwarding the message back (or a delivering it again from the network), which on
    // loopback takes milliseconds once b has it; a window proves an absence, and under a
    // second of it is ample. A duplicate ends the wait at once.
    let window = Duration::from_millis(800);
    match own.recv_timeout(window) {
        Ok(again) => panic!("our own message arrived twice: {again}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a's subscription ended"),
        Err(mpsc::RecvTimeoutError::Timeout) => {}
    }
    assert!(theirs.try_recv().is_err(), "b heard the message twice");
}
