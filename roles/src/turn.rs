//! What the role service's parts hand back to its loop while it takes a turn's inputs: the
//! messages to publish at the end of the turn, whether the master's table changed and must be
//! flushed before anything is published or answered, and the counts of task messages (kept
//! across turns, for `cluster stats`).

use ipfsbench_protocols::task::Message;

use crate::cluster::Counters;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// Messages to publish at the end of the turn.
    pub(crate) outbox: Vec<Message>,
    /// The master's table changed this turn and must be flushed.
    pub(crate) dirty: bool,
    /// The service's counters.
    pub(crate) counters: Counters,
}
