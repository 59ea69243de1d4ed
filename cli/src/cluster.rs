//! `cluster ...`: the cluster's peers and counters, its pinset and its replicated state,
//! through a running daemon.

use std::io::Write;

use anyhow::Result;
use ipfsbench_core::state::Status;
use ipfsbench_roles::api::wire as tasks;
use ipfsbench_roles::master::replicated::ResultEntry;
use ipfsbench_roles::membership::invites::InviteRecord;
use ipfsbench_roles::pinset::{input, Pin, PinStatus};
use ipfsbench_roles::service::MasterView;

use crate::args::{ClusterCommand, ClusterPinArgs, ClusterPinCommand, InviteArgs, MemberCommand};
use crate::client::Api;
use ipfsbench_roles::api::members::{MembersView, RemovedView};

/// Runs a `cluster` command.
pub(crate) fn run(api: &Api, cmd: ClusterCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ClusterCommand::Peers => peers(api, out)?,
        ClusterCommand::Stats => {
            let v: ipfsbench_roles::service::Stats = api.json("cluster/stats", &[])?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        ClusterCommand::Pin(cmd) => pin(api, cmd, out)?,
        ClusterCommand::Alerts => {
            let v: tasks::Alerts = api.json("cluster/alerts", &[])?;
            for a in &v.alerts {
                match a {
                    tasks::Alert::PeerGone { peer, silent_ms } => match silent_ms {
                        Some(ms) => writeln!(out, "peer gone: {peer}, silent for {ms} ms")?,
                        None => {
                            writeln!(out, "peer gone: {peer}, not heard since this node started")?
                        }
                    },
                    tasks::Alert::NotAMember {
                        peer,
                        dropped,
                        removed,
                    } => {
                        let why = if *removed {
                            "removed from the cluster"
                        } else {
                            "not a member"
                        };
                        writeln!(out, "{why}: {peer}, {dropped} messages dropped")?;
                    }
                    tasks::Alert::UnderReplicated {
                        cid,
                        pinned,
                        wanted,
                    } => {
                        let wanted =
                            wanted.map_or("every eligible peer".to_string(), |w| w.to_string());
                        writeln!(
                            out,
                            "under-replicated: {cid}, pinned on {pinned}, wants {wanted}"
                        )?;
                    }
                }
            }
            if v.alerts.is_empty() {
                writeln!(out, "no alerts")?;
            }
        }
        ClusterCommand::Results { kind, json } => results(api, kind, json, out)?,
        ClusterCommand::Master => {
            let v: MasterView = api.json("cluster/master", &[])?;
            match (&v.active, v.epoch) {
                (Some(peer), Some(epoch)) => {
                    writeln!(out, "active master: {peer} (epoch {epoch})")?
                }
                _ => writeln!(out, "active master: none heard")?,
            }
            writeln!(out, "this node: {}", v.this_node)?;
        }
        ClusterCommand::Invite(args) => invite(api, args, out)?,
        ClusterCommand::Invites => invites(api, out)?,
        ClusterCommand::Members => members(api, out)?,
        ClusterCommand::Member(MemberCommand::Rm { peer, reason }) => {
            let v: RemovedView =
                api.json("cluster/member/rm", &[("arg", peer), ("reason", reason)])?;
            writeln!(out, "removed {} from the cluster", v.peer)?;
        }
        ClusterCommand::Init { .. } | ClusterCommand::Root(_) => {
            anyhow::bail!("this cluster command runs on the repo: stop the daemon first")
        }
        ClusterCommand::State { snapshot } => {
            if snapshot {
                let v: tasks::Snapshot = api.json("cluster/state/snapshot", &[])?;
                writeln!(out, "{}", v.snapshot)?;
            } else {
                let v: Status = api.json("cluster/state", &[])?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
        }
    }
    Ok(())
}

fn peers(api: &Api, out: &mut dyn Write) -> Result<()> {
    let v: tasks::ClusterPeers = api.json("cluster/peers", &[])?;
    writeln!(
        out,
        "{:<52} {:<7} {:<9} {:>5} {:>7} {:>4} {:>9}",
        "PEER", "ROLE", "MEMBER", "CORES", "RUNNING", "MAX", "LAST (ms)"
    )?;
    for p in &v.peers {
        writeln!(
            out,
            "{:<52} {:<7} {:<9} {:>5} {:>7} {:>4} {:>9}{}",
            p.peer,
            p.role.to_string(),
            p.member.as_deref().unwrap_or("-"),
            p.capacity.cores,
            p.running,
            p.capacity.max_concurrent,
            p.last_heartbeat_ms_ago,
            match (p.this_node, p.leads.is_some()) {
                (true, true) => " (this node, active master)",
                (true, false) => " (this node)",
                (false, true) => " (active master)",
                (false, false) => "",
            }
        )?;
    }
    for r in &v.refused {
        let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let why = if r.removed {
            "removed from the cluster"
        } else {
            "not a member"
        };
        writeln!(
            out,
            "{}: {why}: {} messages dropped ({})",
            r.peer,
            r.dropped,
            kinds.join(", ")
        )?;
    }
    Ok(())
}

fn results(api: &Api, kind: Option<String>, json: bool, out: &mut dyn Write) -> Result<()> {
    let query: Vec<(&str, String)> = kind.into_iter().map(|k| ("kind", k)).collect();
    let entries: Vec<ResultEntry> = api
        .lines("cluster/results", &query)?
        .collect::<Result<_>>()?;
    if json {
        for e in &entries {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<32} {:<12} {:<9} {:<12} {:<46} FIGURES",
        "TASK", "KIND", "STATE", "WORKER", "RESULT"
    )?;
    for e in &entries {
        let worker = e.worker.map(|w| w.to_string()).unwrap_or_default();
        let tail = worker.len().saturating_sub(10);
        let figures: Vec<String> = e.figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            out,
            "{:<32} {:<12} {:<9} {:<12} {:<46} {}",
            e.id.to_string(),
            e.kind.to_string(),
            e.state.to_string(),
            format!("…{}", &worker[tail..]),
            e.result
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            if figures.is_empty() {
                e.error.clone().unwrap_or_default()
            } else {
                figures.join(" ")
            }
        )?;
    }
    writeln!(out, "{} results", entries.len())?;
    Ok(())
}

/// The query of `cluster pin add`, checked first by the daemon's own rules
/// ([`input`]), so that what it would refuse (or could not even receive, like a name of a
/// megabyte) fails here with a clear error.
fn add_query(args: ClusterPinArgs) -> Result<Vec<(&'static str, String)>> {
    let fail = |e: String| anyhow::anyhow!("cluster pin add: {e}");
    let metadata = input::metadata(args.metadata.iter().map(String::as_str)).map_err(fail)?;
    let allocations = args
        .allocations
        .as_deref()
        .map_or(0, |a| a.split(',').filter(|p| !p.is_empty()).count());
    input::check_labels(
        args.name.as_deref().unwrap_or_default(),
        &args.tag,
        &metadata,
        allocations,
    )
    .map_err(fail)?;
    let (min, max) = match args.replication {
        Some(n) => (Some(n), Some(n)),
        None => (args.replication_min, args.replication_max),
    };
    let factor = |n: Option<i32>, flag: &str| {
        n.map(|n| input::factor(i64::from(n)).map_err(|e| fail(format!("--{flag}: {e}"))))
            .transpose()
    };
    // Both given (neither the default): their pair is checked here too.
    if let (Some(Some(min)), Some(Some(max))) = (
        factor(min, "replication-min")?,
        factor(max, "replication-max")?,
    ) {
        input::check_factors(min, max).map_err(fail)?;
    }
    if let Some(e) = &args.expire_in {
        input::duration(e)
            .and_then(|d| input::expiry(0, d))
            .map_err(|e| fail(format!("--expire-in: {e}")))?;
    }
    let mut q = vec![("arg", args.cid)];
    q.extend(args.name.map(|n| ("name", n)));
    q.extend(min.map(|n| ("replication-min", n.to_string())));
    q.extend(max.map(|n| ("replication-max", n.to_string())));
    q.extend(args.allocations.map(|a| ("allocations", a)));
    q.extend(args.tag.into_iter().map(|t| ("tag", t)));
    q.extend(args.metadata.into_iter().map(|m| ("metadata", m)));
    q.extend(args.expire_in.map(|e| ("expire-in", e)));
    Ok(q)
}

fn copies(pin: &Pin) -> String {
    let f = |v: Option<u32>| v.map_or("all".to_string(), |n| n.to_string());
    format!(
        "{}..{}",
        f(pin.replication_factor_min),
        f(pin.replication_factor_max)
    )
}

fn pin(api: &Api, cmd: ClusterPinCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ClusterPinCommand::Add(args) => {
            let pin: Pin = api.json("cluster/pins/add", &add_query(args)?)?;
            let peers: Vec<String> = pin.allocations.iter().map(ToString::to_string).collect();
            writeln!(
                out,
                "pinned {} on {} peers{}: {}",
                pin.cid,
                peers.len(),
                if pin.under_replicated {
                    " (under-replicated)"
                } else {
                    ""
                },
                peers.join(", ")
            )?;
        }
        ClusterPinCommand::Rm { cid } => {
            let pin: Pin = api.json("cluster/pins/rm", &[("arg", cid)])?;
            writeln!(out, "unpinned {}", pin.cid)?;
        }
        ClusterPinCommand::Ls { name, json } => {
            let q: Vec<(&str, String)> = name.into_iter().map(|n| ("name", n)).collect();
            for pin in api.lines::<serde_json::Value>("cluster/pins/ls", &q)? {
                let pin = pin?;
                if json {
                    writeln!(out, "{pin}")?;
                    continue;
                }
                let pin: Pin = serde_json::from_value(pin)?;
                let peers: Vec<String> = pin.allocations.iter().map(ToString::to_string).collect();
                writeln!(
                    out,
                    "{} {:?} {} {}",
                    pin.cid,
                    pin.name,
                    copies(&pin),
                    peers.join(",")
                )?;
            }
        }
        ClusterPinCommand::Update { from, to } => {
            let pin: Pin = api.json("cluster/pins/update", &[("arg", from), ("arg", to)])?;
            writeln!(out, "updated to {}", pin.cid)?;
        }
        ClusterPinCommand::Status { cid, json } => status(api, cid, json, out)?,
        ClusterPinCommand::Recover { cid } => {
            let q: Vec<(&str, String)> = cid.into_iter().map(|c| ("arg", c)).collect();
            let v: tasks::Recovered = api.json("cluster/pins/recover", &q)?;
            writeln!(out, "recovering {} pins", v.pins.len())?;
        }
    }
    Ok(())
}

/// `cluster pin status`: each pin with every peer's report, as text or JSON lines.
fn status(api: &Api, cid: Option<String>, json: bool, out: &mut dyn Write) -> Result<()> {
    let q: Vec<(&str, String)> = cid.into_iter().map(|c| ("arg", c)).collect();
    for status in api.lines::<PinStatus>("cluster/pins/status", &q)? {
        let status = status?;
        if json {
            writeln!(out, "{}", serde_json::to_string(&status)?)?;
            continue;
        }
        writeln!(
            out,
            "{} {:?}: pinned on {}{}",
            status.cid,
            status.name,
            status.pinned,
            if status.under_replicated {
                " (under-replicated)"
            } else {
                ""
            }
        )?;
        for (peer, r) in &status.peer_map {
            let error = r
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            writeln!(
                out,
                "    {peer} {} {} blocks, {} bytes{error}",
                r.status.as_str(),
                r.blocks,
                r.bytes
            )?;
        }
    }
    Ok(())
}

/// `cluster invite`: the token alone on stdout (what is copied), what it grants on stderr.
fn invite(api: &Api, args: InviteArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(id) = args.revoke {
        let v: InviteRecord = api.json("cluster/invite/revoke", &[("arg", id)])?;
        writeln!(out, "invite {} revoked", v.id)?;
        return Ok(());
    }
    let mut query = vec![
        ("role", args.role),
        ("ttl", args.ttl),
        ("uses", args.uses.to_string()),
        ("cert_ttl", args.cert_ttl),
    ];
    query.extend(args.tag.into_iter().map(|t| ("tag", t)));
    query.extend(args.addr.into_iter().map(|a| ("addr", a)));
    let v: IssuedInvite = api.json("cluster/invite", &query)?;
    eprintln!(
        "invite {}: {} for {} node(s), until {} (Unix ms); the token holds the cluster's \
         secrets: hand it over privately",
        v.invite.id, v.invite.grant, v.invite.uses, v.invite.expires_ms
    );
    writeln!(out, "{}", v.token)?;
    Ok(())
}

/// `cluster invites`: one line each.
fn invites(api: &Api, out: &mut dyn Write) -> Result<()> {
    let list: Vec<InviteRecord> = api.json("cluster/invites", &[])?;
    writeln!(
        out,
        "{:<16}  {:<9}  {:>9}  {:>13}  STATE",
        "ID", "ROLE", "USED", "EXPIRES_MS"
    )?;
    let now = ipfsbench_roles::clock::now_ms();
    for i in list {
        let state = if i.revoked {
            "revoked"
        } else if i.expires_ms <= now {
            "expired"
        } else if i.used >= i.uses {
            "used up"
        } else {
            "open"
        };
        let used = format!("{}/{}", i.used, i.uses);
        writeln!(
            out,
            "{:<16}  {:<9}  {used:>9}  {:>13}  {state}",
            i.id, i.grant, i.expires_ms
        )?;
    }
    Ok(())
}

/// `cluster/invite`'s answer.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IssuedInvite {
    token: String,
    invite: InviteRecord,
}

/// `cluster members`: one line each, then the peers removed.
fn members(api: &Api, out: &mut dyn Write) -> Result<()> {
    let v: MembersView = api.json("cluster/members", &[])?;
    let Some(cluster) = &v.cluster else {
        writeln!(
            out,
            "this node belongs to no cluster (it trusts the peers its configuration lists)"
        )?;
        return Ok(());
    };
    writeln!(out, "cluster {cluster}: {} members", v.members.len())?;
    writeln!(
        out,
        "{:<52} {:<9} {:>13} {:>13} {:>10}  TAGS",
        "PEER", "ROLE", "ISSUED_MS", "EXPIRES_MS", "HEARD (ms)"
    )?;
    for m in &v.members {
        let heard = m
            .last_heard_ms_ago
            .map_or("-".to_string(), |ms| ms.to_string());
        writeln!(
            out,
            "{:<52} {:<9} {:>13} {:>13} {heard:>10}  {}{}",
            m.peer,
            m.role,
            m.issued_ms,
            m.expires_ms,
            m.tags.join(","),
            if m.this_node { " (this node)" } else { "" }
        )?;
    }
    for r in &v.removed {
        writeln!(
            out,
            "removed: {} at {} ({})",
            r.peer, r.removed_ms, r.reason
        )?;
    }
    Ok(())
}
