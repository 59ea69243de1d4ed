//! The command line, parsed by clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use ipfsbench_core::network::{Multiaddr, PeerId};
use ipfsbench_roles::Role;

/// A self-contained IPFS peer: content-addressed storage with Kubo-identical CIDs.
///
/// Without a command, `--role` runs the daemon in the foreground. With a daemon running on
/// the repo, content commands go through its API (and can fetch from the network).
#[derive(Debug, Parser)]
#[command(name = "ipfsbench-node", version, about)]
pub(crate) struct Cli {
    /// The repo directory [default: $IPFSBENCH_PATH, else ~/.ipfsbench].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) repo: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) daemon: DaemonArgs,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Flags of the daemon; each overrides the `[daemon]` section of the repo's config.
#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Run the daemon as this role: master, worker or leecher.
    #[arg(long)]
    pub(crate) role: Option<Role>,
    /// libp2p listen multiaddr (repeatable) [default: TCP and QUIC on port 4101].
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<Multiaddr>,
    /// Peer to dial at start, ending in /p2p/<peer id> (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<Multiaddr>,
    /// Find peers on the LAN by mDNS [default: true].
    #[arg(long, value_name = "BOOL", action = ArgAction::Set)]
    pub(crate) mdns: Option<bool>,
    /// HTTP API address, host:port (port 0 picks a free one) [default: 127.0.0.1:5101].
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) api: Option<SocketAddr>,
    /// HTTP gateway address, host:port, or `off` [default: 127.0.0.1:8080; off on leechers].
    #[arg(long, value_name = "HOST:PORT|off")]
    pub(crate) gateway: Option<String>,
    /// File with the API's bearer token; required when --api is not on loopback.
    #[arg(long = "api-token-file", value_name = "PATH")]
    pub(crate) api_token_file: Option<PathBuf>,
    /// Private network key (Kubo's swarm.key format) [default: <repo>/swarm.key if present].
    #[arg(long = "swarm-key", value_name = "PATH")]
    pub(crate) swarm_key: Option<PathBuf>,
    /// Join a cluster with an invite (`cluster invite` on one of its masters) on this first
    /// start: the node asks a master for its certificate and keeps it; later starts need
    /// nothing. Ignored once the repo is a member.
    #[arg(long, value_name = "TOKEN", conflicts_with = "join_file")]
    pub(crate) join: Option<String>,
    /// As --join, the token read from a file (a Kubernetes Secret, say).
    #[arg(long = "join-file", value_name = "PATH")]
    pub(crate) join_file: Option<PathBuf>,
    /// The cluster to join: its task topics are /ipfsbench/<NAME>/... [default: default].
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// Run assignments from this master (repeatable; adds to tasks.trusted_masters).
    #[arg(long = "trust-master", value_name = "PEERID")]
    pub(crate) trust_master: Vec<PeerId>,
    /// Masters: give tasks only to this worker (repeatable; adds to tasks.trusted_workers).
    #[arg(long = "trust-worker", value_name = "PEERID")]
    pub(crate) trust_worker: Vec<PeerId>,
    /// Take submissions over pubsub from this peer (repeatable; adds to tasks.submitters).
    #[arg(long, value_name = "PEERID")]
    pub(crate) submitter: Vec<PeerId>,
    /// Apply this peer's changes to the replicated cluster state (repeatable; adds to
    /// cluster.trusted_peers).
    #[arg(long = "trust-peer", value_name = "PEERID")]
    pub(crate) trust_peer: Vec<PeerId>,
    /// A tag of this node for pin allocation, key:value (repeatable; adds to cluster.tags).
    #[arg(long, value_name = "KEY:VALUE")]
    pub(crate) tag: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a repo: identity key and commented config.
    Init,
    /// Add files or directories; prints `added <cid> <name>` per entry like `ipfs add`.
    Add(AddArgs),
    /// Write a file's bytes to standard output.
    Cat {
        /// `CID[/path]`.
        path: String,
        /// First byte to write.
        #[arg(long, short = 'o', default_value_t = 0)]
        offset: u64,
        /// Bytes to write at most [default: to the end].
        #[arg(long, short = 'l')]
        length: Option<u64>,
    },
    /// Write a file or directory tree to disk.
    Get {
        /// `CID[/path]`.
        path: String,
        /// Where to write [default: ./<last path segment>]; must not exist.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// List the links of a directory (or the chunks of a file).
    Ls {
        /// `CID[/path]`.
        path: String,
    },
    /// Raw blocks.
    #[command(subcommand)]
    Block(BlockCommand),
    /// Pins: recursive, direct and indirect.
    #[command(subcommand)]
    Pin(PinCommand),
    /// The repo as a whole.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// DAGs as CAR v1 files.
    #[command(subcommand)]
    Dag(DagCommand),
    /// The daemon's identity, addresses and protocols (JSON, like `ipfs id`).
    Id,
    /// Connections to peers (needs a running daemon).
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Content routing on the DHT (needs a running daemon).
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Publish and subscribe (needs a running daemon).
    #[command(subcommand)]
    Pubsub(PubsubCommand),
    /// Tasks: submit work to the cluster and follow it (needs a running daemon).
    #[command(subcommand)]
    Task(TaskCommand),
    /// The cluster's nodes and counters (needs a running daemon).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Storage tiers: memory, disk and peer, with sizes and hit counts (needs a running
    /// daemon).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// One read-only SQL query over the cluster's benchmark database: the `results`,
    /// `content`, `pins` and `tasks` views and `datasets."name"` (needs a running daemon).
    Query(QueryArgs),
    /// The cluster's benchmark results: list, compare, regressions, report (needs a running
    /// daemon).
    #[command(subcommand)]
    Results(ResultsCommand),
    /// Tables stored as content-addressed Parquet, queryable by name (needs a running
    /// daemon).
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Start a master, two workers and a leecher on loopback, run every benchmark on every
    /// worker, fetch the results from the leecher and print them; exits when done.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The SQL: one query (SELECT, FROM, WITH...).
    pub(crate) sql: String,
    /// How the answer is printed: table, json or csv.
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
    /// Run it even if the same query over the same inputs was answered before.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ResultsCommand {
    /// The newest results first (at most 1,000).
    Ls {
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this worker (a peer id or its start).
        #[arg(long)]
        worker: Option<String>,
        /// Only results newer than this: 30m, 12h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// A kind's figure per group: count, median, p10, p90, min, max.
    Compare {
        /// The kind.
        #[arg(long)]
        kind: String,
        /// Group by cpu, worker or param.
        #[arg(long, default_value = "cpu")]
        by: String,
        /// The figure column [default: the kind's own: mbps, write_mbps or duration_ms].
        #[arg(long)]
        figure: Option<String>,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Each series' newest result against its history (same kind, parameters and
    /// hardware); exits 1 when one regressed.
    Regressions {
        /// Flag a result worse than the history's median by more than this percentage
        /// (and outside its p10–p90).
        #[arg(long, default_value_t = 10.0)]
        threshold: f64,
        /// List every series, not only the regressed ones.
        #[arg(long)]
        all: bool,
    },
    /// A report with charts: md, html (opens offline) or json.
    Report {
        /// md, html or json.
        #[arg(long, default_value = "md")]
        format: String,
        /// The regression threshold, percent.
        #[arg(long, default_value_t = 10.0)]
        threshold: f64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Store FILE (.csv with a header, or .parquet) as Parquet under NAME.
    Add {
        /// The file.
        file: PathBuf,
        /// Its name: queried as `datasets."NAME"`.
        #[arg(long)]
        name: String,
    },
    /// The datasets the cluster knows.
    Ls,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Submit a task; prints its id (and with --wait, its result record's CID).
    Submit(SubmitArgs),
    /// A task's record (JSON; masters only).
    Status {
        /// The task id.
        id: String,
    },
    /// List tasks, oldest first (masters only).
    Ls {
        /// Only tasks in this state: queued, assigned, running, succeeded, failed or
        /// cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Stop after this many tasks (all of them without it).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Cancel a task (masters only).
    Cancel {
        /// The task id.
        id: String,
    },
    /// Print a finished task's result record CID (masters only).
    Result {
        /// The task id.
        id: String,
        /// Wait until the task is over.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The kind: noop, bench.hash, bench.store, bench.fetch, dag.stat or exec.
    #[arg(long)]
    pub(crate) kind: String,
    /// An input CID (repeatable).
    #[arg(long, value_name = "CID")]
    pub(crate) input: Vec<String>,
    /// A parameter KEY=VALUE (repeatable), e.g. size=1048576, program=NAME, arg=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) param: Vec<String>,
    /// The idempotency key: submitting the same key again returns the same task [default:
    /// random].
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Run only on this worker.
    #[arg(long, value_name = "PEERID")]
    pub(crate) target: Option<String>,
    /// The longest one attempt may run, in seconds [default: the worker's limit].
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<u32>,
    /// Failed attempts before the task fails [default: the master's setting].
    #[arg(long = "max-attempts", value_name = "N")]
    pub(crate) max_attempts: Option<u8>,
    /// Wait for the task to finish and print its result record's CID.
    #[arg(long)]
    pub(crate) wait: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// The nodes heard from: role, capacity and time since the last heartbeat.
    Peers,
    /// Counts of task messages received, dropped as malformed or unauthorised, or ignored.
    Stats,
    /// The cluster's pinset: what the cluster keeps, and on how many peers.
    #[command(subcommand)]
    Pin(ClusterPinCommand),
    /// Peers gone silent and pins with fewer copies than they ask for.
    Alerts,
    /// The replicated state: heads, writers, counts, snapshot (JSON).
    State {
        /// Write a snapshot of the state now; prints its root.
        #[arg(long)]
        snapshot: bool,
    },
    /// Every finished task's outcome, from the replicated state (any node can list them,
    /// with or without the master that ran them).
    Results {
        /// Only tasks of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// One JSON object a line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Which master schedules (the others stand by), and what this node is.
    Master,
    /// Make a new cluster whose root key this repo keeps, this node its first master
    /// (on the repo, with the daemon stopped).
    Init {
        /// The cluster's name: its topics are `/ipfsbench/<name>/...`.
        #[arg(long, default_value = "default")]
        name: String,
        /// A private network: a new swarm key, written to `<repo>/swarm.key`.
        #[arg(long)]
        private: bool,
    },
    /// Issue an invite (prints one line: the token a new node joins with), or revoke one.
    Invite(InviteArgs),
    /// The invites the cluster knows: id, role, uses, expiry, revoked.
    Invites,
    /// The cluster's members as this node knows them: role, tags, issued, expiry, last heard;
    /// and the peers removed.
    Members,
    /// Remove a member (on a master holding the root): every node drops its later writes,
    /// disconnects it, moves its pins and refuses its certificate from then on.
    #[command(subcommand)]
    Member(MemberCommand),
    /// The cluster's root key, to a file for a standby master and from it (on the repo,
    /// with the daemon stopped).
    #[command(subcommand)]
    Root(ClusterRootCommand),
}

impl ClusterCommand {
    /// Whether it runs on the repo itself rather than through the daemon.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Self::Init { .. } | Self::Root(_))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// Remove the member PEER.
    Rm {
        /// Its peer id.
        peer: String,
        /// Why (kept with the removal, at most 256 bytes).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct InviteArgs {
    /// What the new node becomes: worker, master, leecher or submitter.
    #[arg(long, default_value = "worker")]
    pub(crate) role: String,
    /// How long the invite admits (`30m`, `24h`, `7d`).
    #[arg(long, default_value = "24h")]
    pub(crate) ttl: String,
    /// How many nodes may join with it.
    #[arg(long, default_value_t = 1)]
    pub(crate) uses: u32,
    /// How long the certificate each joining node gets holds (`10s` to `365d`); a master
    /// holding the root renews it while the member stays connected.
    #[arg(long = "cert-ttl", default_value = "90d")]
    pub(crate) cert_ttl: String,
    /// A tag the new node gets, `key:value` (repeatable).
    #[arg(long)]
    pub(crate) tag: Vec<String>,
    /// An address of this master the new node dials, put in the token before the ones it
    /// listens on: a DNS name, say (repeatable; `/p2p/<this master>` is added).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) addr: Vec<String>,
    /// Revoke the invite with this id instead.
    #[arg(long, conflicts_with_all = ["role", "ttl", "uses", "tag", "addr", "cert_ttl"])]
    pub(crate) revoke: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterRootCommand {
    /// Write the root key (and a private cluster's swarm key) to a new file, readable by
    /// its owner only: hand it to a standby master and delete it.
    Export {
        /// The file to create.
        file: PathBuf,
    },
    /// Take the root from an export file: this node becomes a master able to invite.
    Import {
        /// The export file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterPinCommand {
    /// Keep a CID (recursively) on peers the cluster chooses.
    Add(ClusterPinArgs),
    /// Stop keeping a CID; its holders unpin it.
    Rm {
        /// The CID.
        cid: String,
    },
    /// The pins, one per line (CID, name, copies, allocations) or as JSON lines.
    Ls {
        /// Only pins with this name.
        #[arg(long)]
        name: Option<String>,
        /// JSON lines, one pin each.
        #[arg(long)]
        json: bool,
    },
    /// Keep TO as FROM is kept (same options and peers), then stop keeping FROM.
    Update {
        /// The CID kept now.
        from: String,
        /// The CID to keep instead.
        to: String,
    },
    /// How each allocated peer is doing with a pin (or with every pin).
    Status {
        /// The CID; every pin when absent.
        cid: Option<String>,
        /// JSON lines, one pin each.
        #[arg(long)]
        json: bool,
    },
    /// Make the holders of a pin (or of every pin) retry what failed.
    Recover {
        /// The CID; every pin when absent.
        cid: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ClusterPinArgs {
    /// The CID.
    pub(crate) cid: String,
    /// A name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The least and the most copies at once (-1: every eligible peer).
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        conflicts_with_all = ["replication_min", "replication_max"]
    )]
    pub(crate) replication: Option<i32>,
    /// The least copies (-1: every eligible peer, then --replication-max must be -1 too; 0:
    /// the default) [default: cluster.replication_min].
    #[arg(long = "replication-min", value_name = "N", allow_hyphen_values = true)]
    pub(crate) replication_min: Option<i32>,
    /// The most copies (-1: every eligible peer, then --replication-min must be -1 too; 0:
    /// the default) [default: cluster.replication_max].
    #[arg(long = "replication-max", value_name = "N", allow_hyphen_values = true)]
    pub(crate) replication_max: Option<i32>,
    /// Peers to use first, comma-separated.
    #[arg(long, value_name = "PEER,...")]
    pub(crate) allocations: Option<String>,
    /// A tag every allocated peer must have, key:value (repeatable).
    #[arg(long, value_name = "KEY:VALUE")]
    pub(crate) tag: Vec<String>,
    /// Metadata, key=value (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) metadata: Vec<String>,
    /// Stop keeping it after this long: 90s, 15m, 2h, 7d (at least 1s, at most 100 years).
    #[arg(long = "expire-in", value_name = "DURATION")]
    pub(crate) expire_in: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Bytes each benchmark works on.
    #[arg(long, default_value_t = 64 << 20)]
    pub(crate) size: u64,
    /// Keep the nodes' repos in this directory instead of a throwaway one.
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SwarmCommand {
    /// Dial a peer: MULTIADDR ending in /p2p/<peer id>.
    Connect {
        /// The peer's addresses.
        #[arg(required = true)]
        addrs: Vec<String>,
    },
    /// List connected peers.
    Peers,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RoutingCommand {
    /// List peers that provide a CID.
    Findprovs {
        /// The CID.
        cid: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PubsubCommand {
    /// Publish a message read from a file or standard input.
    Pub {
        /// The topic.
        topic: String,
        /// The file with the message [default: standard input; `-` too].
        file: Option<PathBuf>,
    },
    /// Print messages on a topic as they arrive, one per line.
    Sub {
        /// The topic.
        topic: String,
    },
    /// List subscribed topics.
    Ls,
    /// List peers subscribed to a topic (all topics without one).
    Peers {
        /// The topic.
        topic: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Files or directories [default: standard input].
    pub(crate) paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(long, short = 'r')]
    pub(crate) recursive: bool,
    /// Print only the CIDs.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// Print only the final root CID.
    #[arg(long = "quieter", short = 'Q')]
    pub(crate) quieter: bool,
    /// Compute CIDs without storing anything.
    #[arg(long = "only-hash", short = 'n')]
    pub(crate) only_hash: bool,
    /// Pin what is added (recursively).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub(crate) pin: bool,
    /// CID version: 0 (default) or 1 (implies --raw-leaves).
    #[arg(long = "cid-version", default_value_t = 0)]
    pub(crate) cid_version: u8,
    /// Store leaves as raw blocks [default: true with --cid-version 1].
    #[arg(long = "raw-leaves", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) raw_leaves: Option<bool>,
    /// Chunking: size-N bytes (N at most 1048576).
    #[arg(long, short = 's', default_value = "size-262144")]
    pub(crate) chunker: String,
    /// Include files whose names start with a dot.
    #[arg(long, short = 'H')]
    pub(crate) hidden: bool,
    /// Show a progress bar [default: when standard error is a terminal].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) progress: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BlockCommand {
    /// Store a block read from a file or standard input; prints its CID.
    Put {
        /// The file [default: standard input].
        file: Option<PathBuf>,
        /// Codec of the CID.
        #[arg(long = "cid-codec", value_enum, default_value_t = Codec::Raw)]
        codec: Codec,
    },
    /// Write a block's bytes to standard output.
    Get {
        /// The block.
        cid: String,
    },
    /// Print a block's CID and size.
    Stat {
        /// The block.
        cid: String,
    },
    /// Remove blocks (refused for pinned ones).
    Rm {
        /// The blocks.
        #[arg(required = true)]
        cids: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Codec {
    /// Raw bytes (0x55).
    Raw,
    /// dag-pb (0x70).
    DagPb,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PinCommand {
    /// Pin DAGs (recursively by default).
    Add {
        /// `CID[/path]`s.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Pin the whole DAG (`--recursive=false` pins the block alone).
        #[arg(long, short = 'r', default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
        recursive: bool,
    },
    /// Remove pins.
    Rm {
        /// `CID[/path]`s.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// List pins.
    Ls {
        /// Which pins.
        #[arg(long = "type", short = 't', value_enum, default_value_t = PinType::All)]
        kind: PinType,
        /// Print only the CIDs.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PinType {
    Recursive,
    Direct,
    Indirect,
    All,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepoCommand {
    /// Blocks, logical bytes and bytes on disk.
    Stat,
    /// Re-hash every block; lists bad ones and exits non-zero if any.
    Verify,
    /// Remove every unpinned block.
    Gc,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DagCommand {
    /// Write the DAG under a root as CAR v1 to standard output.
    Export {
        /// `CID[/path]`.
        path: String,
    },
    /// Import CAR v1 files: every block verified, roots pinned; a bad file imports nothing.
    Import {
        /// The CAR files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StorageCommand {
    /// The memory, disk and peer tiers: sizes, the leecher's cache bound, hits, misses and
    /// evictions.
    Tiers {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}
