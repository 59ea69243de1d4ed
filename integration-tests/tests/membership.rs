//! The cluster's root with the real binary: `cluster init` on a first master, `cluster root
//! export` and `import` on a standby, refusals that leave nothing written, and a daemon
//! started on a repo that holds a root.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::Node;

fn run(repo: &Path, args: &[&str]) -> Output {
    Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("IPFSBENCH_PATH")
        .output()
        .unwrap()
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let out = run(repo, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(repo: &Path, args: &[&str], says: &str) {
    let out = run(repo, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn a_root_made_once_moves_to_a_standby_master_by_file_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&a, &["init"]);
    ok(&b, &["init"]);
    refused(
        &a,
        &["cluster", "init", "--name", "no/slash"],
        "not a cluster name",
    );
    assert!(!a.join("cluster").exists(), "a refused init writes nothing");
    let said = ok(&a, &["cluster", "init", "--name", "lab", "--private"]);
    assert!(said.contains("cluster \"lab\" (private network)"), "{said}");
    let key = std::fs::read(a.join("cluster/root.key")).unwrap();
    assert!(
        !said.contains(&format!("{key:?}")),
        "the key is never printed"
    );
    let mode = std::fs::metadata(a.join("cluster/root.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    refused(
        &a,
        &["cluster", "init", "--name", "lab"],
        "already holds a cluster root",
    );

    let file = tmp.path().join("lab.root");
    ok(&a, &["cluster", "root", "export", file.to_str().unwrap()]);
    refused(
        &a,
        &["cluster", "root", "export", file.to_str().unwrap()],
        "File exists",
    );
    let said = ok(&b, &["cluster", "root", "import", file.to_str().unwrap()]);
    assert!(said.contains("is a master of it"), "{said}");
    assert_eq!(
        std::fs::read(a.join("swarm.key")).unwrap(),
        std::fs::read(b.join("swarm.key")).unwrap()
    );
    assert_eq!(
        std::fs::read(a.join("cluster/cluster.json")).unwrap(),
        std::fs::read(b.join("cluster/cluster.json")).unwrap()
    );
    refused(
        &b,
        &["cluster", "root", "import", file.to_str().unwrap()],
        "already holds",
    );

    // The daemon holds the repo: the root's commands say to stop it first.
    let node = Node::start_in(&a, "master", &[], |_: &Path| {});
    let out = node.cli(&["cluster", "root", "export", "/dev/null"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked by another process"));
}

#[test]
fn a_master_with_the_root_issues_lists_and_revokes_invites() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("master");
    ok(&repo, &["init"]);
    ok(&repo, &["cluster", "init", "--name", "lab"]);
    let master = Node::start_in(&repo, "master", &[], |_: &Path| {});
    let out = master.cli(&[
        "cluster", "invite", "--role", "worker", "--uses", "2", "--tag", "gpu:none",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.trim();
    assert!(token.starts_with("ipfsbench-invite-1-") && !token.contains(char::is_whitespace));
    let told = String::from_utf8_lossy(&out.stderr);
    assert!(told.contains("worker for 2 node(s)"), "{told}");
    let id = told
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();

    // Bounds are the API's: a clear refusal, nothing recorded.
    for bad in [
        vec!["--role", "admin"],
        vec!["--ttl", "0s"],
        vec!["--uses", "0"],
        vec!["--tag", "no-colon"],
        vec!["--addr", "not-an-address"],
        vec![
            "--addr",
            "/dns4/localhost/tcp/1/p2p/12D3KooWGzBkzH5WxJAbPp2Z6qBbH6ZpAqFHHGrDzRtbXBmCXkd6",
        ],
    ] {
        let mut args = vec!["cluster", "invite"];
        args.extend(bad.iter().copied());
        let out = master.cli(&args);
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
    let listed = String::from_utf8(master.ok(&["cluster", "invites"])).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains(&id) && listed.contains("0/2") && listed.contains("open"),
        "{listed}"
    );

    let out = master.cli(&["cluster", "invite", "--revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(master.ok(&["cluster", "invites"])).unwrap();
    assert!(listed.contains("revoked"), "{listed}");
    let out = master.cli(&["cluster", "invite", "--revoke", "0000000000000000"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no invite"));

    // A worker holds no root: it cannot invite.
    let worker = Node::start("worker", &[]);
    let out = worker.cli(&["cluster", "invite"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no cluster root"));
}

/// Runs a daemon that must refuse to join: it exits non-zero saying `says`, and its repo
/// holds no cluster afterwards.
fn join_refused(dir: &Path, token: &str, says: &str) {
    let repo = dir.join(format!("refused-{}", says.replace(' ', "-")));
    ok(&repo, &["init"]);
    let mut child = Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(&repo)
        .args([
            "--role",
            "worker",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
        ])
        .args(["--gateway", "off", "--mdns", "false", "--join", token])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "a refused join did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "joined with a token that {says}");
    assert!(err.contains(says), "{err}");
    assert!(
        !repo.join("cluster").exists(),
        "a refused join wrote its cluster"
    );
    assert!(
        !repo.join("swarm.key").exists(),
        "a refused join wrote the swarm key"
    );
}

#[test]
fn a_worker_joins_a_private_cluster_with_one_token_and_bad_tokens_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("master");
    ok(&repo, &["init"]);
    ok(&repo, &["cluster", "init", "--name", "lab", "--private"]);
    let master = Node::start_in(&repo, "master", &[], |_: &Path| {});
    let invite = |args: &[&str]| {
        let mut all = vec!["cluster", "invite"];
        all.extend(args);
        let out = master.ok(&all);
        String::from_utf8(out).unwrap().trim().to_string()
    };
    let token = invite(&["--role", "worker", "--uses", "1", "--tag", "gpu:none"]);

    // The worker's repo knows nothing of the cluster: no name, no swarm key, no peer id.
    let worker = Node::start("worker", &["--join", &token]);
    let cert = worker.repo().join("cluster/member.cert");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cert.exists() {
        assert!(Instant::now() < deadline, "the worker did not join");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read(repo.join("swarm.key")).unwrap(),
        std::fs::read(worker.repo().join("swarm.key")).unwrap()
    );
    let info = std::fs::read_to_string(worker.repo().join("cluster/cluster.json")).unwrap();
    assert!(
        info.contains("\"Name\": \"lab\"") && info.contains("\"Private\": true"),
        "{info}"
    );
    let listed = String::from_utf8(master.ok(&["cluster", "invites"])).unwrap();
    assert!(
        listed.contains("1/1") && listed.contains("used up"),
        "{listed}"
    );

    // Both run on the cluster's name, so the master hears the worker's heartbeats.
    let config = std::fs::read_to_string(worker.repo().join("config.toml")).unwrap();
    let peer = config
        .lines()
        .find_map(|l| l.strip_prefix("peer_id = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let peers = String::from_utf8(master.ok(&["cluster", "peers"])).unwrap();
        if peers.contains(&peer) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the master never heard the worker:\n{peers}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Used up, revoked, expired, not a token: refused, nothing written.
    join_refused(tmp.path(), &token, "used up");
    let revoked = invite(&["--role", "worker"]);
    let id = String::from_utf8(master.ok(&["cluster", "invites"])).unwrap();
    let id = id
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    master.ok(&["cluster", "invite", "--revoke", &id]);
    join_refused(tmp.path(), &revoked, "revoked");
    let expired = invite(&["--role", "worker", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1_500));
    join_refused(tmp.path(), &expired, "expired");
    join_refused(tmp.path(), "ipfsbench-invite-1-AAAA", "malformed invite");
}

#[test]
fn forged_and_other_cluster_tokens_are_refused_and_write_nothing() {
    use ipfsbench_protocols::membership::Invite;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("master");
    ok(&repo, &["init"]);
    ok(&repo, &["cluster", "init", "--name", "lab"]);
    let master = Node::start_in(&repo, "master", &[], |_: &Path| {});
    let token = String::from_utf8(master.ok(&["cluster", "invite", "--uses", "10"])).unwrap();
    let real = Invite::decode(&token).unwrap();
    // An address given to `cluster invite --addr` comes first, with the master's id.
    let port = master
        .addr
        .split("/tcp/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let dns = format!("/dns4/localhost/tcp/{port}");
    let named = String::from_utf8(master.ok(&["cluster", "invite", "--uses", "2", "--addr", &dns]))
        .unwrap();
    let named = Invite::decode(&named).unwrap();
    assert_eq!(
        named.multiaddrs()[0].to_string(),
        format!("{dns}/p2p/{}", master.peer_id)
    );
    let forge = |change: &dyn Fn(&mut Invite)| {
        let mut invite = real.clone();
        change(&mut invite);
        invite.encode().unwrap()
    };

    // Another root in the token: what the master signs does not verify under it.
    let other_root = forge(&|i| {
        i.root = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .encode_protobuf();
    });
    join_refused(tmp.path(), &other_root, "not signed by this cluster's root");
    // The right id with a made-up secret.
    let guessed = forge(&|i| i.secret = [7; 32]);
    join_refused(tmp.path(), &guessed, "the secret is not this invite's");
    // A token that names another cluster than the masters it points at.
    let other_cluster = forge(&|i| i.cluster = "other".into());
    join_refused(
        tmp.path(),
        &other_cluster,
        "for cluster \"lab\", not \"other\"",
    );

    // A member handed another cluster's token says so and does not start.
    let mut worker = Node::start("worker", &["--join", &token]);
    let cert = worker.repo().join("cluster/member.cert");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cert.exists() {
        assert!(Instant::now() < deadline, "the worker did not join");
        std::thread::sleep(Duration::from_millis(50));
    }
    worker.stop();
    let before = std::fs::read(&cert).unwrap();
    let out = run(
        worker.repo(),
        &[
            "--role",
            "worker",
            "--api",
            "127.0.0.1:0",
            "--join",
            &other_cluster,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("belongs to cluster \"lab\"; the token is for cluster \"other\""),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "the membership is untouched"
    );
}
