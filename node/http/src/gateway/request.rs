//! What a request asks for: the content path (a CID and the names under it) and the answer's
//! format (UnixFS, one raw block, or a CAR).

use axum::http::HeaderMap;

use super::failure::Failure;

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// The UnixFS file or directory, deserialized.
    Unixfs,
    /// The terminal block alone.
    Raw,
    /// A CAR of the path's blocks and the terminal DAG.
    Car,
}

/// The format from `?format=` or, without it, the `Accept` header.
pub(super) fn format(query: Option<&str>, headers: &HeaderMap) -> Result<Format, Failure> {
    let asked = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(asked) = asked {
        return match asked.as_str() {
            "raw" => Ok(Format::Raw),
            "car" => Ok(Format::Car),
            "" => Ok(Format::Unixfs),
            other => Err(Failure::bad_request(format!(
                "format={other:?} is not supported (supported: raw, car)"
            ))),
        };
    }
    let accept = headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    Ok(if accept.contains("application/vnd.ipld.raw") {
        Format::Raw
    } else if accept.contains("application/vnd.ipld.car") {
        Format::Car
    } else {
        Format::Unixfs
    })
}

/// A request path split into its CID and the names under it; `.`/`..` segments are refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ContentPath {
    /// The CID the path starts at.
    pub(super) cid: cid::Cid,
    /// The names under it, in order.
    pub(super) names: Vec<String>,
    /// Whether the URL path ended with `/`.
    pub(super) slash: bool,
}

pub(super) fn parse_path(path: &str) -> Result<ContentPath, Failure> {
    let mut parts = path.split('/');
    let first = parts.next().unwrap_or_default();
    let cid = ipfsbench_store::store::block::parse_cid(first).map_err(|e| {
        Failure::bad_request(format!("invalid path \"/ipfs/{path}\": {}", e.reason))
    })?;
    let mut names = Vec::new();
    for part in parts.filter(|p| !p.is_empty()) {
        if part == "." || part == ".." || part.contains('\0') {
            return Err(Failure::bad_request(format!(
                "invalid path \"/ipfs/{path}\": segment {part:?} is not allowed"
            )));
        }
        names.push(part.to_string());
    }
    Ok(ContentPath {
        cid,
        names,
        slash: path.ends_with('/'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_a_cid_and_names() {
        let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
        let p = parse_path(&format!("{cid}/a/b/")).unwrap_or_else(|_| unreachable!());
        assert_eq!(p.cid.to_string(), cid);
        assert_eq!(p.names, vec!["a", "b"]);
        assert!(p.slash);
        assert!(parse_path("not-a-cid/x").is_err());
        assert!(parse_path(&format!("{cid}/../etc")).is_err());
    }

    #[test]
    fn the_format_comes_from_the_query_then_the_accept_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(format(None, &headers).ok(), Some(Format::Unixfs));
        assert_eq!(format(Some("format=raw"), &headers).ok(), Some(Format::Raw));
        assert!(format(Some("format=tar"), &headers).is_err());
        headers.insert(
            "accept",
            axum::http::HeaderValue::from_static("application/vnd.ipld.car; version=1"),
        );
        assert_eq!(format(None, &headers).ok(), Some(Format::Car));
        assert_eq!(format(Some("format=raw"), &headers).ok(), Some(Format::Raw));
    }
}
