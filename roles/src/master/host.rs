//! What a master decides for its host, beyond what every node does: it relays, so peers
//! behind NAT reach the cluster through it.

use ipfsbench_core::daemon::Options;

/// Sets a master's host options.
pub(crate) fn host(options: &mut Options) {
    options.relay_server = true;
}
