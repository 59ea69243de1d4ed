//! A node with its role, as `ipfsbench-node --role ROLE` runs it: the repo, the host and the
//! API (with the role's task and cluster calls), the role service, the replicated cluster
//! state with the pinset's tracker (and, on masters, its healer), started together by
//! [`Daemon::start`] and stopped in order by [`Daemon::shutdown`].

use crate::master;
use std::collections::HashSet;
use std::sync::Arc;

use ipfsbench_core::daemon::{self as core, Options};
use ipfsbench_core::network::TopicRule;
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::tiers::Mode;
use ipfsbench_protocols::Role;
use ipfsbench_protocols::{index, state, task};

use crate::master::Master;
use crate::pinset::healer::Healer;
use crate::pinset::tracker::Tracker;
use crate::pinset::Pinset;
use crate::service::Service;
use crate::settings::Settings;

/// Everything a node needs to start, typed.
#[derive(Debug, Clone)]
pub struct Config {
    /// The host and the API.
    pub daemon: Options,
    /// The role and its task settings.
    pub settings: Settings,
    /// The program whose child processes run SQL from outside (this binary, which serves
    /// [`ipfsbench_sql::WORKER_ARG`]); `None` runs it in this process, unprotected.
    pub query_process: Option<std::path::PathBuf>,
}

/// Why a node did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master's task table could not be opened.
    #[error("opening the task table: {0}")]
    TaskTable(#[source] master::Error),
    /// The repo, the host or the API failed.
    #[error(transparent)]
    Daemon(#[from] core::Error),
    /// The replicated state could not start.
    #[error("starting the replicated cluster state: {0}")]
    State(#[from] ipfsbench_core::state::Error),
    /// The benchmark database could not start.
    #[error("starting the benchmark database: {0}")]
    Index(#[from] ipfsbench_core::index::Error),
    /// The pin tracker could not start.
    #[error("starting the pin tracker: {0}")]
    Tracker(String),
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
            suffix: index::TOPIC_SUFFIX,
            valid: |data| index::Announce::decode(data).is_ok(),
        },
        TopicRule {
            prefix: task::TOPIC_PREFIX,
            suffix: "",
            valid: |data| task::Message::decode_batch(data).is_ok(),
        },
    ];
    options
}

/// A running node. See the module docs.
#[derive(Debug)]
pub struct Daemon {
    core: core::Daemon,
    service: Service,
    replica: ipfsbench_core::state::Replica,
    index: Option<ipfsbench_core::index::Index>,
    labels: Option<tokio::task::JoinHandle<()>>,
    tracker: Option<Tracker>,
    healer: Option<Healer>,
}

/// Every peer the node trusts for tasks or for the state: whose state writes it applies and
/// whose benchmark database partitions it merges ([`Settings::state_writers`], the rule pin
/// allocation follows too).
fn trusted(
    settings: &Settings,
    me: ipfsbench_core::network::PeerId,
) -> HashSet<ipfsbench_core::network::PeerId> {
    settings.state_writers(me)
}

/// The benchmark database's settings: leechers sync only the `results` table.
fn index_config(
    settings: &Settings,
    me: ipfsbench_core::network::PeerId,
) -> ipfsbench_core::index::Config {
    let mut config =
        ipfsbench_core::index::Config::new(index::topic(&settings.cluster), trusted(settings, me));
    if settings.role == Role::Leecher {
        config.sync = vec![index::Table::Results];
    }
    config
}

/// The replicated state's settings: the cluster's state topic and the trusted peers.
fn state_config(
    settings: &Settings,
    me: ipfsbench_core::network::PeerId,
) -> ipfsbench_core::state::Config {
    let trusted = trusted(settings, me);
    let mut config = ipfsbench_core::state::Config::new(state::topic(&settings.cluster), trusted);
    config.announce_every = settings.state.announce;
    config.snapshot_every = settings.state.snapshot_every;
    config
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
            let table = Master::open(repo.path(), settings.master.clone(), crate::clock::now_ms());
            Some(table.map_err(Error::TaskTable)?)
        } else {
            None
        };
        let role = settings.role;
        let cluster = settings.state.clone();
        let state = state_config(&settings, repo.peer_id());
        let mut index = index_config(&settings, repo.peer_id());
        index.limits.isolate = config.query_process;
        let (core, started) = core::Daemon::start_with(repo, options, |repo, client| {
            let replica =
                ipfsbench_core::state::Replica::start(Arc::clone(repo), client.clone(), state);
            let index =
                ipfsbench_core::index::Index::start(Arc::clone(repo), client.clone(), index);
            let handle = replica.as_ref().ok().map(|r| r.handle());
            let index_handle = index.as_ref().ok().map(|i| i.handle());
            let service = Service::start(
                Arc::clone(repo),
                client.clone(),
                settings,
                master,
                handle,
                index_handle,
            );
            let (Ok(replica), Ok(index)) = (replica, index) else {
                return (axum::Router::new(), (service, Err(()), None, None));
            };
            let pinset = Pinset::new(replica.handle(), service.handle(), cluster);
            let routes = crate::api::router(service.handle(), client.clone())
                .merge(crate::api::pins::router(pinset.clone(), service.handle()))
                .merge(crate::api::results::router(
                    replica.handle(),
                    service.handle(),
                ))
                .merge(crate::api::query::router(index.handle(), replica.handle()))
                .merge(crate::api::dashboard::router());
            (routes, (service, Ok(replica), Some(index), Some(pinset)))
        })
        .await?;
        let (service, replica, index, pinset) = started;
        let (replica, index) = match (replica, index) {
            (Ok(r), Some(i)) => (r, i),
            _ => {
                service.shutdown().await;
                core.shutdown().await?;
                return Err(Error::Tracker(
                    "the replicated state or the benchmark database could not start (see the log)"
                        .into(),
                ));
            }
        };
        crate::metrics::register(
            core.metrics(),
            crate::metrics::Parts {
                service: service.handle(),
                state: replica.handle(),
                index: index.handle(),
            },
        );
        let labels = tokio::spawn(label_content(index.handle(), replica.handle()));
        let mut daemon = Self {
            core,
            service,
            replica,
            index: Some(index),
            labels: Some(labels),
            tracker: None,
            healer: None,
        };
        if let Some(pinset) = pinset {
            if role != Role::Leecher {
                let repo = Arc::clone(daemon.core.repo());
                let client = daemon.core.client().clone();
                match Tracker::start(repo, client, pinset.clone()) {
                    Ok(t) => daemon.tracker = Some(t),
                    Err(e) => {
                        daemon.shutdown().await?;
                        return Err(Error::Tracker(e));
                    }
                }
            }
            if role == Role::Master {
                daemon.healer = Some(Healer::start(pinset));
            }
        }
        Ok(daemon)
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
        if let Some(healer) = self.healer {
            healer.shutdown().await;
        }
        if let Some(tracker) = self.tracker {
            tracker.shutdown().await;
        }
        self.service.shutdown().await;
        if let Some(labels) = self.labels {
            labels.abort();
        }
        if let Some(index) = self.index {
            index.shutdown().await;
        }
        self.replica.shutdown().await;
        self.core.shutdown().await?;
        Ok(())
    }
}

/// Gives the benchmark database the cluster pins' names and tags for its `content` rows,
/// every 30 s.
async fn label_content(index: ipfsbench_core::index::Handle, state: ipfsbench_core::state::Handle) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        tick.tick().await;
        let labels = state
            .scan(b"pin/")
            .filter_map(Result::ok)
            .filter_map(|(_, v)| serde_json::from_slice::<crate::pinset::Pin>(&v).ok())
            .map(|p| {
                let tags: Vec<String> =
                    p.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let tags = (!tags.is_empty()).then(|| tags.join(","));
                (p.cid, (Some(p.name).filter(|n| !n.is_empty()), tags))
            })
            .collect();
        if index.set_labels(labels).await.is_err() {
            return;
        }
    }
}
