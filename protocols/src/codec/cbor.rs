//! The DAG-CBOR subset the replicated state's blocks use: unsigned integers, byte and text
//! strings, arrays, maps with text keys, null, booleans and CID links (tag 42).
//!
//! Encoding is canonical (shortest integer forms, map keys sorted by length, then bytes), so a
//! value has exactly one encoding and one CID. Decoding is strict and bounded: it refuses
//! anything else (indefinite lengths, floats, other tags, non-canonical forms, trailing bytes),
//! never nests deeper than [`MAX_DEPTH`], and never allocates more than the input could hold.
//!
//! [`Value::decode_ipld`] reads the wider IPLD data model that user-supplied DAG-CBOR may carry
//! (`dag/put`): negative integers and 64-bit floats as well, nested up to a depth the caller
//! chooses; it is as strict about canonical form. The replicated state uses [`Value::decode`]
//! only, so its blocks never hold either.

use cid::Cid;

/// The DAG-CBOR codec.
pub const DAG_CBOR: u64 = 0x71;

/// Items reserved ahead for an array or map: each item may be much larger than its first
/// byte, so a declared length is not trusted for allocation.
const PREALLOCATE: usize = 1_024;
/// The deepest nesting of arrays and maps a block may have.
pub const MAX_DEPTH: usize = 8;

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An unsigned integer.
    Uint(u64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Value>),
    /// A map with text keys, in canonical order.
    Map(Vec<(String, Value)>),
    /// A CID link.
    Link(Cid),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
    /// A negative integer, `-1 - n` (only from [`Value::decode_ipld`] or built by hand).
    Negative(u64),
    /// A finite float (only from [`Value::decode_ipld`] or built by hand).
    Float(Float),
}

/// A finite 64-bit float, compared by its bits so that values stay `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Float(f64);

impl Float {
    /// `x`, unless it is NaN or infinite (which DAG-CBOR forbids).
    pub fn new(x: f64) -> Option<Self> {
        x.is_finite().then_some(Self(x))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

/// What a decoder accepts beyond the state's subset.
#[derive(Debug, Clone, Copy)]
struct Profile {
    /// Negative integers and floats.
    ipld: bool,
    /// The deepest nesting of arrays and maps.
    max_depth: usize,
}

/// Why bytes are not a value of this subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ended inside a value.
    #[error("truncated")]
    Truncated,
    /// Bytes follow the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested too deeply")]
    TooDeep,
    /// Something outside the subset or not in canonical form.
    #[error("not canonical DAG-CBOR: {0}")]
    Unsupported(&'static str),
    /// A field is missing or has the wrong type.
    #[error("field {0:?} is missing or has the wrong type")]
    Field(&'static str),
    /// A link's bytes are not a CID.
    #[error("bad CID in a link")]
    BadCid,
}

impl Value {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Uint(n) => head(out, 0, *n),
            Value::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Value::Array(items) => {
                head(out, 4, items.len() as u64);
                for item in items {
                    item.write(out);
                }
            }
            Value::Map(entries) => {
                let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
                sorted.sort_by(|a, b| key_order(&a.0, &b.0));
                head(out, 5, sorted.len() as u64);
                for (k, v) in sorted {
                    head(out, 3, k.len() as u64);
                    out.extend_from_slice(k.as_bytes());
                    v.write(out);
                }
            }
            Value::Link(cid) => {
                head(out, 6, 42);
                let bytes = cid.to_bytes();
                head(out, 2, bytes.len() as u64 + 1);
                out.push(0);
                out.extend_from_slice(&bytes);
            }
            Value::Bool(false) => out.push(0xf4),
            Value::Bool(true) => out.push(0xf5),
            Value::Null => out.push(0xf6),
            Value::Negative(n) => head(out, 1, *n),
            // DAG-CBOR writes every float in its 64-bit form.
            Value::Float(x) => {
                out.push(0xfb);
                out.extend_from_slice(&x.0.to_be_bytes());
            }
        }
    }

    /// Decodes exactly one value of the state's subset that fills `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
        Self::decode_with(
            bytes,
            Profile {
                ipld: false,
                max_depth: MAX_DEPTH,
            },
        )
    }

    /// Decodes exactly one canonical DAG-CBOR value of the IPLD data model (negative
    /// integers and 64-bit floats included) nested at most `max_depth` deep.
    pub fn decode_ipld(bytes: &[u8], max_depth: usize) -> Result<Value, CborError> {
        Self::decode_with(
            bytes,
            Profile {
                ipld: true,
                max_depth,
            },
        )
    }

    fn decode_with(bytes: &[u8], profile: Profile) -> Result<Value, CborError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            profile,
        };
        let v = r.value(0)?;
        match bytes.len() - r.pos {
            0 => Ok(v),
            n => Err(CborError::Trailing(n)),
        }
    }

    /// The map's field `key`.
    pub fn field(&self, key: &'static str) -> Result<&Value, CborError> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or(CborError::Field(key)),
            _ => Err(CborError::Field(key)),
        }
    }

    /// The map's unsigned integer field `key`.
    pub fn uint(&self, key: &'static str) -> Result<u64, CborError> {
        match self.field(key)? {
            Value::Uint(n) => Ok(*n),
            _ => Err(CborError::Field(key)),
        }
    }

    /// The map's byte string field `key`.
    pub fn bytes(&self, key: &'static str) -> Result<&[u8], CborError> {
        match self.field(key)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(CborError::Field(key)),
        }
    }

    /// The map's array field `key`.
    pub fn array(&self, key: &'static str) -> Result<&[Value], CborError> {
        match self.field(key)? {
            Value::Array(a) => Ok(a),
            _ => Err(CborError::Field(key)),
        }
    }

    /// The map's link field `key`.
    pub fn link(&self, key: &'static str) -> Result<Cid, CborError> {
        match self.field(key)? {
            Value::Link(c) => Ok(*c),
            _ => Err(CborError::Field(key)),
        }
    }
}

/// Canonical map key order: shorter keys first, then bytewise.
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Writes a major type with its argument in the shortest form.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    profile: Profile,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A major type and its argument, refusing non-shortest forms.
    fn head(&mut self) -> Result<(u8, u64), CborError> {
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        if major == 7 && info == 27 && self.profile.ipld {
            let b = self.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            return Ok((8, u64::from_be_bytes(a)));
        }
        if major == 7 {
            // Simple values only in their one-byte form; no floats.
            return match info {
                0..=23 => Ok((7, u64::from(info))),
                _ => Err(CborError::Unsupported("float or simple value")),
            };
        }
        let n = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes([self.take(1)?[0], self.take(1)?[0]])),
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_be_bytes(a)
            }
            _ => return Err(CborError::Unsupported("indefinite length or reserved")),
        };
        let shortest = match info {
            24 => n >= 24,
            25 => n > u64::from(u8::MAX),
            26 => n > u64::from(u16::MAX),
            27 => n > u64::from(u32::MAX),
            _ => true,
        };
        if !shortest {
            return Err(CborError::Unsupported("integer not in its shortest form"));
        }
        Ok((major, n))
    }

    /// A length that the rest of the input can hold (each item takes at least a byte).
    fn length(&mut self, n: u64) -> Result<usize, CborError> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or(CborError::Truncated)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > self.profile.max_depth {
            return Err(CborError::TooDeep);
        }
        let (major, n) = self.head()?;
        Ok(match major {
            0 => Value::Uint(n),
            1 if self.profile.ipld => Value::Negative(n),
            // The pseudo-major 8 is a 64-bit float's bits (see `head`).
            8 => Value::Float(
                Float::new(f64::from_bits(n))
                    .ok_or(CborError::Unsupported("NaN or infinite float"))?,
            ),
            2 => {
                let len = self.length(n)?;
                Value::Bytes(self.take(len)?.to_vec())
            }
            3 => Value::Text(self.text(n)?),
            4 => {
                let len = self.length(n)?;
                let mut items = Vec::with_capacity(len.min(PREALLOCATE));
                for _ in 0..len {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => self.map(n, depth)?,
            6 if n == 42 => self.link()?,
            7 => match n {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                _ => return Err(CborError::Unsupported("float or simple value")),
            },
            _ => return Err(CborError::Unsupported("negative integer or tag")),
        })
    }

    fn text(&mut self, n: u64) -> Result<String, CborError> {
        let len = self.length(n)?;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| CborError::Unsupported("text is not UTF-8"))
    }

    fn map(&mut self, n: u64, depth: usize) -> Result<Value, CborError> {
        let len = self.length(n)?;
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(len.min(PREALLOCATE));
        for _ in 0..len {
            let (major, n) = self.head()?;
            if major != 3 {
                return Err(CborError::Unsupported("map key is not text"));
            }
            let key = self.text(n)?;
            if let Some((last, _)) = entries.last() {
                if key_order(last, &key) != std::cmp::Ordering::Less {
                    return Err(CborError::Unsupported("map keys out of order or repeated"));
                }
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }

    fn link(&mut self) -> Result<Value, CborError> {
        let (major, n) = self.head()?;
        if major != 2 {
            return Err(CborError::BadCid);
        }
        let len = self.length(n)?;
        let bytes = self.take(len)?;
        match bytes.split_first() {
            Some((0, cid)) => match Cid::try_from(cid) {
                // Nothing may follow the CID: one encoding per value.
                Ok(c) if c.encoded_len() == cid.len() => Ok(Value::Link(c)),
                _ => Err(CborError::BadCid),
            },
            _ => Err(CborError::BadCid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid(n: u8) -> Cid {
        let hash = multihash::Multihash::<64>::wrap(0x12, &[n; 32]).unwrap_or_default();
        Cid::new_v1(0x71, hash)
    }

    #[test]
    fn known_encodings() {
        assert_eq!(Value::Uint(23).encode(), [0x17]);
        assert_eq!(Value::Uint(24).encode(), [0x18, 24]);
        assert_eq!(Value::Uint(1000).encode(), [0x19, 0x03, 0xe8]);
        assert_eq!(Value::Text("a".into()).encode(), [0x61, b'a']);
        // Canonical key order: "b" before "aa" (shorter first).
        let m = Value::Map(vec![
            ("aa".into(), Value::Null),
            ("b".into(), Value::Bool(true)),
        ]);
        assert_eq!(m.encode(), [0xa2, 0x61, b'b', 0xf5, 0x62, b'a', b'a', 0xf6]);
        let link = Value::Link(cid(1)).encode();
        assert_eq!(&link[..2], &[0xd8, 42]);
        assert_eq!(Value::decode(&link), Ok(Value::Link(cid(1))));
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        assert!(Value::decode(&[0x18, 5]).is_err(), "non-shortest integer");
        assert!(Value::decode(&[0x9f, 0xff]).is_err(), "indefinite array");
        assert!(
            Value::decode(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "float"
        );
        assert!(Value::decode(&[0x20]).is_err(), "negative integer");
        assert_eq!(Value::decode(&[0x01, 0x01]), Err(CborError::Trailing(1)));
        // Keys out of order.
        assert!(Value::decode(&[0xa2, 0x62, b'a', b'a', 0xf6, 0x61, b'b', 0xf5]).is_err());
        // A declared length the input cannot hold allocates nothing.
        assert_eq!(
            Value::decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        let deep = [0x81; MAX_DEPTH + 2];
        assert_eq!(Value::decode(&deep), Err(CborError::TooDeep));
    }

    #[test]
    fn the_ipld_profile_reads_negatives_and_floats_the_state_refuses() {
        let v = Value::Array(vec![
            Value::Negative(0),
            Value::Negative(999),
            Value::Float(Float::new(1.5).unwrap()),
        ]);
        let bytes = v.encode();
        assert_eq!(
            bytes,
            [0x83, 0x20, 0x39, 0x03, 0xe7, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Value::decode_ipld(&bytes, 4), Ok(v));
        assert!(Value::decode(&bytes).is_err());
        // NaN, 16- and 32-bit floats are not DAG-CBOR.
        assert!(Value::decode_ipld(&[0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], 4).is_err());
        assert!(Value::decode_ipld(&[0xf9, 0x3c, 0x00], 4).is_err());
        assert!(Value::decode_ipld(&[0xfa, 0x3f, 0x80, 0, 0], 4).is_err());
        assert_eq!(
            Value::decode_ipld(&[0x81, 0x81, 0x01], 1),
            Err(CborError::TooDeep)
        );
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::Uint),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            "[a-z]{0,12}".prop_map(Value::Text),
            any::<u8>().prop_map(|n| Value::Link(cid(n))),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..8)
                    .prop_map(|m| Value::Map(m.into_iter().collect())),
            ]
        })
    }

    fn canonical(v: Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
            Value::Map(mut entries) => {
                entries.sort_by(|a, b| key_order(&a.0, &b.0));
                Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k, canonical(v)))
                        .collect(),
                )
            }
            other => other,
        }
    }

    proptest! {
        #[test]
        fn every_value_round_trips(v in value()) {
            let bytes = v.encode();
            let back = Value::decode(&bytes).unwrap();
            prop_assert_eq!(back.encode(), bytes);
            prop_assert_eq!(back, canonical(v));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(v) = Value::decode(&bytes) {
                // Whatever decodes is canonical: it encodes back to the same bytes.
                prop_assert_eq!(v.encode(), bytes);
            }
        }
    }
}
