//! The command line end to end: real processes on real repos in temp dirs.

// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CHUNK: usize = 262_144;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ipfsbench-node"));
        c.arg("--repo").arg(self.path()).args(args);
        c.env_remove("IPFSBENCH_PATH");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn ok_str(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).unwrap()
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} unexpectedly succeeded");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("Error:"),
            "no error message for {args:?}: {err}"
        );
        err
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn add(&self, path: &Path, extra: &[&str]) -> String {
        let mut args = vec!["add", "-Q"];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        self.ok_str(&args).trim().to_string()
    }

    fn stat(&self) -> (u64, String) {
        let s = self.ok_str(&["repo", "stat"]);
        let objects = s
            .lines()
            .find_map(|l| l.strip_prefix("NumObjects: "))
            .unwrap()
            .parse()
            .unwrap();
        (objects, self.ok_str(&["pin", "ls"]))
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn add_then_cat_round_trips_a_table_of_sizes() {
    let repo = Repo::new();
    let sizes = [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        174 * CHUNK - 1,
        174 * CHUNK,
        174 * CHUNK + 1,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let data = pseudo_random(size, i as u64);
        let path = repo.file(&format!("f{i}"), &data);
        for extra in [&[][..], &["--cid-version", "1"][..]] {
            let cid = repo.add(&path, extra);
            let hashed = repo.add(&path, &[&["--only-hash"][..], extra].concat());
            assert_eq!(cid, hashed, "--only-hash agrees for {size} bytes");
            assert_eq!(repo.ok(&["cat", &cid]), data, "cat of {size} bytes");
        }
    }
    assert!(repo.ok_str(&["repo", "verify"]).contains("0 bad"));
}

#[test]
fn cat_ranges() {
    let repo = Repo::new();
    let data = pseudo_random(3 * CHUNK + 123, 7);
    let cid = repo.add(&repo.file("f", &data), &["--chunker", "size-1000"]);
    for (offset, length) in [
        (0usize, 10usize),
        (999, 2),
        (1000, 1000),
        (CHUNK, 5000),
        (data.len() - 1, 10),
        (data.len(), 10),
        (12_345, 174_000),
    ] {
        let out = repo.ok(&[
            "cat",
            &cid,
            "--offset",
            &offset.to_string(),
            "--length",
            &length.to_string(),
        ]);
        let end = (offset + length).min(data.len());
        assert_eq!(out, &data[offset.min(data.len())..end], "{offset}+{length}");
    }
    let tail = repo.ok(&["cat", &cid, "--offset", "500000"]);
    assert_eq!(tail, &data[500_000..]);
}

#[test]
fn directories_add_ls_get_and_paths() {
    let repo = Repo::new();
    let root = repo.dir.path().join("tree");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("a.txt"), b"alpha").unwrap();
    std::fs::write(root.join("sub/b.bin"), pseudo_random(CHUNK + 5, 1)).unwrap();
    std::fs::write(root.join("sub/deeper/c"), b"").unwrap();
    std::fs::write(root.join(".hidden"), b"secret").unwrap();

    let out = repo.ok_str(&["add", "-r", root.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("added ")));
    assert!(lines.last().unwrap().ends_with(" tree"));
    assert!(!out.contains(".hidden"), "dotfiles are skipped by default");
    let cid = lines.last().unwrap().split(' ').nth(1).unwrap().to_string();

    let ls = repo.ok_str(&["ls", &cid]);
    assert!(ls.contains(" 5 a.txt"), "{ls}");
    assert!(ls.contains(" - sub/"), "{ls}");
    assert!(ls.contains(" - empty/"), "{ls}");
    assert_eq!(repo.ok(&["cat", &format!("{cid}/a.txt")]), b"alpha");
    assert_eq!(
        repo.ok(&["cat", &format!("/ipfs/{cid}/sub/b.bin")]),
        pseudo_random(CHUNK + 5, 1)
    );
    assert!(repo
        .fails(&["cat", &format!("{cid}/nope")])
        .contains("no link named"));
    assert!(repo.fails(&["cat", &cid]).contains("is a directory"));

    let dest = repo.dir.path().join("out");
    repo.ok(&["get", &cid, "-o", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(
        std::fs::read(dest.join("sub/b.bin")).unwrap(),
        pseudo_random(CHUNK + 5, 1)
    );
    assert_eq!(std::fs::read(dest.join("sub/deeper/c")).unwrap(), b"");
    assert!(dest.join("empty").is_dir());
    assert!(!dest.join(".hidden").exists());
    // The same tree added again gives the same root; with -H the dotfile changes it.
    assert_eq!(repo.add(&dest, &["-r"]), cid);
    let with_hidden = repo.add(&root, &["-r", "-H"]);
    assert_ne!(with_hidden, cid);
    // get refuses to overwrite.
    repo.fails(&["get", &cid, "-o", dest.to_str().unwrap()]);
}

#[test]
fn pins_and_gc() {
    let repo = Repo::new();
    let kept = repo.add(&repo.file("kept", &pseudo_random(2 * CHUNK, 1)), &[]);
    let loose = repo.add(
        &repo.file("loose", &pseudo_random(2 * CHUNK, 2)),
        &["--pin=false"],
    );
    let direct = repo.ok_str(&["block", "put", repo.file("d", b"direct").to_str().unwrap()]);
    let direct = direct.trim();
    repo.ok(&["pin", "add", "--recursive=false", direct]);

    let ls = repo.ok_str(&["pin", "ls"]);
    assert!(ls.contains(&format!("{kept} recursive")));
    assert!(ls.contains(&format!("{direct} direct")));
    assert_eq!(
        repo.ok_str(&["pin", "ls", "--type", "indirect"])
            .lines()
            .count(),
        2
    );
    assert!(!ls.contains(&loose));

    // A pinned block cannot be removed by hand.
    assert!(repo.fails(&["block", "rm", direct]).contains("pinned"));
    let gc = repo.ok_str(&["repo", "gc"]);
    assert!(gc.contains("removed 3 blocks"), "{gc}");
    assert!(repo.fails(&["cat", &loose]).contains("not found locally"));
    assert_eq!(repo.ok(&["cat", &kept]), pseudo_random(2 * CHUNK, 1));
    assert_eq!(repo.ok(&["block", "get", direct]), b"direct");

    // An indirect pin cannot be removed on its own; the recursive one can.
    let child = repo.ok_str(&["pin", "ls", "--type", "indirect", "-q"]);
    let child = child.lines().next().unwrap();
    assert!(repo.fails(&["pin", "rm", child]).contains("indirectly"));
    repo.ok(&["pin", "rm", &kept]);
    repo.ok(&["pin", "rm", direct]);
    repo.ok(&["repo", "gc"]);
    assert_eq!(repo.stat().0, 0);
    assert!(repo.fails(&["pin", "rm", &kept]).contains("not pinned"));
}

#[test]
fn blocks() {
    let repo = Repo::new();
    let cid = repo.ok_str(&[
        "block",
        "put",
        repo.file("b", b"some bytes").to_str().unwrap(),
    ]);
    let cid = cid.trim();
    assert!(cid.starts_with("bafkrei"), "raw CIDv1 by default: {cid}");
    assert_eq!(repo.ok(&["block", "get", cid]), b"some bytes");
    assert_eq!(
        repo.ok_str(&["block", "stat", cid]),
        format!("Key: {cid}\nSize: 10\n")
    );
    assert!(repo
        .fails(&[
            "block",
            "put",
            "--cid-codec",
            "dag-pb",
            repo.file("g", b"\xff\xff").to_str().unwrap()
        ])
        .contains("dag-pb"));
    repo.ok(&["block", "rm", cid]);
    assert!(repo
        .fails(&["block", "get", cid])
        .contains("not found locally"));
    let big = repo.file("big", &vec![0u8; 2 * 1024 * 1024 + 1]);
    assert!(repo
        .fails(&["block", "put", big.to_str().unwrap()])
        .contains("exceeds"));
}

#[test]
fn car_export_import_round_trip_and_bad_cars_import_nothing() {
    let source = Repo::new();
    let data = pseudo_random(3 * CHUNK, 3);
    let cid = source.add(&source.file("f", &data), &[]);
    let car = source.ok(&["dag", "export", &cid]);
    let car_path = source.file("good.car", &car);

    let target = Repo::new();
    let before = target.stat();
    // Truncated inside a block, and a flipped byte in a block: both refused, nothing kept.
    let truncated = target.file("trunc.car", &car[..car.len() - 100]);
    assert!(target
        .fails(&["dag", "import", truncated.to_str().unwrap()])
        .contains("truncated"));
    let mut corrupt = car.clone();
    let n = corrupt.len();
    corrupt[n - 10] ^= 0xff;
    let corrupt = target.file("corrupt.car", &corrupt);
    assert!(target
        .fails(&["dag", "import", corrupt.to_str().unwrap()])
        .contains("hash mismatch"));
    // Cut at a section boundary: the DAG is incomplete.
    let first_section_end = {
        let (hlen, used) = varint(&car);
        let start = used + hlen as usize;
        let (slen, used2) = varint(&car[start..]);
        start + used2 + slen as usize
    };
    let partial = target.file("partial.car", &car[..first_section_end]);
    assert!(target
        .fails(&["dag", "import", partial.to_str().unwrap()])
        .contains("not found locally"));
    let garbage = target.file("garbage.car", b"this is not a car file");
    target.fails(&["dag", "import", garbage.to_str().unwrap()]);
    assert_eq!(target.stat(), before, "failed imports leave nothing");

    let out = target.ok_str(&["dag", "import", car_path.to_str().unwrap()]);
    assert!(out.contains(&format!("Pinned root {cid} success")));
    assert_eq!(target.ok(&["cat", &cid]), data);
    assert!(target
        .ok_str(&["pin", "ls"])
        .contains(&format!("{cid} recursive")));
    assert_eq!(
        target.ok(&["dag", "export", &cid]),
        car,
        "export is deterministic"
    );
}

fn varint(b: &[u8]) -> (u64, usize) {
    let mut v = 0;
    for (i, byte) in b.iter().enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("bad varint")
}

#[test]
fn bad_input_gets_clear_errors() {
    let repo = Repo::new();
    let missing = repo.dir.path().join("missing");
    assert!(repo
        .fails(&["add", missing.to_str().unwrap()])
        .contains("No such file"));
    assert!(repo.fails(&["cat", "QmNotACid"]).contains("invalid"));
    assert!(repo
        .fails(&["cat", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"])
        .contains("not found locally"));
    let f = repo.file("f", b"x");
    assert!(repo
        .fails(&["add", "--chunker", "size-1048577", f.to_str().unwrap()])
        .contains("may not exceed"));
    assert!(repo
        .fails(&["add", "--chunker", "rabin-1-2-3", f.to_str().unwrap()])
        .contains("size-N"));
    assert!(repo
        .fails(&["add", repo.dir.path().to_str().unwrap()])
        .contains("-r"));
    assert!(repo
        .fails(&["add", "--cid-version", "2", f.to_str().unwrap()])
        .contains("CID version"));
    // Nothing was stored by any of that.
    assert_eq!(repo.stat().0, 0);
}

#[test]
fn init_and_the_repo_lock() {
    let repo = Repo::new();
    let out = repo.ok_str(&["init"]);
    assert!(out.contains("peer identity: 12D3KooW"), "{out}");
    let config = std::fs::read_to_string(repo.path().join("config.toml")).unwrap();
    assert!(config.contains("# ") && config.contains("pack_target_bytes"));
    assert!(repo.fails(&["init"]).contains("already exists"));

    // A first-use command on a fresh path initialises it and says so.
    let other = Repo::new();
    let out = other.run(&["repo", "stat"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("initialised a new repo"));

    // An add reading standard input holds the lock until its input ends.
    let mut holder = repo
        .cmd(&["add", "-Q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = holder.id();
    // Wait until the holder has the lock: its pid appears in the lock file.
    let lock_file = repo.path().join("repo.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&lock_file)
        .unwrap_or_default()
        .contains(&format!("pid {pid}"))
    {
        assert!(std::time::Instant::now() < deadline, "holder never locked");
        std::thread::yield_now();
    }
    let err = repo.fails(&["repo", "stat"]);
    assert!(
        err.contains("locked") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    {
        let mut stdin = holder.stdin.take().unwrap();
        stdin.write_all(b"hello world\n").unwrap();
    }
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    );
    assert!(holder.wait().unwrap().success());
    repo.ok(&["repo", "stat"]);
}

#[test]
fn verify_finds_a_corrupted_block_and_fails() {
    let repo = Repo::new();
    let data = pseudo_random(CHUNK * 2, 9);
    let cid = repo.add(&repo.file("f", &data), &["--cid-version", "1"]);
    assert!(repo
        .ok_str(&["repo", "verify"])
        .contains("verified 3 blocks: 0 bad"));
    // Flip one byte of the second chunk inside the pack file.
    let packs = repo.path().join("blocks/packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes
        .windows(64)
        .position(|w| w == &data[CHUNK + 1000..CHUNK + 1064])
        .unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&pack, bytes).unwrap();
    let out = repo.run(&["repo", "verify"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bad block bafkrei"), "{stdout}");
    assert!(stdout.contains("1 bad"), "{stdout}");
    // The undamaged first chunk still reads.
    let head = repo.ok(&["cat", &cid, "--length", "1000"]);
    assert_eq!(head, &data[..1000]);
}
