//! Inactivity timeouts without a timer per read: the socket wrapper stamps the time of its last
//! progress, and one watchdog per connection sleeps until that stamp could have expired.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection last moved a byte, in milliseconds since it began.
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Resolves once no byte has moved for `limit`.
    pub async fn idle_timeout(&self, limit: Duration) {
        loop {
            let idle_for = self.idle_for();
            if idle_for >= limit {
                return;
            }
            tokio::time::sleep(limit - idle_for).await;
        }
    }
}

/// A socket that reports its progress to an [`Activity`], and on a client's socket counts the
/// bytes it moves.
pub struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
    written: u64,
    /// The frontend's bytes in and bytes out, added to as bytes move.
    counters: Option<(Counter, Counter)>,
}

impl<T> ActivityIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        ActivityIo {
            inner,
            activity,
            written: 0,
            counters: None,
        }
    }

    /// Also adds what is read to `bytes_in` and what is written to `bytes_out`.
    pub fn counting(mut self, bytes_in: Counter, bytes_out: Counter) -> Self {
        self.counters = Some((bytes_in, bytes_out));
        self
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
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
                if let Some((_, bytes_out)) = &self.counters {
                    bytes_out.increment(written as u64);
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.activity.touch();
            if let Some((bytes_in, _)) = &self.counters {
                bytes_in.increment(read as u64);
            }
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
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
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time;

    #[tokio::test(start_paused = true)]
    async fn traffic_postpones_the_idle_timeout() {
        let start = Instant::now();
        let activity = Activity::new();
        let watchdog = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.idle_timeout(Duration::from_millis(300)).await }
        });
        time::advance(Duration::from_millis(200)).await;
        activity.touch();
        time::advance(Duration::from_millis(200)).await;
        tokio::task::yield_now().await;
        assert!(
            !watchdog.is_finished(),
            "fired although a byte moved 200ms ago"
        );
        watchdog.await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_count_as_activity() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut server = ActivityIo::new(server, Arc::clone(&activity));
        time::advance(Duration::from_millis(100)).await;
        client.write_all(b"x").await.unwrap();
        server.read_exact(&mut [0u8]).await.unwrap();
        assert_eq!(activity.idle_for(), Duration::ZERO);
        time::advance(Duration::from_millis(100)).await;
        server.write_all(b"y").await.unwrap();
        assert_eq!(activity.idle_for(), Duration::ZERO);
        time::advance(Duration::from_millis(70)).await;
        assert_eq!(activity.idle_for(), Duration::from_millis(70));
    }
}
