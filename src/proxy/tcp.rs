//! The tcp frontend: pick a server, connect with retries, then relay bytes both ways.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;

use super::activity::{Activity, ActivityIo};
use super::FrontendRuntime;
use crate::backend::ServerState;
use crate::balance::Key;

/// Relays one client connection; half-closes are passed on, so a client that shuts down its
/// write side still gets the rest of the server's answer.
pub async fn relay(client: TcpStream, client_address: SocketAddr, frontend: &FrontendRuntime) {
    let Some((upstream, server)) = connect(client_address, frontend).await else {
        // Closing the client is all tcp mode can say.
        return;
    };
    let _active = server.track_active();
    let activity = Activity::new();
    let mut client = ActivityIo::new(client, Arc::clone(&activity));
    let mut upstream = ActivityIo::new(upstream, Arc::clone(&activity));
    tokio::select! {
        result = copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = result {
                tracing::debug!(frontend = %frontend.config.name, server = %server.name, %error, "relay ended");
            }
        }
        () = activity.idle_timeout(frontend.config.timeouts.client_idle) => {
            tracing::debug!(frontend = %frontend.config.name, server = %server.name, "idle timeout");
        }
    }
}

async fn connect(
    client: SocketAddr,
    frontend: &FrontendRuntime,
) -> Option<(TcpStream, Arc<ServerState>)> {
    let backend = &frontend.backend;
    let key = Key {
        client_ip: client.ip(),
        uri: "",
    };
    let mut tried = Vec::new();
    while tried.len() <= backend.config.retries as usize {
        let Some(index) = backend.pick(&key, &tried) else {
            tracing::warn!(frontend = %frontend.config.name, backend = %backend.config.name, "no server available");
            return None;
        };
        tried.push(index);
        let server = &backend.servers[index];
        let connected = tokio::time::timeout(
            backend.config.connect_timeout,
            TcpStream::connect(server.address),
        )
        .await;
        match connected {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, Arc::clone(server)));
            }
            Ok(Err(error)) => server.record_check(false, &format!("connect: {error}")),
            Err(_) => server.record_check(false, "connect timed out"),
        }
    }
    tracing::warn!(frontend = %frontend.config.name, backend = %backend.config.name, "no server could be reached");
    None
}
