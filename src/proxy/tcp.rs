//! The tcp frontend: connect to a server through the attempt loop, then relay bytes both ways.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::{copy_bidirectional, AsyncWriteExt};
use tokio::net::TcpStream;

use super::activity::{Activity, ActivityIo};
use super::attempt::{Attempt, Attempts};
use super::socket;
use super::upstream_tls::ServerStream;
use super::FrontendRuntime;
use crate::access_log::Record;
use crate::address_text;
use crate::backend::Refused;
use crate::balance::Key;
use crate::codec::proxy_protocol;

/// Relays one client connection; half-closes are passed on, so a client that shuts down its
/// write side still gets the rest of the server's answer. `client_address` and `destination`
/// are the client's and the address it connected to, as a PROXY header may have told them.
pub async fn relay(
    client: TcpStream,
    client_address: SocketAddr,
    destination: SocketAddr,
    frontend: Arc<FrontendRuntime>,
) {
    let time = SystemTime::now();
    let started = Instant::now();
    let activity = Activity::new();
    let stats = &frontend.stats;
    let mut client = ActivityIo::new(client, Arc::clone(&activity))
        .counting(stats.bytes_in.clone(), stats.bytes_out.clone());
    let connected = connect(client_address, destination, &frontend).await;
    let connect = connected.as_ref().ok().map(|_| started.elapsed());
    let (server, end) = match connected {
        // Closing the client is all tcp mode can say.
        Err(end) => (None, end),
        Ok((upstream, attempt)) => {
            let server = attempt.server;
            // What the server sends is its bytes out, what it is sent its bytes in, as HAProxy
            // counts them.
            let stats = &server.stats;
            let mut upstream = ActivityIo::over(upstream, Arc::clone(&activity))
                .counting(stats.bytes_out.clone(), stats.bytes_in.clone())
                .counting(
                    stats.backend.bytes_out.clone(),
                    stats.backend.bytes_in.clone(),
                );
            let backend = (frontend.backend.as_ref()).expect("connected through a backend");
            let shutdown = backend.shutdown_of(attempt.index);
            let shuts_down = shutdown.is_some();
            let end = tokio::select! {
                result = copy_bidirectional(&mut client, &mut upstream) => match result {
                    Ok(_) => "closed",
                    Err(error) => {
                        tracing::debug!(frontend = %frontend.config.name, server = %server.name, %error, "relay ended");
                        "error"
                    }
                },
                () = activity.idle_timeout(frontend.config.timeouts.client_idle) => {
                    tracing::debug!(frontend = %frontend.config.name, server = %server.name, "idle timeout");
                    "idle_timeout"
                }
                // on_down / on_up: the server's sessions are shut down.
                () = async { shutdown.expect("only polled when set").await }, if shuts_down => {
                    tracing::info!(frontend = %frontend.config.name, server = %server.name, "session shut down");
                    "server_shutdown"
                }
            };
            (Some(server), end)
        }
    };
    if let Some(log) = &frontend.access_log {
        log.log(&Record {
            time,
            frontend: &frontend.config.name,
            backend: (frontend.backend.as_ref()).map(|backend| backend.config.name.as_str()),
            server: server.as_ref().map(|server| server.name.as_str()),
            client: address_text::socket_address(client_address).as_str(),
            request: None,
            request_id: None,
            status: None,
            bytes: client.written(),
            connect,
            first_byte: None,
            total: started.elapsed(),
            end,
            headers: &[],
            client_subject: None,
        });
    }
}

/// Connects to a server of the frontend's backend through the shared attempt loop; the
/// server stays counted as busy for as long as the returned try is held. Without one, why:
/// `no_server`, or `local_shortage` when this host is out of descriptors (no server blamed).
async fn connect<'a>(
    client: SocketAddr,
    destination: SocketAddr,
    frontend: &'a FrontendRuntime,
) -> Result<(ServerStream, Attempt<'a>), &'static str> {
    let backend = (frontend.backend.as_ref()).expect("validation gives a tcp frontend a backend");
    let preamble = (backend.config.send_proxy)
        .map(|version| proxy_protocol::header(version, client, destination));
    let key = Key {
        client_ip: client.ip(),
        uri: "",
    };
    let mut attempts = Attempts::new(backend, key, None);
    let refused = loop {
        let attempt = match attempts.next().await {
            Ok(attempt) => attempt,
            Err(refused) => break refused,
        };
        let address = attempt.server.address;
        let connecting = async {
            let mut stream = TcpStream::connect(address).await?;
            let _ = stream.set_nodelay(true);
            if let Some(keepalive) = &backend.config.tcp_keepalive {
                socket::keep_alive(&stream, keepalive);
            }
            if let Some(preamble) = &preamble {
                stream.write_all(preamble).await?;
            }
            ServerStream::over(stream, backend.tls(attempt.index)).await
        };
        let connected = tokio::time::timeout(backend.config.connect_timeout, connecting)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")));
        match connected {
            Ok(stream) => {
                attempt.connected(true);
                return Ok((stream, attempt));
            }
            Err(error) => {
                if attempt.connect_failed(&error).is_err() {
                    return Err("local_shortage");
                }
            }
        }
    };
    let (frontend, backend) = (&frontend.config.name, &backend.config.name);
    match (refused, attempts.tried()) {
        (Refused::NoServer, 0) => tracing::warn!(%frontend, %backend, "no server available"),
        (Refused::NoServer, _) => {
            tracing::warn!(%frontend, %backend, "no server could be reached")
        }
        (Refused::QueueFull, _) => tracing::warn!(%frontend, %backend, "queue full"),
        (Refused::QueueTimeout, _) => {
            tracing::warn!(%frontend, %backend, "no server had room within queue_timeout")
        }
    }
    Err(match refused {
        Refused::NoServer => "no_server",
        Refused::QueueFull => "queue_full",
        Refused::QueueTimeout => "queue_timeout",
    })
}
