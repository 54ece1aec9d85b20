//! The data plane: listeners, the accept loop, and the http and tcp frontends.

pub mod activity;
pub mod attempt;
pub mod client;
pub mod client_limit;
mod compression;
pub mod connection_limit;
pub mod drain;
pub mod exchange;
mod first_head;
pub mod forward;
pub mod frontends;
pub mod headers;
pub mod http;
pub mod http1_client;
pub mod listener;
pub mod local;
pub mod persistence;
mod request_id;
pub mod routing;
mod rule_actions;
pub mod socket;
pub mod tcp;
pub mod tunnel;
pub mod upstream;
mod upstream_tls;

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use metrics::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::io::poll_read_buf;

use crate::access_log::AccessLog;
use crate::backend::BackendState;
use crate::codec::proxy_protocol;
use crate::config::{self, Mode};
use crate::limits::{self, AcceptBackoff, Thinned};
use crate::rules::rate_limit::SharedRateLimit;
use crate::stats::{FrontendStats, Shortage};
use crate::tls::Termination;
use activity::{Activity, ActivityIo};
use client::Client;
use client_limit::{ClientConnections, ClientPermit};
use connection_limit::{ConnectionLimit, Permit};
use drain::{Drain, UntilTrue};
use http::Versions;
use upstream::UpstreamPool;

/// A new client's first read: a whole request head, usually, which hyper then needs no read
/// of its own for. hyper's own buffer starts at this size too. Also how much of a first head
/// a plain client may send before hyper takes over, if it has not ended by then.
const FIRST_READ: usize = 8 * 1024;

thread_local! {
    /// Where each new client's first read lands, one per worker: what came is then copied out
    /// at its size, and no client allocates a buffer of `FIRST_READ` only to fill a tenth of it.
    static FIRST_READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(FIRST_READ));
}

/// Everything a connection needs from the config, swapped as one piece so that no request sees
/// half of a reload.
#[derive(Clone)]
pub struct FrontendRuntime {
    pub config: config::Frontend,
    /// Where requests no rule sends elsewhere go; `None` when every request is redirected.
    pub backend: Option<Arc<BackendState>>,
    /// The backends rules send to: `config.rules.backends`, resolved.
    pub rule_backends: Vec<Arc<BackendState>>,
    /// Requests each of `config.rules` matched.
    pub rule_hits: Vec<Counter>,
    /// The limiter of each of `config.rules` with a rate limit, kept across reloads while the
    /// rule keeps its name and limit.
    pub rate_limits: Vec<Option<Arc<SharedRateLimit>>>,
    /// Certificates and settings as loaded when this config was applied.
    pub tls: Option<Arc<Termination>>,
    /// Kept across reloads while the frontend keeps its name and address.
    pub stats: Arc<FrontendStats>,
    /// Connections open per client address, for `client_limits`; kept across reloads like
    /// `stats`.
    pub client_connections: Arc<ClientConnections>,
    pub access_log: Option<Arc<AccessLog>>,
}

impl FrontendRuntime {
    /// Whether a backend it sends to writes a PROXY header, which names the address each
    /// client connected to.
    fn sends_proxy(&self) -> bool {
        (self.backend.iter().chain(&self.rule_backends))
            .any(|backend| backend.config.send_proxy.is_some())
    }
}

pub type FrontendCell = Arc<ArcSwap<FrontendRuntime>>;

/// Accepts clients while fewer than `max_connections` are open on the frontend (over all
/// workers); the rest wait in the kernel backlog. When draining starts or the frontend is
/// removed (`close`), takes what is already queued (closing a listener resets queued clients)
/// and closes the listener.
pub async fn accept_loop(
    listener: TcpListener,
    frontend: FrontendCell,
    connections: Arc<ConnectionLimit>,
    pool: Arc<UpstreamPool>,
    drain: Arc<Drain>,
    close: watch::Receiver<bool>,
    accepting: watch::Sender<bool>,
) {
    // Made once, not per client accepted.
    let mut drained = drain::until_true(drain.subscribe());
    let mut closed = drain::until_true(close);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &connections, &accepting, &mut backoff) => accepted,
            () = &mut drained => break,
            () = &mut closed => break,
        };
        serve(accepted, &frontend, &pool, &drain);
    }
    while let Ok(accepted) = tokio::time::timeout(
        Duration::ZERO,
        accept(&listener, &connections, &accepting, &mut backoff),
    )
    .await
    {
        serve(accepted, &frontend, &pool, &drain);
    }
    // Closed before `close` is let go: whoever waits for every receiver to go (a frontend
    // disabled) knows the port refuses from then on.
    drop(listener);
}

type Accepted = (TcpStream, SocketAddr, Permit);

/// Accept errors other than shortages, logged thinly: they repeat as fast as accept is tried.
static ACCEPT_ERRORS: Thinned = Thinned::new();

/// The next client; `accepting` tells VRRP trackers whether the listener works. After a failed
/// accept (out of file descriptors, usually) it pauses, longer while failures go on.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<ConnectionLimit>,
    accepting: &watch::Sender<bool>,
    backoff: &mut AcceptBackoff,
) -> Accepted {
    loop {
        let permit = connections.acquire().await;
        match listener.accept().await {
            Ok((stream, client)) => {
                backoff.succeeded();
                accepting.send_if_modified(|works| !std::mem::replace(works, true));
                return (stream, client, permit);
            }
            // The client gave up while queued: nothing wrong here.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionAborted => {}
            Err(error) => {
                accepting.send_if_modified(|works| std::mem::replace(works, false));
                if limits::is_shortage(&error) {
                    limits::shortage(Shortage::Accept, &error);
                } else if let Some(held_back) = ACCEPT_ERRORS.admit(Instant::now()) {
                    let listen = (listener.local_addr())
                        .map_or_else(|_| "unknown".into(), |address| address.to_string());
                    tracing::warn!(%listen, %error, held_back, "accept failed");
                }
                tokio::time::sleep(backoff.failed()).await;
            }
        }
    }
}

fn serve(
    (stream, peer, permit): Accepted,
    frontend: &FrontendCell,
    pool: &Arc<UpstreamPool>,
    drain: &Arc<Drain>,
) {
    let frontend = Arc::clone(frontend);
    let pool = Arc::clone(pool);
    let open = drain.track();
    let draining = drain.subscribe();
    tokio::spawn(async move {
        let current = frontend.load_full();
        if let Some(keepalive) = &current.config.tcp_keepalive {
            socket::keep_alive(&stream, keepalive);
        }
        let session = Session::open(&current.stats);
        match current.config.mode {
            Mode::Http => {
                // One wait for draining per connection, from its first byte to its last.
                let draining = drain::until_true(draining);
                serve_http(stream, peer, current, frontend, pool, draining).await
            }
            Mode::Tcp => Box::pin(serve_tcp(stream, peer, current)).await,
        }
        drop((permit, open, session));
    });
}

async fn serve_http(
    mut stream: TcpStream,
    peer: SocketAddr,
    current: Arc<FrontendRuntime>,
    frontend: FrontendCell,
    pool: Arc<UpstreamPool>,
    mut draining: UntilTrue,
) {
    let limit = current.config.timeouts.request_header;
    let started = tokio::time::Instant::now();
    let Some((client, destination)) = addresses(&mut stream, peer, &current, limit).await else {
        return;
    };
    // Held until the connection ends.
    let Ok(_client_permit) = count_client(client.ip(), &current) else {
        return;
    };
    let left = limit.saturating_sub(started.elapsed());
    // A TLS client's first bytes are its handshake; a plain one's, its request head.
    let whole_head = current.tls.is_none();
    let Some(mut received) = first_bytes(&mut stream, left, &mut draining, whole_head).await else {
        return;
    };
    if whole_head {
        if let Some(as_http_1_1) = first_head::as_http_1_1(&received) {
            received = Bytes::from(as_http_1_1);
        }
    }
    let ready = ReadyClient {
        stream,
        client,
        destination,
        received,
        started,
    };
    // Boxed, so that until now the task is small: an idle client costs its socket and little
    // more (TLS and hyper's state, buffers among them, come once it sends something). Boxed
    // apart, so that a plain connection's box is not sized for a TLS one's state, twice as
    // large, copied in whole for every connection.
    match current.tls.clone() {
        None => Box::pin(serve_plain(ready, current, frontend, pool, draining)).await,
        Some(tls) => Box::pin(serve_tls(ready, tls, current, frontend, pool, draining)).await,
    }
}

/// A new http client that has sent its first bytes.
struct ReadyClient {
    stream: TcpStream,
    client: SocketAddr,
    destination: SocketAddr,
    /// What it has sent so far: never empty.
    received: Bytes,
    /// When it was accepted.
    started: tokio::time::Instant,
}

impl ReadyClient {
    /// The connection as hyper or rustls reads it: counted, watched for activity, and starting
    /// with what has been received.
    fn into_io(self, stats: &FrontendStats) -> (ActivityIo, Arc<Activity>) {
        let activity = Activity::new();
        let io = ActivityIo::new(self.stream, Arc::clone(&activity))
            .counting(stats.bytes_in.clone(), stats.bytes_out.clone())
            .with_received(self.received)
            .closing_at_shutdown();
        (io, activity)
    }
}

async fn serve_plain(
    ready: ReadyClient,
    current: Arc<FrontendRuntime>,
    frontend: FrontendCell,
    pool: Arc<UpstreamPool>,
    draining: UntilTrue,
) {
    // HTTP/2 with prior knowledge starts `PRI * HTTP/2.0`; HTTP/1 requests need not pay for
    // telling the two apart.
    let versions = match ready.received.first() {
        Some(b'P') => Versions::Detect,
        _ => Versions::Http1,
    };
    let client = Client::new(ready.client, ready.destination, "http");
    let waited = ready.started.elapsed();
    let (io, activity) = ready.into_io(&current.stats);
    http::serve(
        io, activity, client, versions, frontend, pool, draining, waited,
    )
    .await;
}

async fn serve_tls(
    ready: ReadyClient,
    tls: Arc<Termination>,
    current: Arc<FrontendRuntime>,
    frontend: FrontendCell,
    pool: Arc<UpstreamPool>,
    draining: UntilTrue,
) {
    let (address, destination, started) = (ready.client, ready.destination, ready.started);
    let (io, activity) = ready.into_io(&current.stats);
    let left = (current.config.timeouts.request_header).saturating_sub(started.elapsed());
    let stream = match tokio::time::timeout(left, tls.acceptor.accept(io)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            current.stats.tls_handshake_errors.increment(1);
            return tracing::debug!(client = %address, %error, "TLS handshake failed");
        }
        Err(_) => {
            current.stats.tls_handshake_errors.increment(1);
            return tracing::debug!(client = %address, "TLS handshake timed out");
        }
    };
    let versions = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => Versions::Http2,
        _ => Versions::Http1,
    };
    let connection = stream.get_ref().1;
    let client_subject =
        (connection.peer_certificates()).and_then(crate::tls::client_auth::subject);
    let client = Client::new(address, destination, "https")
        .with_sni(connection.server_name())
        .with_client_subject(client_subject);
    let waited = started.elapsed();
    http::serve(
        stream, activity, client, versions, frontend, pool, draining, waited,
    )
    .await;
}

async fn serve_tcp(mut stream: TcpStream, peer: SocketAddr, current: Arc<FrontendRuntime>) {
    let limit = current.config.timeouts.request_header;
    let Some((client, destination)) = addresses(&mut stream, peer, &current, limit).await else {
        return;
    };
    // Held until the connection ends.
    if let Ok(_client_permit) = count_client(client.ip(), &current) {
        tcp::relay(stream, client, destination, current).await;
    }
}

/// A client that already has as many connections open as `client_limits` allow.
struct OverClientLimit;

/// Counts the connection against its client's address when the frontend sets
/// `client_limits` (`None`: it does not). Over the limit, the connection is to be closed at
/// once, as HAProxy's `tcp-request connection reject` does: answering would cost a TLS
/// handshake and a request read for each connection of a client that opens too many.
fn count_client(
    client: IpAddr,
    frontend: &FrontendRuntime,
) -> Result<Option<ClientPermit>, OverClientLimit> {
    let Some(limits) = frontend.config.client_limits else {
        return Ok(None);
    };
    match frontend
        .client_connections
        .try_open(client, limits.connections)
    {
        Some(permit) => Ok(Some(permit)),
        None => {
            frontend.stats.denied_connections.increment(1);
            tracing::debug!(frontend = %frontend.config.name, %client, "client_limits.connections reached: connection closed");
            Err(OverClientLimit)
        }
    }
}

/// The client's address and the one it connected to: the connection's own, or with
/// `accept_proxy` those its PROXY header carries (read within `limit`). `None`: the header
/// is missing, malformed or late, and the connection is to be closed.
async fn addresses(
    stream: &mut TcpStream,
    peer: SocketAddr,
    frontend: &FrontendRuntime,
    limit: Duration,
) -> Option<(SocketAddr, SocketAddr)> {
    // getsockname(2) only for a PROXY header to a server; otherwise nothing reads it, and the
    // listening address stands in.
    let local = match frontend.sends_proxy() {
        true => stream.local_addr().ok()?,
        false => frontend.config.listen,
    };
    if !frontend.config.accept_proxy {
        return Some((peer, local));
    }
    // Boxed: every client's task would otherwise carry room for it while waiting.
    let reading = Box::pin(tokio::time::timeout(
        limit,
        proxy_protocol::read_header(stream),
    ));
    match reading.await {
        Ok(Ok(Some(carried))) => Some((carried.source, carried.destination)),
        Ok(Ok(None)) => Some((peer, local)),
        // A balancer's own tcp health check: it connects and closes, sending nothing.
        Ok(Err(proxy_protocol::HeaderError::Empty)) => None,
        Ok(Err(error)) => {
            frontend.stats.proxy_header_errors.increment(1);
            tracing::debug!(frontend = %frontend.config.name, %peer, %error, "bad PROXY header: connection closed");
            None
        }
        Err(_) => {
            frontend.stats.proxy_header_errors.increment(1);
            tracing::debug!(frontend = %frontend.config.name, %peer, "no PROXY header in time: connection closed");
            None
        }
    }
}

/// Waits for a new http client's first bytes and returns them: with `whole_head`, until they
/// hold a whole request head (or `FIRST_READ` bytes of one), so that a client that stops
/// halfway costs what it sent rather than hyper's connection and buffers. `None` if that does
/// not come within `limit` (hyper's header timer would have closed it too), the client closes,
/// or draining starts before any byte. Read rather than peeked, so hyper or rustls need no
/// second read for them.
///
/// Not an `async fn`, which would keep its arguments twice (see `http::handle`): an idle client
/// costs this future.
#[allow(clippy::manual_async_fn)] // the point: see above
fn first_bytes<'a>(
    stream: &'a mut TcpStream,
    limit: Duration,
    draining: &'a mut UntilTrue,
    whole_head: bool,
) -> impl Future<Output = Option<Bytes>> + 'a {
    async move {
        // Exactly the size of what came (usually all of it in one read); a boxed slice, a word
        // smaller than a `Vec` in every waiting client's future.
        let mut received = Box::<[u8]>::default();
        let timer = tokio::time::sleep(limit);
        let mut timer = std::pin::pin!(timer);
        loop {
            tokio::select! {
                biased;
                readable = stream.readable() => readable.ok()?,
                // A client that has started its head gets to finish it and be answered.
                () = &mut *draining, if received.is_empty() => return None,
                () = &mut timer => return None,
            }
            // Polled, not `try_read`: tokio takes a short read to mean the socket is drained, so
            // hyper's next read costs no syscall that finds nothing. Without a waker, since
            // `readable` does the waiting.
            let mut context = Context::from_waker(Waker::noop());
            let searched = received.len();
            let read = FIRST_READ_SCRATCH.with_borrow_mut(|scratch| {
                scratch.clear();
                match poll_read_buf(Pin::new(&mut *stream), &mut context, scratch) {
                    Poll::Ready(Ok(0) | Err(_)) => ControlFlow::Break(()),
                    Poll::Ready(Ok(_)) => {
                        let mut grown = Vec::from(std::mem::take(&mut received));
                        grown.reserve_exact(scratch.len());
                        grown.extend_from_slice(scratch);
                        received = grown.into_boxed_slice();
                        ControlFlow::Continue(())
                    }
                    // tokio reports a new socket readable before any byte has come.
                    Poll::Pending => ControlFlow::Continue(()),
                }
            });
            if read.is_break() {
                return None;
            }
            if received.len() > searched
                && (!whole_head
                    || received.len() >= FIRST_READ
                    || first_head::is_complete(&received, searched))
            {
                return Some(Bytes::from(received));
            }
        }
    }
}

/// Counts a client connection as open on its frontend until dropped.
struct Session(Arc<FrontendStats>);

impl Session {
    fn open(stats: &Arc<FrontendStats>) -> Session {
        stats.sessions.increment(1);
        stats.current_sessions.fetch_add(1, Ordering::Relaxed);
        Session(Arc::clone(stats))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.0.current_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}
