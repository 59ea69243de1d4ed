//! `ipfsbench-node --role ROLE`: the daemon in the foreground until SIGINT or SIGTERM.

use std::path::Path;
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context, Result};
use ipfsbench_core::daemon::Options;
use ipfsbench_core::network::{Multiaddr, SwarmKey};
use ipfsbench_core::repo::Repo;
use ipfsbench_protocols::membership::Invite;
use ipfsbench_roles::config::RoleConfig;
use ipfsbench_roles::daemon::{Config, Daemon};
use ipfsbench_roles::membership::join;
use ipfsbench_roles::{Role, Settings};
use libp2p::multiaddr::Protocol;

use crate::args::DaemonArgs;

/// Runs the daemon on the repo at `path`.
pub(crate) fn run(path: &Path, role: Role, mut flags: DaemonArgs, repo: Repo) -> Result<()> {
    let (invite, known_masters) = invite(&mut flags, &repo)?;
    let listens_by_default = flags.listen.is_empty()
        && repo.config().daemon.listen == ipfsbench_core::config::DaemonConfig::default().listen;
    let mut config = config(role, flags, &repo)?;
    // A repo that belongs to a cluster runs on its name; another name is a mistake.
    if let Some(info) = ipfsbench_roles::membership::root::info(&repo)? {
        let default = ipfsbench_roles::config::TasksConfig::default().cluster;
        if config.settings.cluster != default && config.settings.cluster != info.name {
            bail!(
                "this repo belongs to cluster {:?}, but the configuration names {:?}",
                info.name,
                config.settings.cluster
            );
        }
        config.settings.cluster = info.name;
        // The masters it joined through, and those a token of its cluster names: dialed at
        // every start, so a member needs no address typed.
        for addr in info.masters.iter().filter_map(|a| a.parse().ok()) {
            config.daemon.bootstrap.push(addr);
        }
        config.daemon.bootstrap.extend(known_masters);
        let mut seen = std::collections::HashSet::new();
        config
            .daemon
            .bootstrap
            .retain(|a| seen.insert(a.to_string()));
    }
    if let Some(invite) = &invite {
        // The first start of a joining node: the invite's cluster, network and masters.
        config.settings.cluster.clone_from(&invite.cluster);
        if let Some(key) = invite.swarm_key {
            config.daemon.swarm_key = Some(SwarmKey::new(key));
        }
        config.daemon.bootstrap.extend(invite.multiaddrs());
    }
    if config.daemon.swarm_key.is_some() && listens_by_default {
        // A private network runs over TCP: the default QUIC addresses are left out.
        config.daemon.listen.retain(|a| {
            !a.iter()
                .any(|p| matches!(p, Protocol::Udp(_) | Protocol::QuicV1 | Protocol::Quic))
        });
    }
    ipfsbench_core::daemon::cap_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let daemon = Daemon::start(repo, config)
            .await
            .context("starting the daemon")?;
        if let Some(invite) = &invite {
            let node = daemon.node();
            let asked = join::ask(node.client(), node.repo().peer_id(), invite).await;
            let joined = asked.and_then(|(cert, bytes)| {
                join::store(node.repo(), invite, &bytes)
                    .map(|_| cert)
                    .map_err(|e| e.to_string())
            });
            match joined {
                Ok(cert) => {
                    daemon.joined().await;
                    eprintln!("joined cluster {:?} as {}", cert.cluster, cert.grant);
                }
                Err(e) => {
                    daemon.shutdown().await.context("shutting down")?;
                    bail!(
                        "joining cluster {:?}: {e}; nothing was written",
                        invite.cluster
                    );
                }
            }
        }
        announce(&daemon, path, role).await?;
        wait_for_signal().await?;
        eprintln!("shutting down");
        daemon.shutdown().await.context("shutting down")?;
        Ok(())
    })
}

/// The invite to join with, if one was given and the repo is no member yet. A member given
/// a token of its own cluster (a Kubernetes Secret read at every start) only dials the
/// token's masters; a token of another cluster is an error.
fn invite(flags: &mut DaemonArgs, repo: &Repo) -> Result<(Option<Invite>, Vec<Multiaddr>)> {
    let file = &repo.config().daemon.join_token_file;
    let from_config = (!file.is_empty()).then(|| std::path::PathBuf::from(file));
    let text = match (flags.join.take(), flags.join_file.take().or(from_config)) {
        (Some(token), _) => token,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading the invite from {}", path.display()))?,
        (None, None) => return Ok((None, Vec::new())),
    };
    let invite = Invite::decode(&text).map_err(|e| anyhow!("--join: {e}"))?;
    let holds_root = ipfsbench_roles::membership::root::dir(repo)
        .join("root.key")
        .exists();
    let held = join::holds_cluster(repo);
    if held {
        // A member, or one whose certificate expired (it joins its cluster again; a master
        // holding the root renews its own at start): the token must be its cluster's.
        let ours = ipfsbench_roles::membership::root::info(repo)?.map(|i| i.name);
        if ours.as_deref() != Some(invite.cluster.as_str()) {
            bail!(
                "--join: this repo belongs to cluster {:?}; the token is for cluster {:?}",
                ours.unwrap_or_default(),
                invite.cluster
            );
        }
    }
    if held && (holds_root || join::is_member(repo)) {
        return Ok((None, invite.multiaddrs()));
    }
    Ok((Some(invite), Vec::new()))
}

/// The node's typed config: the repo's `config.toml`, each flag given overriding it. Checked
/// whole before anything starts.
fn config(role: Role, flags: DaemonArgs, repo: &Repo) -> Result<Config> {
    let file = &repo.config().daemon;
    let listen = if flags.listen.is_empty() {
        multiaddrs(&file.listen, "daemon.listen")?
    } else {
        flags.listen
    };
    let bootstrap = if flags.bootstrap.is_empty() {
        multiaddrs(&file.bootstrap, "daemon.bootstrap")?
    } else {
        flags.bootstrap
    };
    let api = match flags.api {
        Some(api) => api,
        None => file
            .api
            .parse()
            .with_context(|| format!("daemon.api: {:?} is not a host:port address", file.api))?,
    };
    let RoleConfig {
        mut tasks,
        mut cluster,
    } = RoleConfig::from(repo.config()).map_err(|e| anyhow!("config.toml: {e}"))?;
    if let Some(name) = flags.cluster {
        tasks.cluster = name;
    }
    cluster.tags.extend(flags.tag);
    let mut settings =
        Settings::new(role, &tasks, &cluster).context("the [tasks] and [cluster] configuration")?;
    settings.trusted_masters.extend(flags.trust_master);
    settings.trusted_workers.extend(flags.trust_worker);
    settings.submitters.extend(flags.submitter);
    settings.state.trusted_peers.extend(flags.trust_peer);
    let mut daemon = Options::new(role, api);
    daemon.listen = listen;
    daemon.bootstrap = bootstrap;
    daemon.keep = settings
        .trusted_masters
        .iter()
        .chain(&settings.trusted_workers)
        .chain(&settings.state.trusted_peers)
        .copied()
        .collect();
    daemon.mdns = flags.mdns.unwrap_or(file.mdns);
    daemon.fetch_timeout = Duration::from_secs(file.fetch_timeout_secs);
    daemon.api_allowed_origins = file.api_allowed_origins.clone();
    daemon.api_allowed_hosts = file.api_allowed_hosts.clone();
    daemon.gateway = gateway(role, flags.gateway.as_deref(), &file.gateway)?;
    let token_file = flags
        .api_token_file
        .or_else(|| (!file.api_token_file.is_empty()).then(|| file.api_token_file.clone().into()));
    daemon.api_token = token_file.map(|path| read_token(&path)).transpose()?;
    let key_file = flags
        .swarm_key
        .or_else(|| (!file.swarm_key_file.is_empty()).then(|| file.swarm_key_file.clone().into()))
        .or_else(|| Some(repo.path().join("swarm.key")).filter(|p| p.exists()));
    daemon.swarm_key = key_file.map(|path| read_swarm_key(&path)).transpose()?;
    // Queries from outside run in child processes of this binary (see ipfsbench_sql).
    let query_process = Some(std::env::current_exe().context("locating this binary")?);
    Ok(Config {
        daemon,
        settings,
        query_process,
    })
}

/// The gateway's address: the flag, else the config, else the role's default (loopback port
/// 8080 like Kubo; none on leechers: [`ipfsbench_roles::daemon::gateway_by_default`]). `off`
/// turns it off.
fn gateway(role: Role, flag: Option<&str>, file: &str) -> Result<Option<SocketAddr>> {
    let (value, key) = match flag {
        Some(v) => (v, "--gateway"),
        None if !ipfsbench_roles::daemon::gateway_by_default(role) => return Ok(None),
        None if !file.is_empty() => (file, "daemon.gateway"),
        None => ("127.0.0.1:8080", "the default gateway"),
    };
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .with_context(|| format!("{key}: {value:?} is not a host:port address or \"off\""))
}

/// The API token in `path`: its one line, without the line end.
pub(crate) fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API token from {}", path.display()))?;
    let token = text.trim_end_matches(['\n', '\r']).to_string();
    if token.is_empty() {
        bail!("{}: the API token file is empty", path.display());
    }
    Ok(token)
}

/// The private network key in `path`, in Kubo's `swarm.key` format.
fn read_swarm_key(path: &Path) -> Result<SwarmKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the swarm key from {}", path.display()))?;
    text.trim().parse().map_err(|e| {
        anyhow::anyhow!(
            "{}: not a swarm key ({e}); expected /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits",
            path.display()
        )
    })
}

fn multiaddrs(list: &[String], key: &str) -> Result<Vec<Multiaddr>> {
    list.iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("{key}: invalid multiaddr {a:?}"))
        })
        .collect()
}

/// Prints what a user needs to reach the node, once its listeners are up.
async fn announce(daemon: &Daemon, path: &Path, role: Role) -> Result<()> {
    let core = daemon.node();
    let peer = core.repo().peer_id();
    let api = daemon
        .api_addr()
        .context("the daemon started without its API")?;
    tracing::info!(%peer, %role, %api, "daemon started");
    eprintln!("peer id: {peer}");
    eprintln!("role: {role}");
    eprintln!("repo: {}", path.display());
    eprintln!("API listening on {api}");
    if let Some(addr) = daemon.gateway_addr() {
        eprintln!("gateway listening on http://{addr}");
    }
    // Give the listeners a moment to report the addresses they bound.
    for _ in 0..50 {
        if !core.client().listen_addrs().await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for addr in core.client().listen_addrs().await? {
        eprintln!("listening on {addr}/p2p/{peer}");
    }
    eprintln!("daemon is ready");
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
