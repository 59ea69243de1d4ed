//! The leecher: a node that fetches and reads what the cluster made, and runs no task. It has
//! no part in the role service (it submits and waits like any node); what makes it a leecher
//! is what it decides for its host and its defaults, here: its storage is a bounded cache
//! (the node's storage tiers, `ipfsbench_core::store::tiers`), it only queries the DHT, its
//! benchmark database syncs only `results`, and it serves no gateway unless asked.

use ipfsbench_core::daemon::Options;
use ipfsbench_core::index::Config as IndexConfig;
use ipfsbench_core::store::tiers::Mode;
use ipfsbench_protocols::index::Table;

/// Whether a leecher serves the HTTP gateway when `--gateway` does not ask for one: no,
/// neither on the default address nor on the config file's `daemon.gateway`. It holds a
/// cache of what it fetched, not content to serve.
pub const GATEWAY_BY_DEFAULT: bool = false;

/// Sets a leecher's host options: blocks go to the bounded cache, and the DHT is only
/// queried (a Kademlia client keeps no records for others).
pub(crate) fn host(options: &mut Options) {
    options.cache_mode = Mode::Cache;
    options.kad_server = false;
}

/// Sets a leecher's benchmark database: it syncs only the `results` table.
pub(crate) fn index(config: &mut IndexConfig) {
    config.sync = vec![Table::Results];
}
