//! The Kademlia record store: value records in libp2p's `MemoryStore`, provider records here.
//!
//! libp2p's `MemoryStore` refuses every new provider key once it holds 1,024, counting the
//! keys this node announces and those other peers announce to it together. A worker that had
//! produced about a thousand results could then announce none of its newer ones, and peers
//! announcing to it could crowd out its own records. This store bounds the two kinds
//! separately and, when one is full, forgets the oldest key of that kind instead of refusing
//! the new one: a node always announces its newest blocks, and what others announce can never
//! push out what it announces itself.

use std::borrow::Cow;
use std::collections::{hash_map, HashMap, VecDeque};

use libp2p::kad::store::{MemoryStore, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::PeerId;

/// Keys this node announces as a provider, at most.
pub(crate) const MAX_LOCAL_KEYS: usize = 8192;
/// Keys other peers announced to this node, at most.
pub(crate) const MAX_REMOTE_KEYS: usize = 8192;
/// Providers kept per key announced by others: Kademlia's replication factor.
pub(crate) const MAX_PROVIDERS_PER_KEY: usize = 20;

/// Oldest-first keys of one kind, with the set that says which are still current. Entries for
/// keys removed since are skipped when popped, and swept once they outnumber the live ones.
#[derive(Debug, Default)]
struct Order {
    queue: VecDeque<RecordKey>,
}

impl Order {
    fn push(&mut self, key: RecordKey) {
        self.queue.push_back(key);
    }

    /// The oldest key for which `live` holds.
    fn pop_oldest(&mut self, live: impl Fn(&RecordKey) -> bool) -> Option<RecordKey> {
        while let Some(key) = self.queue.pop_front() {
            if live(&key) {
                return Some(key);
            }
        }
        None
    }

    /// Drops entries of removed keys once they make up more than half the queue.
    fn sweep(&mut self, live_count: usize, live: impl Fn(&RecordKey) -> bool) {
        if self.queue.len() > 2 * live_count.max(64) {
            self.queue.retain(|k| live(k));
        }
    }
}

/// The record store of a node's Kademlia behaviour.
pub(crate) struct ProviderStore {
    local: PeerId,
    values: MemoryStore,
    /// What this node announces, by key.
    provided: HashMap<RecordKey, ProviderRecord>,
    provided_order: Order,
    /// What other peers announced, by key.
    remote: HashMap<RecordKey, Vec<ProviderRecord>>,
    remote_order: Order,
    max_local: usize,
    max_remote: usize,
}

impl std::fmt::Debug for ProviderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderStore")
            .field("provided", &self.provided.len())
            .field("remote", &self.remote.len())
            .finish_non_exhaustive()
    }
}

impl ProviderStore {
    pub(crate) fn new(local: PeerId) -> Self {
        Self::with_limits(local, MAX_LOCAL_KEYS, MAX_REMOTE_KEYS)
    }

    pub(crate) fn with_limits(local: PeerId, max_local: usize, max_remote: usize) -> Self {
        Self {
            local,
            values: MemoryStore::new(local),
            provided: HashMap::new(),
            provided_order: Order::default(),
            remote: HashMap::new(),
            remote_order: Order::default(),
            max_local: max_local.max(1),
            max_remote: max_remote.max(1),
        }
    }

    fn add_local(&mut self, record: ProviderRecord) {
        if let Some(existing) = self.provided.get_mut(&record.key) {
            *existing = record;
            return;
        }
        if self.provided.len() >= self.max_local {
            let provided = &self.provided;
            if let Some(oldest) = self.provided_order.pop_oldest(|k| provided.contains_key(k)) {
                tracing::debug!(key = ?oldest, "no longer announcing the oldest provided key");
                self.provided.remove(&oldest);
            }
        }
        self.provided_order.push(record.key.clone());
        self.provided.insert(record.key.clone(), record);
    }

    fn add_remote(&mut self, record: ProviderRecord) {
        if let Some(list) = self.remote.get_mut(&record.key) {
            if let Some(existing) = list.iter_mut().find(|p| p.provider == record.provider) {
                *existing = record;
            } else if list.len() < MAX_PROVIDERS_PER_KEY {
                // A full list keeps the providers it has, as libp2p's store does, so a flood of
                // made-up providers cannot displace real ones.
                list.push(record);
            }
            return;
        }
        if self.remote.len() >= self.max_remote {
            let remote = &self.remote;
            if let Some(oldest) = self.remote_order.pop_oldest(|k| remote.contains_key(k)) {
                self.remote.remove(&oldest);
            }
        }
        self.remote_order.push(record.key.clone());
        self.remote.insert(record.key.clone(), vec![record]);
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = std::iter::Map<
        hash_map::Values<'a, RecordKey, ProviderRecord>,
        fn(&'a ProviderRecord) -> Cow<'a, ProviderRecord>,
    >;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.values.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        self.values.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.values.remove(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.values.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        if record.provider == self.local {
            self.add_local(record);
        } else {
            self.add_remote(record);
        }
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut out: Vec<ProviderRecord> = self.provided.get(key).cloned().into_iter().collect();
        if let Some(list) = self.remote.get(key) {
            out.extend(list.iter().cloned());
        }
        out
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.provided.values().map(Cow::Borrowed)
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if *provider == self.local {
            if self.provided.remove(key).is_some() {
                let provided = &self.provided;
                self.provided_order
                    .sweep(provided.len(), |k| provided.contains_key(k));
            }
            return;
        }
        if let hash_map::Entry::Occupied(mut entry) = self.remote.entry(key.clone()) {
            entry.get_mut().retain(|p| p.provider != *provider);
            if entry.get().is_empty() {
                entry.remove();
                let remote = &self.remote;
                self.remote_order
                    .sweep(remote.len(), |k| remote.contains_key(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> RecordKey {
        RecordKey::new(&format!("key-{i}"))
    }

    fn record(i: usize, provider: PeerId) -> ProviderRecord {
        ProviderRecord::new(key(i), provider, Vec::new())
    }

    #[test]
    fn a_node_announces_its_newest_keys() {
        let me = PeerId::random();
        let mut store = ProviderStore::with_limits(me, 100, 100);
        for i in 0..250 {
            store.add_provider(record(i, me)).unwrap();
        }
        let mut provided: Vec<RecordKey> = store.provided().map(|r| r.key.clone()).collect();
        provided.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        let mut newest: Vec<RecordKey> = (150..250).map(key).collect();
        newest.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        assert_eq!(provided, newest);
        assert!(store.providers(&key(149)).is_empty());
        assert_eq!(store.providers(&key(249))[0].provider, me);
        // Announcing a key again keeps one record for it.
        store.add_provider(record(249, me)).unwrap();
        assert_eq!(store.provided().count(), 100);
    }

    #[test]
    fn what_others_announce_never_displaces_what_this_node_announces() {
        let me = PeerId::random();
        let mut store = ProviderStore::with_limits(me, 10, 10);
        for i in 0..10 {
            store.add_provider(record(i, me)).unwrap();
        }
        for i in 0..1000 {
            store.add_provider(record(i, PeerId::random())).unwrap();
        }
        assert_eq!(store.provided().count(), 10);
        for i in 0..10 {
            let providers = store.providers(&key(i));
            assert_eq!(providers.len(), 1, "key {i}: {providers:?}");
            assert_eq!(providers[0].provider, me);
        }
        // The remote side kept the newest ten keys.
        assert_eq!(store.remote.len(), 10);
        assert!(store.providers(&key(989)).is_empty());
        let newest = store.providers(&key(990));
        assert_eq!(newest.len(), 1);
        assert!(newest[0].provider != me);
    }

    #[test]
    fn a_key_keeps_a_bounded_list_of_providers() {
        let me = PeerId::random();
        let mut store = ProviderStore::with_limits(me, 10, 10);
        let first: Vec<PeerId> = (0..MAX_PROVIDERS_PER_KEY)
            .map(|_| PeerId::random())
            .collect();
        for p in &first {
            store.add_provider(record(1, *p)).unwrap();
        }
        for _ in 0..50 {
            store.add_provider(record(1, PeerId::random())).unwrap();
        }
        let kept: Vec<PeerId> = store
            .providers(&key(1))
            .iter()
            .map(|r| r.provider)
            .collect();
        assert_eq!(kept, first);
        // Our own record comes on top of the list, not instead of one of them.
        store.add_provider(record(1, me)).unwrap();
        assert_eq!(store.providers(&key(1)).len(), MAX_PROVIDERS_PER_KEY + 1);
        store.remove_provider(&key(1), &first[0]);
        store.remove_provider(&key(1), &me);
        assert_eq!(store.providers(&key(1)).len(), MAX_PROVIDERS_PER_KEY - 1);
        assert_eq!(store.provided().count(), 0);
    }

    #[test]
    fn removed_keys_do_not_pile_up_in_the_order() {
        let me = PeerId::random();
        let mut store = ProviderStore::with_limits(me, 100, 100);
        for round in 0..50 {
            for i in 0..100 {
                store.add_provider(record(round * 100 + i, me)).unwrap();
            }
            for i in 0..100 {
                store.remove_provider(&key(round * 100 + i), &me);
            }
        }
        assert_eq!(store.provided().count(), 0);
        assert!(store.provided_order.queue.len() <= 200);
    }
}
