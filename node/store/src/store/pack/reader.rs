//! Reading records out of packs: through the page cache, or for large records straight from
//! the disk (`O_DIRECT`) where the store writes that way too.
//!
//! After a direct-write ingest the bytes are not in the page cache, and filling it costs more
//! than the disk read where fresh pages are dear (virtual machines whose free memory goes
//! back to the host). A large record is then read with `O_DIRECT` into its own buffer: the
//! aligned span around it, moved to the buffer's start. Small records (directory nodes, index
//! blocks of a file) keep the page cache and its readahead. Reads run on blocking threads,
//! many at once (Bitswap's server, the file streamer), so the disk's queue stays full.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::loc::Loc;
use super::writer::ALIGN;

/// Records at least this large are read with `O_DIRECT` when the pack allows it.
const DIRECT_READ_MIN: usize = 64 << 10;

/// One pack opened for reading.
#[derive(Debug)]
pub(super) struct PackReader {
    file: File,
    /// The same pack opened with `O_DIRECT`, when asked for and the file system takes it.
    direct: Option<File>,
}

impl PackReader {
    /// Opens `path`; with `direct`, also for direct reads where the file system allows them.
    pub(super) fn open(path: &Path, direct: bool) -> io::Result<Self> {
        let file = File::open(path)?;
        let direct = direct
            .then(|| {
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)
                    .ok()
            })
            .flatten();
        Ok(Self { file, direct })
    }

    /// The record's bytes at `loc`.
    pub(super) fn read(&self, loc: &Loc) -> io::Result<Vec<u8>> {
        let len = loc.len as usize;
        if len >= DIRECT_READ_MIN {
            if let Some(direct) = &self.direct {
                match read_direct(direct, loc.offset, len) {
                    // The file system refused the alignment after all: use the page cache.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    other => return other,
                }
            }
        }
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, loc.offset)?;
        Ok(buf)
    }
}

/// Reads `len` bytes at `offset` with one aligned direct read of the blocks around them.
fn read_direct(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let align = ALIGN as u64;
    let start = offset / align * align;
    let end = (offset + len as u64).div_ceil(align) * align;
    let span = (end - start) as usize;
    let mut mem = vec![0u8; span + ALIGN];
    let pad = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
    // One read: a direct read returns short only at the end of the file, which may fall
    // inside the last aligned block.
    let got = file.read_at(&mut mem[pad..pad + span], start)?;
    let skip = (offset - start) as usize;
    if got < skip + len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "record runs past the end of its pack",
        ));
    }
    mem.copy_within(pad + skip..pad + skip + len, 0);
    mem.truncate(len);
    Ok(mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_whole_at_any_alignment_both_ways() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("p.pack");
        // Bytes whose value tells their position, 1 MiB plus an unaligned tail.
        let bytes: Vec<u8> = (0..(1usize << 20) + 777).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        for direct in [false, true] {
            let r = PackReader::open(&path, direct).unwrap_or_else(|e| panic!("{e}"));
            for (offset, len) in [
                (0u64, 65536usize),
                (1, 70000),
                (4095, 100_000),
                (4096, 4096),
                (12345, 300_000),
                // Ends at the file's unaligned end.
                ((bytes.len() - 80_000) as u64, 80_000),
            ] {
                let loc = Loc {
                    pack: 0,
                    offset,
                    len: len as u32,
                };
                let got = r
                    .read(&loc)
                    .unwrap_or_else(|e| panic!("{offset}+{len}: {e}"));
                assert!(
                    got == bytes[offset as usize..offset as usize + len],
                    "{offset}+{len} (direct {direct}) differs"
                );
            }
            let past = Loc {
                pack: 0,
                offset: (bytes.len() - 10) as u64,
                len: 70_000,
            };
            assert!(r.read(&past).is_err(), "a record past the end must fail");
        }
    }
}
