//! `storage tiers`: the daemon's memory, disk and peer tiers, as a small table or as JSON.

use std::io::Write;

use anyhow::Result;
use ipfsbench_core::store::tiers::{Tier, TiersReport};

use crate::args::StorageCommand;
use crate::client::Api;

/// Runs a `storage` command through the daemon's API.
pub(crate) fn run(api: &Api, cmd: StorageCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        StorageCommand::Tiers { json } => {
            let v: TiersReport = api.json("storage/tiers", &[])?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                table(&v, out)?;
            }
        }
    }
    Ok(())
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

fn table(v: &TiersReport, out: &mut dyn Write) -> Result<()> {
    let role = v
        .role
        .map_or_else(|| "none (no daemon role)".to_string(), |r| r.to_string());
    let serves = if v.serves_blocks { "yes" } else { "no" };
    writeln!(out, "role: {role}, serves blocks: {serves}")?;
    for tier in &v.tiers {
        match tier {
            Tier::Memory(m) => {
                let of = if m.max_bytes == 0 {
                    " (off)".to_string()
                } else {
                    format!(" of {}", human(m.max_bytes))
                };
                writeln!(
                    out,
                    "memory  {} blocks, {}{of}; hits {}, misses {}",
                    m.blocks,
                    human(m.bytes),
                    m.hits,
                    m.misses,
                )?;
            }
            Tier::Disk(d) => {
                let cache = match d.max_bytes {
                    Some(max) => format!(
                        "cache {} blocks, {} of {} (recent {}, frequent {}); ",
                        d.cache_blocks,
                        human(d.cache_bytes),
                        human(max),
                        human(d.recent_bytes),
                        human(d.frequent_bytes),
                    ),
                    None => "no cache bound; ".to_string(),
                };
                writeln!(
                    out,
                    "disk    {} blocks, {}; {cache}hits {}, misses {}, evictions {} ({})",
                    d.blocks,
                    human(d.bytes),
                    d.hits,
                    d.misses,
                    d.evictions,
                    human(d.evicted_bytes),
                )?;
            }
            Tier::Peer(p) => writeln!(
                out,
                "peer    {} blocks, {} fetched",
                p.blocks,
                human(p.bytes),
            )?,
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
        let report: TiersReport = serde_json::from_value(v).unwrap();
        let mut out = Vec::new();
        table(&report, &mut out).unwrap();
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
