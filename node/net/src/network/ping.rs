//! The libp2p ping protocol from the caller's side, as Kubo's `ping` command uses it: on one
//! stream, each round writes 32 bytes that the peer echoes back. Spec:
//! <https://github.com/libp2p/specs/blob/master/ping/ping.md>.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use sha2::Digest;

use super::client::Client;

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");
/// The bytes of one round.
const PAYLOAD: usize = 32;
/// How long one round may take (Kubo's ping timeout).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No stream to the peer could be opened (not reachable, or no ping protocol).
    #[error("cannot open a ping stream: {0}")]
    Open(String),
    /// The stream broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer answered other bytes.
    #[error("the peer echoed other bytes")]
    Mismatch,
    /// No answer within [`TIMEOUT`].
    #[error("timed out after {}s", TIMEOUT.as_secs())]
    Timeout,
}

/// A ping stream to one peer.
#[derive(Debug)]
pub struct Pinger {
    stream: Stream,
    round: u64,
}

impl Pinger {
    /// Opens a ping stream to `peer` (dialling it if the host knows an address).
    pub async fn open(net: &Client, peer: PeerId) -> Result<Self, Error> {
        let stream = tokio::time::timeout(TIMEOUT, net.streams().open_stream(peer, PROTOCOL))
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(|e| Error::Open(e.to_string()))?;
        Ok(Self { stream, round: 0 })
    }

    /// One round trip.
    pub async fn ping(&mut self) -> Result<Duration, Error> {
        self.round += 1;
        // Unpredictable enough to tell one round's echo from another's.
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.round.to_be_bytes());
        hasher.update(format!("{:?}", Instant::now()).as_bytes());
        let payload: [u8; PAYLOAD] = hasher.finalize().into();
        let start = Instant::now();
        let exchange = async {
            self.stream.write_all(&payload).await?;
            self.stream.flush().await?;
            let mut echo = [0u8; PAYLOAD];
            self.stream.read_exact(&mut echo).await?;
            Ok::<_, Error>(echo)
        };
        let echo = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Timeout)??;
        if echo != payload {
            return Err(Error::Mismatch);
        }
        Ok(start.elapsed())
    }

    /// Ends the stream politely.
    pub async fn close(mut self) {
        let _ = self.stream.close().await;
    }
}
