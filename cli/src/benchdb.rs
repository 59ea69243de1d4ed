//! `query`, `results ...` and `dataset ...`: the cluster's benchmark database through a
//! running daemon.

use std::io::Write;

use anyhow::{bail, Result};
use ipfsbench_roles::api::query::DatasetEntry;
use ipfsbench_roles::results::Regression;
use ipfsbench_sql::{Answer, Format};

use crate::args::{DatasetCommand, QueryArgs, ResultsCommand};
use crate::client::{Api, Part};

fn format(text: &str) -> Result<Format> {
    text.parse().map_err(anyhow::Error::msg)
}

/// `query SQL`.
pub(crate) fn query(api: &Api, args: QueryArgs, out: &mut dyn Write) -> Result<()> {
    let format = format(&args.format)?;
    let mut call = vec![("arg", args.sql)];
    if args.no_cache {
        call.push(("no-cache", "true".into()));
    }
    let answer: Answer = api.json("query", &call)?;
    write!(out, "{}", answer.render(format))?;
    Ok(())
}

/// `results ...`; false when regressions were found.
pub(crate) fn results(api: &Api, cmd: ResultsCommand, out: &mut dyn Write) -> Result<bool> {
    match cmd {
        ResultsCommand::Ls {
            kind,
            worker,
            since,
            format: f,
        } => {
            let format = format(&f)?;
            let mut call = Vec::new();
            for (name, value) in [("kind", kind), ("worker", worker), ("since", since)] {
                if let Some(v) = value {
                    call.push((name, v));
                }
            }
            let answer: Answer = api.json("results/ls", &call)?;
            write!(out, "{}", answer.render(format))?;
        }
        ResultsCommand::Compare {
            kind,
            by,
            figure,
            format: f,
        } => {
            let format = format(&f)?;
            let mut call = vec![("kind", kind), ("by", by)];
            if let Some(figure) = figure {
                call.push(("figure", figure));
            }
            let answer: Answer = api.json("results/compare", &call)?;
            write!(out, "{}", answer.render(format))?;
        }
        ResultsCommand::Regressions { threshold, all } => {
            let found: Vec<Regression> = api.json(
                "results/regressions",
                &[("threshold", threshold.to_string())],
            )?;
            let flagged = found.iter().filter(|r| r.regressed).count();
            for r in found.iter().filter(|r| all || r.regressed) {
                writeln!(
                    out,
                    "{} {} [{}] on {}: {} {:.3} vs median {:.3} (p10 {:.3}, p90 {:.3}, n={}): {:+.1}%{}",
                    r.kind,
                    r.task_id,
                    r.params,
                    r.hardware,
                    r.figure,
                    r.latest,
                    r.median,
                    r.p10,
                    r.p90,
                    r.history,
                    r.worse_pct,
                    if r.regressed { "  REGRESSED" } else { "" }
                )?;
            }
            writeln!(
                out,
                "{flagged} regression(s) in {} series (threshold {threshold}%)",
                found.len()
            )?;
            return Ok(flagged == 0);
        }
        ResultsCommand::Report { format, threshold } => {
            if !["md", "html", "json"].contains(&format.as_str()) {
                bail!("unknown format {format:?}: md, html or json");
            }
            let mut body = api.stream(
                "results/report",
                &[("format", format), ("threshold", threshold.to_string())],
            )?;
            std::io::copy(&mut body, out)?;
        }
    }
    Ok(true)
}

/// `dataset ...`.
pub(crate) fn dataset(api: &Api, cmd: DatasetCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        DatasetCommand::Add { file, name } => {
            let format = match file.extension().and_then(|e| e.to_str()) {
                Some("csv") => "csv",
                Some("parquet") => "parquet",
                _ => bail!("{}: a dataset is a .csv or .parquet file", file.display()),
            };
            if !file.is_file() {
                bail!("{} is not a file", file.display());
            }
            let body = api.upload(
                "dataset/add",
                &[("name", name), ("format", format.into())],
                vec![Part::File {
                    name: "file".into(),
                    path: file,
                }],
            )?;
            let entry: DatasetEntry = serde_json::from_reader(body)?;
            writeln!(
                out,
                "added dataset {} {} ({} rows, {} columns, {} bytes)",
                entry.name,
                entry.cid,
                entry.rows,
                entry.columns.len(),
                entry.bytes
            )?;
        }
        DatasetCommand::Ls => {
            let all: Vec<DatasetEntry> = api.json("dataset/ls", &[])?;
            for d in all {
                let columns: Vec<String> =
                    d.columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
                writeln!(
                    out,
                    "{} {} {} rows ({})",
                    d.name,
                    d.cid,
                    d.rows,
                    columns.join(", ")
                )?;
            }
        }
    }
    Ok(())
}
