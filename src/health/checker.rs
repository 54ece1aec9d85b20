//! Active health checks: one task per server, probing at the configured interval.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{self, MissedTickBehavior};
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::backend::check_record::CheckStatus;
use crate::backend::{BackendState, ServerState};
use crate::codec::proxy_protocol;
use crate::config::{
    BytesMatch, CheckKind, HealthCheck, ProxyVersion, UpstreamProtocol, CHECK_BODY_LIMIT,
};
use crate::limits;
use crate::stats::Shortage;
use crate::tls::upstream::Origination;

use super::conversation;

const USER_AGENT: &str = "tandem-health-check";

/// Starts checking every server of the backends that have a health check; the first check of
/// each server runs at once.
pub fn spawn(backends: &[Arc<BackendState>]) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for backend in backends {
        let Some(check) = &backend.config.health_check else {
            continue;
        };
        let probe = Probe {
            kind: check.kind.clone(),
            send_proxy: backend.config.send_proxy,
            protocol: backend.config.protocol,
            tls: None,
        };
        for (index, server) in backend.servers.iter().enumerate() {
            let probe = Probe {
                tls: backend.check_tls(index).cloned(),
                ..probe.clone()
            };
            tasks.push(tokio::spawn(check_forever(
                Arc::clone(server),
                check.clone(),
                probe,
            )));
        }
    }
    tasks
}

/// What a check sends, worked out once per backend.
#[derive(Clone)]
struct Probe {
    kind: CheckKind,
    /// A server that expects a PROXY header gets one saying the check is tandem's own.
    send_proxy: Option<ProxyVersion>,
    /// An http check speaks the backend's protocol: an h2c-only (gRPC) server would refuse 1.1.
    protocol: UpstreamProtocol,
    /// A check over TLS (`tls: true`, or a server with `tls`): the handshake is part of it.
    tls: Option<Origination>,
}

async fn check_forever(server: Arc<ServerState>, check: HealthCheck, probe: Probe) {
    let mut ticker = time::interval(check.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // An operator's maintenance stops the checks until the server is ready again.
        if server.in_maint() {
            continue;
        }
        let target = check.target(server.address);
        // An http check's Host when the check sets none: the name a server named by DNS was
        // found by (name-based virtual hosts answer nothing else), else the address checked.
        let host = match &server.dns_name {
            Some(name) => format!("{}:{}", name.host, target.port()),
            None => target.to_string(),
        };
        let started = time::Instant::now();
        let deadline = Deadline {
            at: started + check.timeout,
            limit: check.timeout,
        };
        let result = probe.run(target, &host, deadline).await;
        let took = started.elapsed();
        match result {
            Ok(status) => server.record_active_check(status, took, ""),
            Err(Failed::Server(status, detail)) => {
                server.stats.check_failures.increment(1);
                server.record_active_check(status, took, &format!("health check: {detail}"));
            }
            // Out of descriptors here says nothing about the server: no verdict this time.
            Err(Failed::Shortage(error)) => limits::shortage(Shortage::HealthCheck, &error),
        }
    }
}

/// Why a check did not pass.
enum Failed {
    /// The server refused, failed to answer, or answered wrong.
    Server(CheckStatus, String),
    /// This host is short of file descriptors or memory: the check could not be made.
    Shortage(io::Error),
}

/// When a check must be over: each of its steps gets what is left.
#[derive(Clone, Copy)]
struct Deadline {
    at: time::Instant,
    /// The check's timeout, for the message.
    limit: std::time::Duration,
}

impl Deadline {
    /// `step`'s result, or `late` if the check's time runs out first.
    async fn within<T>(
        self,
        late: CheckStatus,
        step: impl Future<Output = Result<T, Failed>>,
    ) -> Result<T, Failed> {
        match time::timeout_at(self.at, step).await {
            Ok(result) => result,
            Err(_) => Err(Failed::Server(
                late,
                format!(
                    "no answer within {}",
                    crate::config::display_duration(self.limit)
                ),
            )),
        }
    }
}

/// An answer the check does not expect (layer 7), with the reason.
impl From<String> for Failed {
    fn from(detail: String) -> Failed {
        Failed::Server(CheckStatus::L7Response, detail)
    }
}

impl Probe {
    /// The check's result: which layer passed last (HAProxy's L4OK, L6OK or L7OK), or why
    /// and where it failed.
    async fn run(
        &self,
        address: SocketAddr,
        default_host: &str,
        deadline: Deadline,
    ) -> Result<CheckStatus, Failed> {
        let stream = self.open(address, deadline).await?;
        let answered = self.converse(stream, default_host);
        deadline.within(CheckStatus::L7Timeout, answered).await?;
        Ok(match self.kind {
            // Connecting (and the TLS handshake, if any) is the whole check.
            CheckKind::Tcp if self.tls.is_some() => CheckStatus::L6Ok,
            CheckKind::Tcp => CheckStatus::L4Ok,
            _ => CheckStatus::L7Ok,
        })
    }

    /// What the check asks of the server once connected (nothing more for tcp); an error
    /// string is an answer the check does not expect.
    async fn converse(&self, mut stream: CheckStream, default_host: &str) -> Result<(), Failed> {
        match &self.kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::TcpSteps(steps) => Ok(conversation::steps(&mut stream, steps).await?),
            CheckKind::Redis => Ok(conversation::redis(&mut stream).await?),
            CheckKind::Mysql { user } => {
                Ok(conversation::mysql(&mut stream, user.as_deref()).await?)
            }
            CheckKind::Postgres { user, database } => {
                Ok(conversation::postgres(&mut stream, user, database.as_deref()).await?)
            }
            CheckKind::Http {
                path,
                host,
                expect,
                method,
                headers,
                expect_body,
            } => {
                let host = host.as_deref().unwrap_or(default_host);
                let mut request = match self.protocol {
                    UpstreamProtocol::Http11 => http::Request::builder()
                        .uri(path.as_str())
                        .header(http::header::HOST, host)
                        .header(http::header::CONNECTION, "close"),
                    UpstreamProtocol::H2 => {
                        http::Request::builder().uri(format!("http://{host}{path}"))
                    }
                }
                .method(method.clone())
                .header(http::header::USER_AGENT, USER_AGENT);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let request =
                    (request.body(Empty::new())).map_err(|error| format!("http: {error}"))?;
                // Held until the body is read; dropping it ends the connection.
                let (response, _connection) = match self.protocol {
                    UpstreamProtocol::Http11 => http1_exchange(stream, request).await,
                    UpstreamProtocol::H2 => http2_exchange(stream, request).await,
                }
                .map_err(|error| format!("http: {error}"))?;
                let status = response.status().as_u16();
                if !expect.matches(status) {
                    return Err(Failed::Server(
                        CheckStatus::L7Status,
                        format!("status {status}"),
                    ));
                }
                match expect_body {
                    Some(pattern) => Ok(body_holds(response.into_body(), pattern).await?),
                    None => Ok(()),
                }
            }
        }
    }

    /// The check's connection to the server, PROXY header sent and TLS set up: every kind of
    /// check talks over what this returns.
    async fn open(&self, address: SocketAddr, deadline: Deadline) -> Result<CheckStream, Failed> {
        let connecting = async {
            match TcpStream::connect(address).await {
                Ok(stream) => Ok(stream),
                Err(error) if limits::is_shortage(&error) => Err(Failed::Shortage(error)),
                Err(error) => Err(Failed::Server(
                    CheckStatus::L4Connection,
                    format!("connect: {error}"),
                )),
            }
        };
        let mut stream = deadline.within(CheckStatus::L4Timeout, connecting).await?;
        let socket_error = |what: &str, error: io::Error| {
            Failed::Server(CheckStatus::SocketError, format!("{what}: {error}"))
        };
        if let Some(version) = self.send_proxy {
            // v2 says LOCAL; v1's UNKNOWN is refused by some servers, so v1 names the check's
            // own connection, as HAProxy does.
            let header = match version {
                ProxyVersion::V1 => {
                    let local =
                        (stream.local_addr()).map_err(|error| socket_error("connect", error))?;
                    proxy_protocol::header(version, local, address)
                }
                ProxyVersion::V2 => proxy_protocol::local_header(),
            };
            let writing = async {
                (stream.write_all(&header).await)
                    .map_err(|error| socket_error("PROXY header", error))
            };
            deadline.within(CheckStatus::L4Timeout, writing).await?;
        }
        Ok(match &self.tls {
            None => Either::Left(stream),
            Some(tls) => {
                let handshake = async {
                    (tls.connect(stream).await)
                        .map_err(|error| Failed::Server(CheckStatus::L6Response, error.to_string()))
                };
                Either::Right(deadline.within(CheckStatus::L6Timeout, handshake).await?)
            }
        })
    }
}

/// A check's connection: plain or over TLS.
type CheckStream = Either<TcpStream, TlsStream<TcpStream>>;

/// A check's HTTP connection, run by a task of its own: ended when the check is done with it,
/// also when the check's timeout drops the check midway.
struct Connection(JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer to `request` over HTTP/1.1, and the connection, to keep until the body is read.
async fn http1_exchange<S>(
    stream: S,
    request: http::Request<Empty<Bytes>>,
) -> Result<(http::Response<Incoming>, Connection), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
    let connection = Connection(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await;
    Ok((response.map_err(|error| error.to_string())?, connection))
}

/// The answer to `request` over HTTP/2 with prior knowledge, and the connection.
async fn http2_exchange<S>(
    stream: S,
    request: http::Request<Empty<Bytes>>,
) -> Result<(http::Response<Incoming>, Connection), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .map_err(|error| error.to_string())?;
    let connection = Connection(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await;
    Ok((response.map_err(|error| error.to_string())?, connection))
}

/// Whether `pattern` is in the first [`CHECK_BODY_LIMIT`] bytes of `body`, read only as far as
/// it takes to tell.
async fn body_holds(mut body: Incoming, pattern: &BytesMatch) -> Result<(), String> {
    let mut read = Vec::new();
    while read.len() < CHECK_BODY_LIMIT {
        match body.frame().await {
            None => break,
            Some(Err(error)) => return Err(format!("http body: {error}")),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = CHECK_BODY_LIMIT - read.len();
                    read.extend_from_slice(&data[..data.len().min(room)]);
                    if pattern.find_end(&read).is_some() {
                        return Ok(());
                    }
                }
            }
        }
    }
    Err(format!("body lacks {}", conversation::shown(pattern)))
}
