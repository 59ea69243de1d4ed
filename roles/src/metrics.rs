//! The role's metrics, read at each scrape: peers heard from by role, tasks by state and the
//! queue's depth (masters), attempts running and done (workers), the replicated state's heads
//! and how far behind it is, and the benchmark database's sync and answer cache.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ipfsbench_core::metrics::{set_counter, Metrics};

use crate::service::Handle;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabel {
    peer: String,
    what: String,
}

#[derive(Debug, Clone, Default)]
struct Role {
    refused: Family<RefusedLabel, Counter>,
    peers: Family<RoleLabel, Gauge>,
    tasks: Family<StateLabel, Gauge>,
    queue: Gauge,
    running: Gauge,
    completed: Counter,
    messages_received: Counter,
    messages_rejected: Counter,
    state_heads: Gauge,
    state_height: Gauge,
    state_pending: Gauge,
    state_fetching: Gauge,
    state_applied: Counter,
    state_written: Counter,
    state_live_keys: Gauge,
    index_rows: Family<TableLabel, Gauge>,
    index_fetched_bytes: Counter,
    index_fetched_partitions: Counter,
    index_rejected: Counter,
    index_cache_hits: Counter,
    index_cache_misses: Counter,
}

/// What a scrape reads from.
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    pub(crate) service: Handle,
    pub(crate) state: ipfsbench_core::state::Handle,
    pub(crate) index: ipfsbench_core::index::Handle,
}

/// Registers the role's metrics with `metrics`, read from `parts` at each scrape.
pub(crate) fn register(metrics: &Metrics, parts: Parts) {
    let m = Role::default();
    metrics.register(|r| {
        let r = r.sub_registry_with_prefix("ipfsbench");
        for (name, help, gauge) in gauges(&m) {
            r.register(name, help, gauge);
        }
        for (name, help, counter) in counters(&m) {
            r.register(name, help, counter);
        }
        register_families(r, &m);
    });
    metrics.on_scrape(move || {
        let (m, parts) = (m.clone(), parts.clone());
        async move {
            refresh(&m, &parts).await;
        }
    });
}

/// The role's gauges with their names and help, in the order they are registered.
fn gauges(m: &Role) -> [(&'static str, &'static str, Gauge); 7] {
    [
        (
            "task_queue_depth",
            "Tasks queued on the master that schedules",
            m.queue.clone(),
        ),
        (
            "task_attempts_running",
            "Attempts running on this node",
            m.running.clone(),
        ),
        (
            "state_heads",
            "Heads of the replicated cluster state",
            m.state_heads.clone(),
        ),
        (
            "state_height",
            "Highest DAG height among the state's heads",
            m.state_height.clone(),
        ),
        (
            "state_pending_deltas",
            "Deltas fetched and waiting for their parents: how far behind the state is",
            m.state_pending.clone(),
        ),
        (
            "state_fetching_blocks",
            "State blocks being fetched",
            m.state_fetching.clone(),
        ),
        (
            "state_live_keys",
            "Live keys in the replicated state",
            m.state_live_keys.clone(),
        ),
    ]
}

/// The role's counters with their names and help, in the order they are registered.
fn counters(m: &Role) -> [(&'static str, &'static str, Counter); 10] {
    [
        (
            "task_attempts_succeeded",
            "Attempts run to success on this node since it started",
            m.completed.clone(),
        ),
        (
            "task_messages_received",
            "Task messages received",
            m.messages_received.clone(),
        ),
        (
            "task_messages_rejected",
            "Task messages refused (unauthorised or malformed)",
            m.messages_rejected.clone(),
        ),
        (
            "state_deltas_applied",
            "State deltas applied since start",
            m.state_applied.clone(),
        ),
        (
            "state_deltas_written",
            "State deltas written here since start",
            m.state_written.clone(),
        ),
        (
            "index_sync_fetched_bytes",
            "Bytes of benchmark-database partitions fetched from peers",
            m.index_fetched_bytes.clone(),
        ),
        (
            "index_sync_fetched_partitions",
            "Benchmark-database partitions fetched from peers",
            m.index_fetched_partitions.clone(),
        ),
        (
            "index_sync_rejected_partitions",
            "Partitions refused for not matching their manifest",
            m.index_rejected.clone(),
        ),
        (
            "query_cache_hits",
            "SQL answers served from the cache",
            m.index_cache_hits.clone(),
        ),
        (
            "query_cache_misses",
            "SQL answers computed",
            m.index_cache_misses.clone(),
        ),
    ]
}

/// The labelled families: peers by role, tasks by state, rows by table.
fn register_families(r: &mut Registry, m: &Role) {
    r.register(
        "cluster_peers",
        "Peers heard from, by role",
        m.peers.clone(),
    );
    r.register(
        "tasks",
        "Unfinished tasks by state (the master that schedules)",
        m.tasks.clone(),
    );
    r.register(
        "index_rows",
        "Rows in the benchmark database, by table",
        m.index_rows.clone(),
    );
    r.register(
        "refused_messages",
        "Messages dropped from peers that are not members (nor listed), by peer and kind \
         (at most 256 peers, the most recent)",
        m.refused.clone(),
    );
}

/// Reads every group's figures from `parts`; a part that does not answer keeps its last ones.
async fn refresh(m: &Role, parts: &Parts) {
    refresh_peers(m, parts).await;
    refresh_tasks(m, parts).await;
    refresh_state(m, parts).await;
    refresh_index(m, parts).await;
    refresh_refused(m, parts);
}

/// Messages dropped per peer, as the trust table counts them.
fn refresh_refused(m: &Role, parts: &Parts) {
    m.refused.clear();
    for r in parts.service.members().trust().refusals() {
        for (what, n) in &r.counts {
            let label = RefusedLabel {
                peer: r.peer.to_string(),
                what: what.name().to_string(),
            };
            set_counter(&m.refused.get_or_create(&label), *n);
        }
    }
}

/// Peers heard from, by role.
async fn refresh_peers(m: &Role, parts: &Parts) {
    if let Ok(peers) = parts.service.peers().await {
        m.peers.clear();
        for p in &peers {
            m.peers
                .get_or_create(&RoleLabel {
                    role: p.role.to_string(),
                })
                .inc();
        }
    }
}

/// Tasks by state, the queue, attempts and task messages.
async fn refresh_tasks(m: &Role, parts: &Parts) {
    if let Ok(stats) = parts.service.stats().await {
        m.tasks.clear();
        for (state, n) in &stats.tasks {
            m.tasks
                .get_or_create(&StateLabel {
                    state: state.clone(),
                })
                .set(gauge(*n as u64));
        }
        m.queue
            .set(gauge(stats.tasks.get("queued").copied().unwrap_or(0) as u64));
        m.running.set(gauge(stats.running as u64));
        set_counter(&m.completed, stats.completed);
        set_counter(&m.messages_received, stats.messages.received);
        set_counter(
            &m.messages_rejected,
            stats.messages.unauthorised + stats.messages.malformed,
        );
    }
}

/// The replicated state's heads, height, backlog and deltas.
async fn refresh_state(m: &Role, parts: &Parts) {
    if let Ok(status) = parts.state.status().await {
        m.state_heads.set(gauge(status.heads.len() as u64));
        m.state_height.set(gauge(status.height));
        m.state_pending.set(gauge(status.pending as u64));
        m.state_fetching.set(gauge(status.fetching as u64));
        m.state_live_keys.set(gauge(status.live));
        set_counter(&m.state_applied, status.applied);
        set_counter(&m.state_written, status.written);
    }
}

/// The benchmark database's rows, sync and answer cache.
async fn refresh_index(m: &Role, parts: &Parts) {
    if let Ok(status) = parts.index.status().await {
        for (table, rows) in &status.rows {
            m.index_rows
                .get_or_create(&TableLabel {
                    table: table.clone(),
                })
                .set(gauge(*rows));
        }
        let c = |name: &str| status.counters.get(name).copied().unwrap_or(0);
        set_counter(&m.index_fetched_bytes, c("BytesFetched"));
        set_counter(&m.index_fetched_partitions, c("PartitionsFetched"));
        set_counter(&m.index_rejected, c("Rejected"));
        set_counter(&m.index_cache_hits, c("CacheHits"));
        set_counter(&m.index_cache_misses, c("CacheMisses"));
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
