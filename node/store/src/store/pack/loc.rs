//! Where a block lies in the packs, as the index stores it, and the end of each pack's
//! referenced bytes (`pack_ends`).

use crate::store;
use std::collections::HashMap;

pub(super) const LOC_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) pack: u32,
    pub(super) offset: u64,
    pub(super) len: u32,
}

impl Loc {
    pub(super) fn encode(self) -> [u8; LOC_LEN] {
        let mut out = [0u8; LOC_LEN];
        out[..4].copy_from_slice(&self.pack.to_le_bytes());
        out[4..12].copy_from_slice(&self.offset.to_le_bytes());
        out[12..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self, store::error::Error> {
        let b: &[u8; LOC_LEN] = b.try_into().map_err(|_| {
            store::error::Error::CorruptIndex(format!("location of {} bytes", b.len()))
        })?;
        let [p0, p1, p2, p3, o0, o1, o2, o3, o4, o5, o6, o7, l0, l1, l2, l3] = *b;
        Ok(Self {
            pack: u32::from_le_bytes([p0, p1, p2, p3]),
            offset: u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
        })
    }

    /// Record size including its header.
    pub(super) fn record_len(self, hash_len: usize) -> u64 {
        u64::from(self.len) + 5 + hash_len as u64
    }

    /// The offset just past the record's bytes.
    pub(super) fn end(self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

pub(super) fn end_of(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Builds the `pack_ends` tree of a store written before it existed.
pub(super) fn rebuild_ends(
    index: &sled::Tree,
    ends: &sled::Tree,
) -> Result<(), store::error::Error> {
    let mut max: HashMap<u32, u64> = HashMap::new();
    for v in index.iter().values() {
        let loc = Loc::decode(&v?)?;
        let end = max.entry(loc.pack).or_default();
        *end = (*end).max(loc.end());
    }
    let mut batch = sled::Batch::default();
    for (pack, end) in max {
        batch.insert(&pack.to_be_bytes(), &end.to_be_bytes());
    }
    ends.apply_batch(batch)?;
    Ok(())
}
