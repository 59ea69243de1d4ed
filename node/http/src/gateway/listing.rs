//! A directory without `index.html`, listed as an HTML page: each entry's name (a link), kind,
//! size and CID. Names come from the DAG, so they are escaped for HTML and percent-encoded
//! in links.

use std::fmt::Write as _;

use ipfsbench_store::unixfs::{Entry, EntryKind};

/// The listing page of the directory `cid`, reached at the URL path `path` (ending in `/`).
pub(super) fn page(path: &str, cid: &cid::Cid, entries: &[Entry]) -> String {
    let title = escape(path);
    let mut rows = String::new();
    if path.trim_end_matches('/').matches('/').count() > 2 {
        rows.push_str("<tr><td><a href=\"..\">..</a></td><td></td><td></td><td></td></tr>\n");
    }
    for entry in entries {
        let (suffix, kind) = match entry.kind {
            EntryKind::Directory => ("/", "directory"),
            EntryKind::File => ("", "file"),
            EntryKind::Symlink => ("", "symlink"),
            EntryKind::Other => ("", "other"),
        };
        let size = match entry.kind {
            EntryKind::Directory => String::new(),
            _ => human_size(entry.size),
        };
        let _ = writeln!(
            rows,
            "<tr><td><a href=\"{href}{suffix}\">{name}{suffix}</a></td><td>{kind}</td>\
             <td class=\"size\">{size}</td><td class=\"cid\"><a href=\"/ipfs/{cid}\">{cid}</a></td></tr>",
            href = percent_encode(&entry.name),
            name = escape(&entry.name),
            cid = entry.cid,
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:.3em 1em;text-align:left}}\
         tr:nth-child(even){{background:#f4f4f4}}.size{{text-align:right}}\
         .cid{{font-family:monospace;font-size:12px;color:#666}}\
         </style></head><body>\n<h1>Index of {title}</h1>\n<p class=\"cid\">{cid}</p>\n\
         <table><thead><tr><th>Name</th><th>Kind</th><th>Size</th><th>CID</th></tr></thead>\
         <tbody>\n{rows}</tbody></table>\n</body></html>\n"
    )
}

/// `s` with the characters that mean something in HTML escaped.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one URL path segment: every byte but the unreserved ones percent-encoded.
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_escaped_and_encoded() {
        let cid: cid::Cid = "bafkqaaa".parse().unwrap_or_default();
        let entries = vec![Entry {
            name: "<script>alert(1)</script>&\"x\" y".into(),
            cid,
            size: 2048,
            kind: EntryKind::File,
        }];
        let html = page("/ipfs/x/", &cid, &entries);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&quot; y"));
        assert!(html.contains("href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E%26%22x%22%20y\""));
        assert!(html.contains("2.0 KiB"));
    }
}
