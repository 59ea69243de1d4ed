//! CIDs for the codecs' test vectors.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

/// The dag-pb codec.
pub(crate) const DAG_PB: u64 = 0x70;

/// The CID of `data` under `codec` with a sha2-256 hash: v0 when asked and the codec is
/// dag-pb, else v1.
pub(crate) fn cid_for(codec: u64, data: &[u8], v0: bool) -> Cid {
    let digest = Sha256::digest(data);
    let hash = Multihash::<64>::wrap(0x12, &digest).expect("a 32-byte digest fits");
    if v0 && codec == DAG_PB {
        Cid::new_v0(hash).expect("sha2-256 dag-pb")
    } else {
        Cid::new_v1(codec, hash)
    }
}
