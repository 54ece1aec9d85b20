//! Inactivity timeouts without a clock read per read or write: the socket wrapper bumps a
//! progress counter, and one watchdog per connection samples it a few times per timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use metrics::Counter;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::socket::Socket;
use tokio::time::Instant;

/// Samples of the progress counter per timeout: a connection is closed between one and one and
/// a half timeouts after its last byte, and an idle one costs a wake-up every quarter timeout.
const SAMPLES_PER_TIMEOUT: u32 = 4;
/// Bytes counted on a connection before they are added to the frontend's counters, which every
/// worker shares: an atomic add per read or write would make their cache line travel.
const COUNT_BATCH: u64 = 64 * 1024;

/// How many times a connection has moved bytes (only whether it changed matters).
pub struct Activity {
    progress: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            progress: AtomicU64::new(0),
        })
    }

    pub(super) fn touch(&self) {
        // Only this connection's task writes it, so no read-modify-write instruction is needed.
        let progress = self.progress.load(Ordering::Relaxed);
        self.progress
            .store(progress.wrapping_add(1), Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `limit` (and at most half of it more).
    pub async fn idle_timeout(&self, limit: Duration) {
        let tick = (limit / SAMPLES_PER_TIMEOUT).max(Duration::from_millis(1));
        let mut seen = self.progress.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let progress = self.progress.load(Ordering::Relaxed);
            if progress != seen {
                seen = progress;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= limit {
                return;
            }
        }
    }
}

/// A socket that reports its progress to an [`Activity`], and on a client's socket counts the
/// bytes it moves.
pub struct ActivityIo<S = Socket> {
    inner: S,
    /// Bytes read from the socket before this wrapper existed, read from here first.
    received: Bytes,
    activity: Arc<Activity>,
    written: u64,
    /// Bytes in and bytes out counters (a frontend's; a server's and its backend's), and what
    /// is not yet added to them.
    counters: SmallVec<[(Counter, Counter); 2]>,
    uncounted_in: u64,
    uncounted_out: u64,
    /// Shutdown only precedes close here: see [`ActivityIo::closing_at_shutdown`].
    closing_at_shutdown: bool,
}

impl ActivityIo {
    pub fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        ActivityIo::over(Socket(inner), activity)
    }
}

impl<S> ActivityIo<S> {
    /// Over any stream: a server's TLS connection, say.
    pub fn over(inner: S, activity: Arc<Activity>) -> Self {
        ActivityIo {
            inner,
            received: Bytes::new(),
            activity,
            written: 0,
            counters: SmallVec::new(),
            uncounted_in: 0,
            uncounted_out: 0,
            closing_at_shutdown: false,
        }
    }

    /// Shutdown makes no system call: for a socket that is closed as soon as it is shut down
    /// (hyper's server shuts a connection down as it ends it), close sends the same FIN, and
    /// the call cost a tenth of a new connection's system calls. Not for a relay, whose
    /// half-close must reach the peer while the other direction still flows.
    pub fn closing_at_shutdown(mut self) -> Self {
        self.closing_at_shutdown = true;
        self
    }

    /// Also adds what is read to `bytes_in` and what is written to `bytes_out` (to every pair
    /// given, when called more than once).
    pub fn counting(mut self, bytes_in: Counter, bytes_out: Counter) -> Self {
        self.counters.push((bytes_in, bytes_out));
        self
    }

    /// Reads return `received` before anything more from the socket.
    pub fn with_received(mut self, received: Bytes) -> Self {
        self.uncounted_in += received.len() as u64;
        self.received = received;
        self
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn wrote(&mut self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(written)) = *result {
            if written > 0 {
                self.activity.touch();
                self.written += written as u64;
                self.uncounted_out += written as u64;
                if self.uncounted_out >= COUNT_BATCH {
                    self.count();
                }
            }
        }
    }

    /// Adds the bytes moved since the last call to the counters.
    fn count(&mut self) {
        let (read, written) = (
            std::mem::take(&mut self.uncounted_in),
            std::mem::take(&mut self.uncounted_out),
        );
        for (bytes_in, bytes_out) in &self.counters {
            bytes_in.increment(read);
            bytes_out.increment(written);
        }
    }
}

impl<S> Drop for ActivityIo<S> {
    fn drop(&mut self) {
        self.count();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ActivityIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.received.is_empty() {
            let count = self.received.len().min(buf.remaining());
            buf.put_slice(&self.received[..count]);
            self.received.advance(count);
            if self.received.is_empty() {
                // Frees the buffer rather than keeping it for the connection's life.
                self.received = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.activity.touch();
            self.uncounted_in += read as u64;
            if self.uncounted_in >= COUNT_BATCH {
                self.count();
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ActivityIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closing_at_shutdown {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time;

    const LIMIT: Duration = Duration::from_millis(800);

    #[tokio::test(start_paused = true)]
    async fn fires_between_one_and_one_and_a_half_timeouts_after_the_last_byte() {
        let activity = Activity::new();
        let watchdog = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.idle_timeout(LIMIT).await }
        });
        time::sleep(Duration::from_millis(650)).await;
        activity.touch();
        let last_byte = Instant::now();
        time::sleep(LIMIT - Duration::from_millis(1)).await;
        assert!(
            !watchdog.is_finished(),
            "fired before a full timeout of quiet"
        );
        watchdog.await.unwrap();
        let quiet = last_byte.elapsed();
        assert!(
            quiet >= LIMIT && quiet <= LIMIT * 5 / 4,
            "fired after {quiet:?}"
        );
    }

    /// A client socket and the server side of its connection.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn reads_and_writes_count_as_activity() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = connected().await;
        let activity = Activity::new();
        let mut server = ActivityIo::new(server, Arc::clone(&activity));
        let progress = || activity.progress.load(Ordering::Relaxed);
        let start = progress();
        client.write_all(b"x").await.unwrap();
        server.read_exact(&mut [0u8]).await.unwrap();
        assert_ne!(progress(), start, "a read is progress");
        let after_read = progress();
        server.write_all(b"yz").await.unwrap();
        assert_ne!(progress(), after_read, "a write is progress");
        assert_eq!(server.written(), 2);
        let mut received = [0u8; 2];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(&received, b"yz");
    }

    #[tokio::test]
    async fn bytes_read_before_come_ahead_of_the_socket_s() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = connected().await;
        let mut server = ActivityIo::new(server, Activity::new())
            .with_received(Bytes::from_static(b"GET /first"));
        client.write_all(b" HTTP/1.1\r\n").await.unwrap();
        client.shutdown().await.unwrap();
        // A small buffer: the received bytes may take more than one read.
        let mut whole = Vec::new();
        let mut chunk = [0u8; 4];
        loop {
            match server.read(&mut chunk).await.unwrap() {
                0 => break,
                count => whole.extend_from_slice(&chunk[..count]),
            }
        }
        assert_eq!(whole, b"GET /first HTTP/1.1\r\n");
    }
}
