//! The first half of a running node: the repo with its storage tiers active, the libp2p host
//! and the metrics, up before anything of the role starts; stopped last.

use std::sync::Arc;

use ipfsbench_store::store::pins::PinKind;

use super::options::{check_token, Error, Options};
use crate::metrics::Metrics;
use crate::network::{self, Client};
use crate::repo::{self, Repo};

/// The repo, the host and the metrics, running. See the module docs.
#[derive(Debug)]
pub struct Node {
    repo: Arc<Repo>,
    client: Client,
    network: network::Host,
    metrics: Metrics,
    sampler: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Activates `repo`'s storage tiers for the role, starts the host and announces what is
    /// pinned here, so that other nodes find it. Refuses at once an API token `options` could
    /// not serve with (before anything starts).
    ///
    /// # Errors
    ///
    /// When the token is refused, or the tiers or the host cannot start.
    pub async fn start(repo: Repo, options: &Options) -> Result<Self, Error> {
        check_token(options.api, options.api_token.as_deref())?;
        let repo = Arc::new(repo);
        repo.tiers().activate(options.cache_mode, options.role)?;
        let metrics = Metrics::new();
        let (client, network) = network::spawn(
            Arc::clone(&repo),
            network::Config {
                kad_server: options.kad_server,
                relay_server: options.relay_server,
                serve_blocks: repo.tiers().serves_blocks(),
                topic_rules: options.topic_rules.clone(),
                listen: options.listen.clone(),
                bootstrap: options.bootstrap.clone(),
                keep: options.keep.clone(),
                mdns: options.mdns,
                fetch_timeout: options.fetch_timeout,
                swarm_key: options.swarm_key,
                metrics: metrics.clone(),
            },
        )?;
        network::register_metrics(&metrics, Arc::clone(&repo), client.clone());
        let sampler = tokio::spawn(crate::metrics::sample_forever(metrics.clone()));
        for (cid, kind) in repo.pins().stored().map_err(repo::Error::from)? {
            if kind == PinKind::Recursive {
                client.provide(cid).await?;
            }
        }
        Ok(Self {
            repo,
            client,
            network,
            metrics,
            sampler,
        })
    }

    /// The node's metrics, for the parts above to add theirs.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A handle to the host.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The repo.
    pub fn repo(&self) -> &Arc<Repo> {
        &self.repo
    }

    /// Stops the host (whoever still holds a client) and flushes the store.
    ///
    /// # Errors
    ///
    /// When the final flush fails.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.sampler.abort();
        drop(self.client);
        self.network.shutdown().await;
        self.repo.store().flush().map_err(repo::Error::from)?;
        Ok(())
    }
}
