//! Forwarding one http request to a backend: servers from the attempt loop (the pinned one
//! first), a pooled or new connection to each, send, and stream the answer back while
//! accounting for it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;

use super::attempt::{Attempts, LocalShortage};
use super::client::Client;
use super::headers;
use super::http1_client::SendError;
use super::local::{Local, NO_SERVER};
use super::persistence;
use super::rule_actions::HeaderChanges;
use super::tunnel::Upgrade;
use super::upstream::{RequestBody, ResponseBody, Target, UpstreamPool};
use crate::backend::{ActiveGuard, BackendState, Refused, Shutdown};
use crate::balance::Key;
use crate::codec::proxy_protocol;
use crate::config::{Balance, Persistence, RuleSet, UpstreamProtocol};
use crate::stats::Abort;

/// Below the shortest keep-alive timeout a server plausibly has: a pooled connection idle for
/// less is not being closed by its server as we use it.
const IDLE_CLOSE_RACE: Duration = Duration::from_millis(500);
/// A deadline past the clock's range stands for this far ahead, as tokio's `timeout` does.
const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// How far a request got with a server, for the access log.
#[derive(Default)]
pub struct ServerTrace {
    /// Where the request was routed.
    pub backend: Option<Arc<BackendState>>,
    /// The server tried last, by index in the backend.
    pub server: Option<usize>,
    pub connect: Option<Instant>,
    pub first_byte: Option<Instant>,
}

/// This host is out of file descriptors (or memory) for a server connection: no server is to
/// blame, and every other would fail the same way.
const LOCAL_SHORTAGE: Local = Local::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "the proxy is out of resources, try again later\n",
    "local_shortage",
);

/// Every eligible server was at its `max_connections`, and the queue before them was full.
const QUEUE_FULL: Local = Local::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "no server available\n",
    "queue_full",
);

/// Every eligible server stayed at its `max_connections` for the backend's `queue_timeout`.
const QUEUE_TIMEOUT: Local = Local::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "no server available\n",
    "queue_timeout",
);

/// The server was marked down (or, a backup, left service) before it answered, and the backend
/// shuts such sessions down.
const SERVER_SHUTDOWN: Local = Local::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "server shut down\n",
    "server_shutdown",
);

/// Sends `request` to a server of `backend` (with `request_headers` applied last) and returns its response
/// head, with what must happen once its body has been streamed; `trace` records how far it got.
///
/// Not an `async fn`: see `http::handle`.
#[allow(clippy::manual_async_fn)] // the point: see above
pub fn forward<'a>(
    request: Request<Incoming>,
    client: &'a Client,
    backend: &'a Arc<BackendState>,
    request_headers: (&'a RuleSet, &'a HeaderChanges),
    upgrade: Option<&'a Upgrade>,
    pool: &'a Arc<UpstreamPool>,
    trace: &'a mut ServerTrace,
) -> impl Future<Output = Result<(Response<ResponseBody>, Finish), Local>> + Send + 'a {
    async move {
        trace.backend = Some(Arc::clone(backend));
        let config = &backend.config;
        // Copied out (the request moves on), and only when the balance hashes it.
        let hashed_uri = match config.balance {
            Balance::UriHash { hash_query: true } => Some(
                request
                    .uri()
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_owned(),
            ),
            Balance::UriHash { hash_query: false } => Some(request.uri().path().to_owned()),
            _ => None,
        };
        let key = Key {
            client_ip: client.address.ip(),
            uri: hashed_uri.as_deref().unwrap_or(""),
        };
        let cookie = config
            .persistence
            .as_ref()
            .map(|persistence| match persistence {
                Persistence::Cookie { name } => name.as_str(),
            });
        let pinned = cookie.and_then(|cookie| {
            let server = persistence::pinned(request.headers(), cookie)?;
            backend.server_index(server)
        });
        let mut request = prepare_request(request, client, config.protocol, cookie);
        // An h2 server is not asked to switch (RFC 8441 there is not implemented): the request
        // goes as a plain one.
        let upgrade = upgrade.filter(|_| config.protocol == UpstreamProtocol::Http11);
        if let Some(upgrade) = upgrade {
            upgrade.ask_server(request.headers_mut());
        }
        request_headers
            .1
            .apply(request_headers.0, request.headers_mut());
        // A server that reads a PROXY header gets connections of this client's own.
        let preamble = (config.send_proxy)
            .map(|version| proxy_protocol::header(version, client.address, client.destination));
        let pool = if preamble.is_some() {
            client.private_pool()
        } else {
            pool
        };

        let mut attempts = Attempts::new(backend, key, pinned);
        let refused = loop {
            let attempt = match attempts.next().await {
                Ok(attempt) => attempt,
                Err(refused) => break refused,
            };
            let (index, server) = (attempt.index, attempt.server);
            trace.server = Some(index);
            let target = Target {
                address: server.address,
                connect_timeout: config.connect_timeout,
                protocol: config.protocol,
                preamble: preamble.as_deref(),
                // A switching connection is HTTP/1.1 whatever else ALPN could settle on.
                tls: match upgrade {
                    Some(_) => backend.upgrade_tls(index),
                    None => backend.tls(index),
                },
                tcp_keepalive: config.tcp_keepalive.as_ref(),
            };
            // A connection that switches protocols is never pooled, nor taken from the pool.
            let mut fresh = upgrade.is_some();
            loop {
                let before = Instant::now();
                let checkout = match pool.checkout(&target, fresh, before).await {
                    Ok(checkout) => checkout,
                    Err(error) => match attempt.connect_failed(&error) {
                        Ok(()) => break,
                        Err(LocalShortage) => {
                            trace.server = None;
                            return Err(LOCAL_SHORTAGE);
                        }
                    },
                };
                // A pooled connection is ready at once: no second clock read for it.
                let sent_at = if checkout.reused {
                    before
                } else {
                    Instant::now()
                };
                trace.connect = Some(sent_at);
                attempt.connected(!checkout.reused);
                // Only a connection that sat idle can meet a server closing it for idleness as we
                // send; one in steady use is not worth a copy of every request.
                let replay = (checkout.reused && checkout.idle_for >= IDLE_CLOSE_RACE)
                    .then(|| replayable(&request))
                    .flatten();
                // What the request declares (Content-Length): counting the body as it goes
                // would cost every request a wrapper.
                let request_bytes = request.body().size_hint().lower();
                let deadline = deadline(sent_at, config.response_timeout);
                let sending = tokio::time::timeout_at(deadline, checkout.sender.send(request));
                let mut shutdown = backend.shutdown_of(index);
                let sent = match &mut shutdown {
                    None => sending.await,
                    // on_down / on_up: the request ends with its server's sessions.
                    Some(shutdown) => tokio::select! {
                        sent = sending => sent,
                        () = shutdown => {
                            tracing::info!(server = %server.name, "request shut down with its server");
                            return Err(SERVER_SHUTDOWN);
                        }
                    },
                };
                match sent {
                    Ok(Ok(mut response)) => {
                        let now = Instant::now();
                        trace.first_byte = Some(now);
                        server.stats.response_time.record(now - sent_at);
                        server.stats.response(response.status());
                        if let Some(cookie) = cookie {
                            persistence::drop_server_cookie(response.headers_mut(), cookie);
                            if pinned != Some(index) {
                                persistence::pin(response.headers_mut(), cookie, &server.name);
                            }
                        }
                        let finish = Finish {
                            pool: Arc::clone(pool),
                            address: server.address,
                            shutdown_on_down: config.shutdown_sessions_on_down,
                            shutdown,
                            active: attempt.active,
                            request_bytes,
                        };
                        return Ok((response, finish));
                    }
                    // A reused connection that the server closed as we used it: nothing was
                    // answered, so send again on a new connection what can safely be sent twice.
                    Ok(Err(error)) => match error {
                        SendError::Unsent(again, _) if checkout.reused => {
                            server.stats.retries.increment(1);
                            request = *again;
                            fresh = true;
                        }
                        SendError::Failed(_) if checkout.reused && replay.is_some() => {
                            server.stats.retries.increment(1);
                            request = replay.expect("checked just above");
                            fresh = true;
                        }
                        // The client's fault: no server is blamed, and nothing is retried.
                        SendError::ClientBody(error) => {
                            tracing::debug!(client = %client.address, %error, "request body broken");
                            return Err(Local::new(
                                StatusCode::BAD_REQUEST,
                                "bad request body\n",
                                "bad_request",
                            ));
                        }
                        error => {
                            tracing::warn!(server = %server.name, error = %error.error(), "request to server failed");
                            return Err(Local::new(
                                StatusCode::BAD_GATEWAY,
                                "bad gateway\n",
                                "bad_gateway",
                            ));
                        }
                    },
                    Err(_) => {
                        tracing::warn!(server = %server.name, timeout = %crate::config::display_duration(config.response_timeout), "server response timed out");
                        return Err(Local::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            "gateway timeout\n",
                            "server_timeout",
                        ));
                    }
                }
            }
        };
        match refused {
            Refused::NoServer => {
                tracing::warn!(backend = %config.name, tried = attempts.tried(), "no server available");
                Err(NO_SERVER)
            }
            Refused::QueueFull => {
                tracing::warn!(backend = %config.name, "queue full");
                Err(QUEUE_FULL)
            }
            Refused::QueueTimeout => {
                tracing::warn!(backend = %config.name, timeout = %crate::config::display_duration(config.queue_timeout), "no server had room within queue_timeout");
                Err(QUEUE_TIMEOUT)
            }
        }
    }
}

/// `limit` after `from`, a clock read already taken: tokio's `timeout` would read the clock
/// again. A limit too long for the clock never ends instead of overflowing.
fn deadline(from: Instant, limit: Duration) -> tokio::time::Instant {
    let from = tokio::time::Instant::from_std(from);
    from.checked_add(limit).unwrap_or_else(|| from + NEVER)
}

/// Turns the client's request (HTTP/1.x or HTTP/2) into the one a server gets over `protocol`;
/// `cookie` is the persistence cookie, which servers never see.
fn prepare_request(
    mut request: Request<Incoming>,
    client: &Client,
    protocol: UpstreamProtocol,
    cookie: Option<&str>,
) -> Request<RequestBody> {
    let from_http2 = request.version() == Version::HTTP_2;
    // An HTTP/1.1 server is asked to say whether it wants the body (`http1_client` holds the
    // body back until it does); an h2 server is sent it at once.
    let ask_to_continue = protocol == UpstreamProtocol::Http11
        && request.version() == Version::HTTP_11
        && !request.body().is_end_stream();
    let headers = request.headers_mut();
    // gRPC needs `te: trailers` end to end; it is the one TE value HTTP/2 allows.
    let wants_trailers = protocol == UpstreamProtocol::H2
        && (headers.get_all(header::TE).iter())
            .any(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"));
    headers::remove_hop_by_hop(headers);
    // hyper answers the client's 100-continue once the body is read from it.
    if let Some(expect) = headers.remove(header::EXPECT) {
        if ask_to_continue && expect.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            headers.insert(header::EXPECT, expect);
        }
    }
    headers::add_forwarded(headers, &client.forwarded_for, client.scheme);
    if let Some(cookie) = cookie {
        persistence::strip(headers, cookie);
    }
    match protocol {
        UpstreamProtocol::Http11 => {
            // An HTTP/1.0 request stays 1.0: as 1.1 without a Host, a server would refuse it.
            if from_http2 {
                headers::join_cookies(headers);
                *request.version_mut() = Version::HTTP_11;
            }
            to_origin_form(&mut request);
        }
        UpstreamProtocol::H2 => {
            if wants_trailers {
                (request.headers_mut()).insert(header::TE, HeaderValue::from_static("trailers"));
            }
            to_absolute_form(&mut request);
            *request.version_mut() = Version::HTTP_2;
        }
    }
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return Request::from_parts(parts, Either::Right(Empty::new()));
    }
    Request::from_parts(parts, Either::Left(body))
}

/// HTTP/1.1 to a server: the path in the request line, the authority in Host. A request that
/// carries an authority (HTTP/2's `:authority`, or an absolute-form target) was routed by it, so
/// it replaces any Host header (RFC 9112 §3.2.2): the server must see the host routing saw.
fn to_origin_form<B>(request: &mut Request<B>) {
    if let Some(host) = request.uri().authority().and_then(host_header) {
        request.headers_mut().insert(header::HOST, host);
    }
    if request.uri().scheme().is_some() {
        let origin_form = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        if let Ok(uri) = origin_form.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
}

/// An authority as a Host value: host and port, without any userinfo.
fn host_header(authority: &Authority) -> Option<HeaderValue> {
    let host = match authority.port() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_owned(),
    };
    HeaderValue::try_from(host).ok()
}

/// HTTP/2 to a server: scheme and authority are pseudo-headers, the authority taken from Host
/// when the client sent HTTP/1.1 (RFC 9113 §8.3.1).
fn to_absolute_form<B>(request: &mut Request<B>) {
    let host = request.headers_mut().remove(header::HOST);
    let authority = match request.uri().authority() {
        Some(authority) => Some(authority.clone()),
        None => host.and_then(|host| Authority::try_from(host.as_bytes()).ok()),
    };
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    // The hop to the server is cleartext h2.
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = authority;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

/// A copy of an idempotent, bodyless request, to send again if a reused connection fails.
fn replayable(request: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    if !matches!(request.body(), Either::Right(_)) || !request.method().is_idempotent() {
        return None;
    }
    let mut copy = Request::new(Either::Right(Empty::new()));
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// What to release once a response has been streamed to the client.
pub struct Finish {
    pool: Arc<UpstreamPool>,
    address: SocketAddr,
    /// `on_down: shutdown_sessions`: no connection to a server marked down is kept.
    shutdown_on_down: bool,
    /// Set when the server's sessions are shut down with it: the body then ends too.
    shutdown: Option<Shutdown>,
    active: ActiveGuard,
    /// The request body's size, counted with the response once it is over.
    request_bytes: u64,
}

impl Finish {
    /// Whether the server's sessions have been shut down (`on_down`, `on_up`) meanwhile.
    pub fn shut_down(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        (self.shutdown.as_mut()).is_some_and(|shutdown| shutdown.as_mut().poll(cx).is_ready())
    }

    /// The exchange is over, `response_bytes` of body sent to the client: counted on the
    /// server and its backend, with who cut it short, if anyone.
    pub fn count(&self, response_bytes: u64, abort: Option<Abort>) {
        (self.active.server().stats).exchanged(self.request_bytes, response_bytes, abort);
    }

    /// The response has been streamed: its connection goes back to the pool, if it can be
    /// used again, and the server's in-flight count drops (with this).
    pub fn checkin(self, body: &mut ResponseBody, now: Instant) {
        if self.shutdown_on_down && !self.active.server().is_up() {
            return;
        }
        if let Some(connection) = body.take_reusable() {
            self.pool.checkin(self.address, connection, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn a_response_deadline_is_the_limit_after_the_send_and_never_overflows() {
        let sent = Instant::now();
        let limit = Duration::from_secs(60);
        assert_eq!(deadline(sent, limit).into_std(), sent + limit);
        let endless = deadline(sent, Duration::MAX).into_std();
        assert!(
            endless >= sent + NEVER,
            "a limit past the clock's range waits for ever"
        );
    }

    #[test]
    fn http2_requests_reach_http1_servers_in_origin_form_with_a_host() {
        let mut from_h2 = request("https://www.example.com:8443/a?b=1", None);
        to_origin_form(&mut from_h2);
        assert_eq!(from_h2.uri(), "/a?b=1");
        assert_eq!(from_h2.headers()[header::HOST], "www.example.com:8443");

        let mut from_h1 = request("/a", Some("example.com"));
        to_origin_form(&mut from_h1);
        assert_eq!(from_h1.uri(), "/a");
        assert_eq!(from_h1.headers()[header::HOST], "example.com");

        // Routed by the authority, so the server sees that host, not a different Host header.
        let mut disagreeing = request("https://static.example.com/a", Some("admin.internal"));
        to_origin_form(&mut disagreeing);
        assert_eq!(disagreeing.headers()[header::HOST], "static.example.com");

        let mut with_userinfo = request("http://user@example.com:8080/a", None);
        to_origin_form(&mut with_userinfo);
        assert_eq!(with_userinfo.headers()[header::HOST], "example.com:8080");
    }

    #[test]
    fn http2_servers_get_scheme_and_authority_and_no_host() {
        let mut from_h1 = request("/svc/Method?x", Some("api.example.com"));
        to_absolute_form(&mut from_h1);
        assert_eq!(from_h1.uri(), "http://api.example.com/svc/Method?x");
        assert!(!from_h1.headers().contains_key(header::HOST));

        let mut from_h2 = request("https://api.example.com/svc", Some("ignored.example.com"));
        to_absolute_form(&mut from_h2);
        assert_eq!(from_h2.uri(), "http://api.example.com/svc");
    }
}
