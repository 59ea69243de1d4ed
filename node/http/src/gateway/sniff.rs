//! A file's `Content-Type`: from its name's extension when it has a known one, otherwise from
//! its first bytes.

/// The most bytes [`sniff`] looks at.
pub const SNIFF_LEN: u64 = 512;

/// Extensions and their media types (lowercase).
const BY_EXTENSION: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("ico", "image/vnd.microsoft.icon"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("wasm", "application/wasm"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("wav", "audio/wav"),
    ("ogg", "audio/ogg"),
    ("parquet", "application/vnd.apache.parquet"),
    ("car", "application/vnd.ipld.car"),
];

/// Magic numbers at the start of a file and their media types.
const BY_MAGIC: &[(&[u8], &str)] = &[
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\0asm", "application/wasm"),
    (b"PAR1", "application/vnd.apache.parquet"),
];

/// The media type of a file named `name` (possibly empty) whose content starts with `head`.
pub fn content_type(name: &str, head: &[u8]) -> &'static str {
    by_extension(name).unwrap_or_else(|| sniff(head))
}

fn by_extension(name: &str) -> Option<&'static str> {
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    BY_EXTENSION
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, media)| *media)
}

/// The media type that the first bytes of a file suggest.
pub fn sniff(head: &[u8]) -> &'static str {
    if let Some((_, media)) = BY_MAGIC.iter().find(|(magic, _)| head.starts_with(magic)) {
        return media;
    }
    let text = leading_text(head);
    if let Some(text) = text {
        let start = text.trim_start().to_ascii_lowercase();
        if start.starts_with("<!doctype html") || start.starts_with("<html") {
            return "text/html; charset=utf-8";
        }
        if start.starts_with("<svg") || (start.starts_with("<?xml") && start.contains("<svg")) {
            return "image/svg+xml";
        }
        return "text/plain; charset=utf-8";
    }
    "application/octet-stream"
}

/// `head` as text when it is UTF-8 (a character cut at the end is allowed) with no control
/// characters other than whitespace.
fn leading_text(head: &[u8]) -> Option<&str> {
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // Only a character cut short by the sniffing length is forgiven.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'));
    (!binary).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_wins_over_the_content() {
        assert_eq!(
            content_type("index.HTML", b"plain"),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type("a.png", b"text"), "image/png");
    }

    #[test]
    fn without_a_known_extension_the_bytes_decide() {
        assert_eq!(content_type("", b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(
            content_type("page", b"  <!DOCTYPE html><p>x"),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type("x.unknown", b"<svg xmlns=..."),
            "image/svg+xml"
        );
        assert_eq!(
            content_type("notes", "héllo\n".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type("blob", b"\x00\x01\x02\xff"),
            "application/octet-stream"
        );
    }

    #[test]
    fn a_character_cut_by_the_sniffing_length_is_still_text() {
        let mut head = "é".repeat(256).into_bytes();
        head.truncate(511);
        assert_eq!(sniff(&head), "text/plain; charset=utf-8");
    }
}
