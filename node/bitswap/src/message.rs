//! Bitswap message types and their protobuf encoding, written by hand.
//!
//! The schema (boxo `message/pb/message.proto`, as Kubo 0.22 speaks it):
//!
//! ```text
//! Message  { Wantlist wantlist = 1; repeated bytes blocks = 2; repeated Block payload = 3;
//!            repeated BlockPresence blockPresences = 4; int32 pendingBytes = 5; }
//! Wantlist { repeated Entry entries = 1; bool full = 2; }
//! Entry    { bytes block = 1; int32 priority = 2; bool cancel = 3; WantType wantType = 4;
//!            bool sendDontHave = 5; }                     // WantType: Block = 0, Have = 1
//! Block    { bytes prefix = 1; bytes data = 2; }
//! BlockPresence { bytes cid = 1; Type type = 2; }         // Type: Have = 0, DontHave = 1
//! ```
//!
//! Encoding follows proto3 as Go writes it: default values (zero, false, empty) are left out.
//! Decoding accepts absent fields and skips unknown ones; a known field with the wrong wire
//! type, a truncated field or an unparsable CID fails the whole message (as in boxo).

use bytes::Bytes;
use cid::{Cid, Version};
use multihash::Multihash;
use sha2::{Digest as _, Sha256, Sha512};

use ipfsbench_protocols::codec::varint;

pub use super::protobuf::DecodeError;
use super::protobuf::{
    expect, len_field_size, put_int32, put_key, put_len_field, Reader, WT_LEN, WT_VARINT,
};

/// Multicodec of the dag-pb codec (the only codec of CIDv0).
const DAG_PB: u64 = 0x70;
/// Multihash code of the identity "hash" (the digest is the data itself).
const IDENTITY: u64 = 0x00;
/// Multihash code of sha2-256.
const SHA2_256: u64 = 0x12;
/// Multihash code of sha2-512.
const SHA2_512: u64 = 0x13;

/// A Bitswap protocol version, as negotiated on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// `/ipfs/bitswap`: the original protocol, blocks sent bare (CIDv0 only).
    Legacy,
    /// `/ipfs/bitswap/1.0.0`: like [`ProtocolVersion::Legacy`].
    V1_0_0,
    /// `/ipfs/bitswap/1.1.0`: blocks sent with a CID prefix (any CID version).
    V1_1_0,
    /// `/ipfs/bitswap/1.2.0`: adds want-have and HAVE / DONT_HAVE presences.
    V1_2_0,
}

impl ProtocolVersion {
    /// Every version, in the order we offer them (newest first).
    pub const ALL: [ProtocolVersion; 4] = [
        ProtocolVersion::V1_2_0,
        ProtocolVersion::V1_1_0,
        ProtocolVersion::V1_0_0,
        ProtocolVersion::Legacy,
    ];

    /// The protocol id negotiated by multistream-select.
    pub const fn protocol_id(self) -> &'static str {
        match self {
            ProtocolVersion::Legacy => "/ipfs/bitswap",
            ProtocolVersion::V1_0_0 => "/ipfs/bitswap/1.0.0",
            ProtocolVersion::V1_1_0 => "/ipfs/bitswap/1.1.0",
            ProtocolVersion::V1_2_0 => "/ipfs/bitswap/1.2.0",
        }
    }

    /// The version named by a protocol id, if it is one of ours.
    pub fn from_protocol_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.protocol_id() == id)
    }

    /// Whether want-have entries and HAVE / DONT_HAVE presences exist in this version.
    pub const fn supports_have(self) -> bool {
        matches!(self, ProtocolVersion::V1_2_0)
    }

    /// Whether blocks travel as `payload { prefix, data }` (else as bare `blocks`).
    pub const fn uses_payload(self) -> bool {
        matches!(self, ProtocolVersion::V1_1_0 | ProtocolVersion::V1_2_0)
    }
}

/// What a wantlist entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WantType {
    /// Send the block itself.
    Block,
    /// Say whether the block is held (HAVE), or send it when it is small.
    Have,
}

/// One wantlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The block wanted (or cancelled).
    pub cid: Cid,
    /// Higher is more urgent.
    pub priority: i32,
    /// Whether this entry withdraws an earlier want.
    pub cancel: bool,
    /// Block or presence.
    pub want_type: WantType,
    /// Whether the sender wants an explicit DONT_HAVE when the block is missing.
    pub send_dont_have: bool,
}

impl Entry {
    /// A want of the given type.
    pub fn want(cid: Cid, want_type: WantType, priority: i32, send_dont_have: bool) -> Self {
        Entry {
            cid,
            priority,
            cancel: false,
            want_type,
            send_dont_have,
        }
    }

    /// A cancel of an earlier want.
    pub fn cancel(cid: Cid) -> Self {
        Entry {
            cid,
            priority: 0,
            cancel: true,
            want_type: WantType::Block,
            send_dont_have: false,
        }
    }
}

/// Whether a peer holds a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceType {
    /// The block is held.
    Have,
    /// The block is not held.
    DontHave,
}

/// A HAVE or DONT_HAVE for one CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The block concerned.
    pub cid: Cid,
    /// Held or not.
    pub kind: PresenceType,
}

/// The CID fields a `payload` block carries, from which the receiver rebuilds the CID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// CID version (0 or 1).
    pub version: u64,
    /// Content codec (multicodec).
    pub codec: u64,
    /// Multihash function code.
    pub hash_code: u64,
    /// Digest length in bytes; values that fit no digest (Go's `-1`) mean "the function's
    /// full length".
    pub hash_len: u64,
}

impl Prefix {
    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Self {
        Prefix {
            version: match cid.version() {
                Version::V0 => 0,
                Version::V1 => 1,
            },
            codec: cid.codec(),
            hash_code: cid.hash().code(),
            hash_len: u64::from(cid.hash().size()),
        }
    }

    /// The prefix as bytes: four uvarints.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        for v in [self.version, self.codec, self.hash_code, self.hash_len] {
            varint::encode(v, &mut out);
        }
        out
    }

    /// Parses four uvarints; trailing bytes are an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let prefix = Prefix {
            version: r.varint()?,
            codec: r.varint()?,
            hash_code: r.varint()?,
            hash_len: r.varint()?,
        };
        if !r.is_empty() {
            return Err(DecodeError::Malformed("trailing bytes after block prefix"));
        }
        Ok(prefix)
    }

    /// Hashes `data` as this prefix says and returns the block's CID.
    pub fn cid_of(&self, data: &[u8]) -> Result<Cid, BlockError> {
        let full_len = match self.hash_code {
            IDENTITY => data.len(),
            SHA2_256 => 32,
            SHA2_512 => 64,
            other => return Err(BlockError::UnsupportedHash(other)),
        };
        let len = match usize::try_from(self.hash_len) {
            Ok(len) if len <= full_len => len,
            // Go encodes "default length" (-1) as a huge uvarint.
            _ if self.hash_len > u64::from(u32::MAX) => full_len,
            _ => return Err(BlockError::Invalid("digest length exceeds the hash's")),
        };
        let mh = match self.hash_code {
            IDENTITY => {
                if len != data.len() {
                    return Err(BlockError::Invalid(
                        "identity digest length differs from data",
                    ));
                }
                Multihash::wrap(IDENTITY, data)
            }
            SHA2_256 => Multihash::wrap(SHA2_256, &Sha256::digest(data)[..len]),
            _ => Multihash::wrap(SHA2_512, &Sha512::digest(data)[..len]),
        }
        .map_err(|_| BlockError::Invalid("digest does not fit a multihash"))?;
        match self.version {
            0 if self.codec == DAG_PB => {
                Cid::new_v0(mh).map_err(|_| BlockError::Invalid("CIDv0 needs a sha2-256 digest"))
            }
            0 => Err(BlockError::Invalid("CIDv0 needs the dag-pb codec")),
            1 => Ok(Cid::new_v1(self.codec, mh)),
            _ => Err(BlockError::Invalid("unknown CID version")),
        }
    }
}

/// The prefix of blocks sent bare (field 2), which are CIDv0: dag-pb, sha2-256.
pub const V0_PREFIX: Prefix = Prefix {
    version: 0,
    codec: DAG_PB,
    hash_code: SHA2_256,
    hash_len: 32,
};

/// Why a received block was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The multihash function is not one we verify (sha2-256, sha2-512, identity).
    #[error("unsupported multihash function {0:#x}")]
    UnsupportedHash(u64),
    /// The prefix cannot describe this block: the sender is broken.
    #[error("invalid block: {0}")]
    Invalid(&'static str),
}

/// A block as it travels: the data and, since 1.1.0, the prefix of its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The CID prefix; `None` for a bare block (field 2), which is CIDv0.
    pub prefix: Option<Prefix>,
    /// The block's bytes (a received block shares the frame it came in: no copy).
    pub data: Bytes,
}

impl Payload {
    /// A payload for sending `data` named by `cid`.
    pub fn new(cid: &Cid, data: impl Into<Bytes>) -> Self {
        Payload {
            prefix: Some(Prefix::of(cid)),
            data: data.into(),
        }
    }

    /// The CID the data hashes to under its prefix: receiving a payload verifies it.
    pub fn cid(&self) -> Result<Cid, BlockError> {
        self.prefix.unwrap_or(V0_PREFIX).cid_of(&self.data)
    }
}

/// One Bitswap message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Wantlist entries (wants and cancels).
    pub wantlist: Vec<Entry>,
    /// Whether `wantlist` replaces the sender's whole wantlist (else it is a delta).
    pub full: bool,
    /// Blocks.
    pub blocks: Vec<Payload>,
    /// HAVE / DONT_HAVE answers.
    pub presences: Vec<Presence>,
    /// Bytes the sender still has queued for us (informational).
    pub pending_bytes: i32,
}

impl Message {
    /// Whether the message carries nothing.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_empty()
            && !self.full
            && self.blocks.is_empty()
            && self.presences.is_empty()
    }

    /// Encodes for a peer speaking `version`: before 1.2.0 want-have entries and presences
    /// are left out (such peers cannot read them), before 1.1.0 blocks go bare.
    pub fn encode(&self, version: ProtocolVersion) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        let wantlist = encode_wantlist(&self.wantlist, self.full, version);
        if !wantlist.is_empty() {
            put_len_field(&mut out, 1, &wantlist);
        }
        for block in &self.blocks {
            if version.uses_payload() {
                let prefix = block.prefix.unwrap_or(V0_PREFIX).to_bytes();
                let inner = len_field_size(1, prefix.len()) + len_field_size(2, block.data.len());
                put_key(&mut out, 3, WT_LEN);
                varint::encode(inner as u64, &mut out);
                put_len_field(&mut out, 1, &prefix);
                put_len_field(&mut out, 2, &block.data);
            } else {
                put_len_field(&mut out, 2, &block.data);
            }
        }
        if version.supports_have() {
            for p in &self.presences {
                let mut inner = Vec::with_capacity(48);
                put_len_field(&mut inner, 1, &p.cid.to_bytes());
                if p.kind == PresenceType::DontHave {
                    put_key(&mut inner, 2, WT_VARINT);
                    varint::encode(1, &mut inner);
                }
                put_len_field(&mut out, 4, &inner);
            }
        }
        if self.pending_bytes != 0 {
            put_key(&mut out, 5, WT_VARINT);
            put_int32(&mut out, self.pending_bytes);
        }
        out
    }

    /// An upper estimate of the encoded size, in bytes.
    pub fn size_hint(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(|b| b.data.len() + 40).sum();
        blocks + (self.wantlist.len() + self.presences.len()) * ENTRY_SIZE_HINT + 32
    }

    /// Decodes one message (any version: all fields are read when present).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_in(bytes, None)
    }

    /// [`Message::decode`] of a received frame: the blocks are slices of `frame`, not copies.
    pub fn decode_shared(frame: &Bytes) -> Result<Self, DecodeError> {
        Self::decode_in(frame, Some(frame))
    }

    /// Decodes `bytes`; blocks share `owner` (which holds `bytes`) when given, else are copied.
    fn decode_in(bytes: &[u8], owner: Option<&Bytes>) -> Result<Self, DecodeError> {
        let mut msg = Message::default();
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let (field, wt) = r.key()?;
            match field {
                1 => {
                    expect(field, wt, WT_LEN)?;
                    decode_wantlist(r.bytes()?, &mut msg)?;
                }
                2 => {
                    expect(field, wt, WT_LEN)?;
                    msg.blocks.push(Payload {
                        prefix: None,
                        data: share(owner, r.bytes()?),
                    });
                }
                3 => {
                    expect(field, wt, WT_LEN)?;
                    msg.blocks.push(decode_payload(r.bytes()?, owner)?);
                }
                4 => {
                    expect(field, wt, WT_LEN)?;
                    if let Some(p) = decode_presence(r.bytes()?)? {
                        msg.presences.push(p);
                    }
                }
                5 => {
                    expect(field, wt, WT_VARINT)?;
                    msg.pending_bytes = r.varint()? as i32;
                }
                _ => r.skip(wt)?,
            }
        }
        Ok(msg)
    }
}

/// Upper estimate of one encoded wantlist entry or presence (CIDs of 64-byte digests).
pub(crate) const ENTRY_SIZE_HINT: usize = 100;

fn encode_wantlist(entries: &[Entry], full: bool, version: ProtocolVersion) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 48 + 2);
    let mut inner = Vec::with_capacity(ENTRY_SIZE_HINT);
    for e in entries {
        if !e.cancel && e.want_type == WantType::Have && !version.supports_have() {
            continue;
        }
        inner.clear();
        put_len_field(&mut inner, 1, &e.cid.to_bytes());
        if e.priority != 0 {
            put_key(&mut inner, 2, WT_VARINT);
            put_int32(&mut inner, e.priority);
        }
        if e.cancel {
            put_key(&mut inner, 3, WT_VARINT);
            varint::encode(1, &mut inner);
        }
        if version.supports_have() {
            if e.want_type == WantType::Have {
                put_key(&mut inner, 4, WT_VARINT);
                varint::encode(1, &mut inner);
            }
            if e.send_dont_have {
                put_key(&mut inner, 5, WT_VARINT);
                varint::encode(1, &mut inner);
            }
        }
        put_len_field(&mut out, 1, &inner);
    }
    if full {
        put_key(&mut out, 2, WT_VARINT);
        varint::encode(1, &mut out);
    }
    out
}

fn decode_wantlist(bytes: &[u8], msg: &mut Message) -> Result<(), DecodeError> {
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(field, wt, WT_LEN)?;
                msg.wantlist.push(decode_entry(r.bytes()?)?);
            }
            2 => {
                expect(field, wt, WT_VARINT)?;
                msg.full = r.varint()? != 0;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(())
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut cid = None;
    let mut entry = Entry::want(Cid::default(), WantType::Block, 0, false);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(field, wt, WT_LEN)?;
                cid = Some(parse_cid(r.bytes()?)?);
            }
            2 => {
                expect(field, wt, WT_VARINT)?;
                entry.priority = r.varint()? as i32;
            }
            3 => {
                expect(field, wt, WT_VARINT)?;
                entry.cancel = r.varint()? != 0;
            }
            4 => {
                expect(field, wt, WT_VARINT)?;
                // As in boxo: only Have (1) is a want-have, anything else a want-block.
                entry.want_type = if r.varint()? == 1 {
                    WantType::Have
                } else {
                    WantType::Block
                };
            }
            5 => {
                expect(field, wt, WT_VARINT)?;
                entry.send_dont_have = r.varint()? != 0;
            }
            _ => r.skip(wt)?,
        }
    }
    entry.cid = cid.ok_or(DecodeError::Malformed("wantlist entry without CID"))?;
    Ok(entry)
}

/// `data` (a slice of `owner`'s bytes, when given) as shared bytes.
fn share(owner: Option<&Bytes>, data: &[u8]) -> Bytes {
    match owner {
        Some(owner) => owner.slice_ref(data),
        None => Bytes::copy_from_slice(data),
    }
}

fn decode_payload(bytes: &[u8], owner: Option<&Bytes>) -> Result<Payload, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut prefix = None;
    let mut data: &[u8] = &[];
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(field, wt, WT_LEN)?;
                prefix = Some(Prefix::from_bytes(r.bytes()?)?);
            }
            2 => {
                expect(field, wt, WT_LEN)?;
                data = r.bytes()?;
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(Payload {
        prefix: Some(prefix.ok_or(DecodeError::Malformed("payload without prefix"))?),
        data: share(owner, data),
    })
}

/// Decodes a presence; `None` for presence types this version does not know.
fn decode_presence(bytes: &[u8]) -> Result<Option<Presence>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut cid = None;
    let mut kind = Some(PresenceType::Have);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect(field, wt, WT_LEN)?;
                cid = Some(parse_cid(r.bytes()?)?);
            }
            2 => {
                expect(field, wt, WT_VARINT)?;
                kind = match r.varint()? {
                    0 => Some(PresenceType::Have),
                    1 => Some(PresenceType::DontHave),
                    _ => None,
                };
            }
            _ => r.skip(wt)?,
        }
    }
    let cid = cid.ok_or(DecodeError::Malformed("presence without CID"))?;
    Ok(kind.map(|kind| Presence { cid, kind }))
}

fn parse_cid(bytes: &[u8]) -> Result<Cid, DecodeError> {
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest).map_err(|e| DecodeError::Cid(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Cid("trailing bytes".into()));
    }
    Ok(cid)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn raw_cid(data: &[u8]) -> Cid {
        Cid::new_v1(
            0x55,
            Multihash::wrap(SHA2_256, &Sha256::digest(data)).unwrap(),
        )
    }

    fn v0_cid(data: &[u8]) -> Cid {
        Cid::new_v0(Multihash::wrap(SHA2_256, &Sha256::digest(data)).unwrap()).unwrap()
    }

    #[test]
    fn uvarint_lengths() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            varint::encode(v, &mut out);
            assert_eq!(out.len(), varint::encoded_len(v), "{v}");
            assert_eq!(Reader::new(&out).varint().unwrap(), v);
        }
    }

    /// `hello world\n` as `ipfs add --cid-version 1` names it (INTEROP.md).
    #[test]
    fn payload_verifies_known_cid() {
        let data = b"hello world\n".to_vec();
        let want: Cid = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
            .parse()
            .unwrap();
        assert_eq!(Payload::new(&want, data.clone()).cid().unwrap(), want);
        // The same multihash as a bare (v1.0.0) block is the CIDv0 of the bytes.
        let bare = Payload {
            prefix: None,
            data: data.into(),
        };
        assert_eq!(bare.cid().unwrap().hash(), want.hash());
    }

    #[test]
    fn prefix_of_cidv0_and_v1() {
        let v0 = v0_cid(b"x");
        assert_eq!(Prefix::of(&v0).to_bytes(), vec![0x00, 0x70, 0x12, 0x20]);
        let v1 = raw_cid(b"x");
        assert_eq!(Prefix::of(&v1).to_bytes(), vec![0x01, 0x55, 0x12, 0x20]);
        // Go's "default length" (-1 as uvarint) means the full digest.
        let mut go = vec![0x01, 0x55, 0x12];
        varint::encode(u64::MAX, &mut go);
        assert_eq!(Prefix::from_bytes(&go).unwrap().cid_of(b"x").unwrap(), v1);
    }

    #[test]
    fn prefix_rejects_unverifiable() {
        let p = Prefix {
            version: 1,
            codec: 0x55,
            hash_code: 0x1e, // blake3
            hash_len: 32,
        };
        assert_eq!(p.cid_of(b"x"), Err(BlockError::UnsupportedHash(0x1e)));
        let p = Prefix {
            hash_code: IDENTITY,
            hash_len: 3,
            ..p
        };
        assert!(matches!(p.cid_of(b"xy"), Err(BlockError::Invalid(_))));
        assert!(p.cid_of(b"xyz").is_ok());
        let p = Prefix {
            hash_code: SHA2_256,
            hash_len: 33,
            ..p
        };
        assert!(matches!(p.cid_of(b"x"), Err(BlockError::Invalid(_))));
    }

    /// Encodings checked byte by byte against the schema.
    #[test]
    fn hand_checked_encodings() {
        let cid = raw_cid(b"a");
        let cb = cid.to_bytes();
        assert_eq!(cb.len(), 36);

        // A want-have with sendDontHave and priority 1.
        let msg = Message {
            wantlist: vec![Entry::want(cid, WantType::Have, 1, true)],
            ..Message::default()
        };
        let mut entry = vec![0x0a, 36];
        entry.extend_from_slice(&cb);
        entry.extend_from_slice(&[0x10, 0x01, 0x20, 0x01, 0x28, 0x01]);
        let mut want = vec![0x0a, entry.len() as u8 + 2, 0x0a, entry.len() as u8];
        want.extend_from_slice(&entry);
        assert_eq!(msg.encode(ProtocolVersion::V1_2_0), want);
        assert_eq!(Message::decode(&want).unwrap(), msg);
        // 1.1.0 cannot express want-have: the entry is left out.
        assert_eq!(msg.encode(ProtocolVersion::V1_1_0), Vec::<u8>::new());

        // A cancel in a full wantlist: block, cancel=true, then full=true.
        let msg = Message {
            wantlist: vec![Entry::cancel(cid)],
            full: true,
            ..Message::default()
        };
        let mut entry = vec![0x0a, 36];
        entry.extend_from_slice(&cb);
        entry.extend_from_slice(&[0x18, 0x01]);
        let mut want = vec![0x0a, entry.len() as u8 + 4, 0x0a, entry.len() as u8];
        want.extend_from_slice(&entry);
        want.extend_from_slice(&[0x10, 0x01]);
        assert_eq!(msg.encode(ProtocolVersion::V1_2_0), want);
        assert_eq!(Message::decode(&want).unwrap(), msg);

        // A payload block and a DONT_HAVE.
        let msg = Message {
            blocks: vec![Payload::new(&cid, b"a".to_vec())],
            presences: vec![Presence {
                cid,
                kind: PresenceType::DontHave,
            }],
            ..Message::default()
        };
        let mut want = vec![0x1a, 9, 0x0a, 4, 0x01, 0x55, 0x12, 0x20, 0x12, 1, b'a'];
        want.extend_from_slice(&[0x22, 40, 0x0a, 36]);
        want.extend_from_slice(&cb);
        want.extend_from_slice(&[0x10, 0x01]);
        assert_eq!(msg.encode(ProtocolVersion::V1_2_0), want);
        assert_eq!(Message::decode(&want).unwrap(), msg);
        // 1.0.0: the block goes bare in field 2, the presence is dropped.
        assert_eq!(msg.encode(ProtocolVersion::V1_0_0), vec![0x12, 1, b'a']);

        // A HAVE has no type field (Have = 0 is the default).
        let msg = Message {
            presences: vec![Presence {
                cid,
                kind: PresenceType::Have,
            }],
            ..Message::default()
        };
        let mut want = vec![0x22, 38, 0x0a, 36];
        want.extend_from_slice(&cb);
        assert_eq!(msg.encode(ProtocolVersion::V1_2_0), want);

        // A negative pendingBytes takes ten bytes, as int32 does in protobuf.
        let msg = Message {
            pending_bytes: -1,
            ..Message::default()
        };
        let enc = msg.encode(ProtocolVersion::V1_2_0);
        assert_eq!(enc.len(), 11);
        assert_eq!(Message::decode(&enc).unwrap(), msg);
    }

    #[test]
    fn decode_skips_unknown_fields_and_accepts_defaults() {
        let cid = v0_cid(b"b");
        // Entry with only its CID, plus unknown fields of every wire type around it.
        let mut entry = vec![0x0a, 34];
        entry.extend_from_slice(&cid.to_bytes());
        entry.extend_from_slice(&[0x30, 0x05]); // field 6 varint
        let mut wl = vec![0x0a, entry.len() as u8];
        wl.extend_from_slice(&entry);
        let mut msg = vec![0x0a, wl.len() as u8];
        msg.extend_from_slice(&wl);
        msg.extend_from_slice(&[0x31, 1, 2, 3, 4, 5, 6, 7, 8]); // field 6 fixed64
        msg.extend_from_slice(&[0x3a, 2, 0xff, 0xff]); // field 7 bytes
        msg.extend_from_slice(&[0x45, 1, 2, 3, 4]); // field 8 fixed32
        let got = Message::decode(&msg).unwrap();
        assert_eq!(
            got.wantlist,
            vec![Entry::want(cid, WantType::Block, 0, false)]
        );
        assert!(!got.full);
        assert_eq!(Message::decode(&[]).unwrap(), Message::default());
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(Message::decode(&[0x0a]), Err(DecodeError::Truncated));
        assert_eq!(Message::decode(&[0x0a, 5, 1]), Err(DecodeError::Truncated));
        assert_eq!(Message::decode(&[0x0f]), Err(DecodeError::WireType(7)));
        assert_eq!(Message::decode(&[0x3b]), Err(DecodeError::WireType(3))); // group start
        assert!(matches!(
            Message::decode(&[0x08, 1]),
            Err(DecodeError::FieldType { field: 1, .. })
        ));
        assert_eq!(
            Message::decode(&[0xff; 11]),
            Err(DecodeError::VarintOverflow)
        );
        // A wantlist entry whose CID does not parse.
        assert!(matches!(
            Message::decode(&[0x0a, 4, 0x0a, 2, 0x0a, 0]),
            Err(DecodeError::Cid(_))
        ));
    }

    fn arb_cid() -> impl Strategy<Value = Cid> {
        (
            any::<bool>(),
            prop::sample::select(vec![0x55u64, 0x70, 0x71, 0x0129]),
            prop::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(|(v0, codec, data)| {
                if v0 {
                    v0_cid(&data)
                } else {
                    let mh = Multihash::wrap(SHA2_512, &Sha512::digest(&data)).unwrap();
                    Cid::new_v1(codec, mh)
                }
            })
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            arb_cid(),
            any::<i32>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(cid, priority, cancel, have, send_dont_have)| Entry {
                cid,
                priority,
                cancel,
                want_type: if have {
                    WantType::Have
                } else {
                    WantType::Block
                },
                send_dont_have,
            })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            prop::collection::vec(arb_entry(), 0..8),
            any::<bool>(),
            prop::collection::vec((arb_cid(), prop::collection::vec(any::<u8>(), 0..64)), 0..4),
            prop::collection::vec((arb_cid(), any::<bool>()), 0..8),
            any::<i32>(),
        )
            .prop_map(
                |(wantlist, full, blocks, presences, pending_bytes)| Message {
                    wantlist,
                    full,
                    blocks: blocks
                        .into_iter()
                        .map(|(cid, data)| Payload::new(&cid, data))
                        .collect(),
                    presences: presences
                        .into_iter()
                        .map(|(cid, dh)| Presence {
                            cid,
                            kind: if dh {
                                PresenceType::DontHave
                            } else {
                                PresenceType::Have
                            },
                        })
                        .collect(),
                    pending_bytes,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip_v1_2(msg in arb_message()) {
            let enc = msg.encode(ProtocolVersion::V1_2_0);
            prop_assert!(enc.len() <= msg.size_hint());
            prop_assert_eq!(Message::decode(&enc).unwrap(), msg);
        }

        #[test]
        fn round_trip_v1_0_keeps_block_bytes(msg in arb_message()) {
            let got = Message::decode(&msg.encode(ProtocolVersion::V1_0_0)).unwrap();
            let data: Vec<_> = msg.blocks.iter().map(|b| &b.data).collect();
            prop_assert_eq!(got.blocks.iter().map(|b| &b.data).collect::<Vec<_>>(), data);
            prop_assert!(got.blocks.iter().all(|b| b.prefix.is_none()));
            prop_assert!(got.presences.is_empty());
            prop_assert!(got.wantlist.iter().all(|e| e.cancel || e.want_type == WantType::Block));
        }

        #[test]
        fn payload_cid_matches_for_real_blocks(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let cid = raw_cid(&data);
            prop_assert_eq!(Payload::new(&cid, data.clone()).cid().unwrap(), cid);
            prop_assert_eq!(Payload { prefix: None, data: data.clone().into() }.cid().unwrap(), v0_cid(&data));
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::decode(&bytes);
        }
    }
}
