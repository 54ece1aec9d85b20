//! One request's exchange, from the request hyper hands over to its access log line: checked
//! (method, host), routed or answered here, forwarded, its response's headers ruled, counted,
//! and logged once its body has been sent or abandoned.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::client::Client;
use super::compression::{self, Encoder};
use super::forward::{self, Finish, ServerTrace};
use super::headers;
use super::local::Local;
use super::request_id;
use super::routing;
use super::rule_actions::{self, Ruled};
use super::tunnel::{self, Answer, Ends};
use super::upstream::{ResponseBody, UpstreamPool};
use super::FrontendRuntime;
use crate::access_log::Record;
use crate::address_text;
use crate::config::{Algorithm, Compression};
use crate::stats::Abort;

pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// A longer method is refused with 501 (RFC 9112 §3), not forwarded: twice the longest in IANA's
/// HTTP method registry (UPDATEREDIRECTREF, 17 bytes, from WebDAV's RFC 4437), so any method a
/// server may implement passes.
const MAX_METHOD: usize = 32;

/// Proxies one request and accounts for it: the frontend's response counters, and the access
/// log line once the response has been sent, or abandoned.
///
/// An `async` block rather than an `async fn`, as are the functions it awaits on the way to a
/// server: an `async fn` keeps each argument twice in its future (rust-lang/rust#62958), and
/// this future, with theirs inside, is moved whole into hyper for every request.
#[allow(clippy::manual_async_fn)] // the point: see above
pub fn handle(
    request: Request<Incoming>,
    client: Arc<Client>,
    frontend: Arc<FrontendRuntime>,
    pool: Arc<UpstreamPool>,
) -> impl Future<Output = Response<ProxyBody>> + Send {
    async move {
        let connection = &client;
        let (client, pool) = (&**connection, &pool);
        frontend.stats.requests.increment(1);
        let draft = frontend.access_log.as_ref().map(|log| Draft {
            time: SystemTime::now(),
            started: Instant::now(),
            client: client.address,
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id: None,
            headers: log.request_headers(request.headers()),
            client_subject: client.client_subject.clone(),
        });
        let mut account = Account {
            frontend,
            draft,
            trace: ServerTrace::default(),
            answered: false,
        };
        let mut request = request;
        let upgrade = tunnel::requested(&mut request, &account.frontend.config.upgrades);
        let checked =
            (check(&request)).and_then(|()| tunnel::room(upgrade.is_some(), client.open_tunnels()));
        let frontend = &*account.frontend;
        // What the client accepts, as it sent it, before any rule changes the request.
        let accepted = (frontend.config.compression.as_ref())
            .and_then(|config| compression::accepted(config, request.method(), request.headers()));
        let request_id = (frontend.config.request_id.as_ref())
            .map(|name| request_id::take_or_make(name, request.headers_mut()));
        let ruled = match checked {
            Ok(()) => rule_actions::apply(&mut request, request_id, client, frontend),
            Err(local) => Ruled::refused(local, request_id, &frontend.config.rules),
        };
        let outcome = match &ruled.target {
            Ok(backend) => {
                let trace = &mut account.trace;
                let headers = (&frontend.config.rules, &ruled.request_headers);
                let asked = upgrade.as_deref();
                forward::forward(request, client, backend, headers, asked, pool, trace).await
            }
            Err(local) => Err(local.clone()),
        };
        let outcome = match (outcome, upgrade) {
            (Ok((response, finish)), None) => Ok(Answer::Ordinary(response, finish)),
            (Ok((response, finish)), Some(upgrade)) => tunnel::answer(response, finish, *upgrade),
            (Err(local), _) => Err(local),
        };
        let pages = &frontend.config.error_pages;
        let (mut response, local, switched) = match outcome {
            Ok(Answer::Ordinary(response, finish)) => {
                let response = upstream_response(response, finish).map(Either::Left);
                (response, None, None)
            }
            Ok(Answer::Switched(response, tunnel)) => {
                (response.map(Either::Right), None, Some(tunnel))
            }
            Err(local) => (local.response(pages).map(Either::Right), Some(local), None),
        };
        (ruled.response_headers).apply(&frontend.config.rules, response.headers_mut());
        if let Some(config) = &frontend.config.compression {
            compress(config, accepted, &mut response);
        }
        if let (Some(draft), Some(log)) = (&mut account.draft, &account.frontend.access_log) {
            draft.request_id = ruled.request_id;
            log.response_headers(response.headers(), &mut draft.headers);
        }
        account.frontend.stats.response(response.status());
        if let Some(backend) = &account.trace.backend {
            backend.stats.response(response.status());
        }
        account.answered = true;
        if let Some(tunnel) = switched {
            let trace = &account.trace;
            let server = (trace.backend.as_ref().zip(trace.server))
                .map(|(backend, index)| Box::from(backend.servers[index].name.as_str()))
                .unwrap_or_default();
            tunnel.start(Ends {
                client: Arc::clone(connection),
                frontend: Arc::clone(&account.frontend),
                server,
                line: account.take_line(Some(response.status().as_u16())),
            });
            return response;
        }
        let Some(line) = account.take_line(Some(response.status().as_u16())) else {
            return response;
        };
        match local {
            Some(local) => {
                let sent = local.sent(&line.frontend.config.error_pages);
                line.write(sent, local.end, Instant::now());
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

/// Compresses a server's response as `config` and what its request `accepted` allow.
/// tandem's own answers are a few bytes and go as they are.
fn compress(config: &Compression, accepted: Option<Algorithm>, response: &mut Response<ProxyBody>) {
    let status = response.status();
    let Either::Left(_) = response.body() else {
        return;
    };
    let plan = compression::apply(config, accepted, status, response.headers_mut());
    if let (Some(plan), Either::Left(body)) = (plan, response.body_mut()) {
        body.encoder = Some(Encoder::new(plan));
    }
}

/// Refuses a request no rule should see: a method too long or CONNECT, or a bad host.
fn check(request: &Request<Incoming>) -> Result<(), Local> {
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
    check_host(request)
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
    trace: ServerTrace,
    /// Whether the response head is on its way: until then, the client going away aborts it.
    answered: bool,
}

impl Account {
    /// The line as far as it goes, with `status`; `None` once taken, or with no access log.
    fn take_line(&mut self, status: Option<u16>) -> Option<PendingLine> {
        let draft = self.draft.take()?;
        Some(PendingLine {
            frontend: Arc::clone(&self.frontend),
            draft,
            trace: std::mem::take(&mut self.trace),
            status,
        })
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if !self.answered {
            let trace = &self.trace;
            match (&trace.backend, trace.server) {
                (Some(backend), Some(server)) => backend.servers[server].stats.client_aborted(),
                (Some(backend), None) => backend.stats.client_aborts.increment(1),
                (None, _) => {}
            }
        }
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
    request_id: Option<HeaderValue>,
    /// The headers the log's template names; empty when it names none.
    headers: Vec<Option<HeaderValue>>,
    client_subject: Option<Arc<str>>,
}

/// A request's access log line once its response is known, waiting for the body to end.
pub struct PendingLine {
    frontend: Arc<FrontendRuntime>,
    draft: Draft,
    trace: ServerTrace,
    status: Option<u16>,
}

impl PendingLine {
    /// Logs the request as ended at `now`, for `end`, with `bytes` of body sent.
    pub fn write(&self, bytes: u64, end: &'static str, now: Instant) {
        let Some(log) = &self.frontend.access_log else {
            return;
        };
        let (draft, trace) = (&self.draft, &self.trace);
        let backend = trace.backend.as_ref();
        log.log(&Record {
            time: draft.time,
            frontend: &self.frontend.config.name,
            backend: backend.map(|backend| backend.config.name.as_str()),
            server: (backend.zip(trace.server))
                .map(|(backend, index)| backend.servers[index].name.as_str()),
            client: address_text::socket_address(draft.client).as_str(),
            request: Some((&draft.method, &draft.uri)),
            request_id: draft.request_id.as_ref().and_then(|id| id.to_str().ok()),
            status: self.status,
            bytes,
            connect: trace.connect.map(|at| at - draft.started),
            first_byte: trace.first_byte.map(|at| at - draft.started),
            total: now - draft.started,
            end,
            headers: &draft.headers,
            client_subject: draft.client_subject.as_deref(),
        });
    }
}

/// The server's response as the client gets it, its body accounted for by `finish`.
pub fn upstream_response(
    response: Response<ResponseBody>,
    finish: Finish,
) -> Response<UpstreamBody> {
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    // The version is per hop: an HTTP/1.0 server must not make our client's connection 1.0
    // (and so close after every response). HTTP/2 clients get HTTP/2 whatever this says.
    parts.version = Version::HTTP_11;
    let body = UpstreamBody {
        inner: body,
        finish: Some(finish),
        sent: 0,
        log: None,
        encoder: None,
    };
    Response::from_parts(parts, body)
}

/// A server's response body on its way to the client. When it ends, the connection goes back
/// to the pool and the server's in-flight count drops; if it is abandoned midway, the
/// connection is closed instead, since unread bytes would poison it.
pub struct UpstreamBody {
    inner: ResponseBody,
    finish: Option<Finish>,
    sent: u64,
    /// The access log line, waiting for the body to end. Its byte count is what the client
    /// was sent: compressed, when the body is.
    pub log: Option<Box<PendingLine>>,
    /// Compresses the body on its way, when the frontend, the request and the response allow.
    encoder: Option<Box<Encoder>>,
}

/// How a response body's transfer ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    ClientAborted,
    ServerAborted,
    /// Its server's sessions were shut down (`on_down`, `on_up`).
    ServerShutdown,
}

impl End {
    /// As the access log says it.
    fn label(self) -> &'static str {
        match self {
            End::Done => "done",
            End::ClientAborted => "client_aborted",
            End::ServerAborted => "server_aborted",
            End::ServerShutdown => "server_shutdown",
        }
    }
}

impl UpstreamBody {
    fn release(&mut self, end: End) {
        if self.finish.is_none() && self.log.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(finish) = self.finish.take() {
            let abort = match end {
                End::ClientAborted => Some(Abort::Client),
                End::ServerAborted => Some(Abort::Server),
                End::Done | End::ServerShutdown => None,
            };
            finish.count(self.sent, abort);
            // A connection cut short on the server's side is not kept.
            if matches!(end, End::Done | End::ClientAborted) {
                finish.checkin(&mut self.inner, now);
            }
        }
        if let Some(line) = self.log.take() {
            line.write(self.sent, end.label(), now);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        if (this.finish.as_mut()).is_some_and(|finish| finish.shut_down(cx)) {
            // Its server's sessions were shut down: the connection is not kept.
            this.release(End::ServerShutdown);
            return Poll::Ready(Some(Err(std::io::Error::other("server shut down"))));
        }
        let polled = match &mut this.encoder {
            None => Pin::new(&mut this.inner).poll_frame(cx),
            Some(encoder) => encoder.poll_frame(Pin::new(&mut this.inner), cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.sent += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Poll::Ready(None) => self.release(End::Done),
            Poll::Ready(Some(Err(_))) => self.release(End::ServerAborted),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
            && self
                .encoder
                .as_ref()
                .is_none_or(|encoder| encoder.is_done())
    }

    fn size_hint(&self) -> SizeHint {
        match self.encoder {
            None => self.inner.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let end = if self.is_end_stream() {
            End::Done
        } else {
            End::ClientAborted
        };
        self.release(end);
    }
}
