//! The engine's settings, what it needs from a store, what it reports, and its counters.

use std::time::Duration;

use cid::Cid;
use libp2p::PeerId;

/// What the engine needs from a block store. `has` and `size` are called from the swarm's
/// task: keep them quick (an index lookup). `get` runs on a blocking thread
/// ([`Config::max_reads_in_flight`]).
pub trait BlockSource: Send + Sync + 'static {
    /// Whether the block named by `cid` (by multihash) is held.
    fn has(&self, cid: &Cid) -> bool;
    /// The block's bytes, if held.
    fn get(&self, cid: &Cid) -> Option<Vec<u8>>;
    /// The block's length in bytes, if held. Used to answer want-have: blocks up to
    /// [`Config::small_block_bytes`] are sent instead of HAVE. The default reads the block;
    /// stores that know sizes cheaply should override it.
    fn size(&self, cid: &Cid) -> Option<usize> {
        if self.has(cid) {
            self.get(cid).map(|b| b.len())
        } else {
            None
        }
    }
}

/// Limits and timings of the engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest inbound message accepted, in bytes; a larger frame closes the connection.
    /// Default 4 MiB (Kubo's limit).
    pub max_message_bytes: usize,
    /// Size messages we build are kept under, in bytes, except a message holding a single
    /// larger block. Default 2 MiB (Kubo's).
    pub max_send_message_bytes: usize,
    /// Entries a peer may keep in its wantlist with us; more closes the connection.
    /// Default 8192.
    pub max_wantlist_entries: usize,
    /// Messages queued per connection waiting to be written; past it messages are dropped
    /// (and counted). Default 256.
    pub max_outbound_queue: usize,
    /// Block bytes queued to one peer, in bytes, before serving pauses until they are written
    /// (wants stay in the ledger meanwhile, nothing is dropped). Default 16 MiB.
    pub max_outbound_bytes: usize,
    /// Inbound streams open at once per connection; more are refused. Default 32.
    pub max_inbound_streams: usize,
    /// Want-blocks outstanding to one peer; further wants wait for a free slot. Default 64.
    pub max_wants_in_flight: usize,
    /// CIDs we fetch at once; `want` beyond it is answered with [`Event::NotFound`].
    /// Default 65536.
    pub max_wants: usize,
    /// Provider hints kept per want. Default 16.
    pub max_providers_per_want: usize,
    /// Dials to hinted providers in progress at once. Default 32.
    pub max_pending_dials: usize,
    /// How long a want-block may go unanswered before it is asked elsewhere (or re-broadcast).
    /// Default 10 s.
    pub want_timeout: Duration,
    /// How often wants nobody is serving are re-sent as want-have to every connected peer.
    /// Default 30 s (Kubo's).
    pub rebroadcast_interval: Duration,
    /// Blocks up to this size, in bytes, are sent in answer to want-have instead of HAVE.
    /// Default 1024 (Kubo's).
    pub small_block_bytes: usize,
    /// Wants served per peer per poll of the behaviour, to keep each poll short. Default 256.
    pub max_served_per_poll: usize,
    /// Blocks read from the [`BlockSource`] at once, each on a blocking thread so that a slow
    /// disk never stalls the swarm; their bytes count against the peer's send credit while
    /// they are read. Default 16.
    pub max_reads_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_bytes: 4 * 1024 * 1024,
            max_send_message_bytes: 2 * 1024 * 1024,
            max_wantlist_entries: 8192,
            max_outbound_queue: 256,
            max_outbound_bytes: 16 * 1024 * 1024,
            max_inbound_streams: 32,
            max_wants_in_flight: 64,
            max_wants: 65536,
            max_providers_per_want: 16,
            max_pending_dials: 32,
            want_timeout: Duration::from_secs(10),
            rebroadcast_interval: Duration::from_secs(30),
            small_block_bytes: 1024,
            max_served_per_poll: 256,
            max_reads_in_flight: 16,
        }
    }
}

/// What the engine reports.
#[derive(Debug)]
pub enum Event {
    /// A wanted block arrived and its bytes hash to its CID. Unwanted blocks are dropped
    /// (counted in [`Stats::unwanted_blocks`]), not emitted.
    Block {
        /// The peer that sent it.
        peer: PeerId,
        /// The CID it was wanted under.
        cid: Cid,
        /// Its bytes.
        data: bytes::Bytes,
    },
    /// No connected peer has `cid` (all asked answered DONT_HAVE, or no peer is connected and
    /// none was given): the node may look up providers and call `want` again with them. The
    /// want stays active; emitted once until `want` is called again with providers.
    NotFound {
        /// The block.
        cid: Cid,
    },
    /// A peer broke the protocol (undecodable or oversized message, wantlist overflow, block
    /// not matching its CID) and its connection was closed.
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
}

/// Counters, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Wanted blocks received.
    pub blocks_received: u64,
    /// Bytes of wanted blocks received.
    pub bytes_received: u64,
    /// Blocks received that nobody wanted (dropped).
    pub unwanted_blocks: u64,
    /// Blocks dropped because their hash function is not one we verify.
    pub unverifiable_blocks: u64,
    /// Blocks sent to peers.
    pub blocks_sent: u64,
    /// Bytes of blocks sent to peers.
    pub bytes_sent: u64,
    /// HAVEs sent.
    pub haves_sent: u64,
    /// DONT_HAVEs sent.
    pub dont_haves_sent: u64,
    /// Outgoing messages dropped (queue full, stream failed, peer without Bitswap).
    pub messages_dropped: u64,
    /// Wantlist entries dropped because a peer's connection did not drain.
    pub entries_dropped: u64,
    /// Inbound streams refused for being over the per-connection cap.
    pub inbound_streams_refused: u64,
    /// Want-blocks that timed out.
    pub want_timeouts: u64,
    /// `want` calls refused for being over [`Config::max_wants`].
    pub wants_refused: u64,
    /// Connections closed for misbehaviour.
    pub misbehaviours: u64,
}
