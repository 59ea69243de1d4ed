//! The host's and the store's metrics, read at each scrape: Bitswap's blocks and bytes in and
//! out, the wantlist, connected peers, the store's blocks and bytes, and the storage tiers'
//! hits and misses.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::client::Client;
use crate::metrics::{set_counter, Metrics};
use ipfsbench_store::repo::Repo;
use ipfsbench_store::store::tiers::Tier;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: &'static str,
}

#[derive(Debug, Clone, Default)]
struct Host {
    blocks_received: Counter,
    bytes_received: Counter,
    blocks_sent: Counter,
    bytes_sent: Counter,
    duplicate_blocks: Counter,
    want_timeouts: Counter,
    misbehaviours: Counter,
    wantlist: Gauge,
    peers: Gauge,
    topics: Gauge,
    store_blocks: Gauge,
    store_bytes: Gauge,
    cache_hits: Family<TierLabel, Counter>,
    cache_misses: Family<TierLabel, Counter>,
    fetched_blocks: Counter,
    fetched_bytes: Counter,
}

/// Registers the host's and the store's metrics, refreshed from `client` and `repo`.
pub fn register(metrics: &Metrics, repo: Arc<Repo>, client: Client) {
    let m = Host::default();
    metrics.register(|r| {
        let r = r.sub_registry_with_prefix("ipfsbench");
        m.register_bitswap(r);
        m.register_node(r);
    });
    metrics.on_scrape(move || {
        let (m, repo, client) = (m.clone(), Arc::clone(&repo), client.clone());
        async move { m.refresh(repo, client).await }
    });
}

impl Host {
    /// Bitswap's counters and the wantlist.
    fn register_bitswap(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "bitswap_blocks_received",
            "Wanted blocks received over Bitswap",
            m.blocks_received.clone(),
        );
        r.register(
            "bitswap_received_bytes",
            "Bytes of wanted blocks received over Bitswap",
            m.bytes_received.clone(),
        );
        r.register(
            "bitswap_blocks_sent",
            "Blocks sent to peers over Bitswap",
            m.blocks_sent.clone(),
        );
        r.register(
            "bitswap_sent_bytes",
            "Bytes of blocks sent to peers over Bitswap",
            m.bytes_sent.clone(),
        );
        r.register(
            "bitswap_duplicate_blocks",
            "Blocks received that were no longer wanted",
            m.duplicate_blocks.clone(),
        );
        r.register(
            "bitswap_want_timeouts",
            "Want-blocks that timed out",
            m.want_timeouts.clone(),
        );
        r.register(
            "bitswap_misbehaving_peers",
            "Connections closed for breaking the Bitswap protocol",
            m.misbehaviours.clone(),
        );
        r.register(
            "bitswap_wantlist_size",
            "Blocks this node wants now",
            m.wantlist.clone(),
        );
    }

    /// Peers, topics, the store and its tiers.
    fn register_node(&self, r: &mut Registry) {
        let m = self;
        r.register("peers_connected", "Peers connected now", m.peers.clone());
        r.register(
            "pubsub_topics",
            "Pubsub topics subscribed to",
            m.topics.clone(),
        );
        r.register(
            "store_blocks",
            "Blocks in the store",
            m.store_blocks.clone(),
        );
        r.register(
            "store_bytes",
            "Bytes of the blocks in the store",
            m.store_bytes.clone(),
        );
        r.register(
            "cache_hits",
            "Block reads answered by a storage tier",
            m.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Block reads a storage tier could not answer",
            m.cache_misses.clone(),
        );
        r.register(
            "peer_tier_blocks",
            "Blocks fetched from peers and stored",
            m.fetched_blocks.clone(),
        );
        r.register(
            "peer_tier_bytes",
            "Bytes of blocks fetched from peers and stored",
            m.fetched_bytes.clone(),
        );
    }

    /// Sets every value from the host's counters and the tiers' report.
    async fn refresh(self, repo: Arc<Repo>, client: Client) {
        let m = self;
        if let Ok(stats) = client.stats().await {
            let b = &stats.bitswap;
            set_counter(&m.blocks_received, b.blocks_received);
            set_counter(&m.bytes_received, b.bytes_received);
            set_counter(&m.blocks_sent, b.blocks_sent);
            set_counter(&m.bytes_sent, b.bytes_sent);
            set_counter(&m.duplicate_blocks, b.unwanted_blocks);
            set_counter(&m.want_timeouts, b.want_timeouts);
            set_counter(&m.misbehaviours, b.misbehaviours);
            m.wantlist.set(gauge(stats.wants as u64));
            m.peers.set(gauge(stats.peers.len() as u64));
            m.topics.set(gauge(stats.topics as u64));
        }
        // The tiers' report counts the store's index: off the async threads.
        let report = tokio::task::spawn_blocking(move || repo.tiers().report()).await;
        let Ok(Ok(report)) = report else {
            return;
        };
        for tier in report.tiers {
            match tier {
                Tier::Memory(t) => {
                    set_tier(&m, "memory", t.hits, t.misses);
                }
                Tier::Disk(t) => {
                    set_tier(&m, "disk", t.hits, t.misses);
                    m.store_blocks.set(gauge(t.blocks));
                    m.store_bytes.set(gauge(t.bytes));
                }
                Tier::Peer(t) => {
                    set_counter(&m.fetched_blocks, t.blocks);
                    set_counter(&m.fetched_bytes, t.bytes);
                }
            }
        }
    }
}

fn set_tier(m: &Host, tier: &'static str, hits: u64, misses: u64) {
    set_counter(&m.cache_hits.get_or_create(&TierLabel { tier }), hits);
    set_counter(&m.cache_misses.get_or_create(&TierLabel { tier }), misses);
}

/// A count as a gauge's value.
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
