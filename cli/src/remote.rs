//! The commands, done through a running daemon's API.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ipfsbench_core::api::wire;
use ipfsbench_roles::api::wire as tasks;
use ipfsbench_roles::master::TaskRecord;

use crate::args::{
    AddArgs, BlockCommand, Codec, Command, DagCommand, PinCommand, PinType, PubsubCommand,
    RepoCommand, RoutingCommand, SubmitArgs, SwarmCommand, TaskCommand,
};
use crate::client::{ndjson, Api, Part};
use crate::common::{check_add_paths, get_destination, print_added};

/// Records asked for per `task ls` page.
const LS_PAGE: usize = 1_000;

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// Runs `command` through `api`; `Ok(false)` means the command was a failure to report.
pub(crate) fn run(api: &Api, command: Command) -> Result<bool> {
    let mut out = io::stdout().lock();
    match command {
        Command::Init => unreachable_command("init")?,
        Command::Add(args) => add(api, args, &mut out)?,
        Command::Cat {
            path,
            offset,
            length,
        } => {
            let mut q = vec![("arg", path), ("offset", s(offset))];
            if let Some(l) = length {
                q.push(("length", s(l)));
            }
            io::copy(&mut api.stream("cat", &q)?, &mut out)?;
        }
        Command::Get { path, output } => get(api, &path, output)?,
        Command::Ls { path } => ls(api, path, &mut out)?,
        Command::Block(cmd) => block(api, cmd, &mut out)?,
        Command::Pin(cmd) => pin(api, cmd, &mut out)?,
        Command::Repo(cmd) => return repo(api, cmd, &mut out),
        Command::Dag(cmd) => dag(api, cmd, &mut out)?,
        Command::Id => {
            let v: wire::Identity = api.json("id", &[])?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Command::Swarm(SwarmCommand::Connect { addrs }) => {
            let q: Vec<(&str, String)> = addrs.into_iter().map(|a| ("arg", a)).collect();
            let v: wire::Strings = api.json("swarm/connect", &q)?;
            for line in v.strings {
                writeln!(out, "{line}")?;
            }
        }
        Command::Swarm(SwarmCommand::Peers) => swarm_peers(api, &mut out)?,
        Command::Routing(RoutingCommand::Findprovs { cid }) => {
            for event in api.lines::<wire::RoutingEvent>("routing/findprovs", &[("arg", cid)])? {
                for provider in event?.responses {
                    writeln!(out, "{}", provider.id)?;
                }
            }
        }
        Command::Pubsub(cmd) => pubsub(api, cmd, &mut out)?,
        Command::Task(cmd) => task(api, cmd, &mut out)?,
        Command::Cluster(cmd) => crate::cluster::run(api, cmd, &mut out)?,
        Command::Storage(cmd) => crate::storage::run(api, cmd, &mut out)?,
        Command::Query(args) => crate::benchdb::query(api, args, &mut out)?,
        Command::Results(cmd) => return crate::benchdb::results(api, cmd, &mut out),
        Command::Dataset(cmd) => crate::benchdb::dataset(api, cmd, &mut out)?,
        Command::Demo(_) => unreachable_command("demo")?,
    }
    out.flush()?;
    Ok(true)
}

/// `ls` through the daemon.
fn ls(api: &Api, path: String, out: &mut impl Write) -> Result<()> {
    let v: wire::Listing = api.json("ls", &[("arg", path)])?;
    for l in v.objects.into_iter().flat_map(|o| o.links) {
        if l.kind == wire::Link::DIRECTORY {
            writeln!(out, "{} - {}/", l.hash, l.name)?;
        } else {
            writeln!(out, "{} {} {}", l.hash, l.size, l.name)?;
        }
    }
    Ok(())
}

/// `swarm peers` through the daemon.
fn swarm_peers(api: &Api, out: &mut impl Write) -> Result<()> {
    let v: wire::SwarmPeers = api.json("swarm/peers", &[])?;
    for p in v.peers {
        writeln!(out, "{}/p2p/{}", p.addr, p.peer)?;
    }
    Ok(())
}

/// The API arguments of a submission.
pub(crate) fn submit_query(args: &SubmitArgs) -> Vec<(&'static str, String)> {
    let mut q = vec![("kind", args.kind.clone())];
    q.extend(args.input.iter().map(|c| ("input", c.clone())));
    q.extend(args.param.iter().map(|p| ("param", p.clone())));
    if let Some(k) = &args.key {
        q.push(("key", k.clone()));
    }
    if let Some(t) = &args.target {
        q.push(("target", t.clone()));
    }
    if let Some(t) = args.timeout {
        q.push(("timeout", s(t)));
    }
    if let Some(n) = args.max_attempts {
        q.push(("max-attempts", s(n)));
    }
    if args.wait {
        q.push(("wait", s(true)));
    }
    q
}

fn task(api: &Api, cmd: TaskCommand, out: &mut dyn Write) -> Result<()> {
    let pretty = |out: &mut dyn Write, v: &TaskRecord| -> Result<()> {
        writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
        Ok(())
    };
    match cmd {
        TaskCommand::Submit(args) => {
            if !args.wait {
                let v: tasks::Submission = api.json("task/submit", &submit_query(&args))?;
                writeln!(out, "{}", v.id)?;
                return Ok(());
            }
            let v: tasks::Outcome = api.json("task/submit", &submit_query(&args))?;
            writeln!(out, "{}", v.id)?;
            match v.result {
                Some(cid) => writeln!(out, "{cid}")?,
                None => bail!(
                    "task {} ended {}: {}",
                    v.id,
                    v.state,
                    v.error.unwrap_or_default()
                ),
            }
        }
        TaskCommand::Status { id } => pretty(out, &api.json("task/status", &[("arg", id)])?)?,
        TaskCommand::Ls { state, limit } => {
            // Page through the table, so neither side holds all of it at once.
            let mut left = limit.unwrap_or(usize::MAX);
            let mut after: Option<u64> = None;
            while left > 0 {
                let mut q: Vec<(&str, String)> = vec![("limit", s(left.min(LS_PAGE)))];
                q.extend(state.iter().map(|st| ("state", st.clone())));
                q.extend(after.map(|a| ("after", s(a))));
                let page: tasks::TaskPage = api.json("task/ls", &q)?;
                left = left.saturating_sub(page.tasks.len());
                for t in page.tasks {
                    let result = t.result.map_or_else(|| "-".to_string(), |c| c.to_string());
                    writeln!(
                        out,
                        "{} {:<11} {:<9} {result}",
                        t.id,
                        t.kind.to_string(),
                        t.state.as_str(),
                    )?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        TaskCommand::Cancel { id } => {
            let v: TaskRecord = api.json("task/cancel", &[("arg", id)])?;
            writeln!(out, "{} {}", v.id, v.state)?;
        }
        TaskCommand::Result { id, wait } => {
            let v: tasks::Outcome = api.json("task/result", &[("arg", id), ("wait", s(wait))])?;
            writeln!(out, "{}", v.result.unwrap_or_default())?;
        }
    }
    Ok(())
}

fn unreachable_command(name: &str) -> Result<()> {
    bail!("`{name}` cannot run while a daemon holds the repo")
}

fn add(api: &Api, args: AddArgs, out: &mut dyn Write) -> Result<()> {
    check_add_paths(&args)?;
    let mut parts = Vec::new();
    for path in &args.paths {
        parts.extend(Part::tree(path, args.hidden)?);
    }
    if args.paths.is_empty() {
        parts.push(Part::Stdin);
    }
    let mut q = vec![
        ("cid-version", s(args.cid_version)),
        ("chunker", args.chunker.clone()),
        ("pin", s(args.pin)),
        ("hidden", s(args.hidden)),
    ];
    if let Some(raw) = args.raw_leaves {
        q.push(("raw-leaves", s(raw)));
    }
    let lines: Vec<(String, String)> = ndjson::<wire::Added>(api.upload("add", &q, parts)?)
        .map(|e| e.map(|e| (e.hash, e.name)))
        .collect::<Result<_>>()?;
    print_added(&args, &lines, out)?;
    Ok(())
}

fn get(api: &Api, path: &str, output: Option<PathBuf>) -> Result<()> {
    let dest = get_destination(path, output)?;
    let stream = api.stream("get", &[("arg", path.to_string())])?;
    let result = extract(stream, &dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dest).or_else(|_| std::fs::remove_file(&dest));
    }
    result
}

/// Unpacks the tar the daemon sends, its first path component replaced by `dest`.
fn extract(stream: impl Read, dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let mut rest = PathBuf::new();
        for (i, c) in path.components().enumerate() {
            match c {
                Component::Normal(p) if i > 0 => rest.push(p),
                Component::Normal(_) => {}
                _ => bail!("unsafe path {} in the archive", path.display()),
            }
        }
        let target = dest.join(rest);
        if entry.header().entry_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            entry.unpack(&target)?;
        }
    }
    Ok(())
}

fn block(api: &Api, cmd: BlockCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        BlockCommand::Put { file, codec } => {
            let data = match file {
                Some(p) => std::fs::read(&p).with_context(|| format!("{}", p.display()))?,
                None => {
                    let mut d = Vec::new();
                    io::stdin().read_to_end(&mut d)?;
                    d
                }
            };
            let codec = match codec {
                Codec::Raw => "raw",
                Codec::DagPb => "dag-pb",
            };
            let mut r = api.upload(
                "block/put",
                &[("cid-codec", codec.to_string())],
                vec![Part::Bytes {
                    name: "block".into(),
                    data,
                }],
            )?;
            let mut text = String::new();
            r.read_to_string(&mut text)?;
            let v: wire::BlockStat = serde_json::from_str(&text)
                .with_context(|| format!("daemon sent an unexpected answer: {text}"))?;
            writeln!(out, "{}", v.key)?;
        }
        BlockCommand::Get { cid } => {
            io::copy(&mut api.stream("block/get", &[("arg", cid)])?, out)?;
        }
        BlockCommand::Stat { cid } => {
            let v: wire::BlockStat = api.json("block/stat", &[("arg", cid)])?;
            writeln!(out, "Key: {}\nSize: {}", v.key, v.size)?;
        }
        BlockCommand::Rm { cids } => {
            let q: Vec<(&str, String)> = cids.into_iter().map(|c| ("arg", c)).collect();
            for v in api.lines::<wire::BlockRemoved>("block/rm", &q)? {
                writeln!(out, "removed {}", v?.hash)?;
            }
        }
    }
    Ok(())
}

fn pin(api: &Api, cmd: PinCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        PinCommand::Add { paths, recursive } => {
            for p in paths {
                let v: wire::Pins =
                    api.json("pin/add", &[("arg", p), ("recursive", s(recursive))])?;
                let how = if recursive { "recursively" } else { "directly" };
                for c in v.pins {
                    writeln!(out, "pinned {c} {how}")?;
                }
            }
        }
        PinCommand::Rm { paths } => {
            let q: Vec<(&str, String)> = paths.into_iter().map(|p| ("arg", p)).collect();
            let v: wire::Pins = api.json("pin/rm", &q)?;
            for c in v.pins {
                writeln!(out, "unpinned {c}")?;
            }
        }
        PinCommand::Ls { kind, quiet } => {
            let t = match kind {
                PinType::Recursive => "recursive",
                PinType::Direct => "direct",
                PinType::Indirect => "indirect",
                PinType::All => "all",
            };
            let v: wire::PinList = api.json("pin/ls", &[("type", t.to_string())])?;
            for (cid, info) in v.keys {
                if quiet {
                    writeln!(out, "{cid}")?;
                } else {
                    writeln!(out, "{cid} {}", info.kind)?;
                }
            }
        }
    }
    Ok(())
}

fn repo(api: &Api, cmd: RepoCommand, out: &mut dyn Write) -> Result<bool> {
    match cmd {
        RepoCommand::Stat => {
            let v: wire::RepoStat = api.json("repo/stat", &[])?;
            writeln!(out, "NumObjects: {}", v.num_objects)?;
            writeln!(out, "LogicalSize: {}", v.logical_size)?;
            writeln!(out, "RepoSize: {}", v.repo_size)?;
            writeln!(out, "RepoPath: {}", v.repo_path)?;
        }
        RepoCommand::Gc => {
            let v: wire::GcReport = api.json("repo/gc", &[])?;
            writeln!(
                out,
                "removed {} blocks ({} bytes); reclaimed {} bytes on disk",
                v.removed_blocks, v.removed_bytes, v.reclaimed_bytes
            )?;
        }
        RepoCommand::Verify => {
            let v: wire::VerifyReport = api.json("repo/verify", &[])?;
            for b in &v.bad {
                writeln!(out, "bad block {}: {}", b.cid, b.reason)?;
            }
            writeln!(out, "verified {} blocks: {} bad", v.checked, v.bad.len())?;
            out.flush()?;
            return Ok(v.bad.is_empty());
        }
    }
    Ok(true)
}

fn dag(api: &Api, cmd: DagCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        DagCommand::Export { path } => {
            io::copy(&mut api.stream("dag/export", &[("arg", path)])?, out)?;
        }
        DagCommand::Import { files } => {
            for f in files {
                std::fs::File::open(&f).with_context(|| format!("{}", f.display()))?;
                let r = ndjson::<wire::Imported>(
                    api.upload(
                        "dag/import",
                        &[],
                        vec![Part::File {
                            name: "car".into(),
                            path: f.clone(),
                        }],
                    )
                    .with_context(|| format!("importing {}", f.display()))?,
                );
                for v in r {
                    writeln!(out, "Pinned root {} success", v?.root.cid.cid)?;
                }
            }
        }
    }
    Ok(())
}

fn topic_arg(topic: &str) -> String {
    multibase::encode(multibase::Base::Base64Url, topic.as_bytes())
}

fn pubsub(api: &Api, cmd: PubsubCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        PubsubCommand::Pub { topic, file } => {
            let data = match file.as_deref() {
                Some(p) if p != Path::new("-") => {
                    std::fs::read(p).with_context(|| format!("{}", p.display()))?
                }
                _ => {
                    let mut d = Vec::new();
                    io::stdin().read_to_end(&mut d)?;
                    d
                }
            };
            let mut r = api.upload(
                "pubsub/pub",
                &[("arg", topic_arg(&topic))],
                vec![Part::Bytes {
                    name: "data".into(),
                    data,
                }],
            )?;
            io::copy(&mut r, &mut io::sink())?;
        }
        PubsubCommand::Sub { topic } => {
            let messages =
                api.lines::<wire::PubsubMessage>("pubsub/sub", &[("arg", topic_arg(&topic))])?;
            for v in messages {
                let (_, data) = multibase::decode(v?.data)
                    .map_err(|e| anyhow!("daemon sent undecodable data: {e}"))?;
                out.write_all(&data)?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
        }
        PubsubCommand::Ls => {
            let v: wire::Strings = api.json("pubsub/ls", &[])?;
            for t in v.strings {
                let (_, name) = multibase::decode(t)
                    .map_err(|e| anyhow!("daemon sent an undecodable topic: {e}"))?;
                writeln!(out, "{}", String::from_utf8_lossy(&name))?;
            }
        }
        PubsubCommand::Peers { topic } => {
            let q: Vec<(&str, String)> = topic.iter().map(|t| ("arg", topic_arg(t))).collect();
            let v: wire::Strings = api.json("pubsub/peers", &q)?;
            for p in v.strings {
                writeln!(out, "{p}")?;
            }
        }
    }
    Ok(())
}
