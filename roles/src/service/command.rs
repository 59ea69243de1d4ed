//! The calls the API makes of the service, and where it answers each.

use ipfsbench_protocols::task::{Spec, TaskId};
use tokio::sync::oneshot;

use super::views::{Error, Finished, MasterView, PeerView, Stats, Submitted};
use crate::master::{State, TaskRecord};

/// Where the service answers a call.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// Calls from the API.
#[derive(Debug)]
pub(crate) enum Command {
    Submit {
        key: String,
        spec: Spec,
        reply: Reply<Submitted>,
    },
    Wait {
        id: TaskId,
        reply: Reply<Finished>,
    },
    Status {
        id: TaskId,
        reply: Reply<TaskRecord>,
    },
    List {
        state: Option<State>,
        after: Option<u64>,
        limit: usize,
        reply: Reply<(Vec<TaskRecord>, Option<u64>)>,
    },
    Cancel {
        id: TaskId,
        reply: Reply<TaskRecord>,
    },
    Peers {
        reply: Reply<Vec<PeerView>>,
    },
    Stats {
        reply: Reply<Stats>,
    },
    Master {
        reply: Reply<MasterView>,
    },
}
