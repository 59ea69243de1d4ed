//! Request heads measured before hyper parses them.
//!
//! hyper answers a request line over 64 KiB, or a head over its read buffer, with a bare
//! 414 or 431 and no body, before any handler runs. [`Guarded`] sits between the socket and
//! hyper: it follows the HTTP/1.1 framing of the requests on a connection (heads, then
//! `Content-Length` or chunked bodies), holds each head back until it is whole, and hands
//! it over only within the bounds of [`super::super::guard`]. A head past them is never handed
//! over: hyper gets nothing more to read, the server shuts the connection down gracefully
//! (an answer in flight still goes out) and answers the 414 or 431 itself with Kubo's JSON
//! error (see [`Refusal`]). Bodies pass straight through; framing this layer
//! cannot follow (a malformed chunk, an unknown transfer coding) is handed over as it comes,
//! and hyper refuses it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::api::guard::{MAX_HEADERS, MAX_HEADER_BYTES, MAX_URI};

/// The longest request line: the URI plus room for the method and the version. Bytes.
const MAX_REQUEST_LINE: usize = MAX_URI + 64;
/// The most bytes of header lines, their `: ` and line ends included.
const MAX_HEADER_SECTION: usize = MAX_HEADER_BYTES + 4 * MAX_HEADERS + 2;
/// Empty lines tolerated before a request line (RFC 9112 §2.2 allows some).
const MAX_LEADING_EMPTY_LINES: usize = 8;
/// The longest chunk-size line (extensions included) or trailer line followed. Bytes.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes of a chunked body followed.
const MAX_TRAILERS: usize = MAX_HEADER_SECTION;
/// Bytes read from the socket at once while a head is awaited.
const READ_CHUNK: usize = 16 << 10;

/// Why a request was not handed to hyper: the status and message of the JSON error the
/// server answers instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// 414 or 431.
    pub(crate) status: StatusCode,
    /// What exceeded which bound.
    pub(crate) message: String,
}

impl Refusal {
    fn uri() -> Self {
        Self {
            status: StatusCode::URI_TOO_LONG,
            message: format!("request URI longer than {MAX_URI} bytes"),
        }
    }

    fn headers(what: String) -> Self {
        Self {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            message: what,
        }
    }

    /// The whole HTTP/1.1 answer: status line, headers, Kubo's JSON error; the connection
    /// closes after it.
    pub(crate) fn response(&self) -> Vec<u8> {
        let body = serde_json::to_string(&crate::api::wire::Failure {
            message: self.message.clone(),
            code: 1,
            kind: "error".to_string(),
        })
        .unwrap_or_default();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }
}

/// Where the connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a head.
    Head,
    /// A body with this many bytes left.
    Fixed(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// Framing this layer cannot follow: everything passes as it comes.
    Opaque,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The size line: the size so far, whether its digits ended (extensions follow), and
    /// the line's length.
    Size {
        size: u64,
        digits_done: bool,
        len: usize,
    },
    /// Data bytes left in the chunk.
    Data(u64),
    /// The line end after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk: the current line's length, all trailer bytes.
    Trailer { line: usize, total: usize },
}

/// The head being gathered.
#[derive(Debug, Default)]
struct Head {
    bytes: Vec<u8>,
    /// Where the current line starts.
    line_start: usize,
    /// Where the request line ends (past its `\n`), once read.
    request_line_end: Option<usize>,
    leading_empty: usize,
    header_lines: usize,
}

/// A connection's byte stream with its request heads bounded; see the module doc.
#[derive(Debug)]
pub(crate) struct Guarded<S> {
    inner: S,
    framing: Framing,
    head: Head,
    /// Bytes read from the socket, not yet classified.
    pending: BytesMut,
    /// Bytes classified, not yet handed to hyper.
    ready: BytesMut,
    refusal: Option<Refusal>,
    /// Told once a head is refused.
    refused: Arc<Notify>,
}

impl<S> Guarded<S> {
    /// `inner`, guarded.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            framing: Framing::Head,
            head: Head::default(),
            pending: BytesMut::new(),
            ready: BytesMut::new(),
            refusal: None,
            refused: Arc::default(),
        }
    }

    /// Why the last request was refused, if it was.
    pub(crate) fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// Notified when a head is refused: hyper then reads nothing more, and the connection
    /// should be shut down gracefully and the refusal answered.
    pub(crate) fn refused(&self) -> Arc<Notify> {
        Arc::clone(&self.refused)
    }

    /// The stream itself.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Moves pending bytes on: whole heads and body bytes to `ready`.
    fn classify(&mut self) {
        while !self.pending.is_empty() && self.refusal.is_none() {
            if self.framing == Framing::Head {
                if !self.gather_head() {
                    return;
                }
                continue;
            }
            let mut pending = std::mem::take(&mut self.pending);
            let taken = self.body(&pending);
            self.ready.extend_from_slice(&pending.split_to(taken));
            self.pending = pending;
        }
    }

    /// Moves pending bytes into the head; true when it is whole (and handed over).
    fn gather_head(&mut self) -> bool {
        while let Some(&byte) = self.pending.first() {
            self.pending.advance(1);
            self.head.bytes.push(byte);
            if byte == b'\n' {
                if self.line_ended() {
                    return true;
                }
                if self.refusal.is_some() {
                    return false;
                }
            } else if let Some(refusal) = self.too_long() {
                self.refuse(refusal);
                return false;
            }
        }
        false
    }

    /// Checks the line just ended; true when it ended the head.
    fn line_ended(&mut self) -> bool {
        let h = &mut self.head;
        let line = &h.bytes[h.line_start..];
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let line_end = h.bytes.len();
        let start = std::mem::replace(&mut h.line_start, line_end);
        match h.request_line_end {
            None if text.is_empty() => {
                h.leading_empty += 1;
                if h.leading_empty > MAX_LEADING_EMPTY_LINES {
                    // Not HTTP: let hyper say so.
                    self.framing = Framing::Opaque;
                    self.hand_over_head();
                }
                false
            }
            None => {
                let target = text.split(|b| *b == b' ').nth(1).unwrap_or_default();
                if target.len() > MAX_URI {
                    self.refuse(Refusal::uri());
                    return false;
                }
                h.request_line_end = Some(line_end);
                false
            }
            Some(_) if text.is_empty() => {
                self.framing = framing_of(&self.head.bytes[..start]);
                self.hand_over_head();
                true
            }
            Some(_) => {
                h.header_lines += 1;
                if h.header_lines > MAX_HEADERS {
                    let n = h.header_lines;
                    self.refuse(Refusal::headers(format!(
                        "more than {MAX_HEADERS} request headers ({n} so far)"
                    )));
                }
                false
            }
        }
    }

    /// The bound the head being gathered has passed, if any.
    fn too_long(&self) -> Option<Refusal> {
        let h = &self.head;
        match h.request_line_end {
            None => (h.bytes.len() - h.line_start > MAX_REQUEST_LINE).then(Refusal::uri),
            Some(end) => (h.bytes.len() - end > MAX_HEADER_SECTION).then(|| {
                Refusal::headers(format!(
                    "request headers longer than {MAX_HEADER_BYTES} bytes"
                ))
            }),
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        tracing::debug!(status = %refusal.status, "HTTP request refused before parsing: {}", refusal.message);
        self.refusal = Some(refusal);
        self.pending.clear();
        self.refused.notify_one();
    }

    fn hand_over_head(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.ready.extend_from_slice(&head.bytes);
    }

    /// How many of `bytes` (which follow what the framing has seen) belong to the current
    /// body; the framing moves on past them, to the next head when the body ends.
    fn body(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            match self.framing {
                Framing::Head => return used,
                Framing::Opaque => return bytes.len(),
                Framing::Fixed(left) => {
                    let n = left.min((bytes.len() - used) as u64);
                    used += n as usize;
                    self.framing = if n == left {
                        Framing::Head
                    } else {
                        Framing::Fixed(left - n)
                    };
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let n = left.min((bytes.len() - used) as u64);
                    used += n as usize;
                    self.framing = Framing::Chunked(if n == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    });
                }
                Framing::Chunked(chunk) => {
                    self.framing = chunk_byte(chunk, bytes[used]);
                    used += 1;
                }
            }
        }
        if self.framing == Framing::Fixed(0) {
            self.framing = Framing::Head;
        }
        used
    }
}

/// The framing after one byte of a chunked body's control lines.
fn chunk_byte(chunk: Chunk, b: u8) -> Framing {
    let next = match chunk {
        Chunk::Size {
            size,
            digits_done,
            len,
        } => {
            if len >= MAX_CHUNK_LINE {
                return Framing::Opaque;
            }
            match (b, digits_done) {
                (b'\n', _) if size == 0 => Chunk::Trailer { line: 0, total: 0 },
                (b'\n', _) => Chunk::Data(size),
                (b'\r', _) => Chunk::Size {
                    size,
                    digits_done: true,
                    len: len + 1,
                },
                (_, false) if b.is_ascii_hexdigit() => {
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                    if size > u64::MAX >> 4 {
                        return Framing::Opaque;
                    }
                    Chunk::Size {
                        size: size << 4 | digit,
                        digits_done: false,
                        len: len + 1,
                    }
                }
                _ => Chunk::Size {
                    size,
                    digits_done: true,
                    len: len + 1,
                },
            }
        }
        Chunk::DataEnd => match b {
            b'\r' => Chunk::DataEnd,
            b'\n' => Chunk::Size {
                size: 0,
                digits_done: false,
                len: 0,
            },
            _ => return Framing::Opaque,
        },
        Chunk::Trailer { line, total } => {
            if total >= MAX_TRAILERS || line >= MAX_CHUNK_LINE {
                return Framing::Opaque;
            }
            match b {
                b'\n' if line == 0 => return Framing::Head,
                b'\n' => Chunk::Trailer {
                    line: 0,
                    total: total + 1,
                },
                // A `\r` before the line's `\n` does not make it non-empty.
                b'\r' => Chunk::Trailer {
                    line,
                    total: total + 1,
                },
                _ => Chunk::Trailer {
                    line: line + 1,
                    total: total + 1,
                },
            }
        }
        Chunk::Data(_) => chunk,
    };
    Framing::Chunked(next)
}

/// How the body after `head` (request line and header lines) is framed.
fn framing_of(head: &[u8]) -> Framing {
    let mut length: Option<u64> = None;
    let (mut chunked, mut other_coding) = (false, false);
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        let value = value.trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            let Ok(n) = value.parse::<u64>() else {
                return Framing::Opaque;
            };
            if length.is_some_and(|l| l != n) {
                return Framing::Opaque;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the last coding says whether the body is chunked.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = last.eq_ignore_ascii_case("chunked");
            other_coding |= !chunked;
        }
    }
    match (chunked, other_coding, length) {
        (true, false, _) => Framing::Chunked(Chunk::Size {
            size: 0,
            digits_done: false,
            len: 0,
        }),
        (false, false, Some(n)) if n > 0 => Framing::Fixed(n),
        (false, false, _) => Framing::Head,
        _ => Framing::Opaque,
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() {
                // Nothing more for hyper (an end of stream would cut off an answer in
                // flight): the server shuts the connection down and answers the refusal.
                return Poll::Pending;
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !this.pending.is_empty() {
                this.classify();
                if !this.ready.is_empty() || this.refusal.is_some() {
                    continue;
                }
            }
            if this.framing != Framing::Head && this.pending.is_empty() {
                // Body bytes go straight into hyper's buffer; what follows the body's end
                // is taken back as the start of the next head.
                let before = buf.filled().len();
                std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let got = &buf.filled()[before..];
                let taken = this.body(got);
                if taken < got.len() {
                    this.pending.extend_from_slice(&got[taken..]);
                    buf.set_filled(before + taken);
                    if taken == 0 {
                        continue;
                    }
                }
                return Poll::Ready(Ok(()));
            }
            // A head: read into `pending`, hand over only once it is whole.
            let mut chunk = [0u8; READ_CHUNK];
            let mut into = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut into))?;
            if into.filled().is_empty() {
                // The end of the stream; a partial head goes to hyper, which says what
                // it makes of it.
                this.hand_over_head();
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.pending.extend_from_slice(into.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Everything hyper would read from a connection that delivers `input` in pieces of
    /// `piece` bytes, and the refusal, if any.
    async fn through(input: &[u8], piece: usize) -> (Vec<u8>, Option<Refusal>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for p in input.chunks(piece.max(1)) {
                if client.write_all(p).await.is_err() {
                    break;
                }
            }
            drop(client);
        });
        let mut guarded = Guarded::new(server);
        let mut out = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            let read = guarded.read(&mut buf);
            match tokio::time::timeout(std::time::Duration::from_millis(100), read).await {
                Ok(n) => match n.unwrap() {
                    0 => break,
                    n => out.extend_from_slice(&buf[..n]),
                },
                // A refused head leaves hyper nothing more to read, and no end either.
                Err(_) if guarded.refusal().is_some() => break,
                Err(_) => {}
            }
        }
        writer.abort();
        (out, guarded.refusal().cloned())
    }

    fn request(target: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!("POST {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[tokio::test]
    async fn requests_within_bounds_pass_unchanged_in_any_pieces() {
        let mut all = Vec::new();
        all.extend(request("/a?x=1", "Content-Length: 5\r\n", b"hello"));
        all.extend(request(
            "/b",
            "Transfer-Encoding: chunked\r\n",
            b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n",
        ));
        all.extend(request("/c", "", b""));
        all.extend(b"\r\n");
        all.extend(request(
            &format!("/d?{}", "q".repeat(MAX_URI - 10)),
            "",
            b"",
        ));
        let big = vec![b'z'; 300_000];
        all.extend(request("/e", "Content-Length: 300000\r\n", &big));
        all.extend(request(
            "/f",
            "Transfer-Encoding: gzip, chunked\r\n",
            b"0\r\n\r\n",
        ));
        for piece in [1, 2, 3, 100, 5000, 1 << 20] {
            let (out, refusal) = through(&all, piece).await;
            assert_eq!(refusal, None, "piece {piece}");
            assert!(
                out == all,
                "piece {piece}: {} of {} bytes",
                out.len(),
                all.len()
            );
        }
    }

    #[tokio::test]
    async fn a_long_uri_is_refused_before_hyper_sees_it() {
        let long = request(&format!("/api/v0/add?arg={}", "n".repeat(1 << 20)), "", b"");
        for piece in [1000, 1 << 20] {
            let (out, refusal) = through(&long, piece).await;
            assert!(out.is_empty(), "{} bytes handed over", out.len());
            assert_eq!(refusal.unwrap().status, StatusCode::URI_TOO_LONG);
        }
        // A request line without an end.
        let (out, refusal) = through(&vec![b'G'; MAX_REQUEST_LINE + 100], 4096).await;
        assert!(out.is_empty());
        assert_eq!(refusal.unwrap().status, StatusCode::URI_TOO_LONG);
    }

    #[tokio::test]
    async fn too_many_or_too_long_headers_are_refused() {
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: t\r\n"))
            .collect();
        let (out, refusal) = through(&request("/", &many, b""), 512).await;
        assert!(out.is_empty());
        assert_eq!(
            refusal.unwrap().status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let long = format!("X-Big: {}\r\n", "b".repeat(MAX_HEADER_BYTES + 1000));
        let (out, refusal) = through(&request("/", &long, b""), 512).await;
        assert!(out.is_empty());
        assert_eq!(
            refusal.unwrap().status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn a_refused_head_after_good_requests_ends_the_stream_after_them() {
        let mut all = request("/ok", "Content-Length: 3\r\n", b"abc");
        let good = all.len();
        // A body that looks like a long head is a body: not measured.
        let mut body = b"GET /".to_vec();
        body.extend(vec![b'x'; 100_000]);
        all.extend(request("/ok2", "Content-Length: 100005\r\n", &body));
        let good2 = all.len();
        all.extend(request(&format!("/{}", "u".repeat(MAX_URI + 1)), "", b""));
        let (out, refusal) = through(&all, 8192).await;
        assert_eq!(out.len(), good2, "{good}");
        assert_eq!(refusal.unwrap().status, StatusCode::URI_TOO_LONG);
    }

    #[tokio::test]
    async fn framing_it_cannot_follow_is_handed_over_for_hyper_to_refuse() {
        let bad = request("/", "Content-Length: nope\r\n", b"GET / HTTP/1.1\r\n\r\n");
        let (out, refusal) = through(&bad, 100).await;
        assert_eq!((out, refusal), (bad, None));
        let bad_chunk = request("/", "Transfer-Encoding: chunked\r\n", b"zz\r\n");
        let (out, _) = through(&bad_chunk, 100).await;
        assert_eq!(out, bad_chunk);
    }

    #[test]
    fn the_refusal_is_a_whole_http_answer_with_kubos_error() {
        let answer = String::from_utf8(Refusal::uri().response()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["Type"], "error");
        assert_eq!(v["Code"], 1);
        assert!(v["Message"].as_str().unwrap().contains("URI"));
    }
}
