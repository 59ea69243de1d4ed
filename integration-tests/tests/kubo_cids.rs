//! Kubo CID interoperability: `ipfsbench-node add --only-hash` must compute the same root CIDs
//! as a real Kubo 0.22 (loaded in-process, see `ipfsbench_integration_tests::kubo`) for files
//! around every chunk and tree-depth boundary, for directory trees, and at the HAMT sharding
//! threshold.
//!
//! Run: `cargo build -p ipfsbench-node && cargo test -p ipfsbench-integration-tests --test kubo_cids`
//! (the binary is taken from the same target profile; a stale one is used as is).
//!
//! Without Kubo every trial is reported as ignored and the reason is printed to stderr; with
//! `IPFSBENCH_REQUIRE_KUBO=1` a missing Kubo fails every trial instead.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipfsbench_integration_tests::bin::ipfsbench_node_binary;
use ipfsbench_integration_tests::child;
use ipfsbench_integration_tests::data::write_pseudo_random_file;
use ipfsbench_integration_tests::kubo::KuboError;
use ipfsbench_integration_tests::trials::{self, Check, KuboCtx};
use libtest_mimic::Failed;

const CHUNK: u64 = 262_144;
const LINKS: u64 = 174;
const MIB: u64 = 1 << 20;
/// Generous: the 300 MiB file is hashed by a debug build on a small machine.
const CHILD_TIMEOUT: Duration = Duration::from_secs(900);

const EMPTY_FILE: &str = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH";
const HELLO_WORLD: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
const EMPTY_DIR: &str = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";

type Ctx = KuboCtx;

/// Kubo's CID for a path, as an `ipfs add --only-hash` on the shared node.
trait KuboCid {
    fn kubo_cid(&self, path: &Path) -> Result<String, Failed>;
}

impl KuboCid for KuboCtx {
    fn kubo_cid(&self, path: &Path) -> Result<String, Failed> {
        Ok(self.kubo.add_file(self.repo.path(), path, true)?)
    }
}

fn main() {
    trials::run("kubo_cids", checks(), false)
}

fn checks() -> Vec<(String, Check)> {
    let mut checks: Vec<(String, Check)> = vec![
        ("kubo_public_vectors".into(), Box::new(kubo_public_vectors)),
        (
            "kubo_wrapper_selfcheck".into(),
            Box::new(kubo_wrapper_selfcheck),
        ),
        ("ours_public_vectors".into(), Box::new(ours_public_vectors)),
    ];
    let sizes = [
        ("empty", 0),
        ("one-byte", 1),
        ("chunk-1", CHUNK - 1),
        ("chunk", CHUNK),
        ("chunk+1", CHUNK + 1),
        ("174chunks-1", LINKS * CHUNK - 1),
        ("174chunks", LINKS * CHUNK),
        ("174chunks+1", LINKS * CHUNK + 1),
        ("300MiB", 300 * MIB),
    ];
    for (label, size) in sizes {
        checks.push((
            format!("file_{label}_{size}B"),
            Box::new(move |ctx: &Ctx| file_cid_matches(ctx, size)),
        ));
    }
    checks.push(("dir_empty".into(), Box::new(dir_empty)));
    checks.push(("dir_tree_hidden_with_-H".into(), Box::new(dir_tree_hidden)));
    checks.push((
        "dir_tree_dotfiles_excluded_by_default".into(),
        Box::new(dir_tree_dotfiles_excluded),
    ));
    // Kubo shards a directory (HAMT) once Σ(len(name) + len(cid bytes)) of its links reaches
    // 256 KiB. Checked on Kubo 0.22's stored blocks: at 262143 the root is one plain directory
    // block, at 262144 and 262145 it is a HAMT. These three straddle that boundary.
    for (label, delta) in [("-1", -1), ("", 0), ("+1", 1)] {
        checks.push((
            format!("dir_hamt_threshold{label}"),
            Box::new(move |ctx: &Ctx| dir_hamt_threshold(ctx, delta)),
        ));
    }
    checks
}

// --- our CLI -------------------------------------------------------------------------------

/// Runs `ipfsbench-node --repo <fresh temp dir> add -Q --only-hash <extra args> <path>` and
/// returns the single root CID it prints.
fn our_cid(extra: &[&str], path: &Path) -> Result<String, Failed> {
    let repo = tempfile::tempdir()?;
    let mut cmd = Command::new(ipfsbench_node_binary());
    cmd.arg("--repo")
        .arg(repo.path())
        .args(["add", "-Q", "--only-hash"])
        .args(extra)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("{cmd:?}");
    let out = child::run(&mut cmd, Some(CHILD_TIMEOUT))?;
    if !out.status.success() {
        return Err(format!(
            "`{described}` failed ({}); stderr:\n{}",
            out.status,
            out.stderr_text()
        )
        .into());
    }
    let stdout = out.stdout_text();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.as_slice() {
        [cid] => Ok(cid.trim().to_owned()),
        _ => Err(
            format!("`{described}` should print exactly the root CID, printed {stdout:?}").into(),
        ),
    }
}

fn expect_equal(what: &str, ours: &str, kubo: &str) -> Result<(), Failed> {
    if ours == kubo {
        Ok(())
    } else {
        Err(format!("{what}: ipfsbench-node computed {ours}, Kubo {kubo}").into())
    }
}

// --- checks --------------------------------------------------------------------------------

fn kubo_public_vectors(ctx: &Ctx) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    for (name, cid, path) in vector_inputs(dir.path())? {
        let kubo = ctx.kubo_cid(&path)?;
        if kubo != cid {
            return Err(format!("Kubo gives {kubo} for {name}, the known vector is {cid}").into());
        }
    }
    Ok(())
}

fn ours_public_vectors(_ctx: &Ctx) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    for (name, cid, path) in vector_inputs(dir.path())? {
        let extra: &[&str] = if path.is_dir() { &["-r"] } else { &[] };
        let ours = our_cid(extra, &path)?;
        if ours != cid {
            return Err(format!("ipfsbench-node gives {ours} for {name}, expected {cid}").into());
        }
    }
    Ok(())
}

fn vector_inputs(
    dir: &Path,
) -> Result<Vec<(&'static str, &'static str, std::path::PathBuf)>, Failed> {
    let empty = dir.join("empty");
    fs::write(&empty, b"")?;
    let hello = dir.join("hello");
    fs::write(&hello, b"hello world\n")?;
    let empty_dir = dir.join("empty-dir");
    fs::create_dir(&empty_dir)?;
    Ok(vec![
        ("the empty file", EMPTY_FILE, empty),
        ("\"hello world\\n\"", HELLO_WORLD, hello),
        ("the empty directory", EMPTY_DIR, empty_dir),
    ])
}

/// Exercises the wrapper itself: node identity, addresses, storing, downloading, errors.
fn kubo_wrapper_selfcheck(ctx: &Ctx) -> Result<(), Failed> {
    let (kubo, repo) = (ctx.kubo, ctx.repo.path());
    let id = kubo.node_id(repo)?;
    if !(id.starts_with("Qm") || id.starts_with("12D3")) {
        return Err(format!("unexpected peer id {id:?}").into());
    }
    let addrs = kubo.multiaddrs(repo)?;
    if !addrs.iter().any(|a| a.starts_with("/ip4/127.0.0.1/tcp/")) {
        return Err(format!("expected a loopback TCP listen address, got {addrs:?}").into());
    }
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("input");
    write_pseudo_random_file(&input, 3 * CHUNK + 5, 7)?;
    let cid = kubo.add_file(repo, &input, false)?;
    let output = dir.path().join("output");
    kubo.download(repo, &cid, &output, Duration::from_secs(60))?;
    if fs::read(&input)? != fs::read(&output)? {
        return Err("Download returned different bytes than were added".into());
    }
    match kubo.add_file(repo, dir.path().join("missing"), true) {
        Err(KuboError::NoResult { .. }) => Ok(()),
        other => Err(format!("adding a missing file should fail, got {other:?}").into()),
    }
}

fn file_cid_matches(ctx: &Ctx, size: u64) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("random-{size}.bin"));
    write_pseudo_random_file(&path, size, 0x1bf5_0000 ^ size)?;
    let kubo = ctx.kubo_cid(&path)?;
    let ours = our_cid(&[], &path)?;
    expect_equal(&format!("{size}-byte file"), &ours, &kubo)
}

fn dir_empty(ctx: &Ctx) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty");
    fs::create_dir(&empty)?;
    let kubo = ctx.kubo_cid(&empty)?;
    let ours = our_cid(&["-r"], &empty)?;
    expect_equal("empty directory", &ours, &kubo)
}

/// Kubo's `AddFile` includes dotfiles, so it matches our `add -r -H`.
fn dir_tree_hidden(ctx: &Ctx) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("tree");
    build_tree(&root, true)?;
    let kubo = ctx.kubo_cid(&root)?;
    let ours = our_cid(&["-r", "-H"], &root)?;
    expect_equal("tree with dotfiles, -H", &ours, &kubo)
}

/// Our `add -r` without `-H` skips dotfiles (like `ipfs add -r`), so it must match Kubo on a
/// copy of the tree without them.
fn dir_tree_dotfiles_excluded(ctx: &Ctx) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let with_hidden = dir.path().join("tree");
    build_tree(&with_hidden, true)?;
    let without_hidden = dir.path().join("tree-without-dotfiles");
    build_tree(&without_hidden, false)?;
    let kubo = ctx.kubo_cid(&without_hidden)?;
    let ours = our_cid(&["-r"], &with_hidden)?;
    expect_equal("tree with dotfiles, default (skipped)", &ours, &kubo)
}

/// A directory whose links weigh exactly `256 KiB + delta` by Kubo's estimate: 5000 entries,
/// names of 18 or 19 bytes, CIDv0 links of 34 bytes.
fn dir_hamt_threshold(ctx: &Ctx, delta: i64) -> Result<(), Failed> {
    const ENTRIES: u64 = 5000;
    const CID_BYTES: u64 = 34;
    const SHORT: u64 = 18;
    let total = u64::try_from(262_144 + delta)?;
    let long_names = total - ENTRIES * (CID_BYTES + SHORT);
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("wide");
    fs::create_dir(&root)?;
    for i in 0..ENTRIES {
        // 6 + 12 = 18 bytes, or 6 + 13 = 19 bytes.
        let name = if i < long_names {
            format!("entry-{i:013}")
        } else {
            format!("entry-{i:012}")
        };
        fs::write(root.join(&name), name.as_bytes())?;
    }
    let kubo = ctx.kubo_cid(&root)?;
    if delta < 0 {
        let ours = our_cid(&["-r"], &root)?;
        return expect_equal(
            &format!("directory of link weight 256 KiB{delta:+}"),
            &ours,
            &kubo,
        );
    }
    // Kubo shards here. Ours does not shard yet, so it must refuse with a clear error —
    // never print a (necessarily different) unsharded CID.
    match our_cid(&["-r"], &root) {
        Ok(ours) => Err(format!(
            "directory of link weight 256 KiB{delta:+}: Kubo sharded it ({kubo}) but ours \
             printed {ours} instead of refusing"
        )
        .into()),
        Err(e)
            if e.message()
                .is_some_and(|m| m.contains("HAMT sharding is not supported")) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A nested tree: several levels, files of mixed sizes (empty, around a chunk, multi-chunk),
/// names that test bytewise ordering, an empty subdirectory, and (if `hidden`) dotfiles and a
/// dot-directory at several levels.
fn build_tree(root: &Path, hidden: bool) -> Result<(), Failed> {
    let files: &[(&str, u64)] = &[
        ("a.txt", 12),
        ("B-upper-sorts-first", 1000),
        ("empty.bin", 0),
        ("one-chunk.bin", CHUNK),
        ("chunk-plus-one.bin", CHUNK + 1),
        ("name with spaces.txt", 100),
        ("ünïcødé-名前.txt", 50),
        ("sub/a", 10),
        ("sub/a.b", 11),
        ("sub/a0", 12),
        ("sub/big.bin", 2 * MIB + 3),
        ("sub/deeper/deepest/leaf.bin", 3 * CHUNK + 7),
        ("sub/deeper/deepest/tiny", 1),
        ("sub/deeper/note.txt", 300),
    ];
    let hidden_files: &[(&str, u64)] = &[
        (".hidden-file", 20),
        (".hidden-dir/inside.txt", 30),
        ("sub/.also-hidden", 5),
        ("sub/deeper/.dot-empty", 0),
    ];
    let empty_dirs = ["empty-subdir", "sub/deeper/empty-dir"];
    fs::create_dir_all(root)?;
    let chosen = files
        .iter()
        .chain(if hidden { hidden_files } else { &[] }.iter());
    for (seed, (rel, size)) in chosen.enumerate() {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        write_pseudo_random_file(&path, *size, 1000 + seed as u64)?;
    }
    for rel in empty_dirs {
        fs::create_dir_all(root.join(rel))?;
    }
    Ok(())
}
