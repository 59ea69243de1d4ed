//! Storage benchmark: `ipfsbench-node add` against Kubo 0.22's `AddFile`, `ipfsbench-node cat`
//! throughput, and the peak RSS of adding a large file.
//!
//! Run: `cargo build --release -p ipfsbench-node &&
//! cargo bench -p ipfsbench-integration-tests --bench storage`
//!
//! Environment: `BENCH_ADD_BYTES` (size of the add/cat input, default 1 GiB), `BENCH_RUNS`
//! (rounds of our add and the disk's reference, default 3; medians), `BENCH_RSS_BYTES`
//! (size of the peak-RSS input, default 4 GiB), `BENCH_TMPDIR` (where inputs and repos go,
//! default `<target dir>/bench-tmp`; it should be a real disk, not tmpfs). Inputs are
//! pseudo-random (incompressible) and read once beforehand so they sit in the page cache;
//! the dirty pages of each phase are flushed (`sync`) before the next phase starts.
//! Without `--bench` (for example under `cargo test --all-targets`) it does nothing.

use std::env;
use std::error::Error;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ipfsbench_integration_tests::bin::{ipfsbench_node_binary, target_dir};
use ipfsbench_integration_tests::child::{self, Finished};
use ipfsbench_integration_tests::data::{read_through, write_pseudo_random_file};
use ipfsbench_integration_tests::kubo::Kubo;
use ipfsbench_integration_tests::sys::sync_all;

type BenchResult<T> = Result<T, Box<dyn Error>>;

const GIB: u64 = 1 << 30;

fn main() -> ExitCode {
    if !env::args().any(|arg| arg == "--bench") {
        eprintln!(
            "storage: skipped (not run with --bench); run it with `cargo build --release -p \
             ipfsbench-node && cargo bench -p ipfsbench-integration-tests --bench storage`"
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storage benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One timed add.
struct AddFigures {
    cid: String,
    add: Duration,
    /// Time of the `sync` right after the add (writeback of what the add left dirty).
    sync: Duration,
}

fn run() -> BenchResult<()> {
    let add_bytes = env_bytes("BENCH_ADD_BYTES", GIB)?;
    let rss_bytes = env_bytes("BENCH_RSS_BYTES", 4 * GIB)?;
    let node = ipfsbench_node_binary();
    let base = match env::var_os("BENCH_TMPDIR") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir()?.join("bench-tmp"),
    };
    fs::create_dir_all(&base)?;
    let work = tempfile::Builder::new()
        .prefix("storage-")
        .tempdir_in(&base)?;
    let fs_type = filesystem_type(work.path());
    if fs_type.as_deref() == Some("tmpfs") {
        eprintln!(
            "warning: {} is on tmpfs; set BENCH_TMPDIR to a disk",
            base.display()
        );
    }
    println!("storage benchmark");
    println!("  ipfsbench-node: {}", node.display());
    println!(
        "  work dir:       {} ({})",
        work.path().display(),
        fs_type.as_deref().unwrap_or("unknown filesystem")
    );

    // Peak RSS of an add of a larger file, measured first: a child's `ru_maxrss` starts from
    // this process's RSS at fork, which is small only until Kubo's runtime is loaded.
    let rss_input = work.path().join("rss-input.bin");
    eprintln!(
        "writing {} of pseudo-random input for the RSS measurement...",
        human_bytes(rss_bytes)
    );
    write_pseudo_random_file(&rss_input, rss_bytes, 43)?;
    sync_all();
    read_through(&rss_input)?;
    eprintln!("measuring the peak RSS of ipfsbench-node add...");
    let repo = tempfile::Builder::new()
        .prefix("ours-rss-repo-")
        .tempdir_in(work.path())?;
    let (rss_add, peak_rss) = our_add(&node, repo.path(), &rss_input)?;
    drop(repo);
    fs::remove_file(&rss_input)?;

    // Input for add and cat.
    let input = work.path().join("add-input.bin");
    eprintln!(
        "writing {} of pseudo-random input...",
        human_bytes(add_bytes)
    );
    write_pseudo_random_file(&input, add_bytes, 42)?;
    sync_all();
    read_through(&input)?;

    // Kubo, with its node running so that the add is timed without node start-up.
    let kubo = match Kubo::load() {
        Ok(kubo) => {
            eprintln!("timing Kubo AddFile...");
            let repo = kubo.test_repo(Some(work.path()), true)?;
            let start = Instant::now();
            let cid = kubo.add_file(repo.path(), &input, false)?;
            let add = start.elapsed();
            let start = Instant::now();
            sync_all();
            let sync = start.elapsed();
            repo.close()?;
            sync_all();
            Ok(AddFigures { cid, add, sync })
        }
        Err(unavailable) => Err(unavailable),
    };

    // Ours, then the disk's limit measured right after, in each of `runs` rounds (medians):
    // the same bytes written sequentially in 4 MiB writes then fdatasync'd, once through the
    // page cache and once with O_DIRECT; the faster of the two is the disk's ceiling. The cat
    // reads the first round's repo.
    let runs = env_bytes("BENCH_RUNS", 3)?.max(1) as usize;
    let (mut adds, mut buffered, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    let mut cat = None;
    for round in 1..=runs {
        eprintln!("round {round}/{runs}: timing ipfsbench-node add...");
        let repo = tempfile::Builder::new()
            .prefix("ours-repo-")
            .tempdir_in(work.path())?;
        let (ours, _) = our_add(&node, repo.path(), &input)?;
        if cat.is_none() {
            eprintln!("timing ipfsbench-node cat...");
            let mut command = Command::new(&node);
            command
                .arg("--repo")
                .arg(repo.path())
                .arg("cat")
                .arg(&ours.cid)
                .stdin(Stdio::null())
                .stdout(File::create("/dev/null")?)
                .stderr(Stdio::piped());
            cat = Some(checked(&mut command, "cat")?);
        }
        adds.push(ours);
        drop(repo);
        sync_all();
        eprintln!("round {round}/{runs}: timing the disk itself (sequential write + fdatasync)...");
        let out = work.path().join("ceiling.bin");
        buffered.push(disk_ceiling(&input, &out, false)?);
        sync_all();
        direct.push(disk_ceiling(&input, &out, true)?);
        sync_all();
    }
    let cat = cat.ok_or("no round ran")?;
    adds.sort_by_key(|a| a.add);
    let runs_text = adds
        .iter()
        .map(|a| format!("{:.2}", a.add.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    let ours = adds.swap_remove(adds.len() / 2);
    let (buffered, direct) = (median(buffered), median(direct));
    let ceiling = buffered.min(direct);
    fs::remove_file(&input)?;
    sync_all();

    work.close()?;

    // Report.
    println!(
        "  input:          {} pseudo-random, page cache warm; MB = 10^6 bytes",
        human_bytes(add_bytes)
    );
    println!();
    println!(
        "  {:<44} {:>9} {:>12} {:>16}",
        "measurement", "time", "throughput", "incl. sync after"
    );
    let row = |name: &str, figures: &AddFigures| {
        println!(
            "  {:<44} {:>7.2} s {:>7.1} MB/s {:>11.1} MB/s",
            name,
            figures.add.as_secs_f64(),
            mb_per_s(add_bytes, figures.add),
            mb_per_s(add_bytes, figures.add + figures.sync),
        );
    };
    match &kubo {
        Ok(kubo) => row("Kubo 0.22 AddFile (node running)", kubo),
        Err(unavailable) => println!(
            "  {:<44} unavailable: {}",
            "Kubo 0.22 AddFile",
            unavailable.reason()
        ),
    }
    row("ipfsbench-node add -Q (child process)", &ours);
    if let Ok(kubo) = &kubo {
        println!(
            "  {:<44} {:>9} {:>10.2} x {:>13.2} x",
            "ratio ours/kubo (throughput)",
            "",
            mb_per_s(add_bytes, ours.add) / mb_per_s(add_bytes, kubo.add),
            mb_per_s(add_bytes, ours.add + ours.sync) / mb_per_s(add_bytes, kubo.add + kubo.sync),
        );
    }
    for (name, time) in [
        ("disk: 4 MiB writes + fdatasync, page cache", buffered),
        ("disk: 4 MiB writes + fdatasync, O_DIRECT", direct),
    ] {
        println!(
            "  {:<44} {:>7.2} s {:>7.1} MB/s",
            name,
            time.as_secs_f64(),
            mb_per_s(add_bytes, time),
        );
    }
    println!(
        "  {:<44} {:>9} ours at {:.0}% of the faster (medians of {runs} rounds; ours {runs_text} s)",
        "ratio to the disk's ceiling",
        "",
        100.0 * ceiling.as_secs_f64() / ours.add.as_secs_f64(),
    );
    println!(
        "  {:<44} {:>7.2} s {:>7.2} GB/s",
        "ipfsbench-node cat > /dev/null",
        cat.elapsed.as_secs_f64(),
        mb_per_s(add_bytes, cat.elapsed) / 1000.0,
    );
    println!(
        "  {:<44} {:>7.2} s {:>7.1} MB/s   peak RSS {:.1} MiB",
        format!("ipfsbench-node add -Q, {}", human_bytes(rss_bytes)),
        rss_add.add.as_secs_f64(),
        mb_per_s(rss_bytes, rss_add.add),
        peak_rss as f64 / f64::from(1u32 << 20),
    );
    println!();
    match &kubo {
        Ok(kubo) if kubo.cid == ours.cid => println!("  root CIDs agree: {}", ours.cid),
        Ok(kubo) => println!(
            "  WARNING: root CIDs differ: ours {}, Kubo {}",
            ours.cid, kubo.cid
        ),
        Err(_) => println!("  root CID: {}", ours.cid),
    }
    println!(
        "  note: Kubo's default datastore (flatfs, sync=true) fsyncs every block during the add."
    );
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// How fast this disk takes the same bytes with nothing else to do: copy `input` to `out` in
/// 4 MiB writes, then `fdatasync`, as `dd bs=4M conv=fdatasync` would (`oflag=direct` when
/// `direct`: from an aligned buffer, the last partial block through the page cache). An add
/// that makes its blocks durable cannot beat the faster of the two.
fn disk_ceiling(input: &Path, out: &Path, direct: bool) -> BenchResult<Duration> {
    use std::io::Read;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const ALIGN: usize = 4096;
    let mut src = File::open(input)?;
    let mut mem = vec![0u8; (4 << 20) + ALIGN];
    let at = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
    let buf = &mut mem[at..at + (4 << 20)];
    let start = Instant::now();
    let dst = File::create(out)?;
    let raw = fs::OpenOptions::new()
        .write(true)
        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
        .open(out)?;
    let mut offset = 0u64;
    loop {
        let n = src.read(buf)?;
        if n == 0 {
            break;
        }
        let whole = if direct { n / ALIGN * ALIGN } else { n };
        raw.write_all_at(&buf[..whole], offset)?;
        dst.write_all_at(&buf[whole..n], offset + whole as u64)?;
        offset += n as u64;
    }
    dst.sync_data()?;
    let elapsed = start.elapsed();
    drop(dst);
    fs::remove_file(out)?;
    Ok(elapsed)
}

/// Times `ipfsbench-node --repo <repo> add -Q <input>` and the `sync` after it; returns the
/// figures and the child's peak RSS in bytes.
fn our_add(node: &Path, repo: &Path, input: &Path) -> BenchResult<(AddFigures, u64)> {
    let mut cmd = Command::new(node);
    cmd.arg("--repo")
        .arg(repo)
        .args(["add", "-Q"])
        .arg(input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = checked(&mut cmd, "add")?;
    let start = Instant::now();
    sync_all();
    let sync = start.elapsed();
    let stdout = out.stdout_text();
    let cid = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .ok_or_else(|| format!("ipfsbench-node add -Q printed no CID: {stdout:?}"))?
        .to_owned();
    Ok((
        AddFigures {
            cid,
            add: out.elapsed,
            sync,
        },
        out.peak_rss_bytes,
    ))
}

fn checked(cmd: &mut Command, what: &str) -> BenchResult<Finished> {
    let out = child::run(cmd, None)?;
    if !out.status.success() {
        return Err(format!(
            "ipfsbench-node {what} failed ({}): {}",
            out.status,
            out.stderr_text()
        )
        .into());
    }
    Ok(out)
}

fn env_bytes(name: &str, default: u64) -> BenchResult<u64> {
    match env::var(name) {
        Ok(value) => Ok(value
            .trim()
            .parse()
            .map_err(|e| format!("{name}={value:?} is not a byte count: {e}"))?),
        Err(env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(format!("{name}: {e}").into()),
    }
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64().max(1e-9)
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

/// The type of the filesystem holding `path`, from the longest matching mount point.
fn filesystem_type(path: &Path) -> Option<String> {
    let path = fs::canonicalize(path).ok()?;
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mount_point = fields.nth(1)?.replace("\\040", " ");
            let fs_type = fields.next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point.len(), fs_type.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs_type)| fs_type)
}
