//! `results report`: per kind, the comparison by hardware as a bar chart and table, each
//! worker's history of the kind's figure as a line chart, and the regressions; as Markdown,
//! a self-contained HTML page (inline SVG, no scripts or links: it opens offline) or JSON.

use std::collections::BTreeMap;

use ipfsbench_core::index::{Error, Handle as Index};
use ipfsbench_sql::{literal, Answer};
use serde::Serialize;

use super::chart::{self, Bar, Series};
use super::query::{compare, primary_figure, regressions, GroupBy, Regression};

/// One kind's section.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Section {
    /// The kind.
    pub kind: String,
    /// The figure shown.
    pub figure: String,
    /// `results compare --by cpu` of it.
    pub by_hardware: Answer,
    /// The bar chart of `by_hardware` (SVG).
    pub bars_svg: String,
    /// Each worker's values over time (SVG).
    pub history_svg: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    /// One section per kind with results.
    pub sections: Vec<Section>,
    /// Every series' newest result against its history.
    pub regressions: Vec<Regression>,
    /// The threshold used, percent.
    pub threshold_pct: f64,
}

/// Builds the report from the views.
pub async fn build(index: &Index, threshold_pct: f64) -> Result<Report, Error> {
    let kinds = index
        .query(
            "SELECT DISTINCT kind FROM results WHERE outcome = 'succeeded' ORDER BY 1".into(),
            true,
        )
        .await?;
    let mut sections = Vec::new();
    for row in &kinds.rows {
        let Some(kind) = row[0].as_str() else {
            continue;
        };
        let figure = super::schema::column(primary_figure(kind).0);
        let by_hardware = compare(index, kind, GroupBy::Cpu, None).await?;
        let bars: Vec<Bar> = by_hardware
            .rows
            .iter()
            .map(|r| Bar {
                label: r[0].as_str().unwrap_or_default().to_string(),
                median: r[2].as_f64().unwrap_or(f64::NAN),
                p10: r[3].as_f64().unwrap_or(f64::NAN),
                p90: r[4].as_f64().unwrap_or(f64::NAN),
                count: r[1].as_f64().unwrap_or(0.0) as usize,
            })
            .collect();
        let points = index
            .query(
                format!(
                    "SELECT left(worker, 12) AS w, epoch_ms(finished_at) AS t, {figure} AS v \
                     FROM results WHERE kind = {} AND outcome = 'succeeded' \
                     AND {figure} IS NOT NULL ORDER BY finished_at",
                    literal(kind)
                ),
                true,
            )
            .await?;
        let mut by_worker: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for p in &points.rows {
            if let (Some(w), Some(t), Some(v)) = (p[0].as_str(), p[1].as_f64(), p[2].as_f64()) {
                by_worker.entry(w.to_string()).or_default().push((t, v));
            }
        }
        let series: Vec<Series> = by_worker
            .into_iter()
            .map(|(label, points)| Series { label, points })
            .collect();
        sections.push(Section {
            kind: kind.to_string(),
            figure: figure.to_string(),
            bars_svg: chart::bar_chart(
                &format!("{kind}: {figure} by hardware"),
                figure,
                &bars,
                640,
                320,
            ),
            history_svg: chart::line_chart(
                &format!("{kind}: {figure} over time"),
                figure,
                &series,
                640,
                320,
            ),
            by_hardware,
        });
    }
    Ok(Report {
        sections,
        regressions: regressions(index, threshold_pct).await?,
        threshold_pct,
    })
}

fn markdown_table(answer: &Answer) -> String {
    let header: Vec<String> = answer.columns.iter().map(|c| c.name.clone()).collect();
    let mut out = format!(
        "| {} |\n|{}|\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in &answer.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|v| match v {
                ipfsbench_sql::Value::Float(f) => format!("{f:.2}"),
                ipfsbench_sql::Value::Null => String::new(),
                ipfsbench_sql::Value::Text(t) => t.replace('|', "\\|").replace('\n', " "),
                other => serde_json::to_string(other).unwrap_or_default(),
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

fn regressions_markdown(report: &Report) -> String {
    let flagged: Vec<&Regression> = report.regressions.iter().filter(|r| r.regressed).collect();
    if flagged.is_empty() {
        return format!(
            "No regressions: every series' newest result is within {}% of its history's median or inside its p10–p90 ({} series judged).\n",
            report.threshold_pct,
            report.regressions.len()
        );
    }
    let mut out = String::from("| kind | params | hardware | figure | latest | median | p10 | p90 | worse |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in flagged {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:+.1}% |\n",
            r.kind, r.params, r.hardware, r.figure, r.latest, r.median, r.p10, r.p90, r.worse_pct
        ));
    }
    out
}

/// The report as Markdown (charts inline as SVG).
pub fn markdown(report: &Report) -> String {
    let mut out = String::from("# Benchmark report\n\n## Regressions\n\n");
    out.push_str(&regressions_markdown(report));
    for s in &report.sections {
        out.push_str(&format!("\n## {} ({})\n\n", s.kind, s.figure));
        out.push_str(&markdown_table(&s.by_hardware));
        out.push_str(&format!("\n{}\n\n{}\n", s.bars_svg, s.history_svg));
    }
    out
}

/// The report as one HTML page that needs nothing else.
pub fn html(report: &Report) -> String {
    let escape = chart::escape;
    let mut body = String::from("<h1>Benchmark report</h1>\n<h2>Regressions</h2>\n");
    let flagged: Vec<&Regression> = report.regressions.iter().filter(|r| r.regressed).collect();
    if flagged.is_empty() {
        body.push_str(&format!(
            "<p>No regressions ({} series judged, threshold {}%).</p>\n",
            report.regressions.len(),
            report.threshold_pct
        ));
    } else {
        body.push_str("<table><tr><th>kind</th><th>params</th><th>hardware</th><th>figure</th><th>latest</th><th>median</th><th>worse</th></tr>\n");
        for r in flagged {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:+.1}%</td></tr>\n",
                escape(&r.kind),
                escape(&r.params),
                escape(&r.hardware),
                escape(&r.figure),
                r.latest,
                r.median,
                r.worse_pct
            ));
        }
        body.push_str("</table>\n");
    }
    for s in &report.sections {
        body.push_str(&format!(
            "<h2>{} ({})</h2>\n<table><tr>",
            escape(&s.kind),
            escape(&s.figure)
        ));
        for c in &s.by_hardware.columns {
            body.push_str(&format!("<th>{}</th>", escape(&c.name)));
        }
        body.push_str("</tr>\n");
        for row in &s.by_hardware.rows {
            body.push_str("<tr>");
            for v in row {
                let text = match v {
                    ipfsbench_sql::Value::Float(f) => format!("{f:.2}"),
                    ipfsbench_sql::Value::Text(t) => t.clone(),
                    ipfsbench_sql::Value::Null => String::new(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                body.push_str(&format!("<td>{}</td>", escape(&text)));
            }
            body.push_str("</tr>\n");
        }
        body.push_str(&format!(
            "</table>\n<div class=\"charts\">{}{}</div>\n",
            s.bars_svg, s.history_svg
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Benchmark report</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head>\n<body>\n{body}</body></html>\n"
    )
}
