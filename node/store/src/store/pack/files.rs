//! The pack files themselves: the store's settings, where packs live, and opening them.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store;

/// Tuning of a [`PackStore`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PackStoreConfig {
    /// A pack file is closed and a new one started once it reaches this size. Bytes; default
    /// 256 MiB.
    pub pack_target_bytes: u64,
    /// Memory sled may use for its page cache. Bytes; default 16 MiB.
    pub index_cache_bytes: u64,
    /// During long writes, start writeback of new bytes once this many have accumulated, and
    /// wait for writeback of bytes older than eight times this. Bytes; default 8 MiB.
    pub writeback_bytes: u64,
    /// Block writes are refused (the add fails cleanly) rather than leave less than this free
    /// on the file system, so the index, the pins and the task table always have room to
    /// write. Bytes; default 64 MiB; 0 writes until the disk itself says it is full.
    pub min_free_bytes: u64,
    /// Write whole 4 KiB blocks of packs with `O_DIRECT` (from the store's own buffer, no
    /// page-cache copy) where the file system allows it, and read records of 64 KiB or more
    /// the same way. Faster where page-cache pages are dear (virtual machines whose free
    /// memory goes back to the host), but what was written is then read from the disk, not
    /// from memory. Default true.
    pub direct_writes: bool,
}

impl Default for PackStoreConfig {
    fn default() -> Self {
        Self {
            pack_target_bytes: 256 << 20,
            index_cache_bytes: 16 << 20,
            writeback_bytes: 8 << 20,
            min_free_bytes: 64 << 20,
            direct_writes: true,
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> store::error::Error + '_ {
    move |source| store::error::Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.pack"))
}

pub(super) fn pack_ids(dir: &Path) -> Result<Vec<u32>, store::error::Error> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_suffix(".pack")
            .and_then(|s| s.parse::<u32>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Opens a pack for reading and positional writes (never `O_APPEND`: every write names its
/// offset, so a write that failed halfway cannot shift the records after it).
pub(super) fn open_pack(path: &Path, create: bool) -> Result<File, store::error::Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))
}
