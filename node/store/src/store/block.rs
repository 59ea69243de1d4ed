//! Blocks: bytes named by a CID, and the hashing that ties the two together.

use cid::Cid;
use multihash::Multihash;
use sha2::Digest;

/// Multicodec of dag-pb nodes (UnixFS files and directories).
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks (CIDv1 raw leaves).
pub const RAW: u64 = 0x55;
/// Multihash code of the identity "hash" (the data is the digest).
pub const IDENTITY: u64 = 0x00;
/// Multihash code of sha2-256, the default everywhere.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of sha2-512.
pub const SHA2_512: u64 = 0x13;

/// The largest block the store accepts, in bytes (2 MiB: what Bitswap peers must carry).
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// A multihash as stored in CIDs (digests up to 64 bytes).
pub type Hash = Multihash<64>;

/// Why a block was refused.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The bytes do not hash to the digest in the CID.
    #[error("block bytes do not match CID {cid}: hash mismatch")]
    HashMismatch {
        /// The CID that was claimed for the bytes.
        cid: Cid,
    },
    /// The CID uses a hash function this node cannot check.
    #[error("unsupported hash function 0x{code:x} in CID {cid}")]
    UnsupportedHash {
        /// The CID that named the hash.
        cid: Cid,
        /// The multihash code.
        code: u64,
    },
    /// The block is larger than [`MAX_BLOCK_SIZE`].
    #[error("block of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The block's size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// The sha2-256 multihash of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    let digest = sha2::Sha256::digest(data);
    // A 32-byte digest always fits the 64-byte multihash.
    Hash::wrap(SHA2_256, &digest).unwrap_or_default()
}

/// Hashes `data` with the function `code`, or `None` if it is not supported.
pub fn hash_with(code: u64, data: &[u8]) -> Option<Hash> {
    match code {
        SHA2_256 => Some(sha256(data)),
        SHA2_512 => Hash::wrap(SHA2_512, &sha2::Sha512::digest(data)).ok(),
        IDENTITY => Hash::wrap(IDENTITY, data).ok(),
        _ => None,
    }
}

/// Checks that `data` is what `cid` names, and is not too large.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), BlockError> {
    if data.len() > MAX_BLOCK_SIZE {
        return Err(BlockError::TooLarge {
            size: data.len(),
            max: MAX_BLOCK_SIZE,
        });
    }
    let code = cid.hash().code();
    let actual = hash_with(code, data).ok_or(BlockError::UnsupportedHash { cid: *cid, code })?;
    if &actual != cid.hash() {
        return Err(BlockError::HashMismatch { cid: *cid });
    }
    Ok(())
}

/// The CID of `data` under `codec` and sha2-256: v0 when `v0` and the codec allows it.
pub fn cid_for(codec: u64, data: &[u8], v0: bool) -> Cid {
    let hash = sha256(data);
    if v0 && codec == DAG_PB {
        // v0 accepts only sha2-256 dag-pb, which this is.
        Cid::new_v0(hash).unwrap_or_else(|_| Cid::new_v1(codec, hash))
    } else {
        Cid::new_v1(codec, hash)
    }
}

/// Parses a CID string (v0 base58 or v1 multibase) with a message that says what was wrong.
pub fn parse_cid(s: &str) -> Result<Cid, InvalidCid> {
    Cid::try_from(s).map_err(|e| InvalidCid {
        input: s.chars().take(100).collect(),
        reason: e.to_string(),
    })
}

/// A string that is not a CID.
#[derive(Debug, thiserror::Error)]
#[error("invalid CID {input:?}: {reason}")]
pub struct InvalidCid {
    /// The input (truncated to 100 characters).
    pub input: String,
    /// What the parser said.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_rejects_wrong_bytes() {
        let cid = cid_for(RAW, b"hello", false);
        assert!(verify(&cid, b"hello").is_ok());
        assert!(matches!(
            verify(&cid, b"hellO"),
            Err(BlockError::HashMismatch { .. })
        ));
    }

    #[test]
    fn parse_cid_explains() {
        let err = parse_cid("not-a-cid").unwrap_err();
        assert!(err.to_string().contains("invalid CID"));
        assert!(parse_cid("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o").is_ok());
    }
}

/// A block whose bytes are known to match its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    /// Shared bytes: a block received over Bitswap is a slice of the frame it came in.
    data: bytes::Bytes,
}

impl Block {
    /// Checks `data` against `cid`.
    pub fn new(cid: Cid, data: Vec<u8>) -> Result<Self, BlockError> {
        verify(&cid, &data)?;
        Ok(Self {
            cid,
            data: data.into(),
        })
    }

    /// A block whose bytes a protocol layer of this node already checked against `cid` (Bitswap
    /// verifies every block it receives before handing it over).
    pub fn verified_upstream(cid: Cid, data: bytes::Bytes) -> Self {
        Self { cid, data }
    }

    /// Hashes `data` with sha2-256 under `codec` (CIDv0 when `v0` and the codec is dag-pb).
    pub fn hash(codec: u64, data: Vec<u8>, v0: bool) -> Self {
        Self {
            cid: cid_for(codec, &data, v0),
            data: data.into(),
        }
    }

    /// The block's CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The block's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the bytes out (shared, not copied).
    pub fn into_data(self) -> bytes::Bytes {
        self.data
    }
}
