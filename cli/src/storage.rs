//! `storage tiers`: the daemon's memory, disk and peer tiers, as a small table or as JSON.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::args::StorageCommand;
use crate::client::Api;

/// Runs a `storage` command through the daemon's API.
pub(crate) fn run(api: &Api, cmd: StorageCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        StorageCommand::Tiers { json } => {
            let v = api.json("storage/tiers", &[])?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                table(&v, out)?;
            }
        }
    }
    Ok(())
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Bytes with a binary unit, one decimal.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn table(v: &Value, out: &mut dyn Write) -> Result<()> {
    let role = v["Role"].as_str().unwrap_or("none (no daemon role)");
    let serves = if v["ServesBlocks"].as_bool().unwrap_or(false) {
        "yes"
    } else {
        "no"
    };
    writeln!(out, "role: {role}, serves blocks: {serves}")?;
    for tier in v["Tiers"].as_array().cloned().unwrap_or_default() {
        match tier["Name"].as_str().unwrap_or("") {
            "memory" => {
                let max = num(&tier, "MaxBytes");
                let of = if max == 0 {
                    " (off)".to_string()
                } else {
                    format!(" of {}", human(max))
                };
                writeln!(
                    out,
                    "memory  {} blocks, {}{of}; hits {}, misses {}",
                    num(&tier, "Blocks"),
                    human(num(&tier, "Bytes")),
                    num(&tier, "Hits"),
                    num(&tier, "Misses"),
                )?;
            }
            "disk" => {
                let cache = match tier["MaxBytes"].as_u64() {
                    Some(max) => format!(
                        "cache {} blocks, {} of {} (recent {}, frequent {}); ",
                        num(&tier, "CacheBlocks"),
                        human(num(&tier, "CacheBytes")),
                        human(max),
                        human(num(&tier, "RecentBytes")),
                        human(num(&tier, "FrequentBytes")),
                    ),
                    None => "no cache bound; ".to_string(),
                };
                writeln!(
                    out,
                    "disk    {} blocks, {}; {cache}hits {}, misses {}, evictions {} ({})",
                    num(&tier, "Blocks"),
                    human(num(&tier, "Bytes")),
                    num(&tier, "Hits"),
                    num(&tier, "Misses"),
                    num(&tier, "Evictions"),
                    human(num(&tier, "EvictedBytes")),
                )?;
            }
            "peer" => writeln!(
                out,
                "peer    {} blocks, {} fetched",
                num(&tier, "Blocks"),
                human(num(&tier, "Bytes")),
            )?,
            other => writeln!(out, "{other}: {tier}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1 << 20), "1.0 MiB");
        assert_eq!(human(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn a_leecher_report_prints_every_tier() {
        let v = serde_json::json!({
            "Role": "leecher", "ServesBlocks": false,
            "Tiers": [
                {"Name": "memory", "Bytes": 10, "MaxBytes": 1024, "Blocks": 1, "Hits": 2, "Misses": 3},
                {"Name": "disk", "Bytes": 2048, "Blocks": 2, "CacheBytes": 1024, "CacheBlocks": 1,
                 "MaxBytes": 4096, "RecentBytes": 1024, "FrequentBytes": 0, "PendingEvictions": 0,
                 "Hits": 5, "Misses": 1, "Evictions": 7, "EvictedBytes": 7168},
                {"Name": "peer", "Blocks": 9, "Bytes": 9216}
            ]
        });
        let mut out = Vec::new();
        table(&v, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("role: leecher, serves blocks: no"), "{text}");
        assert!(
            text.contains("cache 1 blocks, 1.0 KiB of 4.0 KiB"),
            "{text}"
        );
        assert!(text.contains("evictions 7 (7.0 KiB)"), "{text}");
        assert!(text.contains("peer    9 blocks, 9.0 KiB fetched"), "{text}");
    }
}
