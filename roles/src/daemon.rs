//! A node with its role, as `ipfsbench-node --role ROLE` runs it, built here in one place and
//! in order: the repo, the host, the replicated cluster state and the benchmark database, the
//! role service, the pinset's tracker (and, on masters, its healer), then the API (with the
//! role's task and cluster calls) and the gateway ([`Daemon::start`]); stopped in the reverse
//! order by [`Daemon::shutdown`].

use crate::{leecher, master};
use std::sync::Arc;

use ipfsbench_core::daemon::{self as core, Node, Options, Servers};
use ipfsbench_core::index::Index;
use ipfsbench_core::network::TopicRule;
use ipfsbench_core::repo::Repo;
use ipfsbench_core::state::Replica;
use ipfsbench_core::store::tiers::Mode;
use ipfsbench_protocols::Role;
use ipfsbench_protocols::{index, state, task};

use crate::master::Master;
use crate::membership::keeper::{Keeper, Parts};
use crate::membership::members::Members;
use crate::membership::root::{Issuer, Root};
use crate::pinset::healer::Healer;
use crate::pinset::tracker::Tracker;
use crate::pinset::Pinset;
use crate::service::Service;
use crate::settings::Settings;
use ipfsbench_core::trust::{KeyRule, Trust};

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
    /// The cluster's root in the repo does not read.
    #[error("the cluster root: {0}")]
    Membership(#[from] crate::membership::root::Error),
}

/// What a role decides for its host: every node keeps every block and serves the DHT, unless
/// its role says otherwise (masters relay, [leechers](crate::leecher) cache and only query
/// it); the cluster's task topics carry typed task messages.
fn decide(role: Role, mut options: Options) -> Options {
    options.role = role;
    options.cache_mode = Mode::KeepAll;
    options.kad_server = true;
    options.relay_server = false;
    match role {
        Role::Master => master::host(&mut options),
        Role::Worker => {}
        Role::Leecher => leecher::host(&mut options),
    }
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

/// Whether a node of `role` serves the HTTP gateway when `--gateway` does not ask for one
/// (on the config file's `daemon.gateway`, else the default address).
pub fn gateway_by_default(role: Role) -> bool {
    match role {
        Role::Master | Role::Worker => true,
        Role::Leecher => leecher::GATEWAY_BY_DEFAULT,
    }
}

/// What a master needs to issue invites, if its repo holds the cluster's root.
fn issuer(repo: &Repo) -> Result<Option<Arc<Issuer>>, Error> {
    match Root::open(repo) {
        Ok(root) => {
            let swarm_key = root.swarm_key(repo)?;
            if !crate::membership::join::is_member(repo) {
                // Its own certificate expired while it was stopped: the root signs a new one.
                let now = crate::clock::now_ms();
                let own = root.certify(
                    repo.peer_id(),
                    ipfsbench_protocols::membership::Grant::Master,
                    Vec::new(),
                    now,
                    crate::membership::root::SELF_CERT_MS,
                )?;
                crate::membership::root::replace_certificate(repo, &own)?;
            }
            Ok(Some(Arc::new(Issuer { root, swarm_key })))
        }
        Err(crate::membership::root::Error::NoRoot) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A running node. See the module docs.
#[derive(Debug)]
pub struct Daemon {
    node: Node,
    servers: Option<Servers>,
    service: Service,
    pinset: Pinset,
    replica: Replica,
    index: Index,
    labels: tokio::task::JoinHandle<()>,
    tracker: Option<Tracker>,
    healer: Option<Healer>,
    issuer: Option<Arc<Issuer>>,
    /// A master holding the root answers join requests.
    admission: Option<tokio::task::JoinHandle<()>>,
    /// Keeps the members table and whose writes count.
    keeper: Option<Keeper>,
}

/// Which keys each trusted writer may write ([`Settings::may_write_key`]), as the replica
/// asks it.
fn key_rule(settings: &Settings, me: ipfsbench_core::network::PeerId) -> KeyRule {
    let mut settings = settings.clone();
    settings.members = settings.members.table_only();
    let (a, b) = (settings.clone(), settings);
    KeyRule {
        may_write: Arc::new(move |peer, key| a.may_write_key(me, peer, key)),
        writes_all: Arc::new(move |peer| b.writes_every_key(me, peer)),
    }
}

/// The benchmark database's settings (a leecher's are its own: [`leecher::index`]).
fn index_config(settings: &Settings) -> ipfsbench_core::index::Config {
    let mut config = ipfsbench_core::index::Config::new(
        index::topic(&settings.cluster),
        settings.members.trust().clone(),
        crate::results::schema::RESULTS,
    );
    if settings.role == Role::Leecher {
        leecher::index(&mut config);
    }
    config
}

/// The replicated state's settings: the cluster's state topic and the trusted peers.
fn state_config(settings: &Settings) -> ipfsbench_core::state::Config {
    let trusted = settings.members.trust().clone();
    let mut config = ipfsbench_core::state::Config::new(state::topic(&settings.cluster), trusted);
    config.announce_every = settings.state.announce;
    config.snapshot_every = settings.state.snapshot_every;
    config
}

impl Daemon {
    /// Starts a node of `config.settings.role` on `repo`, in order: the host, the replicated
    /// state and the benchmark database, the role service, the pinset's tracker and healer,
    /// then the API and the gateway with the role's routes.
    ///
    /// # Errors
    ///
    /// When the task table, the host, the state, the database, the tracker or the API cannot
    /// start; what started before is stopped again.
    pub async fn start(repo: Repo, config: Config) -> Result<Self, Error> {
        let mut settings = config.settings;
        // Whose writes count: the lists now, the members as the keeper learns them.
        let trust = Trust::new(settings.state_writers(repo.peer_id()));
        settings.members = Members::new(trust);
        crate::membership::keeper::load_repo(&repo, &settings.members);
        settings
            .members
            .trust()
            .set_rule(key_rule(&settings, repo.peer_id()));
        let options = decide(settings.role, config.daemon);
        let master = if settings.role == Role::Master {
            let table = Master::open(repo.path(), settings.master.clone(), crate::clock::now_ms());
            Some(table.map_err(Error::TaskTable)?)
        } else {
            None
        };
        let role = settings.role;
        let issuer = if role == Role::Master {
            issuer(&repo)?
        } else {
            None
        };
        let state = state_config(&settings);
        let mut index = index_config(&settings);
        index.limits.isolate = config.query_process;
        let node = Node::start(repo, &options).await?;
        let (repo, client) = (Arc::clone(node.repo()), node.client().clone());
        let replica = match Replica::start(Arc::clone(&repo), client.clone(), state) {
            Ok(r) => r,
            Err(e) => {
                node.shutdown().await?;
                return Err(Error::State(e));
            }
        };
        let index = match Index::start(Arc::clone(&repo), client, index) {
            Ok(i) => i,
            Err(e) => {
                replica.shutdown().await;
                node.shutdown().await?;
                return Err(Error::Index(e));
            }
        };
        let keeper = Parts {
            client: node.client().clone(),
            state: replica.handle(),
            repo: Arc::clone(node.repo()),
            settings: settings.clone(),
            issuer: issuer.clone(),
        };
        let mut daemon = Self::serve_role(node, settings, master, replica, index);
        daemon.keeper = Some(Keeper::start(keeper));
        daemon.admission = issuer.clone().map(|issuer| {
            let serve = crate::membership::admit::serve(
                daemon.node.client().clone(),
                daemon.replica.handle(),
                issuer,
            );
            tokio::spawn(serve)
        });
        daemon.issuer = issuer;
        if let Some(e) = daemon.start_pin_keepers(role) {
            daemon.shutdown().await?;
            return Err(Error::Tracker(e));
        }
        let routes = daemon.routes();
        match Servers::start(&daemon.node, &options, routes).await {
            Ok(servers) => daemon.servers = Some(servers),
            Err(e) => {
                daemon.shutdown().await?;
                return Err(e.into());
            }
        }
        Ok(daemon)
    }

    /// The role's parts over the running host and data: the service, the pinset, the metrics
    /// they read and the content labels.
    fn serve_role(
        node: Node,
        settings: Settings,
        master: Option<Master>,
        replica: Replica,
        index: Index,
    ) -> Self {
        let cluster = settings.state.clone();
        let service = Service::start(
            Arc::clone(node.repo()),
            node.client().clone(),
            settings,
            master,
            Some(replica.handle()),
            Some(index.handle()),
        );
        let pinset = Pinset::new(replica.handle(), service.handle(), cluster);
        crate::metrics::register(
            node.metrics(),
            crate::metrics::Parts {
                service: service.handle(),
                state: replica.handle(),
                index: index.handle(),
            },
        );
        let labels = tokio::spawn(label_content(index.handle(), replica.handle()));
        Self {
            node,
            servers: None,
            service,
            pinset,
            replica,
            index,
            labels,
            tracker: None,
            healer: None,
            issuer: None,
            admission: None,
            keeper: None,
        }
    }

    /// The role's API calls, served beside the node's own.
    fn routes(&self) -> axum::Router {
        let service = self.service.handle();
        crate::api::router(service.clone(), self.node.client().clone())
            .merge(crate::api::pins::router(
                self.pinset.clone(),
                service.clone(),
            ))
            .merge(crate::api::results::router(self.replica.handle(), service))
            .merge(crate::api::query::router(
                self.index.handle(),
                self.replica.handle(),
            ))
            .merge(crate::api::dashboard::router())
            .merge(crate::api::invites::router(
                self.replica.handle(),
                self.node.client().clone(),
                self.issuer.clone(),
            ))
            .merge(crate::api::members::router(
                self.service.handle(),
                self.replica.handle(),
                self.node.client().clone(),
                self.issuer.clone(),
            ))
    }

    /// The pin tracker (on masters and workers) and the healer (on masters); the tracker's
    /// failure to start, if it failed.
    fn start_pin_keepers(&mut self, role: Role) -> Option<String> {
        if role != Role::Leecher {
            let repo = Arc::clone(self.node.repo());
            let client = self.node.client().clone();
            match Tracker::start(repo, client, self.pinset.clone()) {
                Ok(t) => self.tracker = Some(t),
                Err(e) => return Some(e),
            }
        }
        if role == Role::Master {
            self.healer = Some(Healer::start(self.pinset.clone()));
        }
        None
    }

    /// Tells the node it now belongs to the cluster written into its repo (it just joined).
    pub async fn joined(&self) {
        if let Some(keeper) = &self.keeper {
            keeper.joined().await;
        }
    }

    /// The repo, the host and the metrics.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The bound API address (once started).
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.servers.as_ref().map(Servers::api_addr)
    }

    /// The bound gateway address, if the gateway runs.
    pub fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.servers.as_ref().and_then(Servers::gateway_addr)
    }

    /// Stops everything in the reverse of the order it started: the API and the gateway, the
    /// pinset's healer and tracker, the role service (its attempts end, the task table is
    /// flushed), the database and the state, then the host; the repo is flushed and released.
    ///
    /// # Errors
    ///
    /// When the API, the host or the final flush failed.
    pub async fn shutdown(self) -> Result<(), Error> {
        let servers = match self.servers {
            Some(servers) => servers.shutdown().await,
            None => Ok(()),
        };
        if let Some(healer) = self.healer {
            healer.shutdown().await;
        }
        if let Some(tracker) = self.tracker {
            tracker.shutdown().await;
        }
        self.labels.abort();
        if let Some(keeper) = self.keeper {
            keeper.shutdown();
        }
        if let Some(admission) = self.admission {
            admission.abort();
        }
        self.service.shutdown().await;
        self.index.shutdown().await;
        self.replica.shutdown().await;
        self.node.shutdown().await?;
        servers?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(role: Role) -> Options {
        decide(role, Options::new(role, ([127, 0, 0, 1], 0).into()))
    }

    #[test]
    fn each_role_decides_its_host() {
        let master = host(Role::Master);
        assert_eq!(master.cache_mode, Mode::KeepAll);
        assert!(master.kad_server && master.relay_server);
        let worker = host(Role::Worker);
        assert_eq!(worker.cache_mode, Mode::KeepAll);
        assert!(worker.kad_server && !worker.relay_server);
        let leecher = host(Role::Leecher);
        assert_eq!(leecher.cache_mode, Mode::Cache);
        assert!(!leecher.kad_server && !leecher.relay_server);
        for options in [master, worker, leecher] {
            assert_eq!(options.topic_rules.len(), 3);
        }
    }

    #[test]
    fn only_leechers_serve_no_gateway_unless_asked() {
        assert!(gateway_by_default(Role::Master));
        assert!(gateway_by_default(Role::Worker));
        assert!(!gateway_by_default(Role::Leecher));
    }
}
