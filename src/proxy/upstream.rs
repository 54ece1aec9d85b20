//! Connections to servers, kept per worker thread so a request reuses a connection that lives
//! on its own thread (or, for servers that get a PROXY header, per client connection).
//!
//! Connecting is separate from sending (unlike hyper-util's pooled client), so a connect failure
//! can be retried on another server with the request body still in hand.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either as EitherFuture;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::socket::Socket;
use crate::config::UpstreamProtocol;

/// Idle HTTP/1.1 connections a worker keeps per server; beyond that they are closed.
const MAX_IDLE_PER_SERVER: usize = 256;
/// The same for one client's own connections (to servers that get a PROXY header): enough for
/// the requests a client has in flight at once, without one HTTP/2 client's burst of streams
/// leaving hundreds of server connections open.
const MAX_IDLE_PER_CLIENT: usize = 4;
/// A pooled connection that is not ready within this is still busy (an upload its response did
/// not wait for, say): it is dropped rather than waited on.
const READY_WAIT: Duration = Duration::from_millis(100);
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
pub type RequestBody = Either<Upload, Empty<Bytes>>;

/// A client's request body on its way to a server, saying when it has all gone: a server may
/// answer before it has (an early error, say), and until then its connection is not reusable.
pub struct Upload {
    inner: Incoming,
    sent: Arc<AtomicBool>,
}

impl Upload {
    /// The body, and the flag that turns true once it has all been sent.
    pub fn new(inner: Incoming) -> (Upload, Arc<AtomicBool>) {
        let sent = Arc::new(AtomicBool::new(false));
        let upload = Upload {
            inner,
            sent: Arc::clone(&sent),
        };
        (upload, sent)
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.sent.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type Http1Sender = http1::SendRequest<RequestBody>;
type Http2Sender = http2::SendRequest<RequestBody>;

/// One request's use of a server connection: an HTTP/1.1 connection of its own, or a share of a
/// multiplexed HTTP/2 one.
pub enum Sender {
    Http1(Http1Sender),
    Http2(Http2Sender),
}

impl Sender {
    #[allow(clippy::result_large_err)] // hyper's own error type, returned as hyper does
    pub fn try_send_request(
        &mut self,
        request: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>> {
        match self {
            Sender::Http1(sender) => EitherFuture::Left(sender.try_send_request(request)),
            Sender::Http2(sender) => EitherFuture::Right(sender.try_send_request(request)),
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
}

pub struct UpstreamPool {
    idle: Mutex<HashMap<SocketAddr, Vec<(Http1Sender, Instant)>>>,
    max_idle: usize,
    /// One HTTP/2 connection per server, shared by every request to it, and a number telling
    /// it from the one that replaces it.
    shared: Mutex<HashMap<SocketAddr, (u64, Http2Sender)>>,
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
    /// A pooled connection to `target` (unless `fresh`), or a new one.
    pub async fn checkout(&self, target: &Target<'_>, fresh: bool) -> io::Result<Checkout> {
        if !fresh {
            if let Some(checkout) = self.reuse(target).await {
                return Ok(checkout);
            }
        }
        let stream = connect(target).await?;
        let sender = match target.protocol {
            UpstreamProtocol::Http11 => Sender::Http1(handshake_http1(stream, target).await?),
            UpstreamProtocol::H2 => {
                let sender = handshake_http2(stream, target).await?;
                let id = self.connections.fetch_add(1, Ordering::Relaxed);
                lock(&self.shared).insert(target.address, (id, sender.clone()));
                Sender::Http2(sender)
            }
        };
        Ok(Checkout {
            sender,
            reused: false,
            idle_for: Duration::ZERO,
        })
    }

    async fn reuse(&self, target: &Target<'_>) -> Option<Checkout> {
        match target.protocol {
            UpstreamProtocol::Http11 => {
                while let Some((mut sender, idle_for)) = self.take_idle(target.address) {
                    // Usually ready at once; the wait (with its clock read) is for the rest, and
                    // fails if the server closed it.
                    let ready = sender.is_ready()
                        || matches!(
                            tokio::time::timeout(READY_WAIT, sender.ready()).await,
                            Ok(Ok(()))
                        );
                    if ready {
                        return Some(Checkout {
                            sender: Sender::Http1(sender),
                            reused: true,
                            idle_for,
                        });
                    }
                }
                None
            }
            UpstreamProtocol::H2 => {
                let (id, mut sender) = lock(&self.shared).get(&target.address)?.clone();
                if sender.ready().await.is_err() {
                    // Unless another request has replaced it already.
                    let mut shared = lock(&self.shared);
                    if shared
                        .get(&target.address)
                        .is_some_and(|(current, _)| *current == id)
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

    /// An idle connection to `address`, and how long it has been idle.
    fn take_idle(&self, address: SocketAddr) -> Option<(Http1Sender, Duration)> {
        let mut idle = lock(&self.idle);
        let senders = idle.get_mut(&address)?;
        while let Some((sender, since)) = senders.pop() {
            let idle_for = since.elapsed();
            if !sender.is_closed() && idle_for < MAX_IDLE_TIME {
                return Some((sender, idle_for));
            }
        }
        None
    }

    /// Returns a connection whose last response has been read to the end. A share of an HTTP/2
    /// connection needs no returning: the connection stays in the pool while it is open.
    pub fn checkin(&self, address: SocketAddr, sender: Sender) {
        let Sender::Http1(sender) = sender else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        let senders = idle.entry(address).or_default();
        let now = Instant::now();
        if senders.len() >= self.max_idle {
            senders.retain(|(sender, since)| !sender.is_closed() && now - *since < MAX_IDLE_TIME);
        }
        if senders.len() < self.max_idle {
            senders.push((sender, now));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TCP connection to `target` within its connect timeout, its preamble already written.
async fn connect(target: &Target<'_>) -> io::Result<TcpStream> {
    let connecting = async {
        let mut stream = TcpStream::connect(target.address).await?;
        stream.set_nodelay(true)?;
        if let Some(preamble) = target.preamble {
            stream.write_all(preamble).await?;
        }
        Ok(stream)
    };
    tokio::time::timeout(target.connect_timeout, connecting)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn handshake_http1(stream: TcpStream, target: &Target<'_>) -> io::Result<Http1Sender> {
    // Flat: a request head (and a small body) leaves in one send(2), not a sendmsg(2).
    let (sender, connection) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(Socket(stream)))
        .await
        .map_err(io::Error::other)?;
    run_connection(connection, target.address);
    Ok(sender)
}

async fn handshake_http2(stream: TcpStream, target: &Target<'_>) -> io::Result<Http2Sender> {
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .handshake(TokioIo::new(Socket(stream)))
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
