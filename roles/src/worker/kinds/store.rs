//! `bench.store`: the block store's durable write and read-back throughput over `size` bytes
//! (default 64 MiB) of 256 KiB random blocks, in a fresh store of its own.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use ipfsbench_core::store::block::RAW;
use ipfsbench_core::store::{Block, BlockStore, PackStore, PackStoreConfig};

use super::common::{check_stop, fail, random_bytes, RunError};
use crate::results::record::Metrics;

/// Writes `size` bytes of 256 KiB random blocks to a fresh pack store in `dir` (durably:
/// flushed), then reads them all back.
pub(crate) fn run(dir: &Path, size: u64, stop: &AtomicBool) -> Result<Metrics, RunError> {
    const BLOCK: usize = 256 << 10;
    let store = PackStore::open(dir, PackStoreConfig::default()).map_err(fail)?;
    let mut data = random_bytes(BLOCK);
    let count = size.div_ceil(BLOCK as u64);
    let mut cids = Vec::new();
    let clock = Instant::now();
    for i in 0..count {
        check_stop(stop)?;
        data[..8].copy_from_slice(&i.to_le_bytes());
        let block = Block::hash(RAW, data.clone(), false);
        cids.push(*block.cid());
        store.put(&block).map_err(fail)?;
    }
    store.flush().map_err(fail)?;
    let write = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let mut read_bytes = 0u64;
    for cid in &cids {
        check_stop(stop)?;
        let bytes = store
            .get(cid)
            .map_err(fail)?
            .ok_or_else(|| RunError(format!("block {cid} written but not read back")))?;
        read_bytes += bytes.len() as u64;
    }
    let read = clock.elapsed().as_secs_f64();
    let written = count * BLOCK as u64;
    Ok(Metrics {
        blocks: Some(count),
        bytes: Some(written),
        write_seconds: Some(write),
        write_mbps: Some(written as f64 / 1e6 / write.max(1e-9)),
        read_seconds: Some(read),
        read_mbps: Some(read_bytes as f64 / 1e6 / read.max(1e-9)),
        ..Metrics::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_writes_and_reads_back_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let m = run(dir.path(), 1 << 20, &AtomicBool::new(false)).unwrap();
        assert_eq!(m.blocks, Some(4));
        assert_eq!(m.bytes, Some(1 << 20));
        assert!(m.read_mbps.unwrap() > 0.0);
        assert!(run(dir.path(), 16 << 30, &AtomicBool::new(true)).is_err());
    }
}
