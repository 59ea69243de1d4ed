//! Whose writes count: the peers whose state deltas the replica applies and whose benchmark
//! database partitions the index merges, shared by both and changed while they run (a member
//! joins, a member is removed). What either drops from anyone else is counted per peer, so a
//! refusal is never silent.
//!
//! One writer (the layer that decides membership) calls [`Trust::set`]; the replica and the
//! index read it, and the index rebuilds its views when it changes ([`Trust::changed`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use tokio::sync::watch;

/// How many refused peers are remembered; past it the one heard from longest ago goes.
pub const MAX_REFUSED_PEERS: usize = 256;

/// What a peer sent that was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Refused {
    /// A state announcement or delta.
    State,
    /// A benchmark database partition announcement.
    Index,
    /// A task submission.
    Submission,
    /// A task assignment (from a peer that is not a master).
    Assignment,
    /// A heartbeat, report or other task message.
    Task,
}

impl Refused {
    /// Its name, as the API and the metrics show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Index => "index",
            Self::Submission => "submission",
            Self::Assignment => "assignment",
            Self::Task => "task",
        }
    }
}

/// One peer's dropped messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The peer.
    pub peer: PeerId,
    /// Messages dropped, by what they were.
    pub counts: BTreeMap<Refused, u64>,
    /// When the last one was dropped (ms since the epoch).
    pub last_ms: u64,
}

impl Refusal {
    /// Every message dropped.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// Which keys of the replicated state a trusted writer may write: `(writer, key)`, decided
/// by the layer that knows what the keys mean, and whether a writer may write every key
/// (only such a peer's snapshots are taken, since a snapshot's entries carry no signature).
/// Without one, a trusted writer writes any key.
#[derive(Clone)]
pub struct KeyRule {
    /// Whether `writer` may write `key`.
    pub may_write: KeyCheck,
    /// Whether `writer` may write every key.
    pub writes_all: WriterCheck,
}

/// Whether a writer may write a key.
pub type KeyCheck = Arc<dyn Fn(&PeerId, &[u8]) -> bool + Send + Sync>;
/// Whether a writer may write every key.
pub type WriterCheck = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

#[derive(Default)]
struct Inner {
    writers: Arc<HashSet<PeerId>>,
    refused: HashMap<PeerId, Refusal>,
    rule: Option<KeyRule>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("writers", &self.writers)
            .field("refused", &self.refused.len())
            .field("rule", &self.rule.is_some())
            .finish()
    }
}

/// See the module docs. Cheap to clone: every clone is the same table.
#[derive(Debug, Clone)]
pub struct Trust {
    inner: Arc<RwLock<Inner>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Trust {
    fn default() -> Self {
        Self::new(HashSet::new())
    }
}

impl From<HashSet<PeerId>> for Trust {
    fn from(writers: HashSet<PeerId>) -> Self {
        Self::new(writers)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Trust {
    /// A table trusting `writers`.
    pub fn new(writers: HashSet<PeerId>) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Inner {
                writers: Arc::new(writers),
                refused: HashMap::new(),
                rule: None,
            })),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `peer`'s writes count.
    pub fn allows(&self, peer: &PeerId) -> bool {
        self.read().writers.contains(peer)
    }

    /// Whether `peer`'s write of `key` counts: it is trusted, and the key rule (if any)
    /// lets it write that key.
    pub fn may_write(&self, peer: &PeerId, key: &[u8]) -> bool {
        let inner = self.read();
        inner.writers.contains(peer)
            && inner
                .rule
                .as_ref()
                .is_none_or(|rule| (rule.may_write)(peer, key))
    }

    /// Whether `peer` is trusted and may write every key.
    pub fn full_writer(&self, peer: &PeerId) -> bool {
        let inner = self.read();
        inner.writers.contains(peer)
            && inner
                .rule
                .as_ref()
                .is_none_or(|rule| (rule.writes_all)(peer))
    }

    /// Sets the rule of which keys each writer may write.
    pub fn set_rule(&self, rule: KeyRule) {
        self.write().rule = Some(rule);
    }

    /// Every peer whose writes count.
    pub fn writers(&self) -> Arc<HashSet<PeerId>> {
        Arc::clone(&self.read().writers)
    }

    /// Replaces the writers; readers waiting on [`Self::changed`] wake if it differs.
    pub fn set(&self, writers: HashSet<PeerId>) {
        {
            let mut inner = self.write();
            if *inner.writers == writers {
                return;
            }
            // A peer trusted now is no longer refused.
            inner.refused.retain(|p, _| !writers.contains(p));
            inner.writers = Arc::new(writers);
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// A receiver that wakes whenever the writers change.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Counts a message from `peer` dropped because its writes do not count.
    pub fn refuse(&self, peer: PeerId, what: Refused) {
        let mut inner = self.write();
        if inner.refused.len() >= MAX_REFUSED_PEERS && !inner.refused.contains_key(&peer) {
            let oldest = inner
                .refused
                .values()
                .min_by_key(|r| r.last_ms)
                .map(|r| r.peer);
            if let Some(oldest) = oldest {
                inner.refused.remove(&oldest);
            }
        }
        let refusal = inner.refused.entry(peer).or_insert_with(|| Refusal {
            peer,
            counts: BTreeMap::new(),
            last_ms: 0,
        });
        *refusal.counts.entry(what).or_default() += 1;
        refusal.last_ms = now_ms();
    }

    /// The peers refused so far (at most [`MAX_REFUSED_PEERS`]), most messages first.
    pub fn refusals(&self) -> Vec<Refusal> {
        let mut out: Vec<Refusal> = self.read().refused.values().cloned().collect();
        out.sort_by(|a, b| b.total().cmp(&a.total()).then(a.peer.cmp(&b.peer)));
        out
    }

    /// Messages dropped from `peer` so far.
    pub fn refused(&self, peer: &PeerId) -> u64 {
        self.read().refused.get(peer).map_or(0, Refusal::total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_peer_and_bounded() {
        let trust = Trust::default();
        let stranger = PeerId::random();
        trust.refuse(stranger, Refused::State);
        trust.refuse(stranger, Refused::State);
        trust.refuse(stranger, Refused::Index);
        assert_eq!(trust.refused(&stranger), 3);
        let r = &trust.refusals()[0];
        assert_eq!(r.counts[&Refused::State], 2);
        for _ in 0..MAX_REFUSED_PEERS + 10 {
            trust.refuse(PeerId::random(), Refused::Task);
        }
        assert_eq!(trust.refusals().len(), MAX_REFUSED_PEERS);
    }

    #[test]
    fn a_key_rule_narrows_what_a_trusted_writer_writes() {
        let [boss, hand, stranger] = std::array::from_fn(|_| PeerId::random());
        let trust = Trust::new(HashSet::from([boss, hand]));
        assert!(trust.may_write(&hand, b"task/1"), "no rule: any key");
        trust.set_rule(KeyRule {
            may_write: Arc::new(move |peer, key| *peer == boss || !key.starts_with(b"task/")),
            writes_all: Arc::new(move |peer| *peer == boss),
        });
        assert!(trust.full_writer(&boss) && !trust.full_writer(&hand));
        assert!(trust.may_write(&boss, b"task/1"));
        assert!(!trust.may_write(&hand, b"task/1"));
        assert!(trust.may_write(&hand, b"pin/x"));
        assert!(
            !trust.may_write(&stranger, b"pin/x"),
            "untrusted whatever the rule"
        );
    }

    #[test]
    fn set_wakes_readers_and_forgives_new_writers() {
        let trust = Trust::default();
        let mut changed = trust.changed();
        let peer = PeerId::random();
        trust.refuse(peer, Refused::State);
        assert!(!trust.allows(&peer));
        trust.set(HashSet::from([peer]));
        assert!(trust.allows(&peer));
        assert!(changed.has_changed().expect("open"));
        changed.borrow_and_update();
        assert_eq!(trust.refused(&peer), 0);
        // The same set again is no change.
        trust.set(HashSet::from([peer]));
        assert!(!changed.has_changed().expect("open"));
    }
}
