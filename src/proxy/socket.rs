//! A TCP socket that writes with send(2) and sendmsg(2) rather than tokio's write(2) and
//! writev(2), which pass through the VFS layer first: measurable on a proxy's many small writes.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::config::TcpKeepalive;

pub struct Socket(pub TcpStream);

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        send(&self.0, cx, |socket| socket.send(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        send(&self.0, cx, |socket| socket.send_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Turns on TCP keepalive probes on `stream` as `keepalive` says; a failure (which would be
/// this host's) is logged and the connection goes on without.
pub fn keep_alive(stream: &TcpStream, keepalive: &TcpKeepalive) {
    let mut params = socket2::TcpKeepalive::new();
    if let Some(idle) = keepalive.idle {
        params = params.with_time(idle);
    }
    if let Some(interval) = keepalive.interval {
        params = params.with_interval(interval);
    }
    if let Some(count) = keepalive.count {
        params = params.with_retries(count);
    }
    if let Err(error) = SockRef::from(stream).set_tcp_keepalive(&params) {
        tracing::debug!(%error, "tcp_keepalive not set");
    }
}

/// One nonblocking send on `stream` once it is writable (socket2 adds MSG_NOSIGNAL).
fn send(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    write: impl Fn(SockRef<'_>) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_io(Interest::WRITABLE, || write(SockRef::from(stream))) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            sent => return Poll::Ready(sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_reach_the_peer_whole_and_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut socket = Socket(listener.accept().await.unwrap().0);
        let big = vec![7u8; 4 << 20];
        let writer = tokio::spawn(async move {
            socket.write_all(b"head ").await.unwrap();
            let parts = [io::IoSlice::new(b"one "), io::IoSlice::new(b"two ")];
            let sent = socket.write_vectored(&parts).await.unwrap();
            assert_eq!(sent, 8, "both slices in one call on an empty socket");
            socket.write_all(&big).await.unwrap();
            socket.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        peer.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(&received[..13], b"head one two ");
        assert_eq!(
            received.len(),
            13 + (4 << 20),
            "a send that fills the buffer waits, then goes on"
        );
    }
}
