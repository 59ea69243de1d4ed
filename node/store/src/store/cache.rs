//! Bounded cache policies weighted by size: an adaptive replacement cache ([`AdaptiveCache`],
//! after Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST 2003)
//! and a plain LRU ([`LruCache`]) with the same interface, for comparison.
//!
//! A policy only decides which keys stay resident; the caller owns the data and drops what a
//! call reports as evicted. Capacities are in bytes and every entry weighs its size, so the
//! ARC here is the byte-weighted variant: the lists' lengths in the paper are byte totals.
//!
//! ARC keeps two resident lists, T1 (seen once recently) and T2 (seen at least twice), and two
//! ghost lists of keys recently evicted from them, B1 and B2, which hold no data. A miss that
//! hits a ghost in B1 says T1 was too small, one in B2 that T2 was: the target size `p` of T1
//! moves accordingly. A long scan of one-time keys passes through T1 without displacing the
//! frequently used keys in T2, which is where ARC beats LRU.
//!
//! All operations are O(1) (amortised: hash map plus an index-linked list in a slab), except
//! that an insertion evicts as many entries as it must.

use std::collections::HashMap;
use std::hash::Hash as StdHash;

/// A cache policy over keys `K` with a capacity in bytes.
pub trait CachePolicy<K> {
    /// Notes a reference to `key`; `true` when it is resident (a hit). A miss changes nothing:
    /// the caller fetches the data and calls [`CachePolicy::insert`].
    fn record_hit(&mut self, key: &K) -> bool;
    /// Admits `key`, `size` bytes, after a miss (a resident key is refreshed instead). Returns
    /// the residents evicted to make room, with their sizes; `key` itself when it alone is
    /// larger than the capacity. Once it returns, [`CachePolicy::bytes`] is within capacity.
    fn insert(&mut self, key: K, size: u64) -> Vec<(K, u64)>;
    /// Forgets `key`, resident or ghost; `true` when it was resident.
    fn remove(&mut self, key: &K) -> bool;
    /// Whether `key` is resident.
    fn contains(&self, key: &K) -> bool;
    /// Resident entries.
    fn len(&self) -> usize;
    /// Whether nothing is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes resident.
    fn bytes(&self) -> u64;
    /// The capacity in bytes.
    fn capacity(&self) -> u64;
}

const NIL: usize = usize::MAX;

#[derive(Debug, Clone)]
struct Node<K> {
    key: K,
    size: u64,
    list: usize,
    /// Towards the most recently used end.
    prev: usize,
    /// Towards the least recently used end.
    next: usize,
}

/// One list's ends and totals.
#[derive(Debug, Clone, Copy)]
struct Ends {
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    len: usize,
    bytes: u64,
}

impl Default for Ends {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }
}

/// `N` doubly linked lists threaded through one slab, with a key index: each key is in at most
/// one list.
#[derive(Debug, Clone)]
struct Lists<K, const N: usize> {
    nodes: Vec<Node<K>>,
    free: Vec<usize>,
    index: HashMap<K, usize>,
    ends: [Ends; N],
}

impl<K: Eq + StdHash + Clone, const N: usize> Lists<K, N> {
    fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            ends: [Ends::default(); N],
        }
    }

    fn slot(&self, key: &K) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn list_of(&self, key: &K) -> Option<usize> {
        self.slot(key).map(|s| self.nodes[s].list)
    }

    fn link_front(&mut self, slot: usize, list: usize) {
        let head = self.ends[list].head;
        {
            let node = &mut self.nodes[slot];
            node.list = list;
            node.prev = NIL;
            node.next = head;
        }
        if head == NIL {
            self.ends[list].tail = slot;
        } else {
            self.nodes[head].prev = slot;
        }
        let ends = &mut self.ends[list];
        ends.head = slot;
        ends.len += 1;
        ends.bytes += self.nodes[slot].size;
    }

    fn unlink(&mut self, slot: usize) {
        let Node {
            list,
            prev,
            next,
            size,
            ..
        } = self.nodes[slot];
        if prev == NIL {
            self.ends[list].head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.ends[list].tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        let ends = &mut self.ends[list];
        ends.len -= 1;
        ends.bytes -= size;
    }

    /// Adds `key` (not present in any list) at the front of `list`.
    fn push_front(&mut self, list: usize, key: K, size: u64) {
        let node = Node {
            key: key.clone(),
            size,
            list,
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.index.insert(key, slot);
        self.link_front(slot, list);
    }

    fn move_front(&mut self, slot: usize, list: usize) {
        self.unlink(slot);
        self.link_front(slot, list);
    }

    /// Takes `key` out of whatever list holds it; returns the list and its size.
    fn take(&mut self, key: &K) -> Option<(usize, u64)> {
        let slot = self.index.remove(key)?;
        self.unlink(slot);
        self.free.push(slot);
        let node = &self.nodes[slot];
        Some((node.list, node.size))
    }

    /// Takes the least recently used entry of `list`.
    fn pop_back(&mut self, list: usize) -> Option<(K, u64)> {
        let slot = self.ends[list].tail;
        if slot == NIL {
            return None;
        }
        let key = self.nodes[slot].key.clone();
        self.index.remove(&key);
        self.unlink(slot);
        self.free.push(slot);
        Some((key, self.nodes[slot].size))
    }

    fn keys_of(&self, list: usize) -> impl Iterator<Item = &K> + '_ {
        let mut slot = self.ends[list].head;
        std::iter::from_fn(move || {
            if slot == NIL {
                return None;
            }
            let node = &self.nodes[slot];
            slot = node.next;
            Some(&node.key)
        })
    }

    /// Checks the links, totals and index against each other.
    #[cfg(test)]
    fn check(&self) {
        let mut seen = 0;
        for (list, ends) in self.ends.iter().enumerate() {
            let (mut len, mut bytes, mut prev, mut slot) = (0, 0, NIL, ends.head);
            while slot != NIL {
                let node = &self.nodes[slot];
                assert_eq!(node.list, list);
                assert_eq!(node.prev, prev);
                assert_eq!(self.index.get(&node.key), Some(&slot));
                len += 1;
                bytes += node.size;
                prev = slot;
                slot = node.next;
            }
            assert_eq!(prev, ends.tail);
            assert_eq!((len, bytes), (ends.len, ends.bytes));
            seen += len;
        }
        assert_eq!(seen, self.index.len());
    }
}

const T1: usize = 0;
const T2: usize = 1;
const B1: usize = 2;
const B2: usize = 3;

/// Adaptive replacement (ARC) by bytes. See the module docs.
#[derive(Debug, Clone)]
pub struct AdaptiveCache<K> {
    lists: Lists<K, 4>,
    capacity: u64,
    /// `p`: the bytes T1 aims for; T2 gets the rest.
    target: u64,
    ghost_limit: usize,
}

impl<K: Eq + StdHash + Clone> AdaptiveCache<K> {
    /// A cache of `capacity` bytes. Ghost entries are bounded by bytes as in ARC (B1 within
    /// `capacity` together with T1, all four lists within twice `capacity`) and also by count,
    /// to one per 16 KiB of capacity (at least 256, at most 65,536), so that tiny entries
    /// cannot make the metadata grow without bound.
    pub fn new(capacity: u64) -> Self {
        let ghosts = usize::try_from(capacity / (16 << 10)).unwrap_or(usize::MAX);
        Self::with_ghost_limit(capacity, ghosts.clamp(256, 1 << 16))
    }

    /// A cache of `capacity` bytes keeping at most `ghost_limit` ghost entries.
    pub fn with_ghost_limit(capacity: u64, ghost_limit: usize) -> Self {
        Self {
            lists: Lists::new(),
            capacity,
            target: 0,
            ghost_limit,
        }
    }

    /// Bytes in T1, the entries referenced once since they were admitted.
    pub fn recent_bytes(&self) -> u64 {
        self.lists.ends[T1].bytes
    }

    /// Bytes in T2, the entries referenced more than once.
    pub fn frequent_bytes(&self) -> u64 {
        self.lists.ends[T2].bytes
    }

    /// The adaptive target for T1, in bytes.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Ghost entries (B1 and B2).
    pub fn ghosts(&self) -> usize {
        self.lists.ends[B1].len + self.lists.ends[B2].len
    }

    /// The resident keys, most recently used first within T1, then within T2.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.lists.keys_of(T1).chain(self.lists.keys_of(T2))
    }

    fn resident_bytes(&self) -> u64 {
        self.lists.ends[T1].bytes + self.lists.ends[T2].bytes
    }

    /// ARC's REPLACE, repeated until `incoming` more bytes fit: moves least recently used
    /// residents to the ghost lists.
    fn make_room(&mut self, incoming: u64, hit_in_b2: bool, evicted: &mut Vec<(K, u64)>) {
        while self.resident_bytes() + incoming > self.capacity {
            let t1 = self.lists.ends[T1];
            let t2 = self.lists.ends[T2];
            let from_t1 = t1.len > 0
                && (t1.bytes > self.target
                    || (hit_in_b2 && t1.bytes == self.target)
                    || t2.len == 0);
            let (from, ghost) = if from_t1 { (T1, B1) } else { (T2, B2) };
            let Some((key, size)) = self.lists.pop_back(from) else {
                break;
            };
            self.lists.push_front(ghost, key.clone(), size);
            evicted.push((key, size));
        }
    }

    /// Drops ghosts beyond the byte and count bounds, least recently evicted first.
    fn trim_ghosts(&mut self) {
        let c = self.capacity;
        while self.lists.ends[T1].bytes + self.lists.ends[B1].bytes > c
            && self.lists.pop_back(B1).is_some()
        {}
        let total = |l: &Lists<K, 4>| l.ends.iter().map(|e| e.bytes).sum::<u64>();
        while total(&self.lists) > c.saturating_mul(2) && self.lists.pop_back(B2).is_some() {}
        while self.ghosts() > self.ghost_limit {
            let from = if self.lists.ends[B1].len >= self.lists.ends[B2].len {
                B1
            } else {
                B2
            };
            if self.lists.pop_back(from).is_none() {
                break;
            }
        }
    }

    /// Checks ARC's invariants (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        self.lists.check();
        let e = &self.lists.ends;
        let c = self.capacity;
        assert!(e[T1].bytes + e[T2].bytes <= c, "residents over capacity");
        assert!(e[T1].bytes + e[B1].bytes <= c, "T1 + B1 over capacity");
        assert!(
            e.iter().map(|e| e.bytes).sum::<u64>() <= 2 * c,
            "lists over 2c"
        );
        assert!(self.ghosts() <= self.ghost_limit, "too many ghosts");
        assert!(self.target <= c, "target over capacity");
    }
}

impl<K: Eq + StdHash + Clone> CachePolicy<K> for AdaptiveCache<K> {
    fn record_hit(&mut self, key: &K) -> bool {
        match self.lists.slot(key) {
            Some(slot) if matches!(self.lists.nodes[slot].list, T1 | T2) => {
                self.lists.move_front(slot, T2);
                true
            }
            _ => false,
        }
    }

    fn insert(&mut self, key: K, size: u64) -> Vec<(K, u64)> {
        let mut evicted = Vec::new();
        if size > self.capacity {
            self.remove(&key);
            evicted.push((key, size));
            return evicted;
        }
        let (list, hit_in_b2) = match self.lists.take(&key) {
            // Resident: a refresh, as a hit.
            Some((T1 | T2, _)) => (T2, false),
            // Ghost in B1: T1 was too small; grow its target.
            Some((B1, _)) => {
                let b1 = self.lists.ends[B1].bytes.max(1);
                let b2 = self.lists.ends[B2].bytes;
                let ratio = if b1 >= b2 { 1 } else { b2 / b1 };
                let delta = size.max(1).saturating_mul(ratio);
                self.target = self.target.saturating_add(delta).min(self.capacity);
                (T2, false)
            }
            // Ghost in B2: T2 was too small; shrink T1's target.
            Some((_, _)) => {
                let b2 = self.lists.ends[B2].bytes.max(1);
                let b1 = self.lists.ends[B1].bytes;
                let ratio = if b2 >= b1 { 1 } else { b1 / b2 };
                let delta = size.max(1).saturating_mul(ratio);
                self.target = self.target.saturating_sub(delta);
                (T2, true)
            }
            None => (T1, false),
        };
        self.make_room(size, hit_in_b2, &mut evicted);
        self.lists.push_front(list, key, size);
        self.trim_ghosts();
        evicted
    }

    fn remove(&mut self, key: &K) -> bool {
        matches!(self.lists.take(key), Some((T1 | T2, _)))
    }

    fn contains(&self, key: &K) -> bool {
        matches!(self.lists.list_of(key), Some(T1 | T2))
    }

    fn len(&self) -> usize {
        self.lists.ends[T1].len + self.lists.ends[T2].len
    }

    fn bytes(&self) -> u64 {
        self.resident_bytes()
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// Least recently used, by bytes: the baseline ARC is measured against.
#[derive(Debug, Clone)]
pub struct LruCache<K> {
    lists: Lists<K, 1>,
    capacity: u64,
}

impl<K: Eq + StdHash + Clone> LruCache<K> {
    /// A cache of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Self {
            lists: Lists::new(),
            capacity,
        }
    }
}

impl<K: Eq + StdHash + Clone> CachePolicy<K> for LruCache<K> {
    fn record_hit(&mut self, key: &K) -> bool {
        match self.lists.slot(key) {
            Some(slot) => {
                self.lists.move_front(slot, 0);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: K, size: u64) -> Vec<(K, u64)> {
        let mut evicted = Vec::new();
        self.lists.take(&key);
        if size > self.capacity {
            evicted.push((key, size));
            return evicted;
        }
        while self.lists.ends[0].bytes + size > self.capacity {
            match self.lists.pop_back(0) {
                Some(e) => evicted.push(e),
                None => break,
            }
        }
        self.lists.push_front(0, key, size);
        evicted
    }

    fn remove(&mut self, key: &K) -> bool {
        self.lists.take(key).is_some()
    }

    fn contains(&self, key: &K) -> bool {
        self.lists.slot(key).is_some()
    }

    fn len(&self) -> usize {
        self.lists.ends[0].len
    }

    fn bytes(&self) -> u64 {
        self.lists.ends[0].bytes
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Replays `trace` (key, size): a hit when resident, else a miss and an insertion.
    /// Returns the hit ratio.
    fn hit_ratio(cache: &mut dyn CachePolicy<u64>, trace: &[(u64, u64)]) -> f64 {
        let mut hits = 0usize;
        for &(key, size) in trace {
            if cache.record_hit(&key) {
                hits += 1;
            } else {
                for (gone, _) in cache.insert(key, size) {
                    assert!(!cache.contains(&gone));
                }
            }
            assert!(cache.bytes() <= cache.capacity());
        }
        hits as f64 / trace.len() as f64
    }

    /// A hot set of half the cache, read a few times in a row, between one-time scans of
    /// twice the cache, with block sizes varying like a DAG's (16 to 32 KiB).
    fn scan_plus_hot_set(seed: u64) -> (u64, Vec<(u64, u64)>) {
        const BLOCK: u64 = 16 << 10;
        let capacity = 200 * BLOCK;
        let mut rng = StdRng::seed_from_u64(seed);
        let hot: Vec<(u64, u64)> = (0..60)
            .map(|k| (k, BLOCK + rng.gen_range(0..BLOCK)))
            .collect();
        let mut next_cold = 1_000_000u64;
        let mut trace = Vec::new();
        for _ in 0..40 {
            for _ in 0..2 {
                trace.extend(hot.iter().copied());
            }
            for _ in 0..(400 + rng.gen_range(0..100)) {
                trace.push((next_cold, BLOCK + rng.gen_range(0..BLOCK)));
                next_cold += 1;
            }
        }
        (capacity, trace)
    }

    #[test]
    fn arc_beats_lru_on_scan_plus_hot_set() {
        for seed in 0..4 {
            let (capacity, trace) = scan_plus_hot_set(seed);
            let mut arc = AdaptiveCache::new(capacity);
            let arc_ratio = hit_ratio(&mut arc, &trace);
            arc.check();
            let lru_ratio = hit_ratio(&mut LruCache::new(capacity), &trace);
            // The scans flush LRU every round, so only the second read of the hot set hits;
            // ARC keeps the hot set in T2 and hits both reads after the first round.
            assert!(
                arc_ratio > lru_ratio * 1.5 && arc_ratio > lru_ratio + 0.05,
                "seed {seed}: ARC {arc_ratio:.3} vs LRU {lru_ratio:.3}"
            );
        }
    }

    #[test]
    fn arc_matches_lru_on_a_recency_loop() {
        // A loop that fits: both hit everything after the first pass.
        let trace: Vec<(u64, u64)> = (0..20).flat_map(|_| (0..50).map(|k| (k, 10))).collect();
        let arc = hit_ratio(&mut AdaptiveCache::new(600), &trace);
        let lru = hit_ratio(&mut LruCache::new(600), &trace);
        assert_eq!(arc, lru);
        assert!(arc > 0.9);
    }

    #[test]
    fn ghost_hit_in_b1_grows_the_recency_target() {
        let mut arc = AdaptiveCache::new(100);
        for k in 0..10u64 {
            arc.insert(k, 10);
        }
        for k in 5..10u64 {
            assert!(arc.record_hit(&k));
        }
        assert_eq!((arc.recent_bytes(), arc.frequent_bytes()), (50, 50));
        // Key 10 pushes key 0 (the oldest in T1, over its target of 0) out to B1.
        assert_eq!(arc.insert(10, 10), vec![(0, 10)]);
        assert!(!arc.contains(&0));
        assert_eq!(arc.target(), 0);
        assert_eq!(arc.insert(0, 10), vec![(1, 10)]);
        assert_eq!(arc.target(), 10, "a B1 hit grows p");
        assert!(arc.contains(&0));
        assert_eq!(arc.frequent_bytes(), 60, "a ghost hit goes to T2");
        arc.check();
    }

    #[test]
    fn oversized_entries_are_refused_and_sizes_add_up() {
        let mut arc = AdaptiveCache::new(100);
        assert_eq!(arc.insert(1, 101), vec![(1, 101)]);
        assert!(arc.is_empty());
        assert!(arc.insert(2, 100).is_empty());
        assert_eq!(arc.bytes(), 100);
        assert_eq!(arc.insert(3, 1), vec![(2, 100)]);
        // A refresh with a new size counts the new size.
        assert!(arc.insert(3, 50).is_empty());
        assert_eq!(arc.bytes(), 50);
        assert!(arc.remove(&3));
        assert_eq!(arc.bytes(), 0);
        arc.check();
        let mut lru = LruCache::new(100);
        assert_eq!(lru.insert(1, 101), vec![(1, 101)]);
        assert!(lru.is_empty());
    }

    #[test]
    fn ghosts_stay_bounded_by_count() {
        let mut arc = AdaptiveCache::with_ghost_limit(1 << 20, 16);
        for k in 0..10_000u64 {
            arc.insert(k, 1000);
            assert!(arc.ghosts() <= 16);
        }
        arc.check();
        assert_eq!(arc.len(), (1 << 20) / 1000);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Access(u64, u64),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..64u64, 0..40u64).prop_map(|(k, s)| Op::Access(k, s)),
            1 => (0..64u64).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn random_traces_keep_the_invariants(
            capacity in 1..200u64,
            ghost_limit in 0..40usize,
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut arc = AdaptiveCache::with_ghost_limit(capacity, ghost_limit);
            let mut lru = LruCache::new(capacity);
            for op in ops {
                match op {
                    Op::Access(k, size) => {
                        for cache in [&mut arc as &mut dyn CachePolicy<u64>, &mut lru] {
                            if !cache.record_hit(&k) {
                                let evicted = cache.insert(k, size);
                                for (gone, _) in &evicted {
                                    prop_assert!(!cache.contains(gone));
                                }
                                prop_assert_eq!(cache.contains(&k), size <= capacity);
                            }
                            prop_assert!(cache.bytes() <= capacity);
                        }
                    }
                    Op::Remove(k) => {
                        arc.remove(&k);
                        lru.remove(&k);
                        prop_assert!(!arc.contains(&k) && !lru.contains(&k));
                    }
                }
                arc.check();
                lru.lists.check();
            }
        }
    }
}
