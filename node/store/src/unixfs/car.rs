//! CAR v1: `uvarint(len) ‖ dag-cbor header {roots, version: 1}` then sections
//! `uvarint(len) ‖ CID ‖ block`. Spec: <https://ipld.io/specs/transport/car/carv1/>.
//!
//! The reader verifies every block against its CID and bounds every length it reads, so a
//! hostile file costs at most one block's worth of memory before it is refused.

use crate::store::dag;
use std::collections::HashSet;
use std::io::{self, Read, Write};

use cid::Cid;

use crate::store::block::{BlockError, MAX_BLOCK_SIZE};
use crate::store::{Block, BlockStore};
use ipfsbench_protocols::codec::cbor::{CborError, Value};
use ipfsbench_protocols::codec::varint;

/// The largest header accepted, in bytes.
pub const MAX_HEADER: u64 = 1 << 20;

/// A CAR that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// Reading or writing failed.
    #[error("CAR I/O: {0}")]
    Io(#[from] io::Error),
    /// The file ends inside a header or section.
    #[error("truncated CAR: {0}")]
    Truncated(&'static str),
    /// The header is malformed.
    #[error("invalid CAR header: {0}")]
    Header(String),
    /// The header names a version other than 1.
    #[error("unsupported CAR version {0} (only CAR v1 is supported)")]
    Version(u64),
    /// A section is malformed.
    #[error("invalid CAR section {index}: {reason}")]
    Section {
        /// 0-based section number.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// A block does not match its CID.
    #[error("CAR section {index}: {source}")]
    Block {
        /// 0-based section number.
        index: u64,
        /// The verification failure.
        #[source]
        source: BlockError,
    },
    /// Walking the DAG to export failed.
    #[error(transparent)]
    Dag(#[from] dag::Error),
}

/// Writes the DAG under `root` as a CAR v1, blocks in depth-first order, each once.
/// Returns the number of blocks written.
pub fn export(store: &dyn BlockStore, root: &Cid, out: &mut dyn Write) -> Result<u64, CarError> {
    export_path(store, root, &[], root, out)
}

/// Writes a CAR v1 with `root` in its header: the blocks of `path` first (the directories a
/// path went through, as a trustless gateway sends them), then the DAG under `dag` in
/// depth-first order, each block once. Returns the number of blocks written.
pub fn export_path(
    store: &dyn BlockStore,
    root: &Cid,
    path: &[Cid],
    dag: &Cid,
    out: &mut dyn Write,
) -> Result<u64, CarError> {
    let header = encode_header(&[*root]);
    let mut buf = Vec::with_capacity(16);
    varint::encode(header.len() as u64, &mut buf);
    out.write_all(&buf)?;
    out.write_all(&header)?;
    let mut count = 0;
    let mut section = |cid: &Cid, data: &[u8], out: &mut dyn Write| -> Result<(), io::Error> {
        let cid_bytes = cid.to_bytes();
        let mut prefix = Vec::with_capacity(16);
        varint::encode((cid_bytes.len() + data.len()) as u64, &mut prefix);
        out.write_all(&prefix)?;
        out.write_all(&cid_bytes)?;
        out.write_all(data)?;
        count += 1;
        Ok(())
    };
    let mut seen = HashSet::new();
    for cid in path {
        if cid == dag || !seen.insert(*cid.hash()) {
            continue;
        }
        let data = store
            .get(cid)
            .map_err(dag::Error::from)?
            .ok_or(dag::Error::NotFound(*cid))?;
        section(cid, &data, out)?;
    }
    dag::walk(store, dag, true, &mut seen, &mut |cid, data| {
        section(cid, data.unwrap_or_default(), out)?;
        Ok(())
    })?;
    Ok(count)
}

/// Reads a CAR v1 stream block by block.
pub struct Reader<R> {
    inner: R,
    roots: Vec<Cid>,
    index: u64,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, CarError> {
        let len = varint::read(&mut inner)?.ok_or(CarError::Truncated("empty file"))?;
        if len == 0 || len > MAX_HEADER {
            return Err(CarError::Header(format!("header length {len}")));
        }
        let mut header = vec![0u8; len as usize];
        inner
            .read_exact(&mut header)
            .map_err(|_| CarError::Truncated("inside the header"))?;
        let roots = decode_header(&header)?;
        Ok(Self {
            inner,
            roots,
            index: 0,
        })
    }

    /// The roots the header names.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next verified block, or `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<Block>, CarError> {
        let index = self.index;
        let section = |reason: String| CarError::Section { index, reason };
        let len = match varint::read(&mut self.inner) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(CarError::Truncated("inside a section length"))
            }
            Err(e) => return Err(e.into()),
        };
        if len == 0 || len > (MAX_BLOCK_SIZE + 128) as u64 {
            return Err(section(format!("section length {len}")));
        }
        let mut bytes = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut bytes)
            .map_err(|_| CarError::Truncated("inside a section"))?;
        let mut cursor = io::Cursor::new(&bytes[..]);
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| section(format!("bad CID: {e}")))?;
        let start = cursor.position() as usize;
        let data = bytes.split_off(start);
        let block = Block::new(cid, data).map_err(|source| CarError::Block { index, source })?;
        self.index += 1;
        Ok(Some(block))
    }
}

// --- the header: a DAG-CBOR map, read and written by the one codec in `protocols` ---

/// How deep a header may nest (it is a map of an array of links).
const HEADER_DEPTH: usize = 4;

/// Encodes `{"roots": [...], "version": 1}` in canonical DAG-CBOR.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    Value::Map(vec![
        (
            "roots".into(),
            Value::Array(roots.iter().map(|c| Value::Link(*c)).collect()),
        ),
        ("version".into(), Value::Uint(1)),
    ])
    .encode()
}

/// The roots of a v1 header; a v2 pragma is [`CarError::Version`].
fn decode_header(bytes: &[u8]) -> Result<Vec<Cid>, CarError> {
    let header = |e: CborError| CarError::Header(e.to_string());
    let value = Value::decode_ipld(bytes, HEADER_DEPTH).map_err(header)?;
    match value.uint("version") {
        Ok(1) => {}
        Ok(v) => return Err(CarError::Version(v)),
        Err(_) => return Err(CarError::Header("no version".into())),
    }
    value
        .array("roots")
        .map_err(header)?
        .iter()
        .map(|root| match root {
            Value::Link(cid) => Ok(*cid),
            _ => Err(CarError::Header("root is not a CID link".into())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::block::{DAG_PB, RAW};
    use crate::store::MemoryStore;
    use proptest::prelude::*;

    #[test]
    fn export_then_read_back() {
        let store = MemoryStore::new();
        let leaf = Block::hash(RAW, b"leaf".to_vec(), false);
        store.put(&leaf).unwrap();
        let node = ipfsbench_protocols::codec::pb::encode_node(
            &[ipfsbench_protocols::codec::pb::Link {
                cid: *leaf.cid(),
                name: "a".into(),
                tsize: 4,
            }],
            Some(&[0x08, 0x01]),
        );
        let root = Block::hash(DAG_PB, node, true);
        store.put(&root).unwrap();
        let mut car = Vec::new();
        assert_eq!(export(&store, root.cid(), &mut car).unwrap(), 2);
        let mut reader = Reader::new(&car[..]).unwrap();
        assert_eq!(reader.roots(), &[*root.cid()]);
        assert_eq!(reader.next_block().unwrap().unwrap(), root);
        assert_eq!(reader.next_block().unwrap().unwrap(), leaf);
        assert!(reader.next_block().unwrap().is_none());

        // A cut inside a header or section is an error; a cut between sections reads fewer
        // blocks (the import then finds the DAG incomplete).
        for cut in 1..car.len() {
            let result = Reader::new(&car[..cut]).and_then(|mut r| {
                let mut n = 0;
                while r.next_block()?.is_some() {
                    n += 1;
                }
                Ok(n)
            });
            assert!(!matches!(result, Ok(2)), "cut at {cut} read as complete");
        }
        // A flipped byte in a block is caught.
        let mut bad = car.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut r = Reader::new(&bad[..]).unwrap();
        r.next_block().unwrap();
        assert!(matches!(r.next_block(), Err(CarError::Block { .. })));
    }

    #[test]
    fn rejects_v2_and_garbage_headers() {
        // The CAR v2 pragma is a v1-shaped header with version 2.
        let pragma = [
            0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02,
        ];
        assert!(matches!(
            Reader::new(&pragma[..]),
            Err(CarError::Version(2))
        ));
        assert!(Reader::new(&[0x03, 0xff, 0xff, 0xff][..]).is_err());
        assert!(Reader::new(&[][..]).is_err());
    }

    proptest! {
        #[test]
        fn header_round_trip(n in 0usize..4) {
            let roots: Vec<Cid> = (0..n)
                .map(|i| *Block::hash(RAW, vec![i as u8], false).cid())
                .collect();
            prop_assert_eq!(decode_header(&encode_header(&roots)).unwrap(), roots);
        }

        #[test]
        fn header_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_header(&bytes);
        }
    }
}
