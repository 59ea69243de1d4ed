//! A node with its role, as `ipfsbench-node --role ROLE` runs it: the repo, the host and the
//! API (with the role's task and cluster calls), and the role service, started together by
//! [`Daemon::start`] and stopped in order by [`Daemon::shutdown`].

use std::sync::Arc;

use ipfsbench_core::daemon::{self as core, DaemonError, Options};
use ipfsbench_core::network::TopicRule;
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::tiers::Mode;
use ipfsbench_protocols::Role;
use ipfsbench_protocols::{state, task};

use crate::master::{Master, MasterError};
use crate::service::Service;
use crate::settings::Settings;

/// Everything a node needs to start, typed.
#[derive(Debug, Clone)]
pub struct Config {
    /// The host and the API.
    pub daemon: Options,
    /// The role and its task settings.
    pub settings: Settings,
}

/// Why a node did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master's task table could not be opened.
    #[error("opening the task table: {0}")]
    TaskTable(#[source] MasterError),
    /// The repo, the host or the API failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// What a role decides for its host: masters and workers keep every block and serve the DHT,
/// leechers cache and only query it; masters relay; the cluster's task topics carry typed
/// task messages.
fn decide(role: Role, mut options: Options) -> Options {
    options.role = role;
    options.cache_mode = if role == Role::Leecher {
        Mode::Cache
    } else {
        Mode::KeepAll
    };
    options.kad_server = role != Role::Leecher;
    options.relay_server = role == Role::Master;
    options.topic_rules = vec![
        TopicRule {
            prefix: task::TOPIC_PREFIX,
            suffix: state::TOPIC_SUFFIX,
            valid: |data| state::Announce::decode(data).is_ok(),
        },
        TopicRule {
            prefix: task::TOPIC_PREFIX,
            suffix: "",
            valid: |data| task::Message::decode(data).is_ok(),
        },
    ];
    options
}

/// A running node. See the module docs.
#[derive(Debug)]
pub struct Daemon {
    core: core::Daemon,
    service: Service,
}

impl Daemon {
    /// Starts a node of `config.settings.role` on `repo`.
    ///
    /// # Errors
    ///
    /// When the task table, the host or the API cannot start.
    pub async fn start(repo: Repo, config: Config) -> Result<Self, Error> {
        let settings = config.settings;
        let options = decide(settings.role, config.daemon);
        let master = if settings.role == Role::Master {
            let table = Master::open(repo.path(), settings.master.clone(), crate::now_ms());
            Some(table.map_err(Error::TaskTable)?)
        } else {
            None
        };
        let (core, service) = core::Daemon::start_with(repo, options, |repo, client| {
            let service = Service::start(Arc::clone(repo), client.clone(), settings, master);
            let routes = crate::api::router(service.handle(), client.clone());
            (routes, service)
        })
        .await?;
        Ok(Self { core, service })
    }

    /// The repo, the host and the API.
    pub fn core(&self) -> &core::Daemon {
        &self.core
    }

    /// Stops the role service (its attempts end, the task table is flushed), then the API
    /// and the host; the repo is flushed and released.
    ///
    /// # Errors
    ///
    /// When the API, the host or the final flush failed.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.service.shutdown().await;
        self.core.shutdown().await?;
        Ok(())
    }
}
