//! Message framing: `uvarint(length) ‖ protobuf`, many frames per stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use ipfsbench_protocols::codec::varint;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The stream failed (reset, connection closed, ...).
    #[error("stream error: {0}")]
    Io(#[from] io::Error),
    /// The frame announces more bytes than we accept.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The length prefix is not a valid uvarint.
    #[error("length prefix overflows")]
    VarintOverflow,
}

impl CodecError {
    /// Whether the error shows a broken or hostile peer rather than a broken stream.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            CodecError::TooLarge { .. } | CodecError::VarintOverflow
        )
    }
}

/// Reads one frame of at most `max` bytes; `Ok(None)` when the stream ends between frames.
///
/// The length is checked before anything is allocated, so an oversized announcement costs
/// nothing.
pub async fn read_frame<R>(io: &mut R, max: usize) -> Result<Option<Vec<u8>>, CodecError>
where
    R: AsyncRead + Unpin,
{
    let mut len: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..10 {
        let n = io.read(&mut byte).await?;
        if n == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(CodecError::Truncated)
            };
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if len > max as u64 {
                return Err(CodecError::TooLarge { len, max });
            }
            let mut buf = vec![0u8; len as usize];
            return match io.read_exact(&mut buf).await {
                Ok(()) => Ok(Some(buf)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(CodecError::Truncated),
                Err(e) => Err(CodecError::Io(e)),
            };
        }
    }
    Err(CodecError::VarintOverflow)
}

/// Writes one frame (not flushed).
pub async fn write_frame<W>(io: &mut W, frame: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut header = Vec::with_capacity(10);
    varint::encode(frame.len() as u64, &mut header);
    io.write_all(&header).await?;
    io.write_all(frame).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        block_on(async {
            for f in frames {
                write_frame(&mut out, f).await.unwrap();
            }
        });
        out.into_inner()
    }

    #[test]
    fn frames_round_trip_until_eof() {
        let big = vec![7u8; 300];
        let bytes = framed(&[b"one", b"", &big]);
        assert_eq!(&bytes[..4], &[3, b'o', b'n', b'e']);
        assert_eq!(&bytes[4..5], &[0]);
        assert_eq!(&bytes[5..7], &[0xac, 0x02]); // 300 as uvarint
        let mut r = Cursor::new(bytes);
        block_on(async {
            assert_eq!(read_frame(&mut r, 300).await.unwrap().unwrap(), b"one");
            assert_eq!(read_frame(&mut r, 300).await.unwrap().unwrap(), b"");
            assert_eq!(read_frame(&mut r, 300).await.unwrap().unwrap(), big);
            assert!(read_frame(&mut r, 300).await.unwrap().is_none());
        });
    }

    #[test]
    fn oversize_is_refused_before_reading() {
        // Announces 4 MiB + 1 and sends nothing more.
        let mut header = Vec::new();
        varint::encode(4 * 1024 * 1024 + 1, &mut header);
        let mut r = Cursor::new(header);
        let err = block_on(read_frame(&mut r, 4 * 1024 * 1024)).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { len, .. } if len == 4 * 1024 * 1024 + 1));
        assert!(err.is_misbehaviour());
        // Exactly at the limit is fine.
        let bytes = framed(&[&[1u8; 10]]);
        assert!(block_on(read_frame(&mut Cursor::new(bytes), 10)).is_ok());
    }

    #[test]
    fn truncation_is_reported() {
        let bytes = framed(&[b"hello"]);
        for cut in 1..bytes.len() {
            let err = block_on(read_frame(&mut Cursor::new(bytes[..cut].to_vec()), 100));
            assert!(matches!(err, Err(CodecError::Truncated)), "cut at {cut}");
        }
        // A length prefix that ends mid-varint.
        let err = block_on(read_frame(&mut Cursor::new(vec![0x80]), 100));
        assert!(matches!(err, Err(CodecError::Truncated)));
        assert!(!CodecError::Truncated.is_misbehaviour());
    }

    #[test]
    fn overlong_varint_is_refused() {
        let err = block_on(read_frame(&mut Cursor::new(vec![0xff; 12]), 100)).unwrap_err();
        assert!(matches!(
            err,
            CodecError::VarintOverflow | CodecError::TooLarge { .. }
        ));
        assert!(err.is_misbehaviour());
    }
}
