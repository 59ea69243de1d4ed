//! `ipfsbench-node --role ROLE`: the daemon in the foreground until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipfsbench_core::daemon::{Daemon, Options};
use ipfsbench_core::repo::Repo;
use ipfsbench_roles::master::Master;
use ipfsbench_roles::{now_ms, Role, Service, Settings};

use crate::args::DaemonArgs;

fn multiaddrs(list: &[String], what: &str) -> Result<Vec<ipfsbench_core::network::Multiaddr>> {
    list.iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("invalid {what} multiaddr {a:?}"))
        })
        .collect()
}

/// Runs the daemon on the repo at `path`.
pub(crate) fn run(path: &Path, role: &str, flags: DaemonArgs, repo: Repo) -> Result<()> {
    let role: Role = role.parse()?;
    let config = repo.config().daemon.clone();
    let listen = if flags.listen.is_empty() {
        config.listen
    } else {
        flags.listen
    };
    let bootstrap = if flags.bootstrap.is_empty() {
        config.bootstrap
    } else {
        flags.bootstrap
    };
    let api_text = flags.api.clone().unwrap_or(config.api);
    let mut tasks = repo.config().tasks.clone();
    if let Some(cluster) = &flags.cluster {
        tasks.cluster = cluster.clone();
    }
    tasks
        .trusted_masters
        .extend(flags.trust_master.iter().cloned());
    tasks
        .trusted_workers
        .extend(flags.trust_worker.iter().cloned());
    tasks.submitters.extend(flags.submitter.iter().cloned());
    let settings = Settings::new(role, &tasks).context("the [tasks] configuration")?;
    let master = if role == Role::Master {
        let config = settings.master.clone();
        Some(Master::open(repo.path(), config, now_ms()).context("opening the task table")?)
    } else {
        None
    };
    let options = Options {
        role,
        listen: multiaddrs(&listen, "--listen")?,
        bootstrap: multiaddrs(&bootstrap, "--bootstrap")?,
        keep: settings
            .trusted_masters
            .iter()
            .chain(&settings.trusted_workers)
            .copied()
            .collect(),
        mdns: flags.mdns.unwrap_or(config.mdns),
        api: api_text
            .parse::<SocketAddr>()
            .with_context(|| format!("invalid --api address {api_text:?} (expected host:port)"))?,
        fetch_timeout: Duration::from_secs(config.fetch_timeout_secs),
        api_allowed_origins: config.api_allowed_origins.clone(),
        api_allowed_hosts: config.api_allowed_hosts.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut service = None;
        let daemon = Daemon::start_with(repo, options, |repo, client| {
            let started = Service::start(Arc::clone(repo), client.clone(), settings, master);
            let routes = ipfsbench_roles::api::router(started.handle(), client.clone());
            service = Some(started);
            routes
        })
        .await
        .context("starting the daemon")?;
        let peer = daemon.repo().peer_id();
        tracing::info!(%peer, %role, api = %daemon.api_addr(), "daemon started");
        eprintln!("peer id: {peer}");
        eprintln!("role: {role}");
        eprintln!("repo: {}", path.display());
        eprintln!("API listening on {}", daemon.api_addr());
        // Give the listeners a moment to report the addresses they bound.
        for _ in 0..50 {
            if !daemon.client().listen_addrs().await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for addr in daemon.client().listen_addrs().await? {
            eprintln!("listening on {addr}/p2p/{peer}");
        }
        eprintln!("daemon is ready");
        wait_for_signal().await?;
        eprintln!("shutting down");
        if let Some(service) = service {
            service.shutdown().await;
        }
        daemon.shutdown().await.context("shutting down")?;
        Ok(())
    })
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
