//! A full disk, for real: repos on a small tmpfs (tests run as root in CI; elsewhere every
//! trial is reported as ignored, with the reason). A write that fails for space must leave the
//! store exactly as it was, the add that hit it must fail cleanly, and once space is back
//! adds must work and read back byte for byte.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::daemon::{Node, Tuning};
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use ipfsbench_integration_tests::sys::free_bytes;
use ipfsbench_integration_tests::tmpfs::Tmpfs;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// One trial: gets a fresh 96 MiB tmpfs.
type Check = fn(&Tmpfs) -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let trials: Vec<(&str, Check)> = vec![
        (
            "daemon_adds_after_a_failed_write_read_back_exactly",
            daemon_after_failed_write,
        ),
        (
            "offline_repo_accepts_adds_once_space_is_back",
            offline_recovers,
        ),
        ("the_free_space_reserve_refuses_cleanly", reserve_refuses),
    ];
    let trials = trials
        .into_iter()
        .map(|(name, check)| match Tmpfs::mount(1 << 20) {
            Ok(probe) => {
                drop(probe);
                Trial::test(name, move || {
                    let fs = Tmpfs::mount(96 << 20).map_err(Failed::from)?;
                    check(&fs)
                })
            }
            Err(why) => Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why)))
                .with_ignored_flag(true),
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// Sets `store.min_free_bytes` in a freshly initialised repo.
fn reserve(repo: &Path, bytes: u64) {
    let path = repo.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // A binary from before the reserve existed (`IPFSBENCH_NODE_BIN`) writes no such key,
    // and behaves as with 0.
    if !text.contains("min_free_bytes") && bytes == 0 {
        return;
    }
    Tuning::NONE.min_free_bytes(bytes).apply(repo);
}

fn cli(repo: &Path, args: &[&str]) -> Output {
    Command::new(ipfsbench_node_binary())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("IPFSBENCH_PATH")
        .output()
        .unwrap()
}

fn ok(repo: &Path, args: &[&str]) -> Result<String, Failed> {
    let out = cli(repo, args);
    if !out.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn add(repo: &Path, file: &Path) -> Result<String, Failed> {
    ok(repo, &["add", "-Q", file.to_str().unwrap()])
}

/// Adds a file of each size, then reads every one back and compares.
fn adds_read_back(repo: &Path, inputs: &Path, sizes: &[u64], seed: u64) -> Result<(), Failed> {
    let mut added = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let file = inputs.join(format!("small-{seed}-{i}"));
        write_pseudo_random_file(&file, *size, seed + i as u64).unwrap();
        added.push((add(repo, &file)?, file));
    }
    read_back(repo, &added)
}

fn verify_clean(repo: &Path) -> Result<(), Failed> {
    let report = ok(repo, &["repo", "verify"])?;
    if !report.contains(" 0 bad") {
        return Err(format!("repo verify: {report}").into());
    }
    Ok(())
}

/// Fills what is left of the file system at `path` with a file, until it says it is full.
fn fill(path: &Path) -> std::fs::File {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    let small = [0x5au8; 512];
    while f.write_all(&small).is_ok() {}
    f
}

/// On a full disk an add fails, or, when its bytes fit in the slack of pages already
/// allocated, succeeds. Returns what succeeded, to be read back once there is space again
/// (reading may itself need space: sled writes when it opens).
fn add_on_full_disk(repo: &Path, inputs: &Path) -> Result<Vec<(String, PathBuf)>, Failed> {
    let mut added = Vec::new();
    for (i, size) in [12u64, 300_000, 3 << 20].into_iter().enumerate() {
        let file = inputs.join(format!("on-full-{i}"));
        write_pseudo_random_file(&file, size, 90 + i as u64).unwrap();
        let out = cli(repo, &["add", "-Q", file.to_str().unwrap()]);
        if out.status.success() {
            added.push((
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                file,
            ));
        } else if String::from_utf8_lossy(&out.stderr).trim().is_empty() {
            return Err("a failed add says nothing".into());
        }
    }
    Ok(added)
}

/// Every `(cid, file)` reads back as the file.
fn read_back(repo: &Path, added: &[(String, PathBuf)]) -> Result<(), Failed> {
    for (cid, file) in added {
        let cat = cli(repo, &["cat", cid]);
        if cat.stdout != std::fs::read(file).unwrap() {
            return Err(format!(
                "{cid} does not read back as {} ({} bytes: {})",
                file.display(),
                cat.stdout.len(),
                String::from_utf8_lossy(&cat.stderr)
            )
            .into());
        }
    }
    Ok(())
}

const SMALL: [u64; 6] = [12, 1, 4096, 262_143, 262_145, 700_000];

fn daemon_after_failed_write(fs: &Tmpfs) -> Result<(), Failed> {
    let inputs = tempfile::tempdir().unwrap();
    let repo = fs.join("repo");
    let node = Node::start_in(&repo, "worker", &[], |r: &Path| reserve(r, 0));
    // Big enough that the upload's spool fits and its blocks do not.
    let free = free_bytes(fs.path()).unwrap();
    let big = inputs.path().join("big");
    write_pseudo_random_file(&big, free * 3 / 5, 1).unwrap();
    let out = node.cli(&["add", "-Q", big.to_str().unwrap()]);
    if out.status.success() {
        return Err("an add larger than the disk succeeded".into());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    if !said.contains("space") {
        return Err(format!("the failed add does not say why: {said}").into());
    }
    let tmp: Vec<_> = std::fs::read_dir(repo.join("tmp"))
        .map(|d| d.filter_map(Result::ok).collect())
        .unwrap_or_default();
    if !tmp.is_empty() {
        return Err(format!("the failed upload left its spool: {tmp:?}").into());
    }
    adds_read_back(&repo, inputs.path(), &SMALL, 10)?;
    verify_clean(&repo)?;
    ok(&repo, &["repo", "gc"])?;
    verify_clean(&repo)?;

    // Full to the last byte by something else: adds fail cleanly, and work once it is gone.
    let filler = fs.join("filler");
    let f = fill(&filler);
    let on_full = add_on_full_disk(&repo, inputs.path())?;
    drop(f);
    std::fs::remove_file(&filler).unwrap();
    read_back(&repo, &on_full)?;
    adds_read_back(&repo, inputs.path(), &SMALL, 20)?;
    verify_clean(&repo)?;
    drop(node);
    Ok(())
}

fn offline_recovers(fs: &Tmpfs) -> Result<(), Failed> {
    let inputs = tempfile::tempdir().unwrap();
    let repo = fs.join("repo");
    ok(&repo, &["init"])?;
    reserve(&repo, 0);
    let free = free_bytes(fs.path()).unwrap();
    let big = inputs.path().join("big");
    write_pseudo_random_file(&big, free + (8 << 20), 2).unwrap();
    if cli(&repo, &["add", "-Q", big.to_str().unwrap()])
        .status
        .success()
    {
        return Err("an add larger than the disk succeeded".into());
    }
    // The failed write gave its space back: a 12-byte add works at once, and after reopening.
    let tiny = inputs.path().join("tiny");
    std::fs::write(&tiny, b"hello world\n").unwrap();
    let cid = add(&repo, &tiny)?;
    if ok(&repo, &["cat", &cid])? != "hello world" {
        return Err("the 12-byte file reads back wrong".into());
    }
    adds_read_back(&repo, inputs.path(), &SMALL, 30)?;
    ok(&repo, &["repo", "gc"])?;
    verify_clean(&repo)?;

    // Filled by another file: adds fail; once it is removed, they work again.
    let filler = fs.join("filler");
    drop(fill(&filler));
    let on_full = add_on_full_disk(&repo, inputs.path())?;
    std::fs::remove_file(&filler).unwrap();
    read_back(&repo, &on_full)?;
    adds_read_back(&repo, inputs.path(), &SMALL, 40)?;
    verify_clean(&repo)
}

fn reserve_refuses(fs: &Tmpfs) -> Result<(), Failed> {
    let inputs = tempfile::tempdir().unwrap();
    let repo = fs.join("repo");
    ok(&repo, &["init"])?;
    reserve(&repo, 32 << 20);
    let free = free_bytes(fs.path()).unwrap();
    let big = inputs.path().join("big");
    write_pseudo_random_file(&big, free - (16 << 20), 3).unwrap();
    let out = cli(&repo, &["add", "-Q", big.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !said.contains("disk full") || !said.contains("min_free_bytes") {
        return Err(format!("an add into the reserve: {said}").into());
    }
    // The reserve is still there, and small adds fit.
    if free_bytes(fs.path()).unwrap() < 24 << 20 {
        return Err("the refused add used up the reserve".into());
    }
    adds_read_back(&repo, inputs.path(), &SMALL, 50)?;
    verify_clean(&repo)
}
