//! The commands, done through a running daemon's API.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::args::{
    AddArgs, BlockCommand, ClusterCommand, Codec, Command, DagCommand, PinCommand, PinType,
    PubsubCommand, RepoCommand, RoutingCommand, SubmitArgs, SwarmCommand, TaskCommand,
};
use crate::client::{Api, Part};

/// Records asked for per `task ls` page.
const LS_PAGE: usize = 1_000;

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
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
            let v = api.json("id", &[])?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Command::Swarm(SwarmCommand::Connect { addrs }) => {
            let q: Vec<(&str, String)> = addrs.into_iter().map(|a| ("arg", a)).collect();
            let v = api.json("swarm/connect", &q)?;
            for line in v["Strings"].as_array().cloned().unwrap_or_default() {
                writeln!(out, "{}", line.as_str().unwrap_or(""))?;
            }
        }
        Command::Swarm(SwarmCommand::Peers) => swarm_peers(api, &mut out)?,
        Command::Routing(RoutingCommand::Findprovs { cid }) => {
            let r = BufReader::new(api.stream("routing/findprovs", &[("arg", cid)])?);
            for line in r.lines() {
                let v: Value = serde_json::from_str(&line?)?;
                for resp in v["Responses"].as_array().cloned().unwrap_or_default() {
                    writeln!(out, "{}", str_field(&resp, "ID"))?;
                }
            }
        }
        Command::Pubsub(cmd) => pubsub(api, cmd, &mut out)?,
        Command::Task(cmd) => task(api, cmd, &mut out)?,
        Command::Cluster(cmd) => cluster(api, cmd, &mut out)?,
        Command::Storage(cmd) => crate::storage::run(api, cmd, &mut out)?,
        Command::Demo(_) => unreachable_command("demo")?,
    }
    out.flush()?;
    Ok(true)
}

/// `ls` through the daemon.
fn ls(api: &Api, path: String, out: &mut impl Write) -> Result<()> {
    let v = api.json("ls", &[("arg", path)])?;
    let links = v["Objects"][0]["Links"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for l in links {
        if l["Type"].as_u64() == Some(1) {
            writeln!(
                out,
                "{} - {}/",
                str_field(&l, "Hash"),
                str_field(&l, "Name")
            )?;
        } else {
            writeln!(
                out,
                "{} {} {}",
                str_field(&l, "Hash"),
                l["Size"].as_u64().unwrap_or(0),
                str_field(&l, "Name")
            )?;
        }
    }
    Ok(())
}

/// `swarm peers` through the daemon.
fn swarm_peers(api: &Api, out: &mut impl Write) -> Result<()> {
    let v = api.json("swarm/peers", &[])?;
    for p in v["Peers"].as_array().cloned().unwrap_or_default() {
        writeln!(
            out,
            "{}/p2p/{}",
            str_field(&p, "Addr"),
            str_field(&p, "Peer")
        )?;
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
    let pretty = |out: &mut dyn Write, v: &Value| -> Result<()> {
        writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
        Ok(())
    };
    match cmd {
        TaskCommand::Submit(args) => {
            let v = api.json("task/submit", &submit_query(&args))?;
            writeln!(out, "{}", str_field(&v, "Id"))?;
            if args.wait {
                match v["Result"].as_str() {
                    Some(cid) => writeln!(out, "{cid}")?,
                    None => bail!(
                        "task {} ended {}: {}",
                        str_field(&v, "Id"),
                        str_field(&v, "State"),
                        str_field(&v, "Error")
                    ),
                }
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
                let v = api.json("task/ls", &q)?;
                let tasks = v["Tasks"].as_array().cloned().unwrap_or_default();
                left = left.saturating_sub(tasks.len());
                for t in tasks {
                    writeln!(
                        out,
                        "{} {:<11} {:<9} {}",
                        str_field(&t, "Id"),
                        str_field(&t, "Kind"),
                        str_field(&t, "State"),
                        t["Result"].as_str().unwrap_or("-")
                    )?;
                }
                match v["Next"].as_u64() {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        TaskCommand::Cancel { id } => {
            let v = api.json("task/cancel", &[("arg", id)])?;
            writeln!(out, "{} {}", str_field(&v, "Id"), str_field(&v, "State"))?;
        }
        TaskCommand::Result { id, wait } => {
            let v = api.json("task/result", &[("arg", id), ("wait", s(wait))])?;
            writeln!(out, "{}", str_field(&v, "Result"))?;
        }
    }
    Ok(())
}

fn cluster(api: &Api, cmd: ClusterCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ClusterCommand::Peers => {
            let v = api.json("cluster/peers", &[])?;
            writeln!(
                out,
                "{:<52} {:<7} {:>5} {:>7} {:>4} {:>9}",
                "PEER", "ROLE", "CORES", "RUNNING", "MAX", "LAST (ms)"
            )?;
            for p in v["Peers"].as_array().cloned().unwrap_or_default() {
                let c = &p["Capacity"];
                writeln!(
                    out,
                    "{:<52} {:<7} {:>5} {:>7} {:>4} {:>9}{}",
                    str_field(&p, "Peer"),
                    str_field(&p, "Role"),
                    c["Cores"].as_u64().unwrap_or(0),
                    p["Running"].as_u64().unwrap_or(0),
                    c["MaxConcurrent"].as_u64().unwrap_or(0),
                    p["LastHeartbeatMsAgo"].as_u64().unwrap_or(0),
                    if p["ThisNode"].as_bool() == Some(true) {
                        " (this node)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        ClusterCommand::Stats => {
            let v = api.json("cluster/stats", &[])?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
    }
    Ok(())
}

fn unreachable_command(name: &str) -> Result<()> {
    bail!("`{name}` cannot run while a daemon holds the repo")
}

fn add(api: &Api, args: AddArgs, out: &mut dyn Write) -> Result<()> {
    crate::commands::check_add_paths(&args)?;
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
    let reader = BufReader::new(api.upload("add", &q, parts)?);
    let entries: Vec<Value> = reader
        .lines()
        .map(|l| Ok(serde_json::from_str::<Value>(&l?)?))
        .collect::<Result<_>>()?;
    let lines: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                str_field(e, "Hash").to_string(),
                str_field(e, "Name").to_string(),
            )
        })
        .collect();
    crate::commands::print_added(&args, &lines, out)?;
    Ok(())
}

fn get(api: &Api, path: &str, output: Option<PathBuf>) -> Result<()> {
    let dest = crate::commands::get_destination(path, output)?;
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
            let v: Value = serde_json::from_str(&text)?;
            writeln!(out, "{}", str_field(&v, "Key"))?;
        }
        BlockCommand::Get { cid } => {
            io::copy(&mut api.stream("block/get", &[("arg", cid)])?, out)?;
        }
        BlockCommand::Stat { cid } => {
            let v = api.json("block/stat", &[("arg", cid)])?;
            writeln!(out, "Key: {}\nSize: {}", str_field(&v, "Key"), v["Size"])?;
        }
        BlockCommand::Rm { cids } => {
            let q: Vec<(&str, String)> = cids.into_iter().map(|c| ("arg", c)).collect();
            let r = BufReader::new(api.stream("block/rm", &q)?);
            for line in r.lines() {
                let v: Value = serde_json::from_str(&line?)?;
                writeln!(out, "removed {}", str_field(&v, "Hash"))?;
            }
        }
    }
    Ok(())
}

fn pin(api: &Api, cmd: PinCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        PinCommand::Add { paths, recursive } => {
            for p in paths {
                let v = api.json("pin/add", &[("arg", p), ("recursive", s(recursive))])?;
                let how = if recursive { "recursively" } else { "directly" };
                for c in v["Pins"].as_array().cloned().unwrap_or_default() {
                    writeln!(out, "pinned {} {how}", c.as_str().unwrap_or(""))?;
                }
            }
        }
        PinCommand::Rm { paths } => {
            let q: Vec<(&str, String)> = paths.into_iter().map(|p| ("arg", p)).collect();
            let v = api.json("pin/rm", &q)?;
            for c in v["Pins"].as_array().cloned().unwrap_or_default() {
                writeln!(out, "unpinned {}", c.as_str().unwrap_or(""))?;
            }
        }
        PinCommand::Ls { kind, quiet } => {
            let t = match kind {
                PinType::Recursive => "recursive",
                PinType::Direct => "direct",
                PinType::Indirect => "indirect",
                PinType::All => "all",
            };
            let v = api.json("pin/ls", &[("type", t.to_string())])?;
            if let Some(keys) = v["Keys"].as_object() {
                for (cid, info) in keys {
                    if quiet {
                        writeln!(out, "{cid}")?;
                    } else {
                        writeln!(out, "{cid} {}", str_field(info, "Type"))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn repo(api: &Api, cmd: RepoCommand, out: &mut dyn Write) -> Result<bool> {
    match cmd {
        RepoCommand::Stat => {
            let v = api.json("repo/stat", &[])?;
            writeln!(out, "NumObjects: {}", v["NumObjects"])?;
            writeln!(out, "LogicalSize: {}", v["LogicalSize"])?;
            writeln!(out, "RepoSize: {}", v["RepoSize"])?;
            writeln!(out, "RepoPath: {}", str_field(&v, "RepoPath"))?;
        }
        RepoCommand::Gc => {
            let v = api.json("repo/gc", &[])?;
            writeln!(
                out,
                "removed {} blocks ({} bytes); reclaimed {} bytes on disk",
                v["RemovedBlocks"], v["RemovedBytes"], v["ReclaimedBytes"]
            )?;
        }
        RepoCommand::Verify => {
            let v = api.json("repo/verify", &[])?;
            let bad = v["Bad"].as_array().cloned().unwrap_or_default();
            for b in &bad {
                writeln!(
                    out,
                    "bad block {}: {}",
                    str_field(b, "Cid"),
                    str_field(b, "Reason")
                )?;
            }
            writeln!(out, "verified {} blocks: {} bad", v["Checked"], bad.len())?;
            out.flush()?;
            return Ok(bad.is_empty());
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
                let r = BufReader::new(
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
                for line in r.lines() {
                    let v: Value = serde_json::from_str(&line?)?;
                    let root = v["Root"]["Cid"]["/"].as_str().unwrap_or("");
                    writeln!(out, "Pinned root {root} success")?;
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
            let r = BufReader::new(api.stream("pubsub/sub", &[("arg", topic_arg(&topic))])?);
            for line in r.lines() {
                let v: Value = serde_json::from_str(&line?)?;
                let (_, data) = multibase::decode(str_field(&v, "data"))
                    .map_err(|e| anyhow!("daemon sent undecodable data: {e}"))?;
                out.write_all(&data)?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
        }
        PubsubCommand::Ls => {
            let v = api.json("pubsub/ls", &[])?;
            for t in v["Strings"].as_array().cloned().unwrap_or_default() {
                let (_, name) = multibase::decode(t.as_str().unwrap_or(""))
                    .map_err(|e| anyhow!("daemon sent an undecodable topic: {e}"))?;
                writeln!(out, "{}", String::from_utf8_lossy(&name))?;
            }
        }
        PubsubCommand::Peers { topic } => {
            let q: Vec<(&str, String)> = topic.iter().map(|t| ("arg", topic_arg(t))).collect();
            let v = api.json("pubsub/peers", &q)?;
            for p in v["Strings"].as_array().cloned().unwrap_or_default() {
                writeln!(out, "{}", p.as_str().unwrap_or(""))?;
            }
        }
    }
    Ok(())
}
