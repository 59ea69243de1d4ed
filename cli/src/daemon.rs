//! `ipfsbench-node --role ROLE`: the daemon in the foreground until SIGINT or SIGTERM.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use ipfsbench_core::daemon::Options;
use ipfsbench_core::network::Multiaddr;
use ipfsbench_core::repo::Repo;
use ipfsbench_roles::daemon::{Config, Daemon};
use ipfsbench_roles::{Role, Settings};

use crate::args::DaemonArgs;

/// Runs the daemon on the repo at `path`.
pub(crate) fn run(path: &Path, role: Role, flags: DaemonArgs, repo: Repo) -> Result<()> {
    let config = config(role, flags, &repo)?;
    ipfsbench_core::daemon::cap_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let daemon = Daemon::start(repo, config)
            .await
            .context("starting the daemon")?;
        announce(&daemon, path, role).await?;
        wait_for_signal().await?;
        eprintln!("shutting down");
        daemon.shutdown().await.context("shutting down")?;
        Ok(())
    })
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
    let mut tasks = repo.config().tasks.clone();
    if let Some(cluster) = flags.cluster {
        tasks.cluster = cluster;
    }
    let mut cluster = repo.config().cluster.clone();
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
    Ok(Config { daemon, settings })
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
    let core = daemon.core();
    let peer = core.repo().peer_id();
    tracing::info!(%peer, %role, api = %core.api_addr(), "daemon started");
    eprintln!("peer id: {peer}");
    eprintln!("role: {role}");
    eprintln!("repo: {}", path.display());
    eprintln!("API listening on {}", core.api_addr());
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
