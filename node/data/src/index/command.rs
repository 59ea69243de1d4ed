//! What a handle asks of the actor of the index.

use std::collections::BTreeMap;

use cid::Cid;
use ipfsbench_protocols::index::Table;
use ipfsbench_sql::Cell;
use tokio::sync::oneshot;

use super::error::Error;
use super::status::Status;

/// A request to the actor.
pub(crate) enum Command {
    Append { table: Table, rows: Vec<Vec<Cell>> },
    Flush(oneshot::Sender<Result<(), Error>>),
    Status(oneshot::Sender<Status>),
    Labels(BTreeMap<Cid, (Option<String>, Option<String>)>),
}
