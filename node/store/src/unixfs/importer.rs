//! `add`: files into balanced dag-pb DAGs, directories into UnixFS directories.

use crate::store;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::sync_channel;

use cid::Cid;

use super::limits::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_LINKS, SHARDING_THRESHOLD};
use crate::store::block::{Hash, DAG_PB, RAW};
use crate::store::protect::Session;
use crate::store::{Block, BlockStore};
use ipfsbench_protocols::codec::pb::{self, DataType, Link, UnixfsData};

/// A fixed-size chunker, written `size-N` as in Kubo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunker(usize);

impl Chunker {
    /// Chunk size in bytes.
    pub fn size(self) -> usize {
        self.0
    }
}

impl Default for Chunker {
    fn default() -> Self {
        Self(DEFAULT_CHUNK_SIZE)
    }
}

impl FromStr for Chunker {
    type Err = AddError;

    fn from_str(s: &str) -> Result<Self, AddError> {
        let bad = |reason: String| AddError::Chunker {
            spec: s.to_string(),
            reason,
        };
        let Some(n) = s.strip_prefix("size-") else {
            return Err(bad("only fixed-size chunking (size-N) is supported".into()));
        };
        let n: usize = n.parse().map_err(|e| bad(format!("{e}")))?;
        if n == 0 {
            return Err(bad("chunk size must be greater than 0".into()));
        }
        if n > MAX_CHUNK_SIZE {
            return Err(bad(format!(
                "chunk size may not exceed the maximum of {MAX_CHUNK_SIZE} bytes"
            )));
        }
        Ok(Self(n))
    }
}

/// Options of `add`, with Kubo's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// CID version of the DAG's nodes (0 or 1). Default 0.
    pub cid_version: u8,
    /// Store leaves as raw blocks. Default: `cid_version == 1`.
    pub raw_leaves: Option<bool>,
    /// The chunker. Default `size-262144`.
    pub chunker: Chunker,
    /// Include files whose names start with a dot when adding a directory. Default false.
    pub hidden: bool,
}

impl AddOptions {
    fn raw_leaves(&self) -> bool {
        self.raw_leaves.unwrap_or(self.cid_version == 1)
    }

    fn v0(&self) -> bool {
        self.cid_version == 0
    }
}

/// Why an `add` failed. Nothing it stored stays behind (see [`Sink::rollback`]).
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// Reading the input failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The input path (or `-` for standard input).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A bad chunker string.
    #[error("invalid chunker {spec:?}: {reason}")]
    Chunker {
        /// What was given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },
    /// The CID version is not 0 or 1.
    #[error("unsupported CID version {0} (use 0 or 1)")]
    CidVersion(u8),
    /// A directory so large that Kubo would shard it; sharding is not built here, and an
    /// unsharded directory would get a different CID than Kubo's.
    #[error(
        "{}: directory too large for a single UnixFS node ({estimate} bytes of links, \
         Kubo shards from {SHARDING_THRESHOLD}); HAMT sharding is not supported yet",
        path.display()
    )]
    NeedsSharding {
        /// The directory.
        path: PathBuf,
        /// Its estimated link size.
        estimate: usize,
    },
    /// A file name that is not UTF-8 cannot be a UnixFS link name.
    #[error("{}: file name is not valid UTF-8", path.display())]
    NonUtf8Name {
        /// The entry.
        path: PathBuf,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// One entry `add` produced, as Kubo prints it: `added <cid> <name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The entry's name relative to the argument (the argument's base name first).
    pub name: String,
    /// Its CID.
    pub cid: Cid,
    /// Cumulative size of its DAG in bytes.
    pub tsize: u64,
}

/// Where `add` puts blocks: a store (or nowhere, for `--only-hash`), protected from GC by a
/// session, remembering what it newly stored so that a failed add can take it back.
pub struct Sink<'a> {
    store: Option<&'a dyn BlockStore>,
    session: Option<&'a Session<'a>>,
    new_blocks: Vec<Hash>,
    progress: Option<&'a mut dyn FnMut(u64)>,
}

impl<'a> Sink<'a> {
    /// Stores into `store`, protected by `session`.
    pub fn new(store: &'a dyn BlockStore, session: &'a Session<'a>) -> Self {
        Self {
            store: Some(store),
            session: Some(session),
            new_blocks: Vec::new(),
            progress: None,
        }
    }

    /// Computes CIDs only, storing nothing.
    pub fn only_hash() -> Self {
        Self {
            store: None,
            session: None,
            new_blocks: Vec::new(),
            progress: None,
        }
    }

    /// Reports the file bytes consumed so far to `f` as the import goes.
    pub fn with_progress(mut self, f: &'a mut dyn FnMut(u64)) -> Self {
        self.progress = Some(f);
        self
    }

    fn put(&mut self, block: &Block) -> Result<(), store::Error> {
        let Some(store) = self.store else {
            return Ok(());
        };
        if let Some(session) = self.session {
            session.protect(block.cid().hash());
        }
        if store.put(block)? {
            self.new_blocks.push(*block.cid().hash());
        }
        Ok(())
    }

    fn progress(&mut self, bytes: u64) {
        if let Some(f) = self.progress.as_mut() {
            f(bytes);
        }
    }

    /// Removes every block this sink stored that was not in the store before.
    pub fn rollback(self) -> Result<(), store::Error> {
        if let Some(store) = self.store {
            for hash in &self.new_blocks {
                store.remove(hash)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Child {
    cid: Cid,
    tsize: u64,
    filesize: u64,
}

/// The balanced layout, built as chunks stream in: `levels[i]` holds the children of the open
/// node at height `i + 1`. A full level is closed into a node one level up before it takes
/// another child, which yields the same tree as Kubo's recursive builder.
struct Balanced {
    levels: Vec<Vec<Child>>,
    v0: bool,
}

impl Balanced {
    fn push(
        &mut self,
        sink: &mut Sink<'_>,
        child: Child,
        level: usize,
    ) -> Result<(), store::Error> {
        if self.levels.len() == level {
            self.levels.push(Vec::with_capacity(MAX_LINKS));
        }
        if self.levels[level].len() == MAX_LINKS {
            let full = std::mem::take(&mut self.levels[level]);
            let node = self.close(sink, &full)?;
            self.push(sink, node, level + 1)?;
        }
        self.levels[level].push(child);
        Ok(())
    }

    fn close(&self, sink: &mut Sink<'_>, children: &[Child]) -> Result<Child, store::Error> {
        let filesize = children.iter().map(|c| c.filesize).sum();
        let data = pb::encode_unixfs(&UnixfsData {
            kind: DataType::File,
            data: None,
            filesize: Some(filesize),
            blocksizes: children.iter().map(|c| c.filesize).collect(),
        });
        let links: Vec<Link> = children
            .iter()
            .map(|c| Link {
                cid: c.cid,
                name: String::new(),
                tsize: c.tsize,
            })
            .collect();
        let bytes = pb::encode_node(&links, Some(&data));
        let tsize = bytes.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        let block = Block::hash(DAG_PB, bytes, self.v0);
        sink.put(&block)?;
        Ok(Child {
            cid: *block.cid(),
            tsize,
            filesize,
        })
    }

    fn finish(mut self, sink: &mut Sink<'_>) -> Result<Child, store::Error> {
        let mut level = 0;
        loop {
            let children = std::mem::take(&mut self.levels[level]);
            if level + 1 == self.levels.len() {
                // The top: a lone leaf is the root itself; anything else gets a node.
                return match children.as_slice() {
                    [only] if level == 0 => Ok(*only),
                    _ => self.close(sink, &children),
                };
            }
            let node = self.close(sink, &children)?;
            // The level above may be full: pushing closes it into a new level first.
            self.push(sink, node, level + 1)?;
            level += 1;
        }
    }
}

/// Leaves buffered between the reading-and-hashing thread and the storing one: more than one
/// 4 MiB write-out of the store (16 leaves of 256 KiB), so hashing goes on during a write.
const IN_FLIGHT: usize = 20;

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn leaf(chunk: Vec<u8>, raw: bool, v0: bool) -> (Block, u64) {
    let len = chunk.len() as u64;
    if raw {
        return (Block::hash(RAW, chunk, false), len);
    }
    let mut bytes = Vec::new();
    pb::encode_leaf(&chunk, &mut bytes);
    (Block::hash(DAG_PB, bytes, v0), len)
}

/// Imports one file's bytes; returns its root. `source` names the input in errors.
///
/// One thread reads and hashes leaves while this one stores them and builds the tree, with
/// at most [`IN_FLIGHT`] leaves between them: memory stays flat whatever the file size.
pub fn add_reader(
    reader: Box<dyn Read + Send>,
    source: &Path,
    options: &AddOptions,
    sink: &mut Sink<'_>,
) -> Result<Added, AddError> {
    check_version(options)?;
    let chunk_size = options.chunker.size();
    let (raw, v0) = (options.raw_leaves(), options.v0());
    let mut tree = Balanced {
        levels: Vec::new(),
        v0,
    };

    let (tx, rx) = sync_channel::<io::Result<(Block, u64)>>(IN_FLIGHT);
    let root = std::thread::scope(|s| {
        s.spawn(move || {
            let mut reader = reader;
            let mut first = true;
            loop {
                let mut chunk = vec![0u8; chunk_size];
                let n = match read_full(&mut reader, &mut chunk) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // The empty file is one empty leaf, as in Kubo; otherwise no empty chunks.
                if n > 0 || first {
                    chunk.truncate(n);
                    if tx.send(Ok(leaf(chunk, raw, v0))).is_err() {
                        return;
                    }
                }
                first = false;
                if n < chunk_size {
                    return;
                }
            }
        });
        let mut total = 0u64;
        for item in rx {
            let (block, len) = item.map_err(|e| AddError::Io {
                path: source.to_path_buf(),
                source: e,
            })?;
            sink.put(&block)?;
            total += len;
            sink.progress(total);
            tree.push(
                sink,
                Child {
                    cid: *block.cid(),
                    tsize: block.data().len() as u64,
                    filesize: len,
                },
                0,
            )?;
        }
        // Dropping the receiver on an error above stops the reader thread at its next send.
        Ok::<_, AddError>(tree.finish(sink)?)
    })?;
    Ok(Added {
        name: String::new(),
        cid: root.cid,
        tsize: root.tsize,
    })
}

fn check_version(options: &AddOptions) -> Result<(), AddError> {
    match options.cid_version {
        0 | 1 => Ok(()),
        v => Err(AddError::CidVersion(v)),
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AddError + '_ {
    move |source| AddError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Imports a file, symlink or (recursively) directory. Returns every entry in Kubo's output
/// order — files as they are added, then directories innermost first — the root last.
pub fn add_path(
    path: &Path,
    options: &AddOptions,
    sink: &mut Sink<'_>,
) -> Result<Vec<Added>, AddError> {
    check_version(options)?;
    let name = path
        .file_name()
        .map(|n| {
            n.to_str()
                .map(str::to_string)
                .ok_or_else(|| AddError::NonUtf8Name {
                    path: path.to_path_buf(),
                })
        })
        .transpose()?
        .unwrap_or_else(|| path.display().to_string());
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    // Arguments are followed if they are symlinks, as Kubo does; entries inside are not.
    let meta = std::fs::metadata(path).map_err(io_at(path))?;
    let root = if meta.is_dir() {
        add_dir(path, &name, options, sink, &mut files, &mut dirs)?
    } else {
        let file = std::fs::File::open(path).map_err(io_at(path))?;
        let mut added = add_reader(Box::new(file), path, options, sink)?;
        added.name = name;
        files.push(added.clone());
        return Ok(files);
    };
    debug_assert_eq!(dirs.last().map(|d: &Added| d.cid), Some(root.cid));
    files.extend(dirs);
    Ok(files)
}

/// A directory's entries to add, sorted bytewise by name as Kubo sorts links; dotfiles only
/// with `hidden`.
fn dir_entries(path: &Path, options: &AddOptions) -> Result<Vec<(String, PathBuf)>, AddError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_at(path))? {
        let entry = entry.map_err(io_at(path))?;
        let entry_name = entry
            .file_name()
            .into_string()
            .map_err(|_| AddError::NonUtf8Name { path: entry.path() })?;
        if entry_name.starts_with('.') && !options.hidden {
            continue;
        }
        entries.push((entry_name, entry.path()));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries)
}

/// A symlink as a UnixFS node holding its target.
fn add_symlink(
    path: &Path,
    name: String,
    options: &AddOptions,
    sink: &mut Sink<'_>,
) -> Result<Added, AddError> {
    let target = std::fs::read_link(path).map_err(io_at(path))?;
    let target = target.to_str().ok_or_else(|| AddError::NonUtf8Name {
        path: path.to_path_buf(),
    })?;
    let data = pb::encode_unixfs(&UnixfsData {
        kind: DataType::Symlink,
        data: Some(target.as_bytes()),
        filesize: None,
        blocksizes: Vec::new(),
    });
    let block = Block::hash(DAG_PB, pb::encode_node(&[], Some(&data)), options.v0());
    sink.put(&block)?;
    Ok(Added {
        name,
        cid: *block.cid(),
        tsize: block.data().len() as u64,
    })
}

fn add_dir(
    path: &Path,
    name: &str,
    options: &AddOptions,
    sink: &mut Sink<'_>,
    files: &mut Vec<Added>,
    dirs: &mut Vec<Added>,
) -> Result<Added, AddError> {
    let entries = dir_entries(path, options)?;

    let mut links = Vec::with_capacity(entries.len());
    let mut estimate = 0usize;
    for (entry_name, entry_path) in entries {
        let child_name = format!("{name}/{entry_name}");
        let meta = std::fs::symlink_metadata(&entry_path).map_err(io_at(&entry_path))?;
        let child = if meta.is_dir() {
            add_dir(&entry_path, &child_name, options, sink, files, dirs)?
        } else if meta.file_type().is_symlink() {
            let added = add_symlink(&entry_path, child_name, options, sink)?;
            files.push(added.clone());
            added
        } else {
            let file = std::fs::File::open(&entry_path).map_err(io_at(&entry_path))?;
            let mut added = add_reader(Box::new(file), &entry_path, options, sink)?;
            added.name = child_name;
            files.push(added.clone());
            added
        };
        estimate += entry_name.len() + child.cid.encoded_len();
        if estimate >= SHARDING_THRESHOLD {
            return Err(AddError::NeedsSharding {
                path: path.to_path_buf(),
                estimate,
            });
        }
        links.push(Link {
            cid: child.cid,
            name: entry_name,
            tsize: child.tsize,
        });
    }
    let data = pb::encode_unixfs(&UnixfsData {
        kind: DataType::Directory,
        data: None,
        filesize: None,
        blocksizes: Vec::new(),
    });
    let bytes = pb::encode_node(&links, Some(&data));
    let tsize = bytes.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>();
    let block = Block::hash(DAG_PB, bytes, options.v0());
    sink.put(&block)?;
    let added = Added {
        name: name.to_string(),
        cid: *block.cid(),
        tsize,
    };
    dirs.push(added.clone());
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::protect::Protector;
    use crate::store::MemoryStore;

    fn cid_of(bytes: &[u8], options: &AddOptions) -> Cid {
        let mut sink = Sink::only_hash();
        add_reader(
            Box::new(io::Cursor::new(bytes.to_vec())),
            Path::new("-"),
            options,
            &mut sink,
        )
        .unwrap()
        .cid
    }

    #[test]
    fn public_vectors() {
        let v0 = AddOptions::default();
        let v1 = AddOptions {
            cid_version: 1,
            ..AddOptions::default()
        };
        assert_eq!(
            cid_of(b"", &v0).to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        assert_eq!(
            cid_of(b"", &v1).to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(
            cid_of(b"hello world\n", &v0).to_string(),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
        );
        assert_eq!(
            cid_of(b"hello world\n", &v1).to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
    }

    #[test]
    fn empty_directory_vector() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::only_hash();
        let added = add_path(dir.path(), &AddOptions::default(), &mut sink).unwrap();
        assert_eq!(
            added.last().unwrap().cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
    }

    #[test]
    fn layout_depths() {
        // Small chunks so that multi-level trees stay cheap: 175 chunks need depth 2.
        let options = AddOptions {
            chunker: "size-10".parse().unwrap(),
            ..AddOptions::default()
        };
        let store = MemoryStore::new();
        let protector = Protector::new();
        for chunks in [1usize, 2, 174, 175, 174 * 174 + 1] {
            let data = vec![1u8; chunks * 10];
            let session = protector.session();
            let mut sink = Sink::new(&store, &session);
            let root = add_reader(
                Box::new(io::Cursor::new(data.clone())),
                Path::new("-"),
                &options,
                &mut sink,
            )
            .unwrap();
            let block = store.get(&root.cid).unwrap().unwrap();
            let node = pb::decode_node(&block).unwrap();
            let expected_links = match chunks {
                1 => 0,
                2 => 2,
                174 => 174,
                175 => 2,
                _ => 2,
            };
            assert_eq!(node.links.len(), expected_links, "{chunks} chunks");
            let fs = pb::decode_unixfs(node.data.unwrap()).unwrap();
            assert_eq!(fs.filesize, Some(data.len() as u64));
        }
    }

    #[test]
    fn chunker_limits() {
        assert!("size-1048576".parse::<Chunker>().is_ok());
        assert!("size-1048577".parse::<Chunker>().is_err());
        assert!("size-0".parse::<Chunker>().is_err());
        assert!("rabin".parse::<Chunker>().is_err());
    }

    #[test]
    fn rollback_removes_only_new_blocks() {
        let store = MemoryStore::new();
        let protector = Protector::new();
        let session = protector.session();
        let existing = Block::hash(RAW, b"shared".to_vec(), false);
        store.put(&existing).unwrap();
        let options = AddOptions {
            cid_version: 1,
            chunker: "size-6".parse().unwrap(),
            ..AddOptions::default()
        };
        let mut sink = Sink::new(&store, &session);
        add_reader(
            Box::new(io::Cursor::new(b"sharedfresh!".to_vec())),
            Path::new("-"),
            &options,
            &mut sink,
        )
        .unwrap();
        assert_eq!(store.stat().unwrap().blocks, 3);
        sink.rollback().unwrap();
        assert_eq!(store.stat().unwrap().blocks, 1);
        assert!(store.has(existing.cid().hash()).unwrap());
    }
}
