//! A TCP socket that writes with send(2) and sendmsg(2) rather than tokio's write(2) and
//! writev(2), which pass through the VFS layer first: measurable on a proxy's many small writes.
//!
//! A client's socket joins the reactor only once it must wait. A client whose request is there
//! when it is accepted and whose answer fits the socket's buffer is served and closed without
//! the epoll_ctl(2) calls that registering and deregistering cost: two of the eight system calls
//! of a new connection's client side, as HAProxy also spares them. hyper reads on while a
//! request is answered, to notice a client that leaves; a client that owes nothing more until
//! answered is given that read a while later rather than a registration now.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::config::TcpKeepalive;

/// How late a client that left while its request was answered is noticed, at most. HAProxy
/// does not notice by default (`option abortonclose` is off).
const AWAITING_ANSWER: Duration = Duration::from_millis(200);

pub struct Socket {
    state: State,
    /// Set while the client is owed an answer and owes nothing itself: a read that would find
    /// nothing waits for this instead of registering the socket. Ends at the next write.
    awaiting_answer: Option<Pin<Box<Sleep>>>,
}

enum State {
    /// Not registered with the reactor: reads and writes are tried at once, and the first that
    /// would block registers it.
    Direct(std::net::TcpStream),
    Registered(TcpStream),
    /// Registering failed (the reactor is out of memory): the socket is closed.
    Closed,
}

impl From<TcpStream> for Socket {
    fn from(stream: TcpStream) -> Socket {
        Socket::new(State::Registered(stream))
    }
}

impl Socket {
    fn new(state: State) -> Socket {
        Socket {
            state,
            awaiting_answer: None,
        }
    }

    /// A socket not yet registered; it must be nonblocking.
    pub fn direct(stream: std::net::TcpStream) -> Socket {
        Socket::new(State::Direct(stream))
    }

    /// The client has sent whole requests and owes nothing until answered: while unregistered,
    /// a read before the next write waits for [`AWAITING_ANSWER`] first.
    pub fn await_answer(&mut self) {
        if let State::Direct(_) = self.state {
            self.awaiting_answer = Some(Box::pin(tokio::time::sleep(AWAITING_ANSWER)));
        }
    }

    /// The socket as tokio's, registered with the reactor from now on.
    pub fn registered(&mut self) -> io::Result<&mut TcpStream> {
        if let State::Direct(_) = self.state {
            if let State::Direct(stream) = std::mem::replace(&mut self.state, State::Closed) {
                self.state = State::Registered(TcpStream::from_std(stream)?);
            }
        }
        match &mut self.state {
            State::Registered(stream) => Ok(stream),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Waits until a read may find bytes: at once while unregistered, where the read is how to
    /// find out.
    pub async fn readable(&mut self) -> io::Result<()> {
        match self.state {
            State::Direct(_) => Ok(()),
            _ => self.registered()?.readable().await,
        }
    }

    pub fn sock_ref(&self) -> io::Result<SockRef<'_>> {
        match &self.state {
            State::Direct(stream) => Ok(SockRef::from(stream)),
            State::Registered(stream) => Ok(SockRef::from(stream)),
            State::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        (self.sock_ref()?.local_addr()?.as_socket())
            .ok_or_else(|| io::Error::other("not an IP socket"))
    }

    /// One write while unregistered; `None`: it would block, so wait registered.
    fn try_direct(
        &self,
        write: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> Option<io::Result<usize>> {
        match &self.state {
            State::Direct(stream) => match write(SockRef::from(stream)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
                written => Some(written),
            },
            _ => None,
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(awaiting) = &mut self.awaiting_answer {
            ready!(awaiting.as_mut().poll(cx));
            self.awaiting_answer = None;
        }
        if let State::Direct(stream) = &self.state {
            // SAFETY: recv(2) only writes into the bytes it reports, which are then initialised.
            let unfilled: &mut [MaybeUninit<u8>] = unsafe { buf.unfilled_mut() };
            match SockRef::from(stream).recv(unfilled) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
                Ok(read) => {
                    // SAFETY: as above, recv(2) filled `read` bytes.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
            }
        }
        Pin::new(self.registered()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.awaiting_answer = None;
        let write = |socket: SockRef<'_>| socket.send(data);
        match self.try_direct(write) {
            Some(written) => Poll::Ready(written),
            None => send(self.registered()?, cx, write),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.awaiting_answer = None;
        let write = |socket: SockRef<'_>| socket.send_vectored(bufs);
        match self.try_direct(write) {
            Some(written) => Poll::Ready(written),
            None => send(self.registered()?, cx, write),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.awaiting_answer = None;
        match &mut self.state {
            State::Direct(stream) => Poll::Ready(stream.shutdown(std::net::Shutdown::Write)),
            State::Registered(stream) => Pin::new(stream).poll_shutdown(cx),
            State::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

/// Turns on TCP keepalive probes on `stream` as `keepalive` says; a failure (which would be
/// this host's) is logged and the connection goes on without.
pub fn keep_alive(socket: SockRef<'_>, keepalive: &TcpKeepalive) {
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
    if let Err(error) = socket.set_tcp_keepalive(&params) {
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
    use super::super::listener::Listener;
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client of a worker's listener, accepted unregistered, and the client's end.
    async fn accepted() -> (Socket, TcpStream) {
        let bound = super::super::listener::bind("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let listener = Listener::new(bound.into_iter().next().unwrap()).unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap());
        let (peer, accepted) = tokio::join!(peer, listener.accept());
        (accepted.unwrap().0, peer.unwrap())
    }

    #[tokio::test]
    async fn an_unregistered_client_is_read_answered_and_closed() {
        let (mut socket, mut peer) = accepted().await;
        assert!(matches!(socket.state, State::Direct(_)));
        peer.write_all(b"ping").await.unwrap();
        let mut received = [0u8; 4];
        socket.read_exact(&mut received).await.unwrap();
        assert_eq!(&received, b"ping");
        socket.write_all(b"pong").await.unwrap();
        socket.shutdown().await.unwrap();
        let mut answer = Vec::new();
        peer.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong");
    }

    #[tokio::test]
    async fn a_read_that_would_block_registers_and_wakes_when_bytes_come() {
        let (mut socket, mut peer) = accepted().await;
        let mut buf = [0u8; 8];
        let mut read_buf = ReadBuf::new(&mut buf);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut socket)
            .poll_read(&mut cx, &mut read_buf)
            .is_pending());
        assert!(matches!(socket.state, State::Registered(_)));
        let reading = tokio::spawn(async move {
            let mut received = [0u8; 5];
            socket.read_exact(&mut received).await.map(|_| received)
        });
        peer.write_all(b"later").await.unwrap();
        assert_eq!(&reading.await.unwrap().unwrap(), b"later");
    }

    #[tokio::test]
    async fn a_client_owed_an_answer_is_read_again_after_the_answer_and_not_before() {
        let (mut socket, mut peer) = accepted().await;
        socket.await_answer();
        let mut buf = [0u8; 8];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read = |socket: &mut Socket| {
            let mut read_buf = ReadBuf::new(&mut buf);
            Pin::new(socket)
                .poll_read(&mut cx, &mut read_buf)
                .is_pending()
        };
        assert!(read(&mut socket));
        assert!(
            matches!(socket.state, State::Direct(_)),
            "not registered while owed"
        );
        socket.write_all(b"answer").await.unwrap();
        assert!(read(&mut socket));
        assert!(matches!(socket.state, State::Registered(_)));
        peer.read_exact(&mut [0u8; 6]).await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_leaves_while_owed_an_answer_is_noticed() {
        let (mut socket, peer) = accepted().await;
        socket.await_answer();
        drop(peer);
        let read = tokio::time::timeout(AWAITING_ANSWER * 10, socket.read(&mut [0u8; 8])).await;
        assert_eq!(read.expect("noticed in time").unwrap(), 0);
    }

    #[tokio::test]
    async fn writes_reach_the_peer_whole_and_in_order() {
        // Unregistered at first: the large write fills the buffer, then waits registered.
        let (mut socket, mut peer) = accepted().await;
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
