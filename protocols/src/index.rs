//! The benchmark database's sync protocol, `/ipfsbench/index-sync/1.0.0`.
//!
//! Every node writes its own rows (its results, its content) as immutable Parquet
//! partitions, each a UnixFS file with a CID, and numbers them in the order it wrote them:
//! its manifest. A peer asks "node X's partitions after sequence N" ([`Request`]), of X
//! itself or, when X cannot be reached, of another trusted member that synced X, and is
//! answered with at most [`MAX_ENTRIES`] entries ([`Response`]); it fetches the files it
//! lacks with Bitswap. A compacted partition names the partitions it replaces. New partitions are
//! announced on the cluster's index topic ([`Announce`]), so peers ask within moments.
//!
//! On the stream: one request, one response, each a big-endian `u32` length and a version
//! byte followed by postcard, bounded ([`MAX_REQUEST_BYTES`], [`MAX_RESPONSE_BYTES`]).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::task::{WireCid, WirePeer, TOPIC_PREFIX};

/// The request-response protocol.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfsbench/index-sync/1.0.0");
/// The cluster's index topic ends with this.
pub const TOPIC_SUFFIX: &str = "/index/1";
/// The format's version byte.
pub const VERSION: u8 = 1;
/// Entries in one response, at most.
pub const MAX_ENTRIES: usize = 512;
/// Partitions one compacted partition replaces, at most.
pub const MAX_REPLACES: usize = 64;
/// A request's bytes, at most.
pub const MAX_REQUEST_BYTES: usize = 128;
/// A response's bytes, at most.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// An announcement's bytes, at most.
pub const MAX_ANNOUNCE_BYTES: usize = 256;

/// The cluster's index topic.
pub fn topic(cluster: &str) -> String {
    format!("{TOPIC_PREFIX}{cluster}{TOPIC_SUFFIX}")
}

/// Which table a partition holds rows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Table {
    /// One row per finished attempt.
    Results,
    /// One row per root a node holds.
    Content,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 2] = [Table::Results, Table::Content];

    /// Its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Results => "results",
            Self::Content => "content",
        }
    }
}

impl std::str::FromStr for Table {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "results" => Ok(Self::Results),
            "content" => Ok(Self::Content),
            other => Err(format!("unknown table {other:?}: results or content")),
        }
    }
}

/// One partition in a node's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Its place in the writer's manifest, from 1.
    pub seq: u64,
    /// The Parquet file's UnixFS root.
    pub cid: WireCid,
    /// Its table.
    pub table: Table,
    /// Rows in it.
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
    /// The earliest and latest row times it holds, Unix ms.
    pub first_ms: u64,
    /// See `first_ms`.
    pub last_ms: u64,
    /// When it was written, Unix ms.
    pub written_ms: u64,
    /// The writer's partitions it replaces (compaction): readers drop those.
    pub replaces: Vec<WireCid>,
}

/// "`node`'s partitions after `since`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Whose manifest: the answerer's own, or a node it synced.
    pub node: WirePeer,
    /// The highest sequence the asker has of that manifest.
    pub since: u64,
}

/// The answer: `node`'s partitions after `since`, in sequence order (none, with `latest`
/// 0, when the answerer does not know `node`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The highest sequence of that manifest.
    pub latest: u64,
    /// At most [`MAX_ENTRIES`].
    pub partitions: Vec<Partition>,
}

/// What a node says on the index topic when it writes a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Its highest sequence.
    pub latest: u64,
    /// When it was sent, Unix ms (repeated announcements differ, so gossip forwards them).
    pub at_ms: u64,
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Over its size bound.
    #[error("message of {0} bytes is over its bound")]
    TooLarge(usize),
    /// Not version [`VERSION`].
    #[error("unknown version {0}")]
    Version(u8),
    /// Not decodable.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Decodable, but breaks a rule.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// The stream failed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
}

fn encode<T: Serialize>(value: &T, max: usize) -> Result<Vec<u8>, IndexError> {
    let mut out = vec![VERSION];
    out.extend(postcard::to_stdvec(value).map_err(|e| IndexError::Malformed(e.to_string()))?);
    if out.len() > max {
        return Err(IndexError::TooLarge(out.len()));
    }
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, IndexError> {
    if bytes.len() > max {
        return Err(IndexError::TooLarge(bytes.len()));
    }
    match bytes.split_first() {
        Some((&VERSION, body)) => {
            let (value, rest) = postcard::take_from_bytes(body)
                .map_err(|e| IndexError::Malformed(e.to_string()))?;
            if rest.is_empty() {
                Ok(value)
            } else {
                Err(IndexError::Malformed(format!(
                    "{} bytes after the message",
                    rest.len()
                )))
            }
        }
        Some((&other, _)) => Err(IndexError::Version(other)),
        None => Err(IndexError::Malformed("empty".into())),
    }
}

impl Request {
    /// The request's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, IndexError> {
        encode(self, MAX_REQUEST_BYTES)
    }

    /// Decodes a request.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        decode(bytes, MAX_REQUEST_BYTES)
    }
}

impl Response {
    /// The response's bytes (checked first).
    pub fn encode(&self) -> Result<Vec<u8>, IndexError> {
        self.check()?;
        encode(self, MAX_RESPONSE_BYTES)
    }

    /// Decodes and checks a response.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let response: Self = decode(bytes, MAX_RESPONSE_BYTES)?;
        response.check()?;
        Ok(response)
    }

    fn check(&self) -> Result<(), IndexError> {
        if self.partitions.len() > MAX_ENTRIES {
            return Err(IndexError::Invalid("too many partitions in one response"));
        }
        let mut last = 0;
        for p in &self.partitions {
            if p.seq <= last || p.seq > self.latest {
                return Err(IndexError::Invalid("sequences out of order"));
            }
            last = p.seq;
            if p.replaces.len() > MAX_REPLACES {
                return Err(IndexError::Invalid("a partition replaces too many"));
            }
            if p.first_ms > p.last_ms {
                return Err(IndexError::Invalid("a partition's times are reversed"));
            }
        }
        Ok(())
    }
}

impl Announce {
    /// The announcement's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, IndexError> {
        encode(self, MAX_ANNOUNCE_BYTES)
    }

    /// Decodes an announcement.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        decode(bytes, MAX_ANNOUNCE_BYTES)
    }
}

/// Writes one frame: a big-endian `u32` length, then `bytes`.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> Result<(), IndexError> {
    let len = u32::try_from(bytes.len()).map_err(|_| IndexError::TooLarge(bytes.len()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame of at most `max` bytes; a longer one is refused before it is read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Vec<u8>, IndexError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(IndexError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cid::Cid;
    use multihash::Multihash;

    fn cid(n: u8) -> WireCid {
        let mh = Multihash::<64>::wrap(0x12, &[n; 32]).expect("digest fits");
        WireCid(Cid::new_v1(0x55, mh))
    }

    fn partition(seq: u64) -> Partition {
        Partition {
            seq,
            cid: cid(seq as u8),
            table: Table::Results,
            rows: 10,
            bytes: 1000,
            first_ms: 1,
            last_ms: 2,
            written_ms: 3,
            replaces: vec![],
        }
    }

    #[test]
    fn messages_round_trip() {
        let response = Response {
            latest: 3,
            partitions: vec![partition(1), partition(3)],
        };
        assert_eq!(
            Response::decode(&response.encode().expect("encodes")).expect("decodes"),
            response
        );
        let request = Request {
            node: WirePeer(libp2p::PeerId::random()),
            since: 7,
        };
        assert_eq!(
            Request::decode(&request.encode().expect("encodes")).expect("decodes"),
            request
        );
        let announce = Announce {
            latest: 9,
            at_ms: 1,
        };
        assert_eq!(
            Announce::decode(&announce.encode().expect("encodes")).expect("decodes"),
            announce
        );
    }

    #[test]
    fn oversized_and_disordered_manifests_are_refused() {
        let big = Response {
            latest: MAX_ENTRIES as u64 + 1,
            partitions: (1..=MAX_ENTRIES as u64 + 1).map(partition).collect(),
        };
        assert!(big.encode().is_err());
        // Encoded past the checks, as a misbehaving peer would: still refused.
        let raw = encode(&big, usize::MAX).expect("raw encoding");
        assert!(matches!(
            Response::decode(&raw),
            Err(IndexError::Invalid(_) | IndexError::TooLarge(_))
        ));
        let disordered = Response {
            latest: 5,
            partitions: vec![partition(3), partition(2)],
        };
        let raw = encode(&disordered, MAX_RESPONSE_BYTES).expect("raw encoding");
        assert!(matches!(
            Response::decode(&raw),
            Err(IndexError::Invalid(_))
        ));
        let mut replacing = partition(1);
        replacing.replaces = (0..=MAX_REPLACES as u8).map(cid).collect();
        let raw = encode(
            &Response {
                latest: 1,
                partitions: vec![replacing],
            },
            MAX_RESPONSE_BYTES,
        )
        .expect("raw encoding");
        assert!(Response::decode(&raw).is_err());
        assert!(matches!(
            Request::decode(&[2, 0]),
            Err(IndexError::Version(2))
        ));
        let mut trailing = Request {
            node: WirePeer(libp2p::PeerId::random()),
            since: 1,
        }
        .encode()
        .expect("encodes");
        trailing.push(0);
        assert!(Request::decode(&trailing).is_err());
    }

    #[test]
    fn frames_are_bounded_before_reading() {
        futures::executor::block_on(async {
            let mut buf = Vec::new();
            write_frame(&mut buf, &[7u8; 100]).await.expect("written");
            let mut reader = futures::io::Cursor::new(buf.clone());
            assert_eq!(
                read_frame(&mut reader, 100).await.expect("read"),
                vec![7u8; 100]
            );
            let mut reader = futures::io::Cursor::new(buf);
            assert!(matches!(
                read_frame(&mut reader, 99).await,
                Err(IndexError::TooLarge(100))
            ));
        });
    }
}
