//! Protobuf's wire format, as much as Bitswap's messages need: keys and length-delimited
//! fields written into a buffer (varints as [`varint`] writes them), and a cursor that reads
//! them back.

use ipfsbench_protocols::codec::varint;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated protobuf")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("varint overflow")]
    VarintOverflow,
    /// A wire type that protobuf does not have (or a deprecated group).
    #[error("unsupported wire type {0}")]
    WireType(u8),
    /// A known field with another wire type than the schema's.
    #[error("field {field} has wire type {wire_type}")]
    FieldType {
        /// The field number.
        field: u64,
        /// The wire type found.
        wire_type: u8,
    },
    /// A CID that does not parse.
    #[error("invalid CID: {0}")]
    Cid(String),
    /// Anything else out of shape.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

/// Protobuf wire type of varints.
pub(super) const WT_VARINT: u8 = 0;
/// Protobuf wire type of fixed 64-bit values.
pub(super) const WT_I64: u8 = 1;
/// Protobuf wire type of length-delimited values.
pub(super) const WT_LEN: u8 = 2;
/// Protobuf wire type of fixed 32-bit values.
pub(super) const WT_I32: u8 = 5;

pub(super) fn expect(field: u64, wire_type: u8, want: u8) -> Result<(), DecodeError> {
    if wire_type == want {
        Ok(())
    } else {
        Err(DecodeError::FieldType { field, wire_type })
    }
}

/// Appends an int32 as protobuf does: negative values sign-extend to ten bytes.
pub(super) fn put_int32(out: &mut Vec<u8>, v: i32) {
    varint::encode(i64::from(v) as u64, out);
}

pub(super) fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u8) {
    varint::encode((field << 3) | u64::from(wire_type), out);
}

pub(super) fn put_len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, WT_LEN);
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encoded size of a length-delimited field (fields 1..=15: one key byte).
pub(super) fn len_field_size(field: u64, len: usize) -> usize {
    varint::encoded_len(field << 3) + varint::encoded_len(len as u64) + len
}

/// A cursor over protobuf bytes.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub(super) fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(DecodeError::Malformed("field number 0"));
        }
        match (key & 7) as u8 {
            wt @ (WT_VARINT | WT_I64 | WT_LEN | WT_I32) => Ok((field, wt)),
            other => Err(DecodeError::WireType(other)),
        }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        self.take(len)
    }

    pub(super) fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            WT_VARINT => self.varint().map(drop),
            WT_I64 => self.take(8).map(drop),
            WT_LEN => self.bytes().map(drop),
            WT_I32 => self.take(4).map(drop),
            other => Err(DecodeError::WireType(other)),
        }
    }
}
