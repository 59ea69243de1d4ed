//! `bench.fetch` and `dag.stat`: every input's DAG fetched (over Bitswap when not local) and
//! counted; `bench.fetch` also times the fetch.

use std::sync::Arc;
use std::time::Instant;

use cid::Cid;
use ipfsbench_core::network::Client;
use ipfsbench_core::repo::Repo;
use ipfsbench_core::store::BlockStore;
use ipfsbench_protocols::task::{Kind, Spec};

use super::common::{fail, RunError};
use crate::results::record::{InputMetrics, Metrics};

/// Every input fetched and counted, with the totals over them (and, for `bench.fetch`, the
/// whole fetch's time and rate).
pub(crate) async fn run(
    client: &Client,
    repo: &Arc<Repo>,
    spec: &Spec,
    report: &(dyn Fn(u16, &str) + Sync),
) -> Result<Metrics, RunError> {
    let timed = spec.kind == Kind::BenchFetch;
    let mut per_input = Vec::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        per_input.push(input_metrics(client, repo, input.0, timed).await?);
        let done = (i + 1) * 1000 / spec.inputs.len();
        report(u16::try_from(done).unwrap_or(1000), "input fetched");
    }
    let total = |f: fn(&InputMetrics) -> u64| per_input.iter().map(f).sum::<u64>();
    let (bytes, fetched) = (total(|m| m.bytes), total(|m| m.blocks_fetched));
    let mut metrics = Metrics {
        blocks: Some(total(|m| m.blocks)),
        bytes: Some(bytes),
        blocks_fetched: Some(fetched),
        ..Metrics::default()
    };
    if timed {
        // The whole fetch, over every input: the figure the cluster keeps.
        let seconds: f64 = per_input.iter().filter_map(|m| m.seconds).sum();
        metrics.seconds = Some(seconds);
        metrics.mbps = (fetched > 0).then(|| bytes as f64 / 1e6 / seconds.max(1e-9));
    }
    metrics.inputs = Some(per_input);
    Ok(metrics)
}

/// Fetches one input's DAG and counts its blocks and bytes (when `timed`, with the fetch's
/// time and rate).
async fn input_metrics(
    client: &Client,
    repo: &Arc<Repo>,
    root: Cid,
    timed: bool,
) -> Result<InputMetrics, RunError> {
    let clock = Instant::now();
    let fetched = client.fetch_dag(repo, root).await.map_err(fail)?;
    let seconds = clock.elapsed().as_secs_f64();
    let repo = Arc::clone(repo);
    let (blocks, bytes) = tokio::task::spawn_blocking(move || dag_stat(repo.store(), &root))
        .await
        .map_err(fail)??;
    Ok(InputMetrics {
        cid: root.to_string(),
        blocks,
        bytes,
        blocks_fetched: fetched,
        seconds: timed.then_some(seconds),
        // Throughput means something only when the DAG came over the network.
        mbps: (timed && fetched > 0).then(|| bytes as f64 / 1e6 / seconds.max(1e-9)),
    })
}

/// Blocks and bytes of the DAG under `root`, which must be local.
fn dag_stat(store: &dyn BlockStore, root: &Cid) -> Result<(u64, u64), RunError> {
    let mut blocks = 0u64;
    let mut bytes = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut sizes = Vec::new();
    ipfsbench_core::store::dag::walk(store, root, false, &mut seen, &mut |cid, data| {
        blocks += 1;
        match data {
            Some(d) => bytes += d.len() as u64,
            None => sizes.push(*cid),
        }
        Ok(())
    })
    .map_err(fail)?;
    for cid in sizes {
        bytes += store.size(&cid).map_err(fail)?.unwrap_or(0);
    }
    Ok((blocks, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_core::unixfs::AddOptions;

    #[test]
    fn dag_stat_counts_blocks_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("repo")).unwrap();
        let data = crate::worker::kinds::common::random_bytes((3 << 20) + 5);
        let added = repo
            .add_reader(
                Box::new(std::io::Cursor::new(data)),
                &AddOptions::default(),
                false,
                &mut |_| {},
            )
            .unwrap();
        let (blocks, bytes) = dag_stat(repo.store(), &added.cid).unwrap();
        // 13 leaves of at most 256 KiB and one root.
        assert_eq!(blocks, 14);
        assert!(bytes > (3 << 20) + 5 && bytes < (3 << 20) + 4096);
    }
}
