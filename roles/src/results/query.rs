//! The questions asked of the `results` view: listings, comparisons by group and regressions
//! of each series' newest result, and the figure each kind is judged by.

use std::collections::BTreeMap;

use ipfsbench_core::index::{Error, Handle as Index};
use ipfsbench_sql::{literal, Answer};
use serde::{Deserialize, Serialize};

use super::schema::column;
use super::stats::{self, Better, Spread};
use ipfsbench_protocols::task::{Figure, Kind};

/// The figure a kind is judged by, and which way is better.
/// `kind` is a name from the database, which may hold kinds this node does not know.
pub fn primary_figure(kind: &str) -> (Figure, Better) {
    match kind.parse::<Kind>() {
        Ok(Kind::BenchFetch | Kind::BenchHash) => (Figure::MBps, Better::Higher),
        Ok(Kind::BenchStore) => (Figure::WriteMBps, Better::Higher),
        _ => (Figure::DurationMs, Better::Lower),
    }
}

/// How results are grouped by `results compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// CPU model and cores.
    Cpu,
    /// Worker peer id.
    Worker,
    /// Parameters.
    Param,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "worker" => Ok(Self::Worker),
            "param" | "params" => Ok(Self::Param),
            other => Err(format!("cannot group by {other:?}: cpu, worker or param")),
        }
    }
}

const HARDWARE: &str = "cpu_model || ' (' || cores || ' cores)'";

/// The figure whose column a caller named (`write_mbps`).
pub fn figure(name: &str) -> Result<Figure, String> {
    Figure::ALL
        .into_iter()
        .find(|f| column(*f) == name)
        .ok_or_else(|| format!("{name:?} is not a figure column of results"))
}

/// `results ls`: the newest results first, at most 1,000.
pub async fn list(
    index: &Index,
    kind: Option<&str>,
    worker: Option<&str>,
    since_ms: Option<u64>,
) -> Result<Answer, Error> {
    let mut filters = vec!["TRUE".to_string()];
    if let Some(k) = kind {
        filters.push(format!("kind = {}", literal(k)));
    }
    if let Some(w) = worker {
        filters.push(format!("worker LIKE {}", literal(&format!("{w}%"))));
    }
    if let Some(ms) = since_ms {
        filters.push(format!(
            "finished_at >= to_timestamp({})",
            ms as f64 / 1000.0
        ));
    }
    let sql = format!(
        "SELECT strftime(finished_at, '%Y-%m-%d %H:%M:%S') AS finished, task_id, attempt, kind, \
         param_key AS params, left(worker, 16) AS worker, outcome, round(duration_ms) AS ms, \
         round(mbps, 2) AS mbps, bytes, error FROM results WHERE {} \
         ORDER BY finished_at DESC LIMIT 1000",
        filters.join(" AND ")
    );
    index.query(sql, true).await
}

/// `results compare`: per group, the count, median, p10, p90, min and max of `figure`.
pub async fn compare(
    index: &Index,
    kind: &str,
    by: GroupBy,
    figure: Option<Figure>,
) -> Result<Answer, Error> {
    let f = column(figure.unwrap_or(primary_figure(kind).0));
    let group = match by {
        GroupBy::Cpu => HARDWARE,
        GroupBy::Worker => "worker",
        GroupBy::Param => "param_key",
    };
    let sql = format!(
        "SELECT {group} AS \"group\", count(*) AS n, median({f}) AS median, \
         quantile_cont({f}, 0.1) AS p10, quantile_cont({f}, 0.9) AS p90, min({f}) AS min, \
         max({f}) AS max FROM results \
         WHERE kind = {} AND outcome = 'succeeded' AND {f} IS NOT NULL \
         GROUP BY 1 ORDER BY 1",
        literal(kind)
    );
    index.query(sql, true).await
}

/// One series of results (kind, parameters, hardware) and the verdict on its newest value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Regression {
    /// The kind.
    pub kind: String,
    /// Its parameters.
    pub params: String,
    /// The hardware.
    pub hardware: String,
    /// The figure judged.
    pub figure: String,
    /// The newest value.
    pub latest: f64,
    /// The newest result's task.
    pub task_id: String,
    /// The history's size, median, p10 and p90.
    pub history: usize,
    /// See `history`.
    pub median: f64,
    /// See `history`.
    pub p10: f64,
    /// See `history`.
    pub p90: f64,
    /// How much worse than the median, percent (negative: better).
    pub worse_pct: f64,
    /// Flagged: worse by more than the threshold and outside the history's spread.
    pub regressed: bool,
}

/// Results of at least this many earlier runs are needed to judge a new one.
pub const MIN_HISTORY: usize = 5;
/// The history a new result is judged against: at most this many earlier runs.
pub const HISTORY: usize = 100;

/// `results regressions`: every series' newest result judged against its history.
pub async fn regressions(index: &Index, threshold_pct: f64) -> Result<Vec<Regression>, Error> {
    let sql = format!(
        "SELECT kind, param_key, {HARDWARE} AS hw, task_id, mbps, write_mbps, duration_ms \
         FROM results WHERE outcome = 'succeeded' ORDER BY finished_at, task_id"
    );
    let answer = index.query(sql, true).await?;
    let mut series: BTreeMap<(String, String, String), Vec<(String, f64)>> = BTreeMap::new();
    for row in &answer.rows {
        let text = |i: usize| row[i].as_str().unwrap_or_default().to_string();
        let kind = text(0);
        let (f, _) = primary_figure(&kind);
        let at = match f {
            Figure::MBps => 4,
            Figure::WriteMBps => 5,
            _ => 6,
        };
        if let Some(v) = row[at].as_f64() {
            series
                .entry((kind, text(1), text(2)))
                .or_default()
                .push((text(3), v));
        }
    }
    let mut out = Vec::new();
    for ((kind, params, hardware), values) in series {
        let Some(((task_id, latest), earlier)) = values.split_last() else {
            continue;
        };
        let history: Vec<f64> = earlier
            .iter()
            .rev()
            .take(HISTORY)
            .map(|(_, v)| *v)
            .collect();
        let (figure, better) = primary_figure(&kind);
        let Some(verdict) = stats::judge(&history, *latest, better, threshold_pct, MIN_HISTORY)
        else {
            continue;
        };
        let Spread {
            count,
            median,
            p10,
            p90,
            ..
        } = verdict.history;
        out.push(Regression {
            kind,
            params,
            hardware,
            figure: column(figure).into(),
            latest: *latest,
            task_id: task_id.clone(),
            history: count,
            median,
            p10,
            p90,
            worse_pct: verdict.worse_pct,
            regressed: verdict.regressed,
        });
    }
    Ok(out)
}
