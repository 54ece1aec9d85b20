//! Active health checks: one task per server, probing at the configured interval.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{self, MissedTickBehavior};
use tokio_util::either::Either;

use crate::backend::{BackendState, ServerState};
use crate::codec::proxy_protocol;
use crate::config::{CheckKind, HealthCheck, ProxyVersion, UpstreamProtocol};
use crate::limits;
use crate::stats::Shortage;
use crate::tls::upstream::Origination;

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
        let result = match time::timeout(check.timeout, probe.run(server.address)).await {
            Ok(result) => result,
            Err(_) => Err(Failed::Server(format!(
                "no answer within {:?}",
                check.timeout
            ))),
        };
        match result {
            Ok(()) => server.record_check(true, ""),
            Err(Failed::Server(detail)) => {
                server.stats.check_failures.increment(1);
                server.record_check(false, &format!("health check: {detail}"));
            }
            // Out of descriptors here says nothing about the server: no verdict this time.
            Err(Failed::Shortage(error)) => limits::shortage(Shortage::HealthCheck, &error),
        }
    }
}

/// Why a check did not pass.
enum Failed {
    /// The server refused, failed to answer, or answered wrong.
    Server(String),
    /// This host is short of file descriptors or memory: the check could not be made.
    Shortage(io::Error),
}

impl From<String> for Failed {
    fn from(detail: String) -> Failed {
        Failed::Server(detail)
    }
}

impl Probe {
    async fn run(&self, address: SocketAddr) -> Result<(), Failed> {
        let mut stream = match TcpStream::connect(address).await {
            Ok(stream) => stream,
            Err(error) if limits::is_shortage(&error) => return Err(Failed::Shortage(error)),
            Err(error) => return Err(Failed::Server(format!("connect: {error}"))),
        };
        if let Some(version) = self.send_proxy {
            // v2 says LOCAL; v1's UNKNOWN is refused by some servers, so v1 names the check's
            // own connection, as HAProxy does.
            let header = match version {
                ProxyVersion::V1 => {
                    let local =
                        (stream.local_addr()).map_err(|error| format!("connect: {error}"))?;
                    proxy_protocol::header(version, local, address)
                }
                ProxyVersion::V2 => proxy_protocol::local_header(),
            };
            stream
                .write_all(&header)
                .await
                .map_err(|error| format!("PROXY header: {error}"))?;
        }
        let stream = match &self.tls {
            None => Either::Left(stream),
            Some(tls) => Either::Right(
                tls.connect(stream)
                    .await
                    .map_err(|error| error.to_string())?,
            ),
        };
        match &self.kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::Http { path, host, expect } => {
                let host = host.clone().unwrap_or_else(|| address.to_string());
                let status = match self.protocol {
                    UpstreamProtocol::Http11 => http1_status(stream, path, &host).await,
                    UpstreamProtocol::H2 => http2_status(stream, path, &host).await,
                }
                .map_err(|error| format!("http: {error}"))?;
                if expect.matches(status) {
                    Ok(())
                } else {
                    Err(Failed::Server(format!("status {status}")))
                }
            }
        }
    }
}

/// A check's connection: plain or over TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// The status of `GET path` over HTTP/1.1, on a connection closed after it.
async fn http1_status(stream: impl Stream, path: &str, host: &str) -> Result<u16, String> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|error| error.to_string())?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, USER_AGENT)
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let response = sender.send_request(request).await;
    connection.abort();
    Ok(response
        .map_err(|error| error.to_string())?
        .status()
        .as_u16())
}

/// The status of `GET path` over HTTP/2 with prior knowledge.
async fn http2_status(stream: impl Stream, path: &str, host: &str) -> Result<u16, String> {
    let (mut sender, connection) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .map_err(|error| error.to_string())?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{host}{path}"))
        .header(http::header::USER_AGENT, USER_AGENT)
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let response = sender.send_request(request).await;
    connection.abort();
    Ok(response
        .map_err(|error| error.to_string())?
        .status()
        .as_u16())
}
