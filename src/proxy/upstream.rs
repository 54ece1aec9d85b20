//! Connections to servers, kept per worker thread so a request reuses a connection that lives
//! on its own thread (or, for servers that get a PROXY header, per client connection).
//!
//! Connecting is separate from sending (unlike hyper-util's pooled client), so a connect failure
//! can be retried on another server with the request body still in hand.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::http1_client::{self, SendError};
use super::socket;
use super::upstream_tls::ServerStream;
use crate::config::{TcpKeepalive, UpstreamProtocol};
use crate::tls::upstream::Origination;

/// Idle HTTP/1.1 connections a worker keeps per server; beyond that they are closed.
const MAX_IDLE_PER_SERVER: usize = 256;
/// The same for one client's own connections (to servers that get a PROXY header): enough for
/// the requests a client has in flight at once, without one HTTP/2 client's burst of streams
/// leaving hundreds of server connections open.
const MAX_IDLE_PER_CLIENT: usize = 4;
/// Per h2 stream: what a server may send ahead of a slow reader. The connection's window is the
/// protocol's largest, so streams that are not read stall only themselves, never the other
/// clients' requests sharing the connection; memory stays bounded by the stream windows.
const H2_STREAM_WINDOW: u32 = 512 * 1024;
const H2_CONNECTION_WINDOW: u32 = (1 << 31) - 1;
/// Below the shortest common server keep-alive timeout (5 s in Node.js and Apache), so we rarely
/// send on a connection that the server is closing.
const MAX_IDLE_TIME: Duration = Duration::from_secs(4);

/// A request body for a server: the client's, or none at all. Bodyless requests are sent as
/// `Empty` so that they can be sent again.
pub type RequestBody = Either<Incoming, Empty<Bytes>>;

type Http2Sender = http2::SendRequest<RequestBody>;

/// One request's use of a server connection: an HTTP/1.1 connection of its own, or a share of a
/// multiplexed HTTP/2 one.
pub enum Sender {
    Http1(http1_client::Connection),
    Http2(Http2Sender),
}

impl Sender {
    /// Sends `request`; the response head, its body still to come.
    ///
    /// Not an `async fn`: see `http::handle`.
    #[allow(clippy::manual_async_fn)] // the point: see above
    pub fn send(
        self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, SendError<RequestBody>>> + Send {
        async move {
            match self {
                Sender::Http1(connection) => {
                    let response = connection.send(request).await?;
                    Ok(response.map(ResponseBody::Http1))
                }
                Sender::Http2(mut sender) => match sender.try_send_request(request).await {
                    Ok(response) => Ok(response.map(ResponseBody::Http2)),
                    Err(mut error) => {
                        let cause = io::Error::other(error.error().to_string());
                        Err(match error.take_message() {
                            Some(request) => SendError::Unsent(Box::new(request), cause),
                            None => SendError::Failed(cause),
                        })
                    }
                },
            }
        }
    }
}

/// A server's response body, as the connection's protocol delivers it.
pub enum ResponseBody {
    Http1(http1_client::ResponseBody<RequestBody>),
    Http2(Incoming),
}

impl ResponseBody {
    /// The HTTP/1.1 connection, once this body has been read whole and the connection can carry
    /// another request. (An HTTP/2 connection is shared, and stays in the pool while open.)
    pub fn take_reusable(&mut self) -> Option<http1_client::Connection> {
        match self {
            ResponseBody::Http1(body) => body.take_reusable(),
            ResponseBody::Http2(_) => None,
        }
    }

    /// After a 101 from an HTTP/1.1 server: its connection, and what it sent after the head.
    pub fn take_switched(&mut self) -> Option<(ServerStream, bytes::BytesMut)> {
        match self {
            ResponseBody::Http1(body) => body.take_switched(),
            ResponseBody::Http2(_) => None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.get_mut() {
            ResponseBody::Http1(body) => Pin::new(body).poll_frame(cx),
            ResponseBody::Http2(body) => Pin::new(body).poll_frame(cx).map_err(io::Error::other),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Http1(body) => body.is_end_stream(),
            ResponseBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Http1(body) => body.size_hint(),
            ResponseBody::Http2(body) => body.size_hint(),
        }
    }
}

/// How to open a connection to a server.
pub struct Target<'a> {
    pub address: SocketAddr,
    pub connect_timeout: Duration,
    pub protocol: UpstreamProtocol,
    /// Written first on a new connection (a PROXY protocol header).
    pub preamble: Option<&'a [u8]>,
    /// TLS to the server, after the preamble; `None`: plain.
    pub tls: Option<&'a Origination>,
    pub tcp_keepalive: Option<&'a TcpKeepalive>,
}

impl Target<'_> {
    /// The TLS settings a connection must have been made with to serve this target.
    fn origination(&self) -> u64 {
        self.tls.map_or(0, Origination::id)
    }
}

pub struct UpstreamPool {
    /// Oldest first; the newest is taken first.
    idle: Mutex<ByAddress<VecDeque<(http1_client::Connection, Instant)>>>,
    max_idle: usize,
    /// One HTTP/2 connection per server, shared by every request to it, a number telling it
    /// from the one that replaces it, and the TLS settings it was made with.
    shared: Mutex<ByAddress<(u64, Http2Sender, u64)>>,
    connections: AtomicU64,
}

impl UpstreamPool {
    /// A worker's pool, shared by its clients.
    pub fn shared() -> UpstreamPool {
        UpstreamPool::with_max_idle(MAX_IDLE_PER_SERVER)
    }

    /// One client's own pool.
    pub fn private() -> UpstreamPool {
        UpstreamPool::with_max_idle(MAX_IDLE_PER_CLIENT)
    }

    fn with_max_idle(max_idle: usize) -> UpstreamPool {
        UpstreamPool {
            idle: Mutex::default(),
            max_idle,
            shared: Mutex::default(),
            connections: AtomicU64::new(0),
        }
    }
}

/// A connection ready for one request, and whether it had served one before.
pub struct Checkout {
    pub sender: Sender,
    pub reused: bool,
    /// How long it had been idle in the pool (zero for a new or a shared one).
    pub idle_for: Duration,
}

impl UpstreamPool {
    /// A pooled connection to `target` (unless `fresh`), or a new one. `now` is the caller's
    /// clock reading, which saves one here.
    pub async fn checkout(
        &self,
        target: &Target<'_>,
        fresh: bool,
        now: Instant,
    ) -> io::Result<Checkout> {
        if !fresh {
            if let Some(checkout) = self.reuse(target, now).await {
                return Ok(checkout);
            }
        }
        // Boxed: inline, the connect and the HTTP/2 handshake would make every request's
        // future (moved whole into hyper's in-flight slot) a kilobyte larger, for the few
        // requests that open a connection.
        let sender = Box::pin(self.open(target)).await?;
        Ok(Checkout {
            sender,
            reused: false,
            idle_for: Duration::ZERO,
        })
    }

    /// A new connection to `target`, shared from now on if it is HTTP/2 (by configuration, or
    /// as TLS's ALPN settled it).
    async fn open(&self, target: &Target<'_>) -> io::Result<Sender> {
        let (stream, protocol) = connect(target).await?;
        Ok(match protocol {
            UpstreamProtocol::Http11 => Sender::Http1(http1_client::Connection::new(stream)),
            UpstreamProtocol::H2 => {
                let sender = handshake_http2(stream, target).await?;
                let id = self.connections.fetch_add(1, Ordering::Relaxed);
                let shared = (id, sender.clone(), target.origination());
                lock(&self.shared).insert(target.address, shared);
                Sender::Http2(sender)
            }
        })
    }

    /// A connection to reuse: one of the configured protocol, else, where TLS's ALPN may
    /// settle on the other, one of that.
    async fn reuse(&self, target: &Target<'_>, now: Instant) -> Option<Checkout> {
        let found = self.reuse_as(target.protocol, target, now).await;
        match target.tls {
            Some(tls) if found.is_none() && tls.offers_other_than(target.protocol) => {
                let other = match target.protocol {
                    UpstreamProtocol::Http11 => UpstreamProtocol::H2,
                    UpstreamProtocol::H2 => UpstreamProtocol::Http11,
                };
                self.reuse_as(other, target, now).await
            }
            _ => found,
        }
    }

    async fn reuse_as(
        &self,
        protocol: UpstreamProtocol,
        target: &Target<'_>,
        now: Instant,
    ) -> Option<Checkout> {
        match protocol {
            UpstreamProtocol::Http11 => {
                let (connection, idle_for) = self.take_idle(target, now)?;
                Some(Checkout {
                    sender: Sender::Http1(connection),
                    reused: true,
                    idle_for,
                })
            }
            UpstreamProtocol::H2 => {
                let (id, mut sender, origination) =
                    lock(&self.shared).get(&target.address)?.clone();
                // One made under TLS settings since replaced is left to close by itself.
                if origination != target.origination() || sender.ready().await.is_err() {
                    // Unless another request has replaced it already.
                    let mut shared = lock(&self.shared);
                    if shared
                        .get(&target.address)
                        .is_some_and(|(current, _, _)| *current == id)
                    {
                        shared.remove(&target.address);
                    }
                    return None;
                }
                Some(Checkout {
                    sender: Sender::Http2(sender),
                    reused: true,
                    idle_for: Duration::ZERO,
                })
            }
        }
    }

    /// An idle connection to `target` that its server has not closed, made with the target's
    /// TLS settings, and how long it has been idle.
    fn take_idle(
        &self,
        target: &Target<'_>,
        now: Instant,
    ) -> Option<(http1_client::Connection, Duration)> {
        let mut idle = lock(&self.idle);
        let connections = idle.get_mut(&target.address)?;
        let origination = target.origination();
        while let Some((mut connection, since)) = connections.pop_back() {
            let idle_for = now.saturating_duration_since(since);
            if idle_for < MAX_IDLE_TIME
                && connection.origination() == origination
                && connection.is_open()
            {
                return Some((connection, idle_for));
            }
        }
        None
    }

    /// Returns an HTTP/1.1 connection whose last exchange ended cleanly at `now`. Connections
    /// idle too long are closed here: nothing else reads an idle connection, so one its server
    /// closed would otherwise hold its socket until it came up for reuse.
    pub fn checkin(&self, address: SocketAddr, connection: http1_client::Connection, now: Instant) {
        let mut idle = lock(&self.idle);
        let connections = idle.entry(address).or_default();
        while (connections.front())
            .is_some_and(|(_, since)| now.saturating_duration_since(*since) >= MAX_IDLE_TIME)
        {
            connections.pop_front();
        }
        if connections.len() >= self.max_idle {
            connections.pop_front();
        }
        connections.push_back((connection, now));
    }
}

/// Per server address. Looked up twice per request, so with a multiply-rotate hash (as rustc's
/// FxHash): the default SipHash cost more than the rest of the pool's work. The keys are our
/// own servers, not something a client chooses, so hash flooding is not a concern.
type ByAddress<V> = HashMap<SocketAddr, V, BuildHasherDefault<AddressHasher>>;

#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u16(&mut self, word: u16) {
        self.write_u64(u64::from(word));
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection to `target` within its connect timeout, its preamble already written and its
/// TLS handshake (if any) done, and the protocol to speak on it.
async fn connect(target: &Target<'_>) -> io::Result<(ServerStream, UpstreamProtocol)> {
    let connecting = async {
        let mut stream = TcpStream::connect(target.address).await?;
        stream.set_nodelay(true)?;
        if let Some(keepalive) = target.tcp_keepalive {
            socket::keep_alive(&stream, keepalive);
        }
        if let Some(preamble) = target.preamble {
            stream.write_all(preamble).await?;
        }
        let stream = ServerStream::over(stream, target.tls).await?;
        let protocol = stream.protocol(target.protocol);
        Ok((stream, protocol))
    };
    tokio::time::timeout(target.connect_timeout, connecting)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn handshake_http2(stream: ServerStream, target: &Target<'_>) -> io::Result<Http2Sender> {
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    run_connection(connection, target.address);
    Ok(sender)
}

/// Drives a server connection on its own task until it closes.
fn run_connection<C>(connection: C, address: SocketAddr)
where
    C: Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%address, %error, "server connection ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn check_in_closes_connections_idle_too_long_and_the_newest_goes_out_first() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut connections = Vec::new();
        for _ in 0..3 {
            let stream = TcpStream::connect(address).await.unwrap();
            connections.push(http1_client::Connection::new(stream));
        }
        let pool = UpstreamPool::shared();
        let target = Target {
            address,
            connect_timeout: Duration::from_secs(1),
            protocol: UpstreamProtocol::Http11,
            preamble: None,
            tls: None,
            tcp_keepalive: None,
        };
        let start = Instant::now();
        let mut at = [start, start + Duration::from_secs(1), start + MAX_IDLE_TIME].into_iter();
        for connection in connections {
            pool.checkin(address, connection, at.next().unwrap());
        }
        assert_eq!(
            lock(&pool.idle)[&address].len(),
            2,
            "the first, idle for MAX_IDLE_TIME, was closed"
        );
        let (_, idle_for) = pool.take_idle(&target, start + MAX_IDLE_TIME).unwrap();
        assert_eq!(idle_for, Duration::ZERO, "the newest first");
        let (_, idle_for) = pool.take_idle(&target, start + MAX_IDLE_TIME).unwrap();
        assert_eq!(idle_for, MAX_IDLE_TIME - Duration::from_secs(1));
        assert!(pool.take_idle(&target, start + MAX_IDLE_TIME).is_none());
    }
}
