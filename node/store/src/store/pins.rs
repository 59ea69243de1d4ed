//! Pins: recursive (a whole DAG), direct (one block) and indirect (below a recursive pin,
//! derived, never stored). Stored in the repo's sled database, keyed by CID bytes.

use crate::store::dag;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cid::Cid;

use crate::store::block::Hash;
use crate::store::blockstore::BlockStore;
use crate::store::protect::Protector;

/// How a CID is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinKind {
    /// The block and everything below it.
    Recursive,
    /// The block alone.
    Direct,
    /// Below a recursive pin.
    Indirect,
}

impl PinKind {
    fn tag(self) -> u8 {
        match self {
            PinKind::Recursive => b'r',
            PinKind::Direct => b'd',
            PinKind::Indirect => b'i',
        }
    }
}

impl fmt::Display for PinKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinKind::Recursive => "recursive",
            PinKind::Direct => "direct",
            PinKind::Indirect => "indirect",
        })
    }
}

/// Which pins `ls` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFilter {
    /// Recursive pins.
    Recursive,
    /// Direct pins.
    Direct,
    /// Indirect pins.
    Indirect,
    /// All three.
    All,
}

/// Failures of pin operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The DAG to pin is incomplete or unreadable.
    #[error(transparent)]
    Dag(#[from] dag::Error),
    /// The pin index failed.
    #[error("pin index: {0}")]
    Index(#[from] sled::Error),
    /// The CID is not pinned.
    #[error("{0} is not pinned")]
    NotPinned(Cid),
    /// The CID is pinned only because a recursive pin holds it.
    #[error("{cid} is pinned indirectly under {root}")]
    PinnedIndirectly {
        /// The CID.
        cid: Cid,
        /// A recursive pin above it.
        root: Cid,
    },
    /// A direct pin was asked for a CID already pinned recursively.
    #[error("{0} is already pinned recursively")]
    AlreadyRecursive(Cid),
    /// A stored pin record is malformed.
    #[error("corrupt pin record: {0}")]
    Corrupt(String),
}

/// The pin set.
#[derive(Debug, Clone)]
pub struct Pins {
    tree: sled::Tree,
    /// Blocks the node keeps for itself (the replicated state's deltas and snapshots): live
    /// like direct pins, but not users' pins, so `pin ls` does not list them.
    kept: sled::Tree,
    /// Bumped by every change, shared by clones: lets a cache of the live set notice changes.
    generation: Arc<AtomicU64>,
}

impl Pins {
    /// The pins of a repo's database.
    pub fn open(db: &sled::Db) -> Result<Self, Error> {
        Ok(Self {
            tree: db.open_tree("pins")?,
            kept: db.open_tree("kept")?,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A number that changes whenever a pin is added or removed through this pin set or a
    /// clone of it. A writer bumps it before its GC session ends, so a reader that checks it
    /// under the [`Protector`]'s lock sees every pin whose blocks are no longer protected.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A pin set that lives in memory (tests).
    pub fn temporary() -> Result<Self, Error> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::open(&db)
    }

    /// Keeps the block `cid` from GC and cache eviction, for the node's own use.
    pub fn keep(&self, cid: &Cid) -> Result<(), Error> {
        if self.kept.insert(cid.to_bytes(), &[])?.is_none() {
            self.changed();
        }
        Ok(())
    }

    /// Lets GC take the block `cid` again (unless a pin holds it).
    pub fn release(&self, cid: &Cid) -> Result<(), Error> {
        if self.kept.remove(cid.to_bytes())?.is_some() {
            self.changed();
        }
        Ok(())
    }

    /// The stored pin of `cid` (recursive or direct), if any.
    pub fn get(&self, cid: &Cid) -> Result<Option<PinKind>, Error> {
        Ok(match self.tree.get(cid.to_bytes())?.as_deref() {
            Some(b"r") => Some(PinKind::Recursive),
            Some(b"d") => Some(PinKind::Direct),
            Some(other) => return Err(Error::Corrupt(format!("kind {other:?}"))),
            None => None,
        })
    }

    /// All stored pins (recursive and direct).
    pub fn stored(&self) -> Result<Vec<(Cid, PinKind)>, Error> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (k, v) = item?;
            let cid = Cid::try_from(&k[..]).map_err(|e| Error::Corrupt(e.to_string()))?;
            let kind = match &v[..] {
                b"r" => PinKind::Recursive,
                b"d" => PinKind::Direct,
                other => return Err(Error::Corrupt(format!("kind {other:?}"))),
            };
            out.push((cid, kind));
        }
        Ok(out)
    }

    /// Pins `cid` recursively or directly. The DAG (or block) must be complete locally; its
    /// blocks are protected from a concurrent GC while this runs.
    pub fn add(
        &self,
        store: &dyn BlockStore,
        protector: &Protector,
        cid: &Cid,
        recursive: bool,
    ) -> Result<(), Error> {
        self.add_unflushed(store, protector, cid, recursive)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Pins every CID of `cids` recursively, then makes them durable with one flush; the
    /// outcome of each, in order.
    pub fn add_many(
        &self,
        store: &dyn BlockStore,
        protector: &Protector,
        cids: &[Cid],
    ) -> Vec<Result<(), Error>> {
        let mut out: Vec<Result<(), Error>> = cids
            .iter()
            .map(|cid| self.add_unflushed(store, protector, cid, true))
            .collect();
        if let Err(e) = self.tree.flush() {
            let e = Error::from(e);
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(Error::Corrupt(format!("flushing the pins: {e}")));
            }
        }
        out
    }

    fn add_unflushed(
        &self,
        store: &dyn BlockStore,
        protector: &Protector,
        cid: &Cid,
        recursive: bool,
    ) -> Result<(), Error> {
        let session = protector.session();
        if recursive {
            let mut seen = HashSet::new();
            dag::walk(store, cid, false, &mut seen, &mut |c, _| {
                session.protect(c.hash());
                Ok(())
            })?;
        } else {
            session.protect(cid.hash());
            if !store.has(cid.hash()).map_err(dag::Error::from)? {
                return Err(dag::Error::NotFound(*cid).into());
            }
            if self.get(cid)? == Some(PinKind::Recursive) {
                return Err(Error::AlreadyRecursive(*cid));
            }
        }
        let kind = if recursive {
            PinKind::Recursive
        } else {
            PinKind::Direct
        };
        self.tree.insert(cid.to_bytes(), &[kind.tag()])?;
        self.changed();
        Ok(())
    }

    /// Pins `cid` recursively without walking its DAG, for a caller that knows the DAG is
    /// complete (it just wrote or walked it: `add`, CAR import) and still protects its blocks
    /// in an open GC session.
    pub fn add_written(&self, cid: &Cid) -> Result<(), Error> {
        self.tree
            .insert(cid.to_bytes(), &[PinKind::Recursive.tag()])?;
        self.changed();
        self.tree.flush()?;
        Ok(())
    }

    /// Removes the pin of `cid`. An indirect pin cannot be removed on its own.
    pub fn remove(&self, store: &dyn BlockStore, cid: &Cid) -> Result<PinKind, Error> {
        if let Some(kind) = self.get(cid)? {
            self.tree.remove(cid.to_bytes())?;
            self.changed();
            self.tree.flush()?;
            return Ok(kind);
        }
        if let Some(root) = self.indirect_root(store, cid.hash())? {
            return Err(Error::PinnedIndirectly { cid: *cid, root });
        }
        Err(Error::NotPinned(*cid))
    }

    /// The recursive pin that holds `hash` below its root, if any.
    pub fn indirect_root(&self, store: &dyn BlockStore, hash: &Hash) -> Result<Option<Cid>, Error> {
        for (root, kind) in self.stored()? {
            if kind != PinKind::Recursive || root.hash() == hash {
                continue;
            }
            let mut found = false;
            let mut seen = HashSet::new();
            let walked = dag::walk(store, &root, false, &mut seen, &mut |c, _| {
                found |= c.hash() == hash;
                Ok(())
            });
            // A damaged pinned DAG must not hide the pins it still proves.
            if let Err(e) = walked {
                tracing::warn!(%root, error = %e, "pinned DAG incomplete");
            }
            if found {
                return Ok(Some(root));
            }
        }
        Ok(None)
    }

    /// How `hash` is pinned, if at all (stored pins first, then indirect).
    pub fn pinned(&self, store: &dyn BlockStore, hash: &Hash) -> Result<Option<PinKind>, Error> {
        for (cid, kind) in self.stored()? {
            if cid.hash() == hash {
                return Ok(Some(kind));
            }
        }
        Ok(self.indirect_root(store, hash)?.map(|_| PinKind::Indirect))
    }

    /// Lists pins of the kinds `filter` selects. Indirect pins are the blocks below recursive
    /// pins that are not themselves pinned otherwise.
    pub fn list(
        &self,
        store: &dyn BlockStore,
        filter: PinFilter,
    ) -> Result<Vec<(Cid, PinKind)>, Error> {
        let stored = self.stored()?;
        let mut out: Vec<(Cid, PinKind)> = stored
            .iter()
            .filter(|(_, k)| {
                matches!(
                    (filter, k),
                    (PinFilter::All, _)
                        | (PinFilter::Recursive, PinKind::Recursive)
                        | (PinFilter::Direct, PinKind::Direct)
                )
            })
            .copied()
            .collect();
        if matches!(filter, PinFilter::Indirect | PinFilter::All) {
            let mut seen: HashSet<Hash> = stored
                .iter()
                .filter(|(_, k)| *k == PinKind::Recursive)
                .map(|(c, _)| *c.hash())
                .collect();
            for (root, kind) in &stored {
                if *kind != PinKind::Recursive {
                    continue;
                }
                for child in direct_children(store, root)? {
                    dag::walk(store, &child, false, &mut seen, &mut |c, _| {
                        out.push((*c, PinKind::Indirect));
                        Ok(())
                    })?;
                }
            }
            let direct: HashSet<Hash> = stored.iter().map(|(c, _)| *c.hash()).collect();
            out.retain(|(c, k)| *k != PinKind::Indirect || !direct.contains(c.hash()));
        }
        Ok(out)
    }

    /// Every multihash a pin protects: recursive DAGs and direct blocks. A pinned DAG with a
    /// missing block is an error: what lies below the gap could not be marked.
    pub fn live_set(&self, store: &dyn BlockStore) -> Result<HashSet<Hash>, Error> {
        let mut live = HashSet::new();
        for item in self.kept.iter() {
            let (key, _) = item?;
            let cid = Cid::try_from(key.as_ref())
                .map_err(|e| Error::Corrupt(format!("kept block {key:?}: {e}")))?;
            live.insert(*cid.hash());
        }
        for (cid, kind) in self.stored()? {
            match kind {
                PinKind::Direct => {
                    live.insert(*cid.hash());
                }
                _ => {
                    dag::walk(store, &cid, false, &mut live, &mut |_, _| Ok(()))?;
                }
            }
        }
        Ok(live)
    }
}

fn direct_children(store: &dyn BlockStore, root: &Cid) -> Result<Vec<Cid>, dag::Error> {
    if root.codec() == crate::store::block::RAW {
        return Ok(Vec::new());
    }
    let data = store.get(root)?.ok_or(dag::Error::NotFound(*root))?;
    dag::links(root, &data)
}
