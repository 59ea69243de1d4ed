//! The CIDs of the state's blocks.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::codec::cbor::DAG_CBOR;

/// The CID of a DAG-CBOR block: CIDv1, sha2-256.
pub fn block_cid(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash.
    let hash = Multihash::<64>::wrap(0x12, &digest).unwrap_or_default();
    Cid::new_v1(DAG_CBOR, hash)
}
