//! Yamux (`/yamux/1.0.0`) for our connections, over the `yamux` crate directly, so that the
//! receive window we grant a stream never exceeds what a yamux decoder accepts as one frame.
//!
//! rust-yamux starts each stream's receive window at 256 KiB and doubles it whenever the
//! sender uses half of it within two round trips (auto-tuning towards the bandwidth-delay
//! product), bounded only by a connection-wide budget: 1 GiB by default, and libp2p-yamux
//! offers no way to set it. Some yamux implementations (js-yamux, so Helia) send a data frame
//! as large as the window they were granted, while rust-yamux's decoder refuses a frame body
//! over 1 MiB (`FrameTooLarge`) and closes the whole connection. So a window grown past 1 MiB
//! breaks transfers from such peers.
//!
//! The budget bounds every window. In yamux's flow control (`next_window_update` in its
//! `flow_control.rs`) a stream's new maximum is at most its current maximum plus the part of
//! the budget not yet spent, where the budget first reserves 256 KiB for each of the
//! connection's `max_num_streams` streams and every stream's growth beyond 256 KiB (its own
//! included) counts as spent:
//!
//! ```text
//! new_max <= max + (budget - streams * 256 KiB - spent),  spent >= max - 256 KiB
//!         <= 256 KiB + (budget - streams * 256 KiB)
//! ```
//!
//! With `budget = streams * 256 KiB + 768 KiB` no window passes 1 MiB, so a window-sized frame
//! (1 MiB at most, less the 12-byte header for js-yamux) always decodes. The 768 KiB of growth
//! is shared by a connection's streams: one stream can reach the full 1 MiB, which carries
//! 1 MiB per round trip (100 MB/s at 10 ms); longer links are bounded by it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::{ready, AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// The protocol negotiated for the muxer.
const PROTOCOL: &str = "/yamux/1.0.0";

/// yamux's initial (and smallest) stream window, from the specification. Bytes.
const INITIAL_WINDOW: usize = yamux::DEFAULT_CREDIT as usize;

/// The largest frame body rust-yamux's decoder accepts, and so the largest window we grant a
/// stream. Bytes.
pub(crate) const MAX_STREAM_WINDOW: usize = 1024 * 1024;

/// The most streams a connection may have open at once (yamux's default).
const MAX_STREAMS: usize = 512;

/// Streams the remote opened while the swarm was only driving the connection, held until it
/// asks for them; beyond this many, new ones are reset (a peer that opens streams faster than
/// we accept them).
const MAX_UNCLAIMED: usize = 256;

/// The connection-wide receive window budget that keeps every stream's window at most
/// [`MAX_STREAM_WINDOW`]: see the module's documentation. Bytes.
const fn connection_window(streams: usize) -> usize {
    streams * INITIAL_WINDOW + (MAX_STREAM_WINDOW - INITIAL_WINDOW)
}

/// The upgrade that turns an authenticated connection into a yamux [`Muxer`].
#[derive(Debug, Clone)]
pub(crate) struct Config(yamux::Config);

impl Default for Config {
    fn default() -> Self {
        let mut config = yamux::Config::default();
        // The stream count first: yamux checks that the budget covers 256 KiB per stream.
        config.set_max_num_streams(MAX_STREAMS);
        config.set_max_connection_receive_window(Some(connection_window(MAX_STREAMS)));
        Self(config)
    }
}

impl Config {
    fn muxer<C>(
        self,
        socket: C,
        mode: yamux::Mode,
    ) -> std::future::Ready<Result<Muxer<C>, Infallible>>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        std::future::ready(Ok(Muxer {
            connection: yamux::Connection::new(socket, self.0, mode),
            unclaimed: VecDeque::new(),
            claimant: None,
        }))
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = std::iter::Once<&'static str>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(PROTOCOL)
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Muxer<C>, Infallible>>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        self.muxer(socket, yamux::Mode::Server)
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Muxer<C>, Infallible>>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        self.muxer(socket, yamux::Mode::Client)
    }
}

/// One yamux connection, as libp2p's [`StreamMuxer`].
///
/// yamux makes progress only while someone polls for the next inbound stream, which libp2p
/// does in two ways: [`StreamMuxer::poll`] (driving the connection) and
/// [`StreamMuxer::poll_inbound`] (asking for a stream). A stream that arrives while driving
/// waits in `unclaimed` for the next ask.
#[derive(Debug)]
pub(crate) struct Muxer<C> {
    connection: yamux::Connection<C>,
    unclaimed: VecDeque<yamux::Stream>,
    /// The task waiting in `poll_inbound`, woken when a stream is put in `unclaimed`.
    claimant: Option<Waker>,
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    /// The next stream the remote opened; an error once the connection has ended.
    fn next_inbound(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<yamux::Stream, yamux::ConnectionError>> {
        match ready!(self.connection.poll_next_inbound(cx)) {
            Some(next) => Poll::Ready(next),
            None => Poll::Ready(Err(yamux::ConnectionError::Closed)),
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    type Substream = yamux::Stream;
    type Error = yamux::ConnectionError;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        if let Some(stream) = this.unclaimed.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        let next = this.next_inbound(cx);
        if next.is_pending() {
            this.claimant = Some(cx.waker().clone());
        }
        next
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut().connection.poll_new_outbound(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().connection.poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = ready!(this.next_inbound(cx))?;
        if this.unclaimed.len() < MAX_UNCLAIMED {
            this.unclaimed.push_back(stream);
            if let Some(claimant) = this.claimant.take() {
                claimant.wake();
            }
        } else {
            // Dropping a stream resets it.
            tracing::debug!(stream = %stream.id(), "too many unclaimed inbound streams: reset");
        }
        // Yield rather than loop, so a peer opening streams cannot hold this task; the
        // connection is polled again at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::{self, Either};
    use futures::{AsyncReadExt, AsyncWriteExt};
    use libp2p::core::muxing::StreamMuxerExt;
    use libp2p::tcp::tokio::TcpStream as Socket;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    const MIB: usize = 1024 * 1024;

    // yamux frames (github.com/hashicorp/yamux/blob/master/spec.md): version, type, flags,
    // stream id, length; 12 bytes, big-endian.
    const DATA: u8 = 0;
    const WINDOW_UPDATE: u8 = 1;
    const PING: u8 = 2;
    const GO_AWAY: u8 = 3;
    const SYN: u16 = 1;
    const ACK: u16 = 2;
    const FIN: u16 = 4;

    fn frame(kind: u8, flags: u16, stream: u32, length: u32, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(12 + body.len());
        f.push(0);
        f.push(kind);
        f.extend_from_slice(&flags.to_be_bytes());
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(&length.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    /// The byte at `offset` of the test's streams.
    fn byte_at(offset: usize) -> u8 {
        (offset % 251) as u8
    }

    /// A loopback TCP pair: (the connecting end, the accepted end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialled, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (dialled.unwrap(), accepted.unwrap().0)
    }

    fn muxer(socket: TcpStream, mode: yamux::Mode) -> Muxer<Socket> {
        let ready = Config::default().muxer(Socket(socket), mode);
        match ready.into_inner() {
            Ok(m) => m,
            Err(never) => match never {},
        }
    }

    /// Reads `stream` to its end, checking every byte; returns how many there were.
    async fn read_checked(mut stream: yamux::Stream) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, byte_at(total + i), "byte {}", total + i);
            }
            total += n;
        }
    }

    /// A peer that sends, like js-yamux, data frames as large as the whole window it was
    /// granted, and answers our pings only after a delay: a round trip that long lets yamux's
    /// auto-tuning grow the window as it would on a real network. Against the old setting
    /// (libp2p-yamux's 1 GiB budget) the window grows to 2 MiB and beyond, the frames with it,
    /// and our decoder closes the connection with `FrameTooLarge`.
    #[tokio::test]
    async fn a_peer_sending_window_sized_frames_is_never_granted_more_than_a_frame() {
        const TOTAL: usize = 48 * MIB;
        const PONG_DELAY: Duration = Duration::from_millis(150);
        let (theirs, ours) = pair().await;

        // Our side, as a listener: accepts the stream and reads it to its end.
        let mut ours = muxer(ours, yamux::Mode::Server);
        let receiver = tokio::spawn(async move {
            let stream = future::poll_fn(|cx| ours.poll_inbound_unpin(cx))
                .await
                .unwrap();
            let drive = future::poll_fn(|cx| ours.poll_unpin(cx));
            match future::select(std::pin::pin!(drive), std::pin::pin!(read_checked(stream))).await
            {
                Either::Left((ended, _)) => panic!("our connection ended: {ended:?}"),
                Either::Right((n, _)) => n,
            }
        });

        // Their side: a writer task for frames, a reader task for our frames.
        let (mut rd, mut wr) = theirs.into_split();
        let (frames, mut outbox) = mpsc::channel::<Vec<u8>>(8);
        let writer = tokio::spawn(async move {
            while let Some(f) = outbox.recv().await {
                if wr.write_all(&f).await.is_err() {
                    break;
                }
            }
        });
        let (credit, mut credits) = mpsc::channel::<u32>(64);
        let (ponged, pong_sent) = tokio::sync::oneshot::channel::<()>();
        let pongs = frames.clone();
        let reader = tokio::spawn(async move {
            let mut ponged = Some(ponged);
            let mut head = [0u8; 12];
            while rd.read_exact(&mut head).await.is_ok() {
                let flags = u16::from_be_bytes([head[2], head[3]]);
                let length = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                match head[1] {
                    DATA => {
                        let mut body = vec![0u8; length as usize];
                        rd.read_exact(&mut body).await.unwrap();
                    }
                    WINDOW_UPDATE => {
                        let _ = credit.send(length).await;
                    }
                    PING if flags & ACK == 0 => {
                        tokio::time::sleep(PONG_DELAY).await;
                        let _ = pongs.send(frame(PING, ACK, 0, length, &[])).await;
                        if let Some(tx) = ponged.take() {
                            let _ = tx.send(());
                        }
                    }
                    GO_AWAY => break,
                    _ => {}
                }
            }
        });

        // Once our side knows the round trip, open stream 1 and send greedily.
        pong_sent.await.unwrap();
        frames
            .send(frame(WINDOW_UPDATE, SYN, 1, 0, &[]))
            .await
            .unwrap();
        let mut window = INITIAL_WINDOW;
        let mut largest = window;
        let mut sent = 0;
        while sent < TOTAL {
            while let Ok(more) = credits.try_recv() {
                window += more as usize;
            }
            if window == 0 {
                let more = tokio::time::timeout(Duration::from_secs(30), credits.recv())
                    .await
                    .expect("a window update")
                    .expect("the reader runs");
                window += more as usize;
                continue;
            }
            largest = largest.max(window);
            assert!(
                window <= MAX_STREAM_WINDOW,
                "granted {window} bytes at once"
            );
            let n = window.min(TOTAL - sent);
            let body: Vec<u8> = (sent..sent + n).map(byte_at).collect();
            frames
                .send(frame(DATA, 0, 1, n as u32, &body))
                .await
                .unwrap();
            window -= n;
            sent += n;
        }
        frames.send(frame(DATA, FIN, 1, 0, &[])).await.unwrap();
        let received = tokio::time::timeout(Duration::from_secs(60), receiver)
            .await
            .expect("our side read the stream in time")
            .unwrap();
        assert_eq!(received, TOTAL);
        // The window did grow (the case this test is about), up to the cap and no further.
        assert!(largest > INITIAL_WINDOW, "the window never grew: {largest}");
        drop(frames);
        reader.abort();
        let _ = writer.await;
    }

    /// Two of our muxers: streams opened on one side are accepted on the other, whether the
    /// swarm drives the connection or asks for a stream, and carry their bytes both ways.
    #[tokio::test]
    async fn streams_carry_data_between_two_muxers() {
        const STREAMS: usize = 4;
        const EACH: usize = 6 * MIB;
        let (a, b) = pair().await;
        let mut dialer = muxer(a, yamux::Mode::Client);
        let mut listener = muxer(b, yamux::Mode::Server);

        // The listener: drives its connection (which puts streams aside) and claims them;
        // reads each to its end and answers with the count.
        let listening = tokio::spawn(async move {
            let mut readers = Vec::new();
            while readers.len() < STREAMS {
                let stream = future::poll_fn(|cx| {
                    if let Poll::Ready(Err(e)) = listener.poll_unpin(cx) {
                        return Poll::Ready(Err(e));
                    }
                    listener.poll_inbound_unpin(cx)
                })
                .await
                .unwrap();
                readers.push(tokio::spawn(async move {
                    let mut stream = stream;
                    let mut buf = Vec::new();
                    stream.read_to_end(&mut buf).await.unwrap();
                    for (i, b) in buf.iter().enumerate() {
                        assert_eq!(*b, byte_at(i));
                    }
                    stream
                        .write_all(&(buf.len() as u64).to_be_bytes())
                        .await
                        .unwrap();
                    stream.close().await.unwrap();
                }));
            }
            let drive = future::poll_fn(|cx| listener.poll_unpin(cx));
            let done = future::join_all(readers);
            match future::select(std::pin::pin!(drive), done).await {
                Either::Left((ended, _)) => panic!("the listener's connection ended: {ended:?}"),
                Either::Right((results, _)) => results.into_iter().for_each(|r| r.unwrap()),
            }
            // Its answers go out while it drives the connection, until the dialer closes it.
            let ended = future::poll_fn(|cx| listener.poll_unpin(cx)).await;
            assert!(
                matches!(ended, Err(yamux::ConnectionError::Closed)),
                "{ended:?}"
            );
        });

        let mut writers = Vec::new();
        for _ in 0..STREAMS {
            let mut stream = future::poll_fn(|cx| dialer.poll_outbound_unpin(cx))
                .await
                .unwrap();
            writers.push(async move {
                let data: Vec<u8> = (0..EACH).map(byte_at).collect();
                stream.write_all(&data).await.unwrap();
                stream.close().await.unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.unwrap();
                assert_eq!(answer, (EACH as u64).to_be_bytes());
            });
        }
        let drive = std::pin::pin!(future::poll_fn(|cx| dialer.poll_unpin(cx)));
        let all = std::pin::pin!(future::join_all(writers));
        let finished = tokio::time::timeout(Duration::from_secs(60), future::select(drive, all))
            .await
            .expect("the streams finished in time");
        if let Either::Left((ended, _)) = finished {
            panic!("the dialer's connection ended: {ended:?}");
        }
        let closed = future::poll_fn(|cx| dialer.poll_close_unpin(cx)).await;
        assert!(closed.is_ok(), "{closed:?}");
        listening.await.unwrap();
    }

    #[test]
    fn the_budget_caps_each_window_at_one_frame() {
        // The bound from the module's documentation, at the configured stream count.
        let budget = connection_window(MAX_STREAMS);
        assert_eq!(
            INITIAL_WINDOW + (budget - MAX_STREAMS * INITIAL_WINDOW),
            MAX_STREAM_WINDOW
        );
        // yamux accepts it (it asserts the budget covers every stream's initial window).
        let _ = Config::default();
    }
}
