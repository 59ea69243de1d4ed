//! What each command does, on a repo opened directly.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::block::{self, DAG_PB, RAW};
use ipfsbench_core::store::pins::PinFilter;
use ipfsbench_core::unixfs::{self, AddOptions, Added, EntryKind, Sink};
use ipfsbench_core::Cid;

use crate::args::{
    AddArgs, BlockCommand, Cli, Codec, Command, DagCommand, PinCommand, PinType, RepoCommand,
};
use crate::client::Api;
use crate::common::{check_add_paths, get_destination, print_added};
use crate::remote;

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let repo_path = cli.repo.clone().unwrap_or_else(Repo::default_path);
    let Some(command) = cli.command else {
        let Some(role) = cli.daemon.role else {
            bail!(
                "nothing to do: give a command, or --role master|worker|leecher to run the \
                 daemon (see --help)"
            );
        };
        let repo = open(&repo_path)?;
        crate::daemon::run(&repo_path, role, cli.daemon, repo)?;
        return Ok(ExitCode::SUCCESS);
    };
    if cli.daemon.role.is_some() {
        bail!("--role runs the daemon and takes no command");
    }
    if let Command::Demo(args) = command {
        return crate::demo::run(args);
    }
    let online_only = matches!(
        command,
        Command::Swarm(_)
            | Command::Routing(_)
            | Command::Pubsub(_)
            | Command::Task(_)
            | Command::Storage(_)
            | Command::Query(_)
            | Command::Results(_)
            | Command::Dataset(_)
    ) || matches!(&command, Command::Cluster(c) if !c.is_local());
    let local_only = matches!(&command, Command::Init)
        || matches!(&command, Command::Add(a) if a.only_hash)
        || matches!(&command, Command::Cluster(c) if c.is_local());
    if !local_only {
        if let Some(api) = Api::discover(&repo_path) {
            return Ok(if remote::run(&api, command)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    if online_only {
        bail!(
            "no daemon is running on {} (start one with `ipfsbench-node --repo {} --role worker`)",
            repo_path.display(),
            repo_path.display()
        );
    }
    local(&repo_path, command)
}

/// Runs a command on the repo itself, with no daemon.
fn local(repo_path: &Path, command: Command) -> Result<ExitCode> {
    match command {
        Command::Init => {
            let repo = Repo::init(repo_path)?;
            println!(
                "initialised repo at {}\npeer identity: {}",
                repo_path.display(),
                repo.peer_id()
            );
            repo.close()?;
        }
        Command::Add(args) => add(repo_path, args)?,
        Command::Cat {
            path,
            offset,
            length,
        } => {
            let repo = open(repo_path)?;
            let cid = unixfs::resolve(repo.store(), &path)?;
            let stdout = io::stdout();
            let mut out = stdout.lock();
            unixfs::cat(repo.store(), &cid, offset, length, &mut out)?;
            out.flush()?;
        }
        Command::Get { path, output } => get(repo_path, &path, output)?,
        Command::Ls { path } => {
            let repo = open(repo_path)?;
            let cid = unixfs::resolve(repo.store(), &path)?;
            let mut out = io::stdout().lock();
            for e in unixfs::ls(repo.store(), &cid)? {
                match e.kind {
                    EntryKind::Directory => writeln!(out, "{} - {}/", e.cid, e.name)?,
                    _ => writeln!(out, "{} {} {}", e.cid, e.size, e.name)?,
                }
            }
        }
        Command::Block(cmd) => block_cmd(&open(repo_path)?, cmd)?,
        Command::Pin(cmd) => pin_cmd(&open(repo_path)?, cmd)?,
        Command::Repo(cmd) => return repo_cmd(&open(repo_path)?, cmd),
        Command::Dag(cmd) => dag_cmd(&open(repo_path)?, cmd)?,
        Command::Id => id(repo_path)?,
        Command::Cluster(cmd) if cmd.is_local() => crate::membership::run(&open(repo_path)?, cmd)?,
        Command::Swarm(_)
        | Command::Routing(_)
        | Command::Pubsub(_)
        | Command::Task(_)
        | Command::Cluster(_)
        | Command::Storage(_)
        | Command::Query(_)
        | Command::Results(_)
        | Command::Dataset(_)
        | Command::Demo(_) => {
            unreachable_online_only()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `get` without a daemon: writes the file or tree, or nothing.
fn get(repo_path: &Path, path: &str, output: Option<PathBuf>) -> Result<()> {
    let repo = open(repo_path)?;
    let cid = unixfs::resolve(repo.store(), path)?;
    let dest = get_destination(path, output)?;
    if let Err(e) = unixfs::get(repo.store(), &cid, &dest) {
        // Leave nothing half-written behind.
        let _ = std::fs::remove_dir_all(&dest).or_else(|_| std::fs::remove_file(&dest));
        return Err(e.into());
    }
    Ok(())
}

/// `id` without a daemon: the identity, with no addresses.
fn id(repo_path: &Path) -> Result<()> {
    let repo = open(repo_path)?;
    let public = repo.keypair().public().encode_protobuf();
    let id = serde_json::json!({
        "ID": repo.peer_id().to_string(),
        "PublicKey": multibase::encode(multibase::Base::Base64Pad, public)[1..].to_string(),
        "Addresses": [],
        "AgentVersion": format!("ipfsbench-node/{}", env!("CARGO_PKG_VERSION")),
        "Protocols": [],
    });
    println!("{}", serde_json::to_string_pretty(&id)?);
    Ok(())
}

/// Opens the repo, creating it (and saying so) on first use.
fn open(path: &Path) -> Result<Repo> {
    let (repo, created) = Repo::open_or_init(path)?;
    // The roles' sections are checked on every command, so a mistake in them is reported
    // at once and not only when a daemon starts.
    ipfsbench_roles::config::RoleConfig::from(repo.config())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.join("config.toml").display()))?;
    if created {
        eprintln!(
            "initialised a new repo at {} (peer identity {})",
            path.display(),
            repo.peer_id()
        );
    }
    Ok(repo)
}

fn parse_cid(s: &str) -> Result<Cid> {
    Ok(block::parse_cid(s)?)
}

fn add(repo_path: &Path, args: AddArgs) -> Result<()> {
    let options = AddOptions {
        cid_version: args.cid_version,
        raw_leaves: args.raw_leaves,
        chunker: args.chunker.parse()?,
        hidden: args.hidden,
    };
    if !matches!(args.cid_version, 0 | 1) {
        bail!("unsupported CID version {} (use 0 or 1)", args.cid_version);
    }
    check_add_paths(&args)?;
    let show_progress = args
        .progress
        .unwrap_or_else(|| io::stderr().is_terminal() && !args.quieter);
    let bar = show_progress.then(|| {
        let total: u64 = args
            .paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes}/{total_bytes} [{bar:40}] {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let done_before = std::cell::Cell::new(0u64);
    let mut progress = |n: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done_before.get() + n);
        }
    };

    let repo = if args.only_hash {
        None
    } else {
        Some(open(repo_path)?)
    };
    let mut out = io::stdout().lock();
    let mut print = |entries: &[Added], stdin: bool| -> Result<()> {
        let lines: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                let cid = e.cid.to_string();
                let name = if stdin { cid.clone() } else { e.name.clone() };
                (cid, name)
            })
            .collect();
        print_added(&args, &lines, &mut out)?;
        Ok(())
    };

    if args.paths.is_empty() {
        let stdin: Box<dyn Read + Send> = Box::new(io::stdin());
        let added = match &repo {
            Some(repo) => repo.add_reader(stdin, &options, args.pin, &mut progress)?,
            None => unixfs::add_reader(stdin, Path::new("-"), &options, &mut Sink::only_hash())?,
        };
        print(&[added], true)?;
    }
    for path in &args.paths {
        let added = match &repo {
            Some(repo) => repo.add_path(path, &options, args.pin, &mut progress)?,
            None => unixfs::add_path(path, &options, &mut Sink::only_hash())?,
        };
        // Printed only now: every block is durable and the root pinned.
        print(&added, false)?;
        done_before.set(done_before.get() + std::fs::metadata(path).map_or(0, |m| m.len()));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let limit = block::MAX_BLOCK_SIZE as u64 + 1;
    match file {
        Some(p) => File::open(p)
            .with_context(|| format!("{}", p.display()))?
            .take(limit)
            .read_to_end(&mut data)?,
        None => io::stdin().take(limit).read_to_end(&mut data)?,
    };
    Ok(data)
}

fn block_cmd(repo: &Repo, cmd: BlockCommand) -> Result<()> {
    match cmd {
        BlockCommand::Put { file, codec } => {
            let data = read_input(file.as_deref())?;
            let codec = match codec {
                Codec::Raw => RAW,
                Codec::DagPb => DAG_PB,
            };
            if codec == DAG_PB {
                ipfsbench_core::codec::pb::decode_node(&data)
                    .context("block is not valid dag-pb")?;
            }
            println!("{}", repo.block_put(data, codec)?);
        }
        BlockCommand::Get { cid } => {
            let cid = parse_cid(&cid)?;
            let data = repo
                .store()
                .get(&cid)?
                .with_context(|| format!("block {cid} not found locally"))?;
            let mut out = io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
        }
        BlockCommand::Stat { cid } => {
            let cid = parse_cid(&cid)?;
            let size = repo
                .store()
                .size(&cid)?
                .with_context(|| format!("block {cid} not found locally"))?;
            println!("Key: {cid}\nSize: {size}");
        }
        BlockCommand::Rm { cids } => {
            let cids = cids
                .iter()
                .map(|c| parse_cid(c))
                .collect::<Result<Vec<_>>>()?;
            for cid in cids {
                repo.block_rm(&cid)?;
                println!("removed {cid}");
            }
        }
    }
    Ok(())
}

fn pin_cmd(repo: &Repo, cmd: PinCommand) -> Result<()> {
    match cmd {
        PinCommand::Add { paths, recursive } => {
            for path in paths {
                let cid = unixfs::resolve(repo.store(), &path)?;
                repo.pin_add(&cid, recursive)?;
                let how = if recursive { "recursively" } else { "directly" };
                println!("pinned {cid} {how}");
            }
        }
        PinCommand::Rm { paths } => {
            for path in paths {
                let cid = unixfs::resolve(repo.store(), &path)?;
                repo.pins().remove(repo.store(), &cid)?;
                println!("unpinned {cid}");
            }
        }
        PinCommand::Ls { kind, quiet } => {
            let filter = match kind {
                PinType::Recursive => PinFilter::Recursive,
                PinType::Direct => PinFilter::Direct,
                PinType::Indirect => PinFilter::Indirect,
                PinType::All => PinFilter::All,
            };
            let mut out = io::stdout().lock();
            for (cid, kind) in repo.pins().list(repo.store(), filter)? {
                if quiet {
                    writeln!(out, "{cid}")?;
                } else {
                    writeln!(out, "{cid} {kind}")?;
                }
            }
        }
    }
    Ok(())
}

fn repo_cmd(repo: &Repo, cmd: RepoCommand) -> Result<ExitCode> {
    match cmd {
        RepoCommand::Stat => {
            let s = repo.stat()?;
            println!("NumObjects: {}", s.blocks);
            println!("LogicalSize: {}", s.logical_bytes);
            println!("RepoSize: {}", s.disk_bytes);
            println!("RepoPath: {}", repo.path().display());
        }
        RepoCommand::Verify => {
            let report = repo.verify()?;
            for (hash, reason) in &report.bad {
                println!("bad block {}: {reason}", Cid::new_v1(RAW, *hash));
            }
            println!(
                "verified {} blocks: {} bad",
                report.checked,
                report.bad.len()
            );
            if !report.bad.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        RepoCommand::Gc => {
            let stats = repo.gc()?;
            println!(
                "removed {} blocks ({} bytes); reclaimed {} bytes on disk",
                stats.removed_blocks, stats.removed_bytes, stats.reclaimed_disk_bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dag_cmd(repo: &Repo, cmd: DagCommand) -> Result<()> {
    match cmd {
        DagCommand::Export { path } => {
            let cid = unixfs::resolve(repo.store(), &path)?;
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            repo.export_car(&cid, &mut out)?;
            out.flush()?;
        }
        DagCommand::Import { files } => {
            for file in files {
                let reader = File::open(&file).with_context(|| format!("{}", file.display()))?;
                let imported = repo
                    .import_car(io::BufReader::with_capacity(1 << 20, reader))
                    .with_context(|| format!("importing {}", file.display()))?;
                for root in &imported.roots {
                    println!("Pinned root {root} success");
                }
                println!(
                    "imported {} blocks from {}",
                    imported.blocks,
                    file.display()
                );
            }
        }
    }
    Ok(())
}

fn unreachable_online_only() -> Result<()> {
    bail!("this command needs a running daemon")
}
