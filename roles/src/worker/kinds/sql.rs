//! `sql`: the inputs mounted as `datasets.input_N`, one read-only query, its answer stored as
//! a Parquet file (the output).

use std::time::Instant;

use cid::Cid;
use ipfsbench_core::index::Handle;
use ipfsbench_protocols::task::Spec;

use super::common::{fail, RunError};
use crate::results::record::Metrics;

/// Runs the query of `spec` on `index`. The caller runs one at a time (`one_at_a_time`), as
/// the mounts are names shared by the node.
pub(crate) async fn run(
    index: Option<&Handle>,
    one_at_a_time: &tokio::sync::Mutex<()>,
    spec: &Spec,
) -> Result<(Metrics, Cid), RunError> {
    let index = index.ok_or_else(|| RunError("this node has no benchmark database".into()))?;
    let query = spec
        .param("query")
        .ok_or_else(|| RunError("the sql kind needs a query (param query=SQL)".into()))?
        .to_string();
    let _one = one_at_a_time.lock().await;
    for (i, input) in spec.inputs.iter().enumerate() {
        index
            .mount_dataset(&format!("input_{}", i + 1), input.0)
            .await
            .map_err(fail)?;
    }
    let clock = Instant::now();
    let (answer, truncated) = index.query_to_content(query).await.map_err(fail)?;
    let cid: Cid = answer.cid.parse().map_err(fail)?;
    let metrics = Metrics {
        rows: Some(answer.rows),
        truncated: Some(truncated),
        bytes: Some(answer.bytes),
        seconds: Some(clock.elapsed().as_secs_f64()),
        columns: Some(
            answer
                .columns
                .iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect(),
        ),
        ..Metrics::default()
    };
    Ok((metrics, cid))
}
