//! What Bitswap serves: the repo's store, or nothing on a node that does not serve blocks.

use std::sync::Arc;

use cid::Cid;
use ipfsbench_bitswap as bitswap;
use ipfsbench_store::repo::Repo;

/// The node's store, as Bitswap sees it.
pub(crate) struct RepoBlocks(pub(crate) Arc<Repo>);

impl bitswap::BlockSource for RepoBlocks {
    fn has(&self, cid: &Cid) -> bool {
        self.0.store().has(cid.hash()).unwrap_or(false)
    }

    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.store().get(cid).ok().flatten()
    }

    fn size(&self, cid: &Cid) -> Option<usize> {
        self.0
            .store()
            .size(cid)
            .ok()
            .flatten()
            .and_then(|s| usize::try_from(s).ok())
    }
}

/// What a node that does not serve blocks shows Bitswap: nothing, so every want is answered
/// DONT_HAVE.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoBlocks;

impl bitswap::BlockSource for NoBlocks {
    fn has(&self, _: &Cid) -> bool {
        false
    }

    fn get(&self, _: &Cid) -> Option<Vec<u8>> {
        None
    }
}
