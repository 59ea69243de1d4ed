//! The dag-pb node format and the UnixFS `Data` message inside it, encoded exactly as Kubo
//! encodes them (links before data, empty link names written out).
//!
//! Spec: <https://ipld.io/specs/codecs/dag-pb/spec/> and
//! <https://github.com/ipfs/specs/blob/main/UNIXFS.md>.

use cid::Cid;

use crate::codec::varint;

/// A dag-pb or UnixFS message that does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("truncated protobuf")]
    Truncated,
    /// A field has a wire type this message does not allow.
    #[error("unexpected wire type {wire} for field {field}")]
    WireType {
        /// Field number.
        field: u64,
        /// Wire type found.
        wire: u64,
    },
    /// A link's hash is not a CID.
    #[error("link hash is not a CID")]
    BadCid,
    /// A link has no hash.
    #[error("link without a hash")]
    MissingHash,
    /// The UnixFS type is unknown.
    #[error("unknown UnixFS type {0}")]
    UnknownType(u64),
    /// The UnixFS message has no type.
    #[error("UnixFS data without a type")]
    MissingType,
}

/// A link of a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The child.
    pub cid: Cid,
    /// The name (empty in file nodes).
    pub name: String,
    /// The cumulative size of the child's DAG in bytes (block plus its links' sizes).
    pub tsize: u64,
}

/// A decoded dag-pb node, borrowing its data from the block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node<'a> {
    /// Links in the order they were encoded.
    pub links: Vec<Link>,
    /// The `Data` field, if present.
    pub data: Option<&'a [u8]>,
}

/// UnixFS node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Raw bytes (old importers).
    Raw,
    /// A directory.
    Directory,
    /// A file or a chunk of one.
    File,
    /// Metadata (unused).
    Metadata,
    /// A symbolic link; the data is the target.
    Symlink,
    /// A HAMT-sharded directory.
    HamtShard,
}

impl DataType {
    fn code(self) -> u64 {
        match self {
            DataType::Raw => 0,
            DataType::Directory => 1,
            DataType::File => 2,
            DataType::Metadata => 3,
            DataType::Symlink => 4,
            DataType::HamtShard => 5,
        }
    }

    fn from_code(code: u64) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// The UnixFS `Data` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixfsData<'a> {
    /// What the node is.
    pub kind: DataType,
    /// Inline content (file bytes, symlink target).
    pub data: Option<&'a [u8]>,
    /// Total content bytes below this node.
    pub filesize: Option<u64>,
    /// Content bytes under each child link, in link order.
    pub blocksizes: Vec<u64>,
}

fn put_key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint::encode(u64::from(field << 3) | u64::from(wire), out);
}

fn put_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    put_key(field, 2, out);
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    put_key(field, 0, out);
    varint::encode(v, out);
}

/// Encodes a UnixFS message as Kubo does: type, data, filesize, blocksizes (unpacked).
pub fn encode_unixfs(d: &UnixfsData<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + d.data.map_or(0, <[u8]>::len) + 4 * d.blocksizes.len());
    put_varint(1, d.kind.code(), &mut out);
    if let Some(data) = d.data {
        put_bytes(2, data, &mut out);
    }
    if let Some(size) = d.filesize {
        put_varint(3, size, &mut out);
    }
    for &b in &d.blocksizes {
        put_varint(4, b, &mut out);
    }
    out
}

/// Encodes a dag-pb node: links (hash, name, tsize) first, then data.
pub fn encode_node(links: &[Link], data: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.map_or(0, <[u8]>::len) + 16 + links.len() * 48);
    let mut link_buf = Vec::with_capacity(64);
    for link in links {
        link_buf.clear();
        put_bytes(1, &link.cid.to_bytes(), &mut link_buf);
        put_bytes(2, link.name.as_bytes(), &mut link_buf);
        put_varint(3, link.tsize, &mut link_buf);
        put_bytes(2, &link_buf, &mut out);
    }
    if let Some(data) = data {
        put_bytes(1, data, &mut out);
    }
    out
}

/// The length of the dag-pb block that [`encode_leaf`] writes for `chunk_len` content bytes.
pub fn leaf_len(chunk_len: usize) -> usize {
    let inner = unixfs_leaf_len(chunk_len);
    1 + varint::encoded_len(inner as u64) + inner
}

fn unixfs_leaf_len(chunk_len: usize) -> usize {
    let data = if chunk_len == 0 {
        0
    } else {
        1 + varint::encoded_len(chunk_len as u64) + chunk_len
    };
    2 + data + 1 + varint::encoded_len(chunk_len as u64)
}

/// Writes the dag-pb leaf of a file chunk into `out` without an intermediate copy: UnixFS
/// `{Type: File, Data: chunk, filesize: len}` (Data left out for the empty chunk, as Kubo does).
pub fn encode_leaf(chunk: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(leaf_len(chunk.len()));
    let inner = unixfs_leaf_len(chunk.len());
    put_key(1, 2, out);
    varint::encode(inner as u64, out);
    put_varint(1, DataType::File.code(), out);
    if !chunk.is_empty() {
        put_bytes(2, chunk, out);
    }
    put_varint(3, chunk.len() as u64, out);
}

struct Fields<'a> {
    buf: &'a [u8],
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Option<Result<(u64, u64, Value<'a>), DecodeError>> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.read())
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let (v, n) = varint::decode(self.buf).ok_or(DecodeError::Truncated)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn read(&mut self) -> Result<(u64, u64, Value<'a>), DecodeError> {
        let key = self.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Other
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Other
            }
            _ => return Err(DecodeError::WireType { field, wire }),
        };
        Ok((field, wire, value))
    }
}

/// Decodes a dag-pb node. Unknown fields are skipped.
pub fn decode_node(block: &[u8]) -> Result<Node<'_>, DecodeError> {
    let mut node = Node::default();
    let mut fields = Fields { buf: block };
    while let Some(field) = fields.next_field() {
        match field? {
            (1, _, Value::Bytes(b)) => node.data = Some(b),
            (2, _, Value::Bytes(b)) => node.links.push(decode_link(b)?),
            (field @ (1 | 2), wire, _) => return Err(DecodeError::WireType { field, wire }),
            _ => {}
        }
    }
    Ok(node)
}

fn decode_link(buf: &[u8]) -> Result<Link, DecodeError> {
    let mut fields = Fields { buf };
    let (mut cid, mut name, mut tsize) = (None, String::new(), 0);
    while let Some(field) = fields.next_field() {
        match field? {
            (1, _, Value::Bytes(b)) => {
                cid = Some(Cid::try_from(b).map_err(|_| DecodeError::BadCid)?);
            }
            (2, _, Value::Bytes(b)) => name = String::from_utf8_lossy(b).into_owned(),
            (3, _, Value::Varint(v)) => tsize = v,
            (f @ 1..=3, wire, _) => return Err(DecodeError::WireType { field: f, wire }),
            _ => {}
        }
    }
    Ok(Link {
        cid: cid.ok_or(DecodeError::MissingHash)?,
        name,
        tsize,
    })
}

/// Decodes a UnixFS `Data` message. Accepts packed or unpacked blocksizes.
pub fn decode_unixfs(buf: &[u8]) -> Result<UnixfsData<'_>, DecodeError> {
    let mut fields = Fields { buf };
    let (mut kind, mut data, mut filesize, mut blocksizes) = (None, None, None, Vec::new());
    while let Some(field) = fields.next_field() {
        match field? {
            (1, _, Value::Varint(v)) => kind = Some(DataType::from_code(v)?),
            (2, _, Value::Bytes(b)) => data = Some(b),
            (3, _, Value::Varint(v)) => filesize = Some(v),
            (4, _, Value::Varint(v)) => blocksizes.push(v),
            (4, _, Value::Bytes(mut packed)) => {
                while !packed.is_empty() {
                    let (v, n) = varint::decode(packed).ok_or(DecodeError::Truncated)?;
                    blocksizes.push(v);
                    packed = &packed[n..];
                }
            }
            (f @ 1..=4, wire, _) => return Err(DecodeError::WireType { field: f, wire }),
            _ => {}
        }
    }
    Ok(UnixfsData {
        kind: kind.ok_or(DecodeError::MissingType)?,
        data,
        filesize,
        blocksizes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testing::{cid_for, DAG_PB};
    use proptest::prelude::*;

    #[test]
    fn empty_file_leaf_is_kubos() {
        let mut out = Vec::new();
        encode_leaf(&[], &mut out);
        assert_eq!(out, [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
        assert_eq!(
            cid_for(DAG_PB, &out, true).to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
    }

    #[test]
    fn leaf_len_matches_encoding() {
        for n in [0usize, 1, 127, 128, 16383, 16384, 262144, 1 << 20] {
            let chunk = vec![7u8; n];
            let mut out = Vec::new();
            encode_leaf(&chunk, &mut out);
            assert_eq!(out.len(), leaf_len(n), "chunk of {n}");
            let node = decode_node(&out).unwrap();
            let fs = decode_unixfs(node.data.unwrap()).unwrap();
            assert_eq!(fs.kind, DataType::File);
            assert_eq!(fs.filesize, Some(n as u64));
            assert_eq!(fs.data.unwrap_or_default(), &chunk[..]);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_node(&[0x12, 0x05, 0x0a]).is_err());
        assert!(decode_node(&[0x0b]).is_err());
        assert!(decode_unixfs(&[0x08, 0x09]).is_err());
        assert!(decode_unixfs(&[]).is_err());
    }

    proptest! {
        #[test]
        fn node_round_trip(
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            names in proptest::collection::vec("[a-z]{0,8}", 0..5),
            tsize in any::<u64>(),
        ) {
            let links: Vec<Link> = names
                .into_iter()
                .enumerate()
                .map(|(i, name)| Link { cid: cid_for(DAG_PB, &[i as u8], true), name, tsize })
                .collect();
            let encoded = encode_node(&links, data.as_deref());
            let node = decode_node(&encoded).unwrap();
            prop_assert_eq!(node.links, links);
            prop_assert_eq!(node.data, data.as_deref());
        }

        #[test]
        fn unixfs_round_trip(
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            filesize in proptest::option::of(any::<u64>()),
            blocksizes in proptest::collection::vec(any::<u64>(), 0..8),
        ) {
            let d = UnixfsData { kind: DataType::File, data: data.as_deref(), filesize, blocksizes };
            let encoded = encode_unixfs(&d);
            prop_assert_eq!(decode_unixfs(&encoded).unwrap(), d);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_node(&bytes);
            let _ = decode_unixfs(&bytes);
        }
    }
}
