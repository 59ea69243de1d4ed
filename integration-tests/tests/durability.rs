//! Crash consistency of the repo under `kill -9`, with the real binary.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::data::write_pseudo_random_file;

fn node(repo: &Path) -> Command {
    let mut c = Command::new(ipfsbench_node_binary());
    c.arg("--repo").arg(repo).env_remove("IPFSBENCH_PATH");
    c
}

fn ok(repo: &Path, args: &[&str]) -> Output {
    let out = node(repo).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn pack_bytes(repo: &Path) -> u64 {
    std::fs::read_dir(repo.join("blocks/packs"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// `cat CID` equals the file, compared chunk by chunk without holding either in memory.
fn assert_cat_equals(repo: &Path, cid: &str, file: &Path) {
    let mut child = node(repo)
        .args(["cat", cid])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ours = BufReader::new(child.stdout.take().unwrap());
    let mut theirs = BufReader::new(std::fs::File::open(file).unwrap());
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = theirs.read(&mut b).unwrap();
        ours.read_exact(&mut a[..n]).unwrap();
        assert!(a[..n] == b[..n], "cat differs near offset {offset}");
        offset += n as u64;
        if n == 0 {
            break;
        }
    }
    assert_eq!(ours.read(&mut a).unwrap(), 0, "cat longer than the file");
    assert!(child.wait().unwrap().success());
}

fn verify_passes(repo: &Path) {
    let out = ok(repo, &["repo", "verify"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 bad"));
}

#[test]
fn kill_during_add_leaves_a_repo_that_opens_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let big = dir.path().join("big.bin");
    write_pseudo_random_file(&big, 160 << 20, 11).unwrap();
    ok(&repo, &["init"]);
    let first = dir.path().join("first.bin");
    write_pseudo_random_file(&first, 3 << 20, 12).unwrap();
    let first_cid = String::from_utf8(ok(&repo, &["add", "-Q", first.to_str().unwrap()]).stdout)
        .unwrap()
        .trim()
        .to_string();

    // Kill at several depths into the write: early, mid-file, and late.
    for threshold in [4u64 << 20, 40 << 20, 120 << 20] {
        let start = pack_bytes(&repo);
        let mut child = node(&repo)
            .args(["add", "-Q", big.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut finished = false;
        while pack_bytes(&repo) < start + threshold {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "add made no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        if finished {
            child.wait().unwrap();
        } else {
            kill9(&mut child);
        }
        verify_passes(&repo);
        // What was committed before is intact.
        assert_cat_equals(&repo, &first_cid, &first);
    }
    // The interrupted add can simply be run again.
    let out = ok(&repo, &["add", "-Q", big.to_str().unwrap()]);
    let cid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_cat_equals(&repo, &cid, &big);
    verify_passes(&repo);
    // Garbage left by the killed adds goes with gc's compaction.
    ok(&repo, &["repo", "gc"]);
    verify_passes(&repo);
    assert_cat_equals(&repo, &cid, &big);
}

#[test]
fn a_printed_cid_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(&repo, &["init"]);
    let small = dir.path().join("small.bin");
    let big = dir.path().join("big.bin");
    write_pseudo_random_file(&small, (5 << 20) + 17, 21).unwrap();
    write_pseudo_random_file(&big, 200 << 20, 22).unwrap();

    // `add small big` prints small's line once small is committed, then works on big:
    // the kill lands right after the line, with the process still busy.
    let mut child = node(&repo)
        .args(["add", small.to_str().unwrap(), big.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let still_running = child.try_wait().unwrap().is_none();
    kill9(&mut child);
    assert!(
        still_running,
        "the add finished before the kill; the test proves nothing"
    );
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert_eq!(parts[0], "added");
    assert!(parts[2].ends_with("small.bin"));
    let cid = parts[1];

    verify_passes(&repo);
    assert_cat_equals(&repo, cid, &small);
    let pins = String::from_utf8(ok(&repo, &["pin", "ls", "--type", "recursive"]).stdout).unwrap();
    assert!(pins.contains(cid), "the printed root is pinned: {pins}");
    // And gc does not take it.
    ok(&repo, &["repo", "gc"]);
    assert_cat_equals(&repo, cid, &small);
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bytes_a_crash_leaves_in_packs_and_scratch_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let big = dir.path().join("big.bin");
    write_pseudo_random_file(&big, 96 << 20, 31).unwrap();
    ok(&repo, &["init"]);
    let mut child = node(&repo)
        .args(["add", "-Q", big.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while pack_bytes(&repo) < 24 << 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the add finished first"
        );
        assert!(Instant::now() < deadline, "add made no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    kill9(&mut child);
    // What crashed workers and uploads leave in the scratch area.
    for leftover in ["add-a1b2/sub", "bench-store-x9", "exec-q7/outputs"] {
        std::fs::create_dir_all(repo.join("tmp").join(leftover)).unwrap();
    }
    std::fs::write(repo.join("tmp/add-a1b2/sub/part"), vec![1u8; 4 << 20]).unwrap();

    ok(&repo, &["repo", "stat"]);
    assert!(
        entries(&repo.join("tmp")).is_empty(),
        "{:?}",
        entries(&repo.join("tmp"))
    );
    verify_passes(&repo);
    // Nothing is pinned: gc leaves no pack bytes, whether the crash left them indexed or not.
    ok(&repo, &["repo", "gc"]);
    assert!(
        pack_bytes(&repo) < 1 << 20,
        "{} pack bytes of the crashed add stay after gc",
        pack_bytes(&repo)
    );
    verify_passes(&repo);
}

#[test]
fn a_daemon_killed_during_an_upload_leaves_no_spool_behind() {
    use std::io::Write;
    let mut daemon = ipfsbench_integration_tests::daemon::Node::start("worker", &[]);
    let api = std::fs::read_to_string(daemon.repo().join("api")).unwrap();
    let parts: Vec<&str> = api.trim().split('/').collect();
    let mut upload = std::net::TcpStream::connect(format!("{}:{}", parts[2], parts[4])).unwrap();
    write!(
        upload,
        "POST /api/v0/add HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=B0undary\r\n\
         Content-Length: 1000000000\r\n\r\n--B0undary\r\nContent-Disposition: form-data; \
         name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    upload.write_all(&vec![9u8; 4 << 20]).unwrap();
    let tmp = daemon.repo().join("tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while entries(&tmp).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached its spool"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill();
    drop(upload);
    assert!(
        !entries(&tmp).is_empty(),
        "the crash left a spool (the test needs one)"
    );
    daemon.restart();
    assert!(
        entries(&tmp).is_empty(),
        "left after restart: {:?}",
        entries(&tmp)
    );

    // `repo gc` sweeps what no running upload or task holds.
    std::fs::create_dir_all(tmp.join("exec-stray")).unwrap();
    daemon.ok(&["repo", "gc"]);
    assert!(
        entries(&tmp).is_empty(),
        "left after gc: {:?}",
        entries(&tmp)
    );
}
