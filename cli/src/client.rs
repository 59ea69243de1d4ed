//! Talking to a running daemon through its HTTP API (`<repo>/api` names the address).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ipfsbench_core::api::wire;

/// Reads NDJSON from `r`, one `T` per line.
pub(crate) fn ndjson<T: serde::de::DeserializeOwned>(
    r: impl Read,
) -> impl Iterator<Item = Result<T>> {
    io::BufRead::lines(io::BufReader::new(r)).map(|line| {
        let line = line?;
        serde_json::from_str(&line)
            .with_context(|| format!("daemon sent an unexpected line: {line}"))
    })
}

/// A daemon's API.
pub(crate) struct Api {
    base: String,
    agent: ureq::Agent,
    /// The bearer token the API requires, if it does.
    token: Option<String>,
}

/// The API token for the daemon of `repo`: `$IPFSBENCH_API_TOKEN`, else the file its config
/// names in `daemon.api_token_file`.
fn token(repo: &Path) -> Option<String> {
    if let Some(t) = std::env::var("IPFSBENCH_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Some(t);
    }
    let text = std::fs::read_to_string(repo.join("config.toml")).ok()?;
    let config = ipfsbench_core::config::Config::parse(&text).ok()?;
    let file = &config.daemon.api_token_file;
    if file.is_empty() {
        return None;
    }
    crate::daemon::read_token(Path::new(file)).ok()
}

impl Api {
    /// The daemon of `repo`, if one runs and answers.
    pub(crate) fn discover(repo: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(repo.join("api")).ok()?;
        let base = http_base(text.trim())?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .build()
            .into();
        let api = Self {
            base,
            agent,
            token: token(repo),
        };
        // A stale file from a daemon that died: fall back to opening the repo directly.
        api.post("version", &[])
            .ok()
            .filter(|r| r.status() == 200)?;
        Some(api)
    }

    fn post(
        &self,
        path: &str,
        args: &[(&str, String)],
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = self.agent.post(format!("{}/api/v0/{path}", self.base));
        for (k, v) in args {
            req = req.query(*k, v);
        }
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.send_empty()
    }

    fn check(resp: ureq::http::Response<ureq::Body>) -> Result<ureq::http::Response<ureq::Body>> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<wire::Failure>(&text)
            .map(|f| f.message)
            .unwrap_or(text);
        bail!("{message} (daemon answered {status})")
    }

    /// Calls `path` and parses the JSON answer.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        args: &[(&str, String)],
    ) -> Result<T> {
        let resp = Self::check(self.post(path, args).context("calling the daemon")?)?;
        let text = resp
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        serde_json::from_str(&text)
            .with_context(|| format!("daemon sent an unexpected answer to {path}: {text}"))
    }

    /// Calls `path` and reads its NDJSON answer, one `T` per line.
    pub(crate) fn lines<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        args: &[(&str, String)],
    ) -> Result<impl Iterator<Item = Result<T>>> {
        Ok(ndjson(self.stream(path, args)?))
    }

    /// Calls `path` and returns the body as a stream.
    pub(crate) fn stream(&self, path: &str, args: &[(&str, String)]) -> Result<impl Read> {
        let resp = Self::check(self.post(path, args).context("calling the daemon")?)?;
        Ok(resp.into_body().into_reader())
    }

    /// Uploads `parts` as multipart form data to `path`; returns the body as a stream.
    pub(crate) fn upload(
        &self,
        path: &str,
        args: &[(&str, String)],
        parts: Vec<Part>,
    ) -> Result<impl Read> {
        let boundary = format!("ipfsbench-{:016x}", rand_u64());
        let mut body = Multipart::new(parts, boundary.clone());
        let mut req = self.agent.post(format!("{}/api/v0/{path}", self.base));
        for (k, v) in args {
            req = req.query(*k, v);
        }
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let resp = req
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(ureq::SendBody::from_reader(&mut body))
            .context("calling the daemon")?;
        if let Some(e) = body.error.take() {
            return Err(e);
        }
        Ok(Self::check(resp)?.into_body().into_reader())
    }
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (t as u64) ^ (u64::from(std::process::id()) << 32)
}

/// `/ip4/127.0.0.1/tcp/5101` → `http://127.0.0.1:5101`.
fn http_base(multiaddr: &str) -> Option<String> {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port] => Some(format!("http://{ip}:{port}")),
        ["", "ip6", ip, "tcp", port] => Some(format!("http://[{ip}]:{port}")),
        _ => None,
    }
}

/// One part of an upload.
pub(crate) enum Part {
    /// A file's content, under a relative name.
    File { name: String, path: PathBuf },
    /// In-memory bytes (stdin, a block, a message).
    Bytes { name: String, data: Vec<u8> },
    /// A directory entry, so that empty directories survive.
    Dir { name: String },
    /// Standard input, streamed.
    Stdin,
}

impl Part {
    /// Every part of `path` (recursively for directories), names relative to its parent.
    pub(crate) fn tree(path: &Path, hidden: bool) -> Result<Vec<Part>> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{}: no usable file name", path.display()))?
            .to_string();
        let mut out = Vec::new();
        walk(path, &name, hidden, &mut out)?;
        Ok(out)
    }
}

fn walk(path: &Path, name: &str, hidden: bool, out: &mut Vec<Part>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.is_dir() {
        // Opened now, so that an unreadable file fails before anything is sent.
        File::open(path).with_context(|| format!("{}", path.display()))?;
        out.push(Part::File {
            name: name.to_string(),
            path: path.to_path_buf(),
        });
        return Ok(());
    }
    out.push(Part::Dir {
        name: name.to_string(),
    });
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("{}", path.display()))?
        .collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let child = e
            .file_name()
            .into_string()
            .map_err(|_| anyhow!("{}: file name is not valid UTF-8", e.path().display()))?;
        if child.starts_with('.') && !hidden {
            continue;
        }
        walk(&e.path(), &format!("{name}/{child}"), hidden, out)?;
    }
    Ok(())
}

/// The multipart body, produced lazily part by part.
struct Multipart {
    parts: std::vec::IntoIter<Part>,
    boundary: String,
    head: io::Cursor<Vec<u8>>,
    current: Option<Box<dyn Read>>,
    finished: bool,
    error: Option<anyhow::Error>,
}

impl Multipart {
    fn new(parts: Vec<Part>, boundary: String) -> Self {
        Self {
            parts: parts.into_iter(),
            boundary,
            head: io::Cursor::new(Vec::new()),
            current: None,
            finished: false,
            error: None,
        }
    }

    fn next_part(&mut self) -> io::Result<bool> {
        let encode = |n: &str| percent_encode(n);
        let (header, body): (String, Box<dyn Read>) = match self.parts.next() {
            None => {
                if self.finished {
                    return Ok(false);
                }
                self.finished = true;
                self.head = io::Cursor::new(format!("--{}--\r\n", self.boundary).into_bytes());
                return Ok(true);
            }
            Some(Part::Dir { name }) => (
                format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/x-directory\r\n\r\n",
                    self.boundary,
                    encode(&name)
                ),
                Box::new(io::empty()),
            ),
            Some(Part::File { name, path }) => {
                let file = File::open(&path).map_err(|e| {
                    self.error = Some(anyhow!("{}: {e}", path.display()));
                    e
                })?;
                (
                    format!(
                        "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        self.boundary,
                        encode(&name)
                    ),
                    Box::new(io::BufReader::with_capacity(1 << 20, file)),
                )
            }
            Some(Part::Stdin) => (
                format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    self.boundary
                ),
                Box::new(io::stdin()),
            ),
            Some(Part::Bytes { name, data }) => (
                format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    self.boundary,
                    encode(&name)
                ),
                Box::new(io::Cursor::new(data)),
            ),
        };
        self.head = io::Cursor::new(header.into_bytes());
        // Each part's content ends with CRLF before the next boundary.
        self.current = Some(Box::new(body.chain(&b"\r\n"[..])));
        Ok(true)
    }
}

fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Read for Multipart {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.head.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if let Some(cur) = self.current.as_mut() {
                let n = cur.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            if !self.next_part()? {
                return Ok(0);
            }
        }
    }
}
