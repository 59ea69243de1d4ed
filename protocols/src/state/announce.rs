//! What a node says on the cluster's state topic: its heads, its newest snapshot, a digest
//! of its state and its clock's promise.

use serde::{Deserialize, Serialize};

use super::delta::{DeltaRef, MAX_PARENTS};
use super::error::StateError;
use crate::codec::cbor::DAG_CBOR;
use crate::task::{WireCid, WirePeer, TOPIC_PREFIX};

/// The encoding version of [`Announce`], its first byte.
pub const ANNOUNCE_VERSION: u8 = 1;
/// The largest encoded announcement. Bytes.
pub const MAX_ANNOUNCE_BYTES: usize = 32 * 1024;
/// The most heads an announcement may name.
pub const MAX_HEADS: usize = MAX_PARENTS;

/// How every state topic's name ends.
pub const TOPIC_SUFFIX: &str = "/state/1";

/// The state topic of `cluster`: `/ipfsbench/<cluster>/state/1`.
pub fn topic(cluster: &str) -> String {
    format!("{TOPIC_PREFIX}{cluster}{TOPIC_SUFFIX}")
}

/// A head as an announcement names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRef {
    /// The delta's CID.
    pub cid: WireCid,
    /// Its writer.
    pub writer: WirePeer,
    /// The writer's sequence.
    pub seq: u64,
    /// Its height.
    pub height: u64,
}

impl From<DeltaRef> for WireRef {
    fn from(r: DeltaRef) -> Self {
        Self {
            cid: WireCid(r.cid),
            writer: WirePeer(r.writer),
            seq: r.seq,
            height: r.height,
        }
    }
}

impl From<WireRef> for DeltaRef {
    fn from(r: WireRef) -> Self {
        Self {
            cid: r.cid.0,
            writer: r.writer.0,
            seq: r.seq,
            height: r.height,
        }
    }
}

/// What a node says on the state topic, on every change and periodically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Its heads.
    pub heads: Vec<WireRef>,
    /// The highest sequence of its own deltas.
    pub own_seq: u64,
    /// Its clock now: none of its deltas after `own_seq` will carry a lower stamp.
    pub stamp: u64,
    /// Entries of its materialized state, tombstones included.
    pub entries: u64,
    /// The digest of its materialized state: equal digests, equal states.
    pub digest: [u8; 32],
    /// Its newest snapshot's root, if it has one.
    pub snapshot: Option<WireCid>,
}

impl Announce {
    /// The payload: a version byte, then postcard.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        self.check()?;
        let mut out = vec![ANNOUNCE_VERSION];
        out.extend(postcard::to_stdvec(self).map_err(|e| StateError::Malformed(e.to_string()))?);
        if out.len() > MAX_ANNOUNCE_BYTES {
            return Err(StateError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Decodes and checks a payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.len() > MAX_ANNOUNCE_BYTES {
            return Err(StateError::TooLarge(bytes.len()));
        }
        let Some((&ANNOUNCE_VERSION, body)) = bytes.split_first() else {
            return Err(StateError::Version(
                bytes.first().copied().map_or(0, u64::from),
            ));
        };
        let (announce, rest): (Announce, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| StateError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(StateError::Malformed(format!(
                "{} bytes after the message",
                rest.len()
            )));
        }
        announce.check()?;
        Ok(announce)
    }

    fn check(&self) -> Result<(), StateError> {
        if self.heads.len() > MAX_HEADS {
            return Err(StateError::Limit("heads"));
        }
        if self
            .heads
            .iter()
            .any(|h| h.cid.0.codec() != DAG_CBOR || h.seq == 0)
        {
            return Err(StateError::Invalid("a head is not a delta"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::block_cid;
    use libp2p::PeerId;
    use proptest::prelude::*;

    fn announce() -> Announce {
        Announce {
            heads: vec![WireRef {
                cid: WireCid(block_cid(b"x")),
                writer: WirePeer(PeerId::random()),
                seq: 4,
                height: 9,
            }],
            own_seq: 3,
            stamp: 1 << 20,
            entries: 10,
            digest: [1; 32],
            snapshot: Some(WireCid(block_cid(b"s"))),
        }
    }

    #[test]
    fn an_announcement_round_trips() {
        let a = announce();
        assert_eq!(Announce::decode(&a.encode().unwrap()).unwrap(), a);
        assert_eq!(topic("lab"), "/ipfsbench/lab/state/1");
    }

    #[test]
    fn bad_announcements_are_refused() {
        let mut bytes = announce().encode().unwrap();
        bytes[0] = 9;
        assert_eq!(Announce::decode(&bytes), Err(StateError::Version(9)));
        let mut a = announce();
        a.heads[0].seq = 0;
        assert!(a.encode().is_err());
        let mut a = announce();
        a.heads = vec![a.heads[0]; MAX_HEADS + 1];
        assert!(a.encode().is_err());
        let mut bytes = announce().encode().unwrap();
        bytes.push(0);
        assert!(Announce::decode(&bytes).is_err(), "trailing bytes");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut with_version = vec![ANNOUNCE_VERSION];
            with_version.extend(&bytes);
            let _ = Announce::decode(&bytes);
            let _ = Announce::decode(&with_version);
        }
    }
}
