//! The http frontend: HTTP/1.1 on both sides, keep-alive, bodies streamed with backpressure.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::activity::{Activity, ActivityIo};
use super::drain;
use super::headers;
use super::upstream::{RequestBody, Sender, UpstreamPool};
use super::{FrontendCell, FrontendRuntime};
use crate::access_log::Record;
use crate::backend::{ActiveGuard, BackendState};
use crate::balance::Key;
use crate::config::Balance;

pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// Below the shortest keep-alive timeout a server plausibly has: a pooled connection idle for
/// less is not being closed by its server as we use it.
const IDLE_CLOSE_RACE: Duration = Duration::from_millis(500);

/// The client of a connection, with what its requests need of it worked out once.
struct Client {
    address: SocketAddr,
    forwarded_for: HeaderValue,
}

/// Serves one client connection until it closes, idles out, or stalls in a request head. Once
/// draining starts, the request in progress is answered and the connection then closed.
/// `waited` is how long the client took to send its first byte.
pub async fn serve(
    stream: TcpStream,
    client: SocketAddr,
    frontend: FrontendCell,
    pool: Arc<UpstreamPool>,
    mut draining: watch::Receiver<bool>,
    waited: Duration,
) {
    let (timeouts, stats) = {
        let current = frontend.load();
        (current.config.timeouts, Arc::clone(&current.stats))
    };
    let activity = Activity::new();
    let io = ActivityIo::new(stream, Arc::clone(&activity))
        .counting(stats.bytes_in.clone(), stats.bytes_out.clone());
    let io = TokioIo::new(io);
    let client_info = Arc::new(Client {
        address: client,
        forwarded_for: headers::forwarded_for(client.ip()),
    });
    let service = service_fn(move |request| {
        let frontend = frontend.load_full();
        let pool = Arc::clone(&pool);
        let client_info = Arc::clone(&client_info);
        async move { Ok::<_, Infallible>(handle(request, &client_info, frontend, &pool).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout(timeouts.request_header, waited))
        .writev(false)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%client, %error, "client connection ended");
                }
                return;
            }
            () = activity.idle_timeout(timeouts.client_idle) => {
                tracing::debug!(%client, "client idle timeout");
                return;
            }
            () = drain::until_true(&mut draining), if !closing => {
                connection.as_mut().graceful_shutdown();
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
async fn handle(
    request: Request<Incoming>,
    client: &Client,
    frontend: Arc<FrontendRuntime>,
    pool: &Arc<UpstreamPool>,
) -> Response<ProxyBody> {
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
    let outcome = proxy(
        request,
        client,
        &account.frontend,
        pool,
        &mut account.exchange,
    )
    .await;
    let (response, failure) = match outcome {
        Ok((response, finish)) => (upstream_response(response, finish), None),
        Err(failure) => (local_response(failure.status, failure.text), Some(failure)),
    };
    account.frontend.stats.response(response.status());
    let Some(draft) = account.draft.take() else {
        return response;
    };
    let started = draft.started;
    let mut record = Box::new(draft.record(&account.frontend, &account.exchange));
    record.status = Some(response.status().as_u16());
    match failure {
        Some(failure) => {
            record.bytes = failure.text.len() as u64;
            record.total = started.elapsed();
            record.end = failure.end;
            account.log(record);
            response
        }
        None => response.map(|body| match body {
            Either::Left(mut upstream) => {
                upstream.log = Some((record, started));
                Either::Left(upstream)
            }
            local => local,
        }),
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
    fn log(&self, record: Box<Record>) {
        if let Some(log) = &self.frontend.access_log {
            log.log(record);
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if let Some(draft) = self.draft.take() {
            let started = draft.started;
            let mut record = Box::new(draft.record(&self.frontend, &self.exchange));
            record.total = started.elapsed();
            record.end = "client_aborted";
            self.log(record);
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

impl Draft {
    /// The line so far: no status, bytes or total yet.
    fn record(self, frontend: &Arc<FrontendRuntime>, exchange: &Exchange) -> Record {
        Record {
            time: self.time,
            frontend: Arc::clone(frontend),
            backend: exchange.backend.clone(),
            server: (exchange.backend.as_ref())
                .zip(exchange.server)
                .map(|(backend, index)| Arc::clone(&backend.servers[index])),
            client: self.client,
            request: Some((self.method, self.uri)),
            status: None,
            bytes: 0,
            connect: exchange.connect.map(|at| at - self.started),
            first_byte: exchange.first_byte.map(|at| at - self.started),
            total: Duration::ZERO,
            end: "done",
        }
    }
}

/// How far a request got with a server, for the access log.
#[derive(Default)]
struct Exchange {
    /// Where the request was routed.
    backend: Option<Arc<BackendState>>,
    /// The server tried last, by index in the backend.
    server: Option<usize>,
    connect: Option<Instant>,
    first_byte: Option<Instant>,
}

/// A request answered here instead of by a server.
struct Failure {
    status: StatusCode,
    text: &'static str,
    /// Why, in the access log.
    end: &'static str,
}

const NO_SERVER: Failure = Failure {
    status: StatusCode::SERVICE_UNAVAILABLE,
    text: "no server available\n",
    end: "no_server",
};

async fn proxy(
    request: Request<Incoming>,
    client: &Client,
    frontend: &FrontendRuntime,
    pool: &Arc<UpstreamPool>,
    exchange: &mut Exchange,
) -> Result<(Response<Incoming>, Finish), Failure> {
    if request.method() == Method::CONNECT {
        return Err(Failure {
            status: StatusCode::METHOD_NOT_ALLOWED,
            text: "CONNECT is not supported\n",
            end: "rejected",
        });
    }
    let Some(backend) = frontend.backend.as_ref() else {
        return Err(NO_SERVER);
    };
    exchange.backend = Some(Arc::clone(backend));
    // Copied out (the request moves on), and only when the balance hashes it.
    let hashed_uri = match backend.config.balance {
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
    let mut request = prepare_request(request, &client.forwarded_for);

    let mut tried = Vec::new();
    while tried.len() <= backend.config.retries as usize {
        let Some(index) = backend.pick(&key, &tried) else {
            break;
        };
        if let Some(&previous) = tried.last() {
            backend.servers[previous].stats.retries.increment(1);
        }
        tried.push(index);
        let server = &backend.servers[index];
        exchange.server = Some(index);
        let active = server.track_active();
        let mut fresh = false;
        loop {
            let checkout = match pool
                .checkout(server.address, backend.config.connect_timeout, fresh)
                .await
            {
                Ok(checkout) => checkout,
                Err(error) => {
                    server.stats.connection_errors.increment(1);
                    server.record_check(false, &format!("connect: {error}"));
                    break;
                }
            };
            let sent_at = Instant::now();
            exchange.connect = Some(sent_at);
            server.stats.sessions.increment(1);
            let mut sender = checkout.sender;
            // Only a connection that sat idle can meet a server closing it for idleness as we
            // send; one in steady use is not worth a copy of every request.
            let replay = (checkout.reused && checkout.idle_for >= IDLE_CLOSE_RACE)
                .then(|| replayable(&request))
                .flatten();
            let sent = tokio::time::timeout(
                backend.config.response_timeout,
                sender.try_send_request(request),
            )
            .await;
            match sent {
                Ok(Ok(response)) => {
                    let now = Instant::now();
                    exchange.first_byte = Some(now);
                    server.stats.response_time.record(now - sent_at);
                    let finish = Finish {
                        pool: Arc::clone(pool),
                        address: server.address,
                        sender,
                        _active: active,
                    };
                    return Ok((response, finish));
                }
                // A reused connection that the server closed as we used it: nothing was answered,
                // so send again on a new connection what can safely be sent twice.
                Ok(Err(mut error)) => match error.take_message().or(replay) {
                    Some(again) if checkout.reused => {
                        server.stats.retries.increment(1);
                        request = again;
                        fresh = true;
                    }
                    _ => {
                        tracing::warn!(server = %server.name, error = %error.error(), "request to server failed");
                        return Err(Failure {
                            status: StatusCode::BAD_GATEWAY,
                            text: "bad gateway\n",
                            end: "bad_gateway",
                        });
                    }
                },
                Err(_) => {
                    tracing::warn!(server = %server.name, timeout = ?backend.config.response_timeout, "server response timed out");
                    return Err(Failure {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        text: "gateway timeout\n",
                        end: "server_timeout",
                    });
                }
            }
        }
    }
    tracing::warn!(backend = %backend.config.name, tried = tried.len(), "no server available");
    Err(NO_SERVER)
}

/// Turns the client's request into the one a server gets.
fn prepare_request(
    mut request: Request<Incoming>,
    forwarded_for: &HeaderValue,
) -> Request<RequestBody> {
    if !request.headers().contains_key(header::HOST) {
        if let Some(host) = request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    if request.uri().scheme().is_some() {
        let origin_form = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        if let Ok(uri) = origin_form.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    let headers = request.headers_mut();
    headers::remove_hop_by_hop(headers);
    // hyper already answered any 100-continue by reading the body; the server must not wait.
    headers.remove(header::EXPECT);
    headers::add_forwarded(headers, forwarded_for, "http");
    request.map(|body| {
        if body.is_end_stream() {
            Either::Right(Empty::new())
        } else {
            Either::Left(body)
        }
    })
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

fn upstream_response(response: Response<Incoming>, finish: Finish) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    // The version is per hop: an HTTP/1.0 server must not make our client's connection 1.0
    // (and so close after every response).
    parts.version = http::Version::HTTP_11;
    let body = UpstreamBody {
        inner: body,
        finish: Some(finish),
        sent: 0,
        log: None,
    };
    Response::from_parts(parts, Either::Left(body))
}

fn local_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// What to release once a response has been streamed to the client.
struct Finish {
    pool: Arc<UpstreamPool>,
    address: SocketAddr,
    sender: Sender,
    _active: ActiveGuard,
}

/// A server's response body on its way to the client. When it ends, the connection goes back
/// to the pool and the server's in-flight count drops; if it is abandoned midway, the
/// connection is closed instead, since unread bytes would poison it.
pub struct UpstreamBody {
    inner: Incoming,
    finish: Option<Finish>,
    sent: u64,
    /// The access log line, waiting for the body to end; and when the request began.
    log: Option<(Box<Record>, Instant)>,
}

impl UpstreamBody {
    fn release(&mut self, end: &'static str) {
        if let Some(finish) = self.finish.take() {
            if self.inner.is_end_stream() {
                finish.pool.checkin(finish.address, finish.sender);
            }
        }
        if let Some((mut record, started)) = self.log.take() {
            record.bytes = self.sent;
            record.total = started.elapsed();
            record.end = end;
            if let Some(log) = record.frontend.access_log.clone() {
                log.log(record);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.sent += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Poll::Ready(None) => self.release("done"),
            Poll::Ready(Some(Err(_))) => {
                self.finish = None;
                self.release("server_aborted");
            }
            Poll::Pending => {}
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

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let end = if self.inner.is_end_stream() {
            "done"
        } else {
            "client_aborted"
        };
        self.release(end);
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
