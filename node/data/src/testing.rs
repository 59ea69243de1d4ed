//! Hosts on loopback TCP for the multi-node tests of the replicated state and the benchmark
//! database: each a fresh repo in a temp dir and a real libp2p host, dialing the peers given.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ipfsbench_net::metrics::Metrics;
use ipfsbench_net::network::{self, Client, TopicRule};
use ipfsbench_protocols::Role;
use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::tiers::Mode;
use libp2p::{Multiaddr, PeerId};

/// A fresh repo in a temp dir (removed when the dir drops).
pub(crate) fn repo() -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(&dir.path().join("repo")).expect("repo");
    (dir, repo)
}

/// `n` fresh repos whose peers all trust each other.
pub(crate) fn trusting_repos(
    n: usize,
) -> (
    HashSet<PeerId>,
    std::vec::IntoIter<(tempfile::TempDir, Repo)>,
) {
    let repos: Vec<_> = (0..n).map(|_| repo()).collect();
    let trusted = repos.iter().map(|(_, r)| r.peer_id()).collect();
    (trusted, repos.into_iter())
}

/// A running host on its repo.
pub(crate) struct Host {
    pub(crate) repo: Arc<Repo>,
    pub(crate) client: Client,
    host: network::Host,
    _dir: tempfile::TempDir,
}

impl Host {
    /// Starts a host on `repo`, listening on loopback TCP, dialing `bootstrap`, whose typed
    /// topics (those under `/ipfsbench/` ending in `suffix`) hold what `valid` accepts.
    pub(crate) fn start(
        (dir, repo): (tempfile::TempDir, Repo),
        bootstrap: Vec<Multiaddr>,
        suffix: &'static str,
        valid: fn(&[u8]) -> bool,
    ) -> Host {
        let repo = Arc::new(repo);
        repo.tiers()
            .activate(Mode::KeepAll, Role::Worker)
            .expect("tiers");
        let (client, host) = network::spawn(
            Arc::clone(&repo),
            network::Config {
                kad_server: false,
                relay_server: false,
                serve_blocks: true,
                topic_rules: vec![TopicRule {
                    prefix: "/ipfsbench/",
                    suffix,
                    valid,
                }],
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("listen")],
                bootstrap,
                keep: Vec::new(),
                mdns: false,
                fetch_timeout: Duration::from_secs(10),
                swarm_key: None,
                metrics: Metrics::new(),
            },
        )
        .expect("host");
        Host {
            repo,
            client,
            host,
            _dir: dir,
        }
    }

    /// The host's loopback TCP address with its peer id, once the listener reports it.
    pub(crate) async fn addr(&self) -> Multiaddr {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let addrs = self.client.listen_addrs().await.expect("addrs");
            if let Some(a) = addrs
                .into_iter()
                .find(|a| a.to_string().starts_with("/ip4/127.0.0.1/tcp/"))
            {
                return a.with(libp2p::multiaddr::Protocol::P2p(self.repo.peer_id()));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no loopback TCP address within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the host and flushes the store.
    pub(crate) async fn stop(self) {
        drop(self.client);
        self.host.shutdown().await;
        self.repo.store().flush().expect("flush");
    }
}
