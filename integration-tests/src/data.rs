//! Deterministic test inputs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

const BUF_LEN: usize = 1 << 20;

/// Writes `len` pseudo-random (incompressible) bytes to a new file at `path`, streaming through
/// a 1 MiB buffer. The same `seed` and `len` give the same bytes (with the pinned `rand`).
///
/// # Errors
///
/// I/O errors creating or writing the file.
pub fn write_pseudo_random_file(path: &Path, len: u64, seed: u64) -> io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; BUF_LEN];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(BUF_LEN, |left| left.min(BUF_LEN));
        let chunk = &mut buf[..n];
        rng.fill_bytes(chunk);
        file.write_all(chunk)?;
        left -= n as u64;
    }
    file.flush()
}

/// Reads the whole file once (to bring it into the page cache); returns its length.
///
/// # Errors
///
/// I/O errors opening or reading the file.
pub fn read_through(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; BUF_LEN];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
