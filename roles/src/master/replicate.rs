//! The service's writes to the replicated cluster state. The loop stages them (a key written
//! twice before it goes keeps its last value) and hands what is staged to one writer task,
//! which writes it in order, a few thousand keys a change: the loop never waits for the state,
//! and a busy state gets fewer, larger changes.

use std::collections::BTreeMap;

use ipfsbench_core::state::{Handle, Op};
use tokio::sync::mpsc;

/// Batches waiting for the writer, at most; past it, staged keys wait for the next turn.
const QUEUE: usize = 2;
/// Keys in one change, at most.
const OPS_PER_WRITE: usize = 2048;
/// Bytes of values in one change, at most.
const BYTES_PER_WRITE: usize = 512 * 1024;

/// The loop's side. See the module docs.
#[derive(Debug)]
pub(crate) struct Replicator {
    staged: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    tx: mpsc::Sender<Vec<Op>>,
}

impl Replicator {
    /// Starts the writer on `state`.
    pub(crate) fn start(state: Handle) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<Op>>(QUEUE);
        tokio::spawn(async move {
            while let Some(ops) = rx.recv().await {
                for chunk in chunks(ops) {
                    if let Err(error) = state.write(chunk).await {
                        tracing::error!(%error, "writing task records to the cluster state");
                    }
                }
            }
        });
        Self {
            staged: BTreeMap::new(),
            tx,
        }
    }

    /// Sets `key` to `value` (or removes it) with the next batch.
    pub(crate) fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.staged.insert(key, value);
    }

    /// Hands what is staged to the writer, unless it is still busy with two batches.
    pub(crate) fn send(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let ops: Vec<Op> = std::mem::take(&mut self.staged)
            .into_iter()
            .map(|(key, value)| Op { key, value })
            .collect();
        match self.tx.try_send(ops) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ops)) => {
                // Nothing was staged since the take: the batch waits whole.
                self.staged = ops.into_iter().map(|op| (op.key, op.value)).collect();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the cluster state's writer has stopped");
            }
        }
    }
}

/// `ops` cut into changes of at most [`OPS_PER_WRITE`] keys and [`BYTES_PER_WRITE`] bytes.
fn chunks(ops: Vec<Op>) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let size = op.key.len() + op.value.as_ref().map_or(0, Vec::len);
        if !chunk.is_empty() && (chunk.len() == OPS_PER_WRITE || bytes + size > BYTES_PER_WRITE) {
            out.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(op);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_cut_by_keys_and_bytes() {
        let op = |n: usize, len: usize| Op {
            key: format!("k{n}").into_bytes(),
            value: Some(vec![0; len]),
        };
        let many: Vec<Op> = (0..OPS_PER_WRITE + 1).map(|n| op(n, 1)).collect();
        let cut = chunks(many);
        assert_eq!(
            cut.iter().map(Vec::len).collect::<Vec<_>>(),
            [OPS_PER_WRITE, 1]
        );
        let big: Vec<Op> = (0..3).map(|n| op(n, BYTES_PER_WRITE / 2 - 16)).collect();
        assert_eq!(chunks(big).len(), 2);
        assert!(chunks(Vec::new()).is_empty());
    }
}
