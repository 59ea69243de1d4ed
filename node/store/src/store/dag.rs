//! Walking DAGs of blocks: the links of a block by codec, and traversals over a store.

use crate::store;
use std::collections::HashSet;

use cid::Cid;

use ipfsbench_protocols::codec::cbor::{CborError, Value};
use ipfsbench_protocols::state::DAG_CBOR;

use crate::store::block::{Hash, DAG_PB, RAW};
use crate::store::blockstore::BlockStore;
use ipfsbench_protocols::codec::pb;

/// A DAG that cannot be walked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A block of the DAG is not in the local store.
    #[error("block {0} not found locally")]
    NotFound(Cid),
    /// A dag-pb block does not decode.
    #[error("block {cid} is not valid dag-pb: {source}")]
    Decode {
        /// The block.
        cid: Cid,
        /// The decoder's error.
        #[source]
        source: pb::DecodeError,
    },
    /// A DAG-CBOR block does not decode.
    #[error("block {cid} is not valid DAG-CBOR: {source}")]
    Cbor {
        /// The block.
        cid: Cid,
        /// The decoder's error.
        #[source]
        source: CborError,
    },
    /// The block's codec has links this node cannot read.
    #[error("block {cid} has codec 0x{codec:x}, which this node cannot traverse")]
    UnsupportedCodec {
        /// The block.
        cid: Cid,
        /// Its codec.
        codec: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::error::Error),
    /// Writing out what the walk visited failed.
    #[error("writing: {0}")]
    Write(#[from] std::io::Error),
}

/// The links of a block, by its codec.
pub fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>, Error> {
    match cid.codec() {
        RAW => Ok(Vec::new()),
        DAG_PB => Ok(pb::decode_node(data)
            .map_err(|source| Error::Decode { cid: *cid, source })?
            .links
            .into_iter()
            .map(|l| l.cid)
            .collect()),
        DAG_CBOR => {
            let value = Value::decode(data).map_err(|source| Error::Cbor { cid: *cid, source })?;
            let mut out = Vec::new();
            cbor_links(&value, &mut out);
            Ok(out)
        }
        codec => Err(Error::UnsupportedCodec { cid: *cid, codec }),
    }
}

/// Every link inside a DAG-CBOR value, in order.
fn cbor_links(value: &Value, out: &mut Vec<Cid>) {
    match value {
        Value::Link(cid) => out.push(*cid),
        Value::Array(items) => items.iter().for_each(|v| cbor_links(v, out)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| cbor_links(v, out)),
        _ => {}
    }
}

/// What [`walk`] calls for each block: its CID and, unless skipped, its bytes.
pub type Visit<'a> = dyn FnMut(&Cid, Option<&[u8]>) -> Result<(), Error> + 'a;

/// Visits every block of the DAG under `root` once, depth first in link order (parents
/// before children), calling `visit` with each CID and its bytes. Raw leaves are checked for
/// presence but not read unless `read_raw`. Errors with [`Error::NotFound`] on the first
/// missing block.
pub fn walk(
    store: &dyn BlockStore,
    root: &Cid,
    read_raw: bool,
    seen: &mut HashSet<Hash>,
    visit: &mut Visit<'_>,
) -> Result<(), Error> {
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        if !seen.insert(*cid.hash()) {
            continue;
        }
        if cid.codec() == RAW && !read_raw {
            if !store.has(cid.hash())? {
                return Err(Error::NotFound(cid));
            }
            visit(&cid, None)?;
            continue;
        }
        let data = store.get(&cid)?.ok_or(Error::NotFound(cid))?;
        let children = links(&cid, &data)?;
        visit(&cid, Some(&data))?;
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}
