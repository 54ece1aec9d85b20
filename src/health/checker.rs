//! Active health checks: one task per server, probing at the configured interval.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{self, MissedTickBehavior};

use crate::backend::{BackendState, ServerState};
use crate::config::{CheckKind, HealthCheck, StatusMatch};

/// Starts checking every server of the backends that have a health check; the first check of
/// each server runs at once.
pub fn spawn(backends: &[Arc<BackendState>]) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for backend in backends {
        let Some(check) = &backend.config.health_check else {
            continue;
        };
        for server in &backend.servers {
            tasks.push(tokio::spawn(check_forever(
                Arc::clone(server),
                check.clone(),
            )));
        }
    }
    tasks
}

async fn check_forever(server: Arc<ServerState>, check: HealthCheck) {
    let mut ticker = time::interval(check.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = match time::timeout(check.timeout, probe(&check.kind, server.address)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", check.timeout)),
        };
        match result {
            Ok(()) => server.record_check(true, ""),
            Err(detail) => {
                server.stats.check_failures.increment(1);
                server.record_check(false, &format!("health check: {detail}"));
            }
        }
    }
}

async fn probe(kind: &CheckKind, address: SocketAddr) -> Result<(), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    match kind {
        CheckKind::Tcp => Ok(()),
        CheckKind::Http { path, host, expect } => {
            http_probe(stream, address, path, host.as_deref(), *expect).await
        }
    }
}

async fn http_probe(
    stream: TcpStream,
    address: SocketAddr,
    path: &str,
    host: Option<&str>,
    expect: StatusMatch,
) -> Result<(), String> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|error| format!("http: {error}"))?;
    let connection = tokio::spawn(connection);
    let host = host.map_or_else(|| address.to_string(), str::to_owned);
    let request = http::Request::get(path)
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "tandem-health-check")
        .body(Empty::new())
        .map_err(|error| format!("request: {error}"))?;
    let response = sender.send_request(request).await;
    connection.abort();
    let status = response
        .map_err(|error| format!("http: {error}"))?
        .status()
        .as_u16();
    if expect.matches(status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
