//! Protection of the blocks that running writes hold, against garbage collection.
//!
//! Writers (an `add`, a CAR import, a `pin add`) open a [`Session`] and protect each block
//! before they store or walk it; the protection lasts until the session ends, and, if a
//! collection is running then, until that collection ends — it may have marked before the
//! writer's pin existed. Removal checks protection under the same lock (see
//! [`Protector::remove_unprotected`]), so a writer that re-uses an existing block either
//! protects it first or stores it anew. Reads never take these locks.

use crate::store;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::block::Hash;
use super::blockstore::BlockStore;

#[derive(Debug, Default)]
pub(super) struct State {
    sessions: HashMap<u64, HashSet<Hash>>,
    next_id: u64,
    pub(super) collecting: bool,
    /// Sets of sessions that ended while a collection ran.
    pub(super) deferred: Vec<HashSet<Hash>>,
}

/// Tracks the blocks that running writes hold.
#[derive(Debug, Default)]
pub struct Protector {
    state: Mutex<State>,
    /// Held by the one collection that runs at a time.
    pub(super) collecting: Mutex<()>,
}

/// A running write's protection; ends when dropped.
#[derive(Debug)]
pub struct Session<'a> {
    id: u64,
    protector: &'a Protector,
}

impl Protector {
    /// No sessions yet.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a write session.
    pub fn session(&self) -> Session<'_> {
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state.sessions.insert(id, HashSet::new());
        Session {
            id,
            protector: self,
        }
    }

    pub(super) fn is_protected(state: &State, hash: &Hash) -> bool {
        state.sessions.values().any(|s| s.contains(hash))
            || state.deferred.iter().any(|s| s.contains(hash))
    }

    /// Removes `hash` from `store` unless a running write protects it or `still_valid`, asked
    /// under the same lock, says the caller's view (of the pins) went stale. As in the sweep,
    /// a writer either protected the block first or will store it anew.
    pub(crate) fn remove_unprotected(
        &self,
        store: &dyn BlockStore,
        hash: &Hash,
        still_valid: impl FnOnce() -> bool,
    ) -> Result<Removal, store::error::Error> {
        let state = self.state();
        if Self::is_protected(&state, hash) {
            return Ok(Removal::Protected);
        }
        if !still_valid() {
            return Ok(Removal::Stale);
        }
        Ok(if store.remove(hash)? {
            Removal::Removed
        } else {
            Removal::Absent
        })
    }
}

/// What [`Protector::remove_unprotected`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The block was removed.
    Removed,
    /// The block was not in the store.
    Absent,
    /// A running write protects the block; it stays.
    Protected,
    /// The caller's view went stale; nothing was done.
    Stale,
}

impl Session<'_> {
    /// Protects `hash` until the session ends. Call before storing or relying on the block.
    pub fn protect(&self, hash: &Hash) {
        if let Some(set) = self.protector.state().sessions.get_mut(&self.id) {
            set.insert(*hash);
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let mut state = self.protector.state();
        if let Some(set) = state.sessions.remove(&self.id) {
            if state.collecting {
                state.deferred.push(set);
            }
        }
    }
}
