//! Reading UnixFS DAGs: resolving `CID/path`, streaming a file's bytes in a range in constant
//! memory, listing directories and writing trees to disk.

use crate::store;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cid::Cid;

use crate::store::block::{self, DAG_PB, RAW};
use crate::store::BlockStore;
use ipfsbench_protocols::codec::pb::{self, DataType};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A block is not in the local store.
    #[error("block {0} not found locally")]
    NotFound(Cid),
    /// The path string is malformed.
    #[error("invalid path {path:?}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A path segment does not exist in its directory.
    #[error("no link named {name:?} under {parent}")]
    NoSuchLink {
        /// The directory.
        parent: Cid,
        /// The missing name.
        name: String,
    },
    /// A file was expected.
    #[error("{0}: this dag node is a directory")]
    IsDirectory(Cid),
    /// A directory was expected.
    #[error("{0} is not a directory")]
    NotDirectory(Cid),
    /// The node is not UnixFS or does not decode.
    #[error("{cid} is not a valid UnixFS node: {reason}")]
    Invalid {
        /// The node.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// Sharded directories cannot be read yet.
    #[error("{0} is a HAMT-sharded directory, which is not supported yet")]
    Sharded(Cid),
    /// An entry name would escape the output directory.
    #[error("refusing unsafe entry name {0:?}")]
    UnsafeName(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Writing the output failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The output.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn load(store: &dyn BlockStore, cid: &Cid) -> Result<Vec<u8>, ReadError> {
    store.get(cid)?.ok_or(ReadError::NotFound(*cid))
}

fn invalid(cid: &Cid, reason: impl ToString) -> ReadError {
    ReadError::Invalid {
        cid: *cid,
        reason: reason.to_string(),
    }
}

/// A UnixFS node decoded from its block.
struct Decoded<'a> {
    node: pb::Node<'a>,
    fs: pb::UnixfsData<'a>,
}

fn decode<'a>(cid: &Cid, block: &'a [u8]) -> Result<Decoded<'a>, ReadError> {
    if cid.codec() != DAG_PB {
        return Err(invalid(cid, format!("codec 0x{:x}", cid.codec())));
    }
    let node = pb::decode_node(block).map_err(|e| invalid(cid, e))?;
    let fs = pb::decode_unixfs(node.data.unwrap_or_default()).map_err(|e| invalid(cid, e))?;
    Ok(Decoded { node, fs })
}

/// Resolves `CID[/name/...]` (an optional `/ipfs/` prefix allowed) to the CID it names.
pub fn resolve(store: &dyn BlockStore, path: &str) -> Result<Cid, ReadError> {
    let trimmed = path.strip_prefix("/ipfs/").unwrap_or(path);
    let mut parts = trimmed.split('/').filter(|p| !p.is_empty());
    let first = parts.next().ok_or_else(|| ReadError::BadPath {
        path: path.to_string(),
        reason: "empty".into(),
    })?;
    let mut cid = block::parse_cid(first).map_err(|e| ReadError::BadPath {
        path: path.to_string(),
        reason: e.reason,
    })?;
    for name in parts {
        let data = load(store, &cid)?;
        let d = decode(&cid, &data)?;
        match d.fs.kind {
            DataType::Directory => {}
            DataType::HamtShard => return Err(ReadError::Sharded(cid)),
            _ => return Err(ReadError::NotDirectory(cid)),
        }
        cid = d
            .node
            .links
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.cid)
            .ok_or_else(|| ReadError::NoSuchLink {
                parent: cid,
                name: name.to_string(),
            })?;
    }
    Ok(cid)
}

struct Pending {
    cid: Cid,
    /// File offset of this node's first byte.
    start: u64,
    /// Content bytes below it, when the parent said.
    size: Option<u64>,
}

/// Writes bytes `offset..offset+length` of the file at `cid` to `out` (all of it when
/// `length` is `None`), reading only the blocks that overlap the range. Returns bytes written.
pub fn cat(
    store: &dyn BlockStore,
    cid: &Cid,
    offset: u64,
    length: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, ReadError> {
    let end = length.map_or(u64::MAX, |l| offset.saturating_add(l));
    // A directory is refused whatever the range, even an empty one that reads nothing.
    if cid.codec() != RAW {
        let root = load(store, cid)?;
        if matches!(
            decode(cid, &root)?.fs.kind,
            DataType::Directory | DataType::HamtShard
        ) {
            return Err(ReadError::IsDirectory(*cid));
        }
    }
    let mut written = 0u64;
    let mut stack = vec![Pending {
        cid: *cid,
        start: 0,
        size: None,
    }];
    let mut emit = |data: &[u8], start: u64, out: &mut dyn Write| -> Result<(), ReadError> {
        let from = offset.saturating_sub(start).min(data.len() as u64) as usize;
        let to = end.saturating_sub(start).min(data.len() as u64) as usize;
        if from < to {
            out.write_all(&data[from..to])
                .map_err(|source| ReadError::Io {
                    path: PathBuf::from("-"),
                    source,
                })?;
            written += (to - from) as u64;
        }
        Ok(())
    };
    while let Some(p) = stack.pop() {
        if p.start >= end || p.size.is_some_and(|s| p.start + s <= offset) {
            continue;
        }
        let data = load(store, &p.cid)?;
        let node = file_node(&p.cid, &data)?;
        emit(&data[node.content.clone()], p.start, out)?;
        let mut child_start = p.start + node.content_len() as u64;
        let mut children = Vec::with_capacity(node.children.len());
        for (cid, size) in node.children {
            children.push(Pending {
                cid,
                start: child_start,
                size: Some(size),
            });
            child_start += size;
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(written)
}

/// One node of a file as a reader walks it in order: its own content bytes (a range of its
/// block), then its children's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNode {
    /// Where the node's own content lies in its block (all of a raw block; a dag-pb node's
    /// inline data).
    pub content: std::ops::Range<usize>,
    /// The children in file order, each with the content bytes below it.
    pub children: Vec<(Cid, u64)>,
}

impl FileNode {
    /// Bytes of the node's own content.
    pub fn content_len(&self) -> usize {
        self.content.end - self.content.start
    }
}

/// Decodes `block` (the block of `cid`) as one node of a file: a raw block, or a UnixFS
/// `File`/`Raw` node. Directories and other kinds are refused.
pub fn file_node(cid: &Cid, block: &[u8]) -> Result<FileNode, ReadError> {
    if cid.codec() == RAW {
        return Ok(FileNode {
            content: 0..block.len(),
            children: Vec::new(),
        });
    }
    let d = decode(cid, block)?;
    match d.fs.kind {
        DataType::File | DataType::Raw => {}
        DataType::Directory | DataType::HamtShard => return Err(ReadError::IsDirectory(*cid)),
        other => return Err(invalid(cid, format!("{other:?} is not a file"))),
    }
    if d.node.links.len() != d.fs.blocksizes.len() && !d.node.links.is_empty() {
        return Err(invalid(cid, "blocksizes do not match links"));
    }
    // The inline data is a slice of the block (the decoder borrows): find where.
    let content = match d.fs.data {
        Some(inline) if !inline.is_empty() => {
            let start = (inline.as_ptr() as usize)
                .checked_sub(block.as_ptr() as usize)
                .filter(|s| s + inline.len() <= block.len())
                .ok_or_else(|| invalid(cid, "inline data outside the block"))?;
            start..start + inline.len()
        }
        _ => 0..0,
    };
    let children = d
        .node
        .links
        .iter()
        .zip(&d.fs.blocksizes)
        .map(|(link, &size)| (link.cid, size))
        .collect();
    Ok(FileNode { content, children })
}

/// The content size of the file at `cid`, read from its root alone (raw block length, or
/// the UnixFS `filesize`).
pub fn file_size(store: &dyn BlockStore, cid: &Cid) -> Result<u64, ReadError> {
    if cid.codec() == RAW {
        return store.size(cid)?.ok_or(ReadError::NotFound(*cid));
    }
    let data = load(store, cid)?;
    let d = decode(cid, &data)?;
    match d.fs.kind {
        DataType::File | DataType::Raw => Ok(d
            .fs
            .filesize
            .unwrap_or(d.fs.data.map_or(0, |b| b.len() as u64))),
        DataType::Directory | DataType::HamtShard => Err(ReadError::IsDirectory(*cid)),
        other => Err(invalid(cid, format!("{other:?} is not a file"))),
    }
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A file (UnixFS file or raw block).
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else.
    Other,
}

/// One link of a listed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Link name (empty for file chunks).
    pub name: String,
    /// Target.
    pub cid: Cid,
    /// File size for files, the link's cumulative size otherwise.
    pub size: u64,
    /// Kind of the target.
    pub kind: EntryKind,
}

fn kind_and_size(
    store: &dyn BlockStore,
    cid: &Cid,
    tsize: u64,
) -> Result<(EntryKind, u64), ReadError> {
    if cid.codec() == RAW {
        return Ok((
            EntryKind::File,
            store.size(cid)?.ok_or(ReadError::NotFound(*cid))?,
        ));
    }
    let data = load(store, cid)?;
    let d = decode(cid, &data)?;
    Ok(match d.fs.kind {
        DataType::File | DataType::Raw => (
            EntryKind::File,
            d.fs.filesize
                .unwrap_or(d.fs.data.map_or(0, |b| b.len() as u64)),
        ),
        DataType::Directory | DataType::HamtShard => (EntryKind::Directory, tsize),
        DataType::Symlink => (EntryKind::Symlink, d.fs.data.map_or(0, |b| b.len() as u64)),
        DataType::Metadata => (EntryKind::Other, tsize),
    })
}

/// What the node at `cid` is, read from its own block.
pub fn kind(store: &dyn BlockStore, cid: &Cid) -> Result<EntryKind, ReadError> {
    kind_and_size(store, cid, 0).map(|(kind, _)| kind)
}

/// Lists the links of the node at `cid` with the kind and size of each target.
pub fn ls(store: &dyn BlockStore, cid: &Cid) -> Result<Vec<Entry>, ReadError> {
    if cid.codec() == RAW {
        load(store, cid)?;
        return Ok(Vec::new());
    }
    let data = load(store, cid)?;
    let d = decode(cid, &data)?;
    if d.fs.kind == DataType::HamtShard {
        return Err(ReadError::Sharded(*cid));
    }
    d.node
        .links
        .iter()
        .map(|l| {
            let (kind, size) = kind_and_size(store, &l.cid, l.tsize)?;
            Ok(Entry {
                name: l.name.clone(),
                cid: l.cid,
                size,
                kind,
            })
        })
        .collect()
}

fn safe_name(name: &str) -> Result<&str, ReadError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(ReadError::UnsafeName(name.to_string()));
    }
    Ok(name)
}

/// Writes the file, symlink or directory tree at `cid` to `dest`, which must not exist.
/// Returns the bytes of file content written.
pub fn get(store: &dyn BlockStore, cid: &Cid, dest: &Path) -> Result<u64, ReadError> {
    let io_at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadError::Io { path, source }
    };
    if cid.codec() == RAW {
        let mut file = std::fs::File::create_new(dest).map_err(io_at(dest))?;
        return cat(store, cid, 0, None, &mut file);
    }
    let data = load(store, cid)?;
    let d = decode(cid, &data)?;
    match d.fs.kind {
        DataType::File | DataType::Raw => {
            let file = std::fs::File::create_new(dest).map_err(io_at(dest))?;
            let mut out = io::BufWriter::with_capacity(1 << 20, file);
            let n = cat(store, cid, 0, None, &mut out)?;
            out.flush().map_err(io_at(dest))?;
            Ok(n)
        }
        DataType::Symlink => {
            let target = String::from_utf8_lossy(d.fs.data.unwrap_or_default()).into_owned();
            std::os::unix::fs::symlink(&target, dest).map_err(io_at(dest))?;
            Ok(0)
        }
        DataType::Directory => {
            std::fs::create_dir(dest).map_err(io_at(dest))?;
            let mut total = 0;
            for link in &d.node.links {
                let name = safe_name(&link.name)?;
                total += get(store, &link.cid, &dest.join(name))?;
            }
            Ok(total)
        }
        DataType::HamtShard => Err(ReadError::Sharded(*cid)),
        DataType::Metadata => Err(invalid(cid, "metadata node")),
    }
}
