//! The http frontend: HTTP/1.1 and HTTP/2 from clients, keep-alive, each request routed to a
//! backend or answered here (redirects and errors), and accounted for.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::activity::Activity;
use super::drain::UntilTrue;
use super::forward::{self, Exchange, UpstreamBody, NO_SERVER};
use super::headers;
use super::routing;
use super::rules;
use super::upstream::UpstreamPool;
use super::{FrontendCell, FrontendRuntime};
use crate::access_log::Record;
use crate::address_text;
use crate::backend::BackendState;

pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// A longer method is refused with 501 (RFC 9112 §3), not forwarded: twice the longest in IANA's
/// HTTP method registry (UPDATEREDIRECTREF, 17 bytes, from WebDAV's RFC 4437), so any method a
/// server may implement passes.
const MAX_METHOD: usize = 32;

/// The client of a connection, with what its requests need of it worked out once.
pub struct Client {
    /// Who the client is: the peer, or the source its PROXY header carried.
    pub address: SocketAddr,
    /// The address the client connected to (or the destination its PROXY header carried);
    /// the listening address when no backend of the frontend sends a PROXY header.
    pub destination: SocketAddr,
    pub forwarded_for: HeaderValue,
    /// `http` or `https`, as X-Forwarded-Proto says.
    pub scheme: &'static str,
    /// Connections to servers that get a PROXY header naming this client: never shared with
    /// another client, and closed once the client connection and every response still
    /// streaming from them are gone.
    /// Made on first use, so other clients don't pay for it.
    private_pool: OnceLock<Arc<UpstreamPool>>,
}

impl Client {
    pub fn new(address: SocketAddr, destination: SocketAddr, scheme: &'static str) -> Client {
        Client {
            address,
            destination,
            forwarded_for: headers::forwarded_for(address.ip()),
            scheme,
            private_pool: OnceLock::new(),
        }
    }

    /// The pool of connections that name this client in a PROXY header.
    pub fn private_pool(&self) -> &Arc<UpstreamPool> {
        (self.private_pool).get_or_init(|| Arc::new(UpstreamPool::private()))
    }
}

/// The HTTP versions a connection may speak: as TLS's ALPN settled, or for a plain connection
/// whatever it starts with (HTTP/2 only with prior knowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Http1,
    Http2,
    Detect,
}

/// Serves one client connection until it closes, idles out, or stalls in a request head. Once
/// draining starts, the requests in progress are answered and the connection then closed.
/// `waited` is how long the connection took to get ready for its first request head.
#[allow(clippy::too_many_arguments)] // one connection's whole context, passed once
pub async fn serve<I>(
    io: I,
    activity: Arc<Activity>,
    client: Client,
    versions: Versions,
    frontend: FrontendCell,
    pool: Arc<UpstreamPool>,
    draining: UntilTrue,
    waited: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeouts = frontend.load().config.timeouts;
    let peer = client.address;
    let client = Arc::new(client);
    let service = service_fn(move |request| {
        let answered = handle(
            request,
            Arc::clone(&client),
            frontend.load_full(),
            Arc::clone(&pool),
        );
        answered.map(Ok::<_, Infallible>)
    });
    let io = TokioIo::new(io);
    let header_timeout = header_timeout(timeouts.request_header, waited);
    let idle = activity.idle_timeout(timeouts.client_idle);
    // A connection whose version is settled gets hyper's server for it directly: the auto
    // server's detection and buffering are only for a plain connection that may be either.
    match versions {
        Versions::Http1 => {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .writev(false)
                .serve_connection(io, service);
            let connection = std::pin::pin!(connection);
            drive(connection, |c| c.graceful_shutdown(), idle, draining, peer).await;
        }
        // Boxed, these two: inline, their connections would size every connection's future,
        // copied in whole as each is accepted, at nearly twice what HTTP/1 needs.
        Versions::Http2 => {
            let mut connection = Box::pin(
                http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(io, service),
            );
            let connection = connection.as_mut();
            drive(connection, |c| c.graceful_shutdown(), idle, draining, peer).await;
        }
        Versions::Detect => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .writev(false);
            builder.http2().timer(TokioTimer::new());
            let mut connection = Box::pin(builder.serve_connection(io, service));
            let connection = connection.as_mut();
            drive(connection, |c| c.graceful_shutdown(), idle, draining, peer).await;
        }
    }
}

/// Runs a served connection until it ends or goes idle; once draining starts, asks it to finish
/// the requests in progress and close.
async fn drive<C, E>(
    mut connection: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    idle: impl Future<Output = ()>,
    mut draining: UntilTrue,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut idle = std::pin::pin!(idle);
    let mut closing = false;
    loop {
        // Biased: the connection is what wakes the task nearly every time, so it goes first,
        // and no random start is drawn per poll.
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(client = %peer, %error, "client connection ended");
                }
                return;
            }
            () = idle.as_mut() => {
                tracing::debug!(client = %peer, "client idle timeout");
                return;
            }
            () = &mut draining, if !closing => {
                graceful_shutdown(connection.as_mut());
                closing = true;
            }
        }
    }
}

/// hyper's head timer for a connection whose first byte took `waited` to come: what is left of
/// `request_header` for the first head, so a slow client doesn't get it twice. hyper has one
/// setting per connection, so later heads get the same; it is kept to at least half the limit
/// so a client that was slow to start still has time for its next requests.
fn header_timeout(request_header: Duration, waited: Duration) -> Duration {
    request_header
        .saturating_sub(waited)
        .max(request_header / 2)
}

/// Proxies one request and accounts for it: the frontend's response counters, and the access
/// log line once the response has been sent, or abandoned.
///
/// An `async` block rather than an `async fn`, as are the functions it awaits on the way to a
/// server: an `async fn` keeps each argument twice in its future (rust-lang/rust#62958), and
/// this future, with theirs inside, is moved whole into hyper for every request.
#[allow(clippy::manual_async_fn)] // the point: see above
fn handle(
    request: Request<Incoming>,
    client: Arc<Client>,
    frontend: Arc<FrontendRuntime>,
    pool: Arc<UpstreamPool>,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    async move {
        let (client, pool) = (&*client, &pool);
        frontend.stats.requests.increment(1);
        let draft = frontend.access_log.is_some().then(|| Draft {
            time: SystemTime::now(),
            started: Instant::now(),
            client: client.address,
            method: request.method().clone(),
            uri: request.uri().clone(),
        });
        let mut account = Account {
            frontend,
            draft,
            exchange: Exchange::default(),
        };
        let outcome = match backend_for(&request, &account.frontend) {
            Ok(backend) => {
                let request_rules = &account.frontend.config.request_headers;
                let exchange = &mut account.exchange;
                forward::forward(request, client, backend, request_rules, pool, exchange).await
            }
            Err(local) => Err(local),
        };
        let (mut response, local) = match outcome {
            Ok((response, finish)) => (
                forward::upstream_response(response, finish).map(Either::Left),
                None,
            ),
            Err(local) => (local.response(), Some(local)),
        };
        rules::apply(
            &account.frontend.config.response_headers,
            response.headers_mut(),
        );
        account.frontend.stats.response(response.status());
        let Some(line) = account.take_line(Some(response.status().as_u16())) else {
            return response;
        };
        match local {
            Some(local) => {
                line.write(local.text.len() as u64, local.end, Instant::now());
                response
            }
            None => response.map(|body| match body {
                Either::Left(mut upstream) => {
                    upstream.log = Some(Box::new(line));
                    Either::Left(upstream)
                }
                local => local,
            }),
        }
    }
}

/// Routes one request: the backend its route names, or how it is answered here (redirected or
/// refused).
fn backend_for<'a>(
    request: &Request<Incoming>,
    frontend: &'a FrontendRuntime,
) -> Result<&'a Arc<BackendState>, Local> {
    if request.method().as_str().len() > MAX_METHOD {
        return Err(Local::new(
            StatusCode::NOT_IMPLEMENTED,
            "method not implemented\n",
            "rejected",
        ));
    }
    if request.method() == Method::CONNECT {
        return Err(Local::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported\n",
            "rejected",
        ));
    }
    check_host(request)?;
    let config = &frontend.config;
    // Worked out only when something here looks at it.
    let host = (config.redirect_https.is_some() || !config.routes.is_empty())
        .then(|| routing::request_host(request.uri(), request.headers()))
        .flatten();
    if let Some(port) = config.redirect_https {
        let location = host.and_then(|host| rules::https_location(&host, port, request.uri()));
        return Err(match location {
            Some(location) => Local {
                location: Some(location),
                ..Local::new(StatusCode::PERMANENT_REDIRECT, "", "redirect")
            },
            None => Local::new(
                StatusCode::BAD_REQUEST,
                "no host to redirect to\n",
                "bad_request",
            ),
        });
    }
    let routed = routing::route(&config.routes, host.as_deref(), request.uri().path());
    match routed {
        Some(route) => Ok(&frontend.routes[route]),
        None => frontend.backend.as_ref().ok_or(NO_SERVER),
    }
}

/// Refuses a request whose host is missing or ambiguous (RFC 9112 §3.2): an HTTP/1.1 request
/// without Host, more than one Host, or a Host or URI authority (HTTP/2's `:authority`, an
/// absolute-form target) that is not `host[:port]`. Routing and the server must agree on one
/// host, and a server must not be handed one that a proxy let through malformed.
fn check_host(request: &Request<Incoming>) -> Result<(), Local> {
    const fn bad(text: &'static str) -> Result<(), Local> {
        Err(Local::new(StatusCode::BAD_REQUEST, text, "bad_request"))
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return bad("more than one Host header\n"),
        (None, None) if request.version() == Version::HTTP_11 => {
            return bad("no Host header\n");
        }
        (Some(host), None) if !routing::is_valid_authority(host.as_bytes()) => {
            return bad("invalid Host header\n");
        }
        _ => {}
    }
    match request.uri().authority() {
        Some(authority) if !routing::is_valid_authority(authority.as_str().as_bytes()) => {
            bad("invalid authority in the request target\n")
        }
        _ => Ok(()),
    }
}

/// A request being proxied, as the access log will tell it. If the client goes away before
/// the response head (hyper then drops the request's future), the line is written on drop.
struct Account {
    frontend: Arc<FrontendRuntime>,
    /// Taken once the response is on its way; `None` too when there is no access log.
    draft: Option<Draft>,
    exchange: Exchange,
}

impl Account {
    /// The line as far as it goes, with `status`; `None` once taken, or with no access log.
    fn take_line(&mut self, status: Option<u16>) -> Option<PendingLine> {
        let draft = self.draft.take()?;
        Some(PendingLine {
            frontend: Arc::clone(&self.frontend),
            draft,
            exchange: std::mem::take(&mut self.exchange),
            status,
        })
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if let Some(line) = self.take_line(None) {
            line.write(0, "client_aborted", Instant::now());
        }
    }
}

/// What the access log needs from the start of a request.
struct Draft {
    time: SystemTime,
    started: Instant,
    client: SocketAddr,
    method: Method,
    uri: Uri,
}

/// A request's access log line once its response is known, waiting for the body to end.
pub struct PendingLine {
    frontend: Arc<FrontendRuntime>,
    draft: Draft,
    exchange: Exchange,
    status: Option<u16>,
}

impl PendingLine {
    /// Logs the request as ended at `now`, for `end`, with `bytes` of body sent.
    pub fn write(&self, bytes: u64, end: &'static str, now: Instant) {
        let Some(log) = &self.frontend.access_log else {
            return;
        };
        let (draft, exchange) = (&self.draft, &self.exchange);
        let backend = exchange.backend.as_ref();
        log.log(&Record {
            time: draft.time,
            frontend: &self.frontend.config.name,
            backend: backend.map(|backend| backend.config.name.as_str()),
            server: (backend.zip(exchange.server))
                .map(|(backend, index)| backend.servers[index].name.as_str()),
            client: address_text::socket_address(draft.client).as_str(),
            request: Some((&draft.method, &draft.uri)),
            status: self.status,
            bytes,
            connect: exchange.connect.map(|at| at - draft.started),
            first_byte: exchange.first_byte.map(|at| at - draft.started),
            total: now - draft.started,
            end,
        });
    }
}

/// A request answered here instead of by a server.
pub struct Local {
    pub status: StatusCode,
    pub text: &'static str,
    /// Why, in the access log.
    pub end: &'static str,
    pub location: Option<HeaderValue>,
}

impl Local {
    pub const fn new(status: StatusCode, text: &'static str, end: &'static str) -> Local {
        Local {
            status,
            text,
            end,
            location: None,
        }
    }

    fn response(&self) -> Response<ProxyBody> {
        let body = Full::new(Bytes::from_static(self.text.as_bytes()));
        let mut response = Response::new(Either::Right(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let Some(location) = &self.location {
            headers.insert(header::LOCATION, location.clone());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_first_byte_is_taken_off_the_first_head_but_no_more_than_half() {
        let limit = Duration::from_secs(10);
        assert_eq!(header_timeout(limit, Duration::ZERO), limit);
        assert_eq!(
            header_timeout(limit, Duration::from_secs(3)),
            Duration::from_secs(7)
        );
        assert_eq!(
            header_timeout(limit, Duration::from_secs(9)),
            Duration::from_secs(5)
        );
    }
}
