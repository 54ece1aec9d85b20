//! A connection to a server, plain or over TLS (a backend's `tls:`), as the HTTP clients and
//! the tcp relay use it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::socket::Socket;
use crate::config::UpstreamProtocol;
use crate::tls::upstream::{negotiated, Origination};

pub enum ServerStream {
    Plain(Socket),
    /// Boxed: rustls's connection state is large, and most servers are plain.
    Tls {
        stream: Box<TlsStream<Socket>>,
        /// The `Origination` it was made with.
        origination: u64,
    },
}

impl From<TcpStream> for ServerStream {
    fn from(stream: TcpStream) -> ServerStream {
        ServerStream::Plain(Socket(stream))
    }
}

impl ServerStream {
    /// `stream`, over TLS made with `tls` when given.
    pub async fn over(stream: TcpStream, tls: Option<&Origination>) -> io::Result<ServerStream> {
        Ok(match tls {
            None => ServerStream::from(stream),
            Some(tls) => ServerStream::Tls {
                stream: Box::new(tls.connect(Socket(stream)).await?),
                origination: tls.id(),
            },
        })
    }

    /// The HTTP version to speak on it: as TLS's ALPN settled it, else `configured`.
    pub fn protocol(&self, configured: UpstreamProtocol) -> UpstreamProtocol {
        match self {
            ServerStream::Plain(_) => configured,
            ServerStream::Tls { stream, .. } => negotiated(stream).unwrap_or(configured),
        }
    }

    /// Which TLS settings it was made with: 0 for a plain connection.
    pub fn origination(&self) -> u64 {
        match self {
            ServerStream::Plain(_) => 0,
            ServerStream::Tls { origination, .. } => *origination,
        }
    }

    /// Whether the server has left this idle connection alone: no end of stream and no stray
    /// bytes. A plain one costs a syscall only when the socket became readable since it was
    /// last read; a TLS one reads what came, since a server may send session tickets or a
    /// key update on an idle connection, which are no reason to drop it.
    pub fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self {
            ServerStream::Plain(socket) => match socket.0.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => matches!(
                    socket.0.try_read(&mut [0; 1]),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock
                ),
            },
            ServerStream::Tls { stream, .. } => {
                let mut byte = [0; 1];
                let mut buf = ReadBuf::new(&mut byte);
                Pin::new(stream).poll_read(&mut cx, &mut buf).is_pending()
            }
        }
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(socket) => Pin::new(socket).poll_read(cx, buf),
            ServerStream::Tls { stream, .. } => {
                // A write may leave records in rustls when the socket was full, and the
                // HTTP/1.1 client never flushes (a plain socket buffers nothing): they go out
                // while it waits for the answer. Pending here only means the socket is full.
                if let Poll::Ready(Err(error)) = Pin::new(&mut **stream).poll_flush(cx) {
                    return Poll::Ready(Err(error));
                }
                Pin::new(stream).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(socket) => Pin::new(socket).poll_write(cx, data),
            ServerStream::Tls { stream, .. } => Pin::new(stream).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(socket) => Pin::new(socket).poll_write_vectored(cx, bufs),
            ServerStream::Tls { stream, .. } => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(socket) => socket.is_write_vectored(),
            ServerStream::Tls { stream, .. } => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(socket) => Pin::new(socket).poll_flush(cx),
            ServerStream::Tls { stream, .. } => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(socket) => Pin::new(socket).poll_shutdown(cx),
            ServerStream::Tls { stream, .. } => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
