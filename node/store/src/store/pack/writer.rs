//! The pack being written: records staged in one buffer and handed to the OS in large writes.
//!
//! Where the file system allows it, the pack is also opened with `O_DIRECT`, and every whole
//! 4 KiB block of the buffer goes from the buffer to the disk with no copy into the page cache.
//! That copy is what a page-cache write costs the CPU, and on machines whose memory is handed
//! back to a hypervisor while free (free page reporting) it is most of the cost of storing a
//! block: a fresh page-cache page is first touched during it. The buffer is allocated once and
//! reused, so its pages stay in memory. The last, partial block is written through the page
//! cache only when a flush needs it on disk, and stays in the buffer to be written again,
//! whole, by the next direct write (the kernel keeps both paths coherent). Without `O_DIRECT`
//! (tmpfs, some network file systems) the same buffer is written through the page cache.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::{io_err, open_pack, pack_path, PackStoreConfig};
use super::loc::Loc;
use crate::store;
use crate::store::block::Hash;
use crate::store::sys;

/// Bytes of records staged before they are written out (one record may be larger alone).
pub(super) const WRITE_BUFFER: usize = 4 << 20;
/// The alignment of direct writes: their memory, file offset and length.
pub(super) const ALIGN: usize = 4096;

/// A byte buffer whose start is [`ALIGN`]ed, of a fixed capacity that grows only for a record
/// larger than it.
struct Staging {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Staging {
    fn with_capacity(capacity: usize) -> Self {
        let mem = vec![0u8; capacity + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self { mem, start, len: 0 }
    }

    fn capacity(&self) -> usize {
        self.mem.len() - self.start
    }

    fn as_slice(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    fn len(&self) -> usize {
        self.len
    }

    fn extend(&mut self, data: &[u8]) {
        let need = self.len + data.len();
        if need > self.capacity() {
            let mut bigger = Staging::with_capacity(need.max(2 * self.capacity()));
            bigger.extend(self.as_slice());
            *self = bigger;
        }
        let at = self.start + self.len;
        self.mem[at..at + data.len()].copy_from_slice(data);
        self.len = need;
    }

    /// Drops the first `n` bytes, moving the rest to the front.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.mem
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        // A buffer grown for one large record goes back to its size.
        if self.capacity() > 2 * WRITE_BUFFER && self.len <= WRITE_BUFFER {
            let mut normal = Staging::with_capacity(WRITE_BUFFER);
            normal.extend(self.as_slice());
            *self = normal;
        }
    }
}

/// The pack being written. See the module docs.
pub(super) struct Writer {
    pub(super) id: u32,
    file: Arc<File>,
    /// The same pack opened with `O_DIRECT`, where the file system supports it.
    direct: Option<File>,
    path: PathBuf,
    /// Records from `file_len - held` on: the first `held` bytes are already in the file.
    buf: Staging,
    held: usize,
    /// Bytes of the pack already handed to the OS.
    file_len: u64,
    /// Writeback was started for bytes before this offset.
    kicked: u64,
    /// Writeback finished for bytes before this offset.
    settled: u64,
    /// A pack was created since the directory was last fsynced.
    dir_dirty: bool,
    /// Packs closed since the last flush, whose bytes `flush` must still sync.
    closed: Vec<(Arc<File>, PathBuf)>,
    /// Why writes are refused: an fsync failed, and after a failed fsync the kernel may have
    /// dropped the bytes it could not write while reporting later fsyncs as successful.
    failed: Option<String>,
}

/// `path` opened for direct writes, if the file system takes them.
fn open_direct(path: &Path) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

impl Writer {
    /// Starts (or goes on with) pack `id` in `packs_dir`; `dir_dirty` when it is new;
    /// `direct` to write whole blocks with `O_DIRECT` where the file system allows it.
    pub(super) fn open(
        packs_dir: &Path,
        id: u32,
        dir_dirty: bool,
        direct: bool,
    ) -> Result<Self, store::error::Error> {
        let path = pack_path(packs_dir, id);
        let file = Arc::new(open_pack(&path, true)?);
        let file_len = file.metadata().map_err(io_err(&path))?.len();
        let mut w = Self {
            id,
            direct: if direct { open_direct(&path) } else { None },
            file,
            path,
            buf: Staging::with_capacity(WRITE_BUFFER),
            held: 0,
            file_len,
            kicked: file_len,
            settled: file_len,
            dir_dirty,
            closed: Vec::new(),
            failed: None,
        };
        w.hold_tail()?;
        Ok(w)
    }

    /// With direct writes, reads the pack's last partial block into the empty buffer, so the
    /// buffer starts at an aligned offset.
    fn hold_tail(&mut self) -> Result<(), store::error::Error> {
        if self.direct.is_none() {
            return Ok(());
        }
        let held = (self.file_len % ALIGN as u64) as usize;
        let mut tail = vec![0u8; held];
        self.file
            .read_exact_at(&mut tail, self.file_len - held as u64)
            .map_err(io_err(&self.path))?;
        self.buf.extend(&tail);
        self.held = held;
        Ok(())
    }

    /// The file offset of the buffer's first byte.
    fn base(&self) -> u64 {
        self.file_len - self.held as u64
    }

    /// Where the next record would start: the pack's size with what is staged.
    pub(super) fn end(&self) -> u64 {
        self.base() + self.buf.len() as u64
    }

    /// The bytes at `loc` if they are not wholly in the file yet: staged here, or (a record
    /// that a direct write cut at a block boundary) partly in the file and partly staged.
    pub(super) fn staged(&self, loc: &Loc) -> Option<std::io::Result<Vec<u8>>> {
        if loc.pack != self.id || loc.end() <= self.file_len {
            return None;
        }
        let base = self.base();
        let buffered = self.buf.as_slice();
        if loc.offset >= base {
            let start = usize::try_from(loc.offset - base).ok()?;
            let bytes = buffered.get(start..start.checked_add(loc.len as usize)?)?;
            return Some(Ok(bytes.to_vec()));
        }
        let head = usize::try_from(base - loc.offset).ok()?;
        let tail = buffered.get(..(loc.len as usize).checked_sub(head)?)?;
        let mut out = vec![0u8; loc.len as usize];
        Some(
            self.file
                .read_exact_at(&mut out[..head], loc.offset)
                .map(|()| {
                    out[head..].copy_from_slice(tail);
                    out
                }),
        )
    }

    /// Appends a record; the caller records the location.
    pub(super) fn append(
        &mut self,
        config: &PackStoreConfig,
        packs_dir: &Path,
        hash: &Hash,
        data: &[u8],
    ) -> Result<Loc, store::error::Error> {
        if let Some(reason) = &self.failed {
            return Err(store::error::Error::Failed(reason.clone()));
        }
        let len = u32::try_from(data.len())
            .map_err(|_| store::error::Error::CorruptIndex("block over 4 GiB".into()))?;
        let hash_bytes = hash.to_bytes();
        let hash_len = u8::try_from(hash_bytes.len())
            .map_err(|_| store::error::Error::CorruptIndex("multihash over 255 bytes".into()))?;
        if self.end() >= config.pack_target_bytes {
            self.roll(config, packs_dir)?;
        }
        let record = 5 + hash_bytes.len() + data.len();
        if self.buf.len() > self.held && self.buf.len() + record > WRITE_BUFFER {
            // Written before the record joins the buffer: when this fails, nothing of the
            // record is anywhere and the buffer stays bounded.
            self.write_out(config, packs_dir, false)?;
            self.kick_writeback(config);
        }
        self.buf.extend(&len.to_le_bytes());
        self.buf.extend(&[hash_len]);
        self.buf.extend(&hash_bytes);
        let offset = self.end();
        self.buf.extend(data);
        Ok(Loc {
            pack: self.id,
            offset,
            len,
        })
    }

    /// Hands what is staged to the OS at the end of the pack: with direct writes, the whole
    /// blocks, and the partial one too when `whole`. On failure the pack is cut back to where
    /// it ended and the buffer kept, so every recorded location stays right and the records
    /// are written by a later call once there is room.
    fn write_out(
        &mut self,
        config: &PackStoreConfig,
        packs_dir: &Path,
        whole: bool,
    ) -> Result<(), store::error::Error> {
        let pending = self.buf.len() - self.held;
        if pending == 0 {
            return Ok(());
        }
        if config.min_free_bytes > 0 {
            let free = sys::free_bytes(&self.file).map_err(io_err(&self.path))?;
            let need = pending as u64 + config.min_free_bytes;
            if free < need {
                return Err(store::error::Error::DiskFull {
                    path: packs_dir.to_path_buf(),
                    free,
                    reserve: config.min_free_bytes,
                });
            }
        }
        if let Some(direct) = &self.direct {
            let aligned = self.buf.len() / ALIGN * ALIGN;
            if aligned > 0 {
                match direct.write_all_at(&self.buf.as_slice()[..aligned], self.base()) {
                    Ok(()) => {
                        self.file_len = self.base() + aligned as u64;
                        self.buf.consume(aligned);
                        self.held = 0;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                        // The file system opened the file for direct I/O but refuses it:
                        // every later write goes through the page cache.
                        tracing::debug!(path = %self.path.display(), error = %e, "direct writes refused");
                        self.direct = None;
                        self.cut_back();
                        return self.write_out(config, packs_dir, whole);
                    }
                    Err(e) => {
                        self.cut_back();
                        return Err(io_err(&self.path)(e));
                    }
                }
            }
            if !whole || self.buf.len() == self.held {
                return Ok(());
            }
        }
        // Through the page cache: everything without direct writes, else the partial block.
        let tail = &self.buf.as_slice()[self.held..];
        if let Err(e) = self.file.write_all_at(tail, self.file_len) {
            self.cut_back();
            return Err(io_err(&self.path)(e));
        }
        self.file_len += tail.len() as u64;
        if self.direct.is_some() {
            self.held = self.buf.len();
        } else {
            self.buf.consume(self.buf.len());
            self.held = 0;
        }
        Ok(())
    }

    /// Cuts the pack back to what was handed to the OS before a failed write.
    fn cut_back(&self) {
        if let Err(trim) = self.file.set_len(self.file_len) {
            // Harmless for the records (every write names its offset); the bytes stay as
            // garbage until the next open trims them.
            tracing::warn!(path = %self.path.display(), error = %trim, "cannot cut back a failed write");
        }
    }

    /// Starts writeback of what was written through the page cache since the last call, and
    /// waits for writeback of what is well behind, so that dirty pages stay bounded and the
    /// disk never idles. (Direct writes leave no dirty pages.)
    fn kick_writeback(&mut self, config: &PackStoreConfig) {
        if self.direct.is_some() {
            return;
        }
        let step = config.writeback_bytes.max(1);
        if self.file_len - self.kicked < step {
            return;
        }
        sys::start_writeback(&self.file, self.kicked, self.file_len - self.kicked);
        self.kicked = self.file_len;
        let horizon = self.kicked.saturating_sub(8 * step);
        if horizon > self.settled {
            sys::wait_writeback(&self.file, self.settled, horizon - self.settled);
            self.settled = horizon;
        }
    }

    /// Writes out everything staged and makes it durable, with the packs closed since.
    pub(super) fn sync(
        &mut self,
        config: &PackStoreConfig,
        packs_dir: &Path,
    ) -> Result<(), store::error::Error> {
        if let Some(reason) = &self.failed {
            return Err(store::error::Error::Failed(reason.clone()));
        }
        self.write_out(config, packs_dir, true)?;
        let mut synced = Ok(());
        for (file, path) in self.closed.drain(..) {
            if synced.is_ok() {
                synced = file.sync_data().map_err(io_err(&path));
            }
        }
        if synced.is_ok() {
            synced = self.file.sync_data().map_err(io_err(&self.path));
        }
        if let Err(e) = synced {
            tracing::error!(error = %e, "fsync failed: the block store refuses writes until restarted");
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.kicked = self.file_len;
        self.settled = self.file_len;
        if self.dir_dirty {
            File::open(packs_dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(packs_dir))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Closes the pack being written and starts the next one. The old pack is synced by the
    /// next flush, before anything in it is indexed.
    pub(super) fn roll(
        &mut self,
        config: &PackStoreConfig,
        packs_dir: &Path,
    ) -> Result<(), store::error::Error> {
        self.write_out(config, packs_dir, true)?;
        if self.direct.is_none() {
            sys::start_writeback(&self.file, self.kicked, self.file_len - self.kicked);
        }
        let mut next = Writer::open(packs_dir, self.id + 1, true, config.direct_writes)?;
        next.failed = self.failed.take();
        next.closed = std::mem::take(&mut self.closed);
        next.closed
            .push((Arc::clone(&self.file), self.path.clone()));
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_aligned_grows_for_a_large_record_and_shrinks_back() {
        let mut s = Staging::with_capacity(WRITE_BUFFER);
        assert_eq!(s.as_slice().as_ptr() as usize % ALIGN, 0);
        s.extend(b"abc");
        s.extend(&vec![7u8; 3 * WRITE_BUFFER]);
        assert_eq!(s.as_slice().as_ptr() as usize % ALIGN, 0);
        assert_eq!(&s.as_slice()[..4], b"abc\x07");
        s.consume(3 * WRITE_BUFFER);
        assert!((WRITE_BUFFER..2 * WRITE_BUFFER).contains(&s.capacity()));
        assert_eq!(s.as_slice(), &[7u8; 3]);
        assert_eq!(s.as_slice().as_ptr() as usize % ALIGN, 0);
    }

    fn hash(n: u8) -> Hash {
        *crate::store::Block::hash(crate::store::block::RAW, vec![n], false)
            .cid()
            .hash()
    }

    /// A record cut by a direct write (whole blocks out, the rest staged) reads back whole
    /// before the flush.
    #[test]
    fn a_record_cut_at_a_block_boundary_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = PackStoreConfig::default();
        let mut w = Writer::open(dir.path(), 0, true, true).unwrap_or_else(|e| panic!("{e}"));
        let mut locs = Vec::new();
        // Enough 256 KiB records to pass the staging buffer several times.
        for i in 0..40u8 {
            let data = vec![i; 256 << 10];
            let loc = w
                .append(&config, dir.path(), &hash(i), &data)
                .unwrap_or_else(|e| panic!("{e}"));
            locs.push((loc, data));
            for (loc, data) in &locs {
                if let Some(read) = w.staged(loc) {
                    assert_eq!(&read.unwrap_or_else(|e| panic!("{e}")), data);
                } else {
                    let file =
                        File::open(pack_path(dir.path(), 0)).unwrap_or_else(|e| panic!("{e}"));
                    let mut back = vec![0u8; loc.len as usize];
                    file.read_exact_at(&mut back, loc.offset)
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(&back, data);
                }
            }
        }
    }

    /// Records appended in several sessions, each synced at an unaligned end, read back
    /// exactly from the file (direct where the temp dir allows it, else buffered).
    #[test]
    fn records_survive_partial_blocks_synced_and_rewritten() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = PackStoreConfig::default();
        let mut expected: Vec<(Loc, Vec<u8>)> = Vec::new();
        for session in 0..3u8 {
            let mut w =
                Writer::open(dir.path(), 0, session == 0, true).unwrap_or_else(|e| panic!("{e}"));
            for i in 0..50u8 {
                let data = vec![session.wrapping_mul(50).wrapping_add(i); 1000 + 37 * i as usize];
                let loc = w
                    .append(&config, dir.path(), &hash(i), &data)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(w.staged(&loc).map(Result::ok), Some(Some(data.clone())));
                expected.push((loc, data));
                if i % 7 == 0 {
                    w.sync(&config, dir.path())
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            w.sync(&config, dir.path())
                .unwrap_or_else(|e| panic!("{e}"));
            if w.direct.is_some() {
                // The partial block is in the file and still staged, to be rewritten whole.
                assert_eq!(w.held as u64, w.end() % ALIGN as u64);
            }
        }
        let file = File::open(pack_path(dir.path(), 0)).unwrap_or_else(|e| panic!("{e}"));
        let big = vec![9u8; 300 << 10];
        let mut w = Writer::open(dir.path(), 0, false, true).unwrap_or_else(|e| panic!("{e}"));
        let loc = w
            .append(&config, dir.path(), &hash(200), &big)
            .unwrap_or_else(|e| panic!("{e}"));
        w.sync(&config, dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        expected.push((loc, big));
        for (loc, data) in expected {
            let mut back = vec![0u8; loc.len as usize];
            file.read_exact_at(&mut back, loc.offset)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, data);
        }
    }
}
