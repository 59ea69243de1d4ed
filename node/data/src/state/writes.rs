//! A local write's own checks and the replica's blocking work, apart from its actor.

use ipfsbench_protocols::state::delta::{MAX_DELTA_BYTES, MAX_OPS};
use ipfsbench_protocols::state::{Op, StateError};

/// Bytes of changes batched into one delta, at most (leaves room for the rest of it).
pub(super) const BATCH_BYTES: usize = MAX_DELTA_BYTES * 3 / 4;

/// Runs blocking work (a delta's fsyncs and transaction, a snapshot) on this worker thread
/// while a multi-thread runtime moves its other tasks to other threads, so that the API and
/// the swarm go on meanwhile; elsewhere it just runs.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The number of ops and their bytes.
pub(super) fn size(ops: &[Op]) -> (usize, usize) {
    let bytes = ops
        .iter()
        .map(|o| o.key.len() + o.value.as_ref().map_or(0, Vec::len) + 8)
        .sum();
    (ops.len(), bytes)
}

/// A write's own limits: each key and value within bounds, not too many.
pub(super) fn check_ops(ops: &[Op]) -> Result<(), StateError> {
    use ipfsbench_protocols::state::delta::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
    if ops.is_empty() || ops.len() > MAX_OPS / 2 {
        return Err(StateError::Limit("ops in one write"));
    }
    for op in ops {
        if op.key.is_empty() || op.key.len() > MAX_KEY_BYTES {
            return Err(StateError::Limit("key length"));
        }
        if op.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(StateError::Limit("value length"));
        }
    }
    if size(ops).1 > BATCH_BYTES {
        return Err(StateError::Limit("bytes in one write"));
    }
    Ok(())
}
