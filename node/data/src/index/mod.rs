//! The benchmark database: every node's results and content as Parquet partitions that are
//! content (UnixFS files with CIDs), synced between peers, queried with SQL through the
//! embedded DuckDB ([`ipfsbench_sql`]).
//!
//! - Rows a node produces are buffered and written as a partition every `flush_every` (or
//!   at `flush_rows`): Parquet written by DuckDB from Arrow, added to the store (kept from
//!   GC), numbered in the node's manifest, announced on the cluster's index topic.
//! - Small partitions are merged into larger ones in the background; the merged entry names
//!   the partitions it replaces, and every reader drops those.
//! - A node that hears a trusted peer announce a sequence it lacks asks that peer for its
//!   manifest after what it has (`/ipfsbench/index-sync/1.0.0`), fetches the partitions of
//!   the tables it syncs with Bitswap, checks each (CID, size, columns, rows) and merges
//!   them. Announcements and partitions of untrusted peers are dropped and counted; a peer
//!   whose partition fails its check is not asked again for a while.
//! - The `results` table's columns are declared by the layer that writes results (its
//!   [`Config::results`]); `content` is this layer's own ([`CONTENT`]).
//! - The `results` and `content` views read the live partitions of every trusted node; a
//!   query's answer is cached as Parquet under a key of its text and the CIDs of everything
//!   the views read, so a repeated query over unchanged data is answered from the cache and
//!   a changed input is never answered stale.
//!
//! One actor ([`actor`]) owns the manifests and the views; queries read the engine directly.

mod actor;
mod command;
mod config;
mod content;
mod dataset;
mod error;
mod handle;
pub mod schema;
mod shared;
mod spool;
mod status;
mod sync;
#[cfg(test)]
mod tests;

pub use config::{Config, RESULTS_TIME};
pub use content::check_name as check_dataset_name;
pub use dataset::{Dataset, DatasetFormat};
pub use error::Error;
pub use handle::{Handle, Index};
pub use schema::CONTENT;
pub use spool::MAX_PARTITION_BYTES;
pub use status::Status;
