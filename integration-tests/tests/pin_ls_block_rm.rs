//! `pin/ls` and `block/rm` of a real daemon as Kubo 0.22 answers them (its
//! `core/commands/pin/pin.go` and `block.go`): `pin/ls` with `arg`s lists only the named
//! paths (resolved), each with how it is pinned (`indirect through <root>` below a recursive
//! pin), honouring `type`, and fails with Kubo's message and status (500) for one that is not
//! pinned so; `stream=true` answers a line per pin; `block/rm` answers a line per removed block
//! with no `Error` field (Kubo's RPC clients take any `Error` field for a failure), honours
//! `quiet` and `force`.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Duration;

use ipfsbench_integration_tests::daemon::Node;
use serde_json::Value;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// POSTs `call` with `part` as a file part, if any; the status and the body.
fn post(node: &Node, call: &str, part: Option<&[u8]>) -> (u16, String) {
    let url = format!("{}/{call}", node.api_base());
    let mut resp = match part {
        None => agent().post(&url).send_empty().unwrap(),
        Some(data) => {
            let mut body = Vec::new();
            write!(
                body,
                "--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .unwrap();
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n--B0undary--\r\n");
            agent()
                .post(&url)
                .header("Content-Type", "multipart/form-data; boundary=B0undary")
                .send(&body[..])
                .unwrap()
        }
    };
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

fn ok(node: &Node, call: &str, part: Option<&[u8]>) -> String {
    let (status, body) = post(node, call, part);
    assert_eq!(status, 200, "{call}: {body}");
    body
}

/// A directory `tree` (`a.txt`, `sub/b.txt`) added, so pinned recursively.
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

#[test]
fn pin_ls_lists_the_named_paths_as_kubo_does() {
    let node = Node::start("worker", &[]);
    let (_dir, root) = add_dir(&node);
    let listing: Value = serde_json::from_str(&ok(&node, &format!("ls?arg={root}"), None)).unwrap();
    let link = |name: &str| {
        listing["Objects"][0]["Links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["Name"] == name)
            .unwrap()["Hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (file, sub) = (link("a.txt"), link("sub"));
    let put = |data: &[u8]| {
        let answer = ok(&node, "block/put", Some(data));
        serde_json::from_str::<Value>(&answer).unwrap()["Key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (direct, other) = (put(b"pinned directly\n"), put(b"not pinned\n"));
    ok(
        &node,
        &format!("pin/add?arg={direct}&recursive=false"),
        None,
    );
    let keys = |query: &str| -> Value {
        let v: Value = serde_json::from_str(&ok(&node, &format!("pin/ls?{query}"), None)).unwrap();
        v.get("Keys").cloned().unwrap_or(Value::Null)
    };

    // Only the named paths, each with how it is pinned; a path resolves to its CID.
    let named = keys(&format!("arg={root}&arg={direct}&arg=/ipfs/{root}/a.txt"));
    let expected = serde_json::json!({
        root.clone(): {"Type": "recursive"},
        direct.clone(): {"Type": "direct"},
        file.clone(): {"Type": format!("indirect through {root}")},
    });
    assert_eq!(named, expected);
    assert_eq!(
        keys(&format!("arg={sub}&type=indirect")),
        serde_json::json!({sub.clone(): {"Type": format!("indirect through {root}")}})
    );
    // Streamed: a line per named path.
    let lines: Vec<Value> = ok(&node, &format!("pin/ls?arg={direct}&stream=true"), None)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [serde_json::json!({"Cid": direct, "Type": "direct"})]
    );

    // Not pinned at all, or not as the type asked: Kubo's error, and nothing listed.
    for (query, path) in [
        (format!("arg={other}"), other.clone()),
        (format!("arg={root}&arg={other}"), other.clone()),
        (format!("arg={file}&type=recursive"), file.clone()),
        (format!("arg={root}&type=direct"), root.clone()),
        (
            format!("arg=/ipfs/{root}/sub&type=direct"),
            format!("/ipfs/{root}/sub"),
        ),
    ] {
        let (status, body) = post(&node, &format!("pin/ls?{query}"), None);
        assert_eq!(status, 500, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["Message"],
            format!("path '{path}' is not pinned"),
            "{query}"
        );
        assert_eq!(
            (v["Code"].clone(), v["Type"].clone()),
            (0.into(), "error".into())
        );
    }
    // Without arguments: every pin of the type.
    let all = keys("type=all");
    for cid in [&root, &direct, &file, &sub] {
        assert!(all.get(cid.as_str()).is_some(), "{cid} missing from {all}");
    }
    assert_eq!(
        keys("type=direct"),
        serde_json::json!({direct.clone(): {"Type": "direct"}})
    );
}

#[test]
fn block_rm_answers_without_an_error_field_when_it_succeeds() {
    let node = Node::start("worker", &[]);
    let mut cids = Vec::new();
    for data in [&b"first\n"[..], b"second\n", b"third\n"] {
        let put: Value = serde_json::from_str(&ok(&node, "block/put", Some(data))).unwrap();
        cids.push(put["Key"].as_str().unwrap().to_string());
    }
    let body = ok(
        &node,
        &format!("block/rm?arg={}&arg={}", cids[0], cids[1]),
        None,
    );
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"Hash": cids[0]}),
            serde_json::json!({"Hash": cids[1]}),
        ],
        "{body}"
    );
    // quiet: no line for a block removed; force: a block that is not here is no failure.
    assert_eq!(
        ok(&node, &format!("block/rm?arg={}&quiet=true", cids[2]), None),
        ""
    );
    let again = ok(&node, &format!("block/rm?arg={}&force=true", cids[0]), None);
    assert_eq!(again.trim(), format!(r#"{{"Hash":"{}"}}"#, cids[0]));
    let (status, body) = post(&node, &format!("block/rm?arg={}", cids[0]), None);
    assert_eq!(status, 404, "{body}");
    let local = ok(&node, "refs/local", None);
    for cid in &cids {
        assert!(!local.contains(cid.as_str()), "{cid} still here");
    }
}
