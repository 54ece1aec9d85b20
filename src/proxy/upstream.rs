//! Connections to servers, kept per worker thread so a request reuses a connection that lives
//! on its own thread.
//!
//! Connecting is separate from sending (unlike hyper-util's pooled client), so a connect failure
//! can be retried on another server with the request body still in hand.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::socket::Socket;

/// Idle connections kept per server; beyond that they are closed.
const MAX_IDLE_PER_SERVER: usize = 256;
/// Below the shortest common server keep-alive timeout (5 s in Node.js and Apache), so we rarely
/// send on a connection that the server is closing.
const MAX_IDLE_TIME: Duration = Duration::from_secs(4);

/// A request body for a server: the client's, or none at all. Bodyless requests are sent as
/// `Empty` so that they can be sent again.
pub type RequestBody = Either<Incoming, Empty<Bytes>>;

pub type Sender = SendRequest<RequestBody>;

#[derive(Default)]
pub struct UpstreamPool {
    idle: Mutex<HashMap<SocketAddr, Vec<(Sender, Instant)>>>,
}

/// A connection ready for one request, and whether it had served one before.
pub struct Checkout {
    pub sender: Sender,
    pub reused: bool,
    /// How long it had been idle in the pool (zero for a new one).
    pub idle_for: Duration,
}

impl UpstreamPool {
    /// An idle connection to `address` (unless `fresh`), or a new one within `connect_timeout`.
    pub async fn checkout(
        &self,
        address: SocketAddr,
        connect_timeout: Duration,
        fresh: bool,
    ) -> io::Result<Checkout> {
        while let Some((mut sender, idle_for)) = self.take_idle(address).filter(|_| !fresh) {
            // Resolves once the previous response is fully read; fails if the server closed.
            if sender.ready().await.is_ok() {
                return Ok(Checkout {
                    sender,
                    reused: true,
                    idle_for,
                });
            }
        }
        let sender = connect(address, connect_timeout).await?;
        Ok(Checkout {
            sender,
            reused: false,
            idle_for: Duration::ZERO,
        })
    }

    /// An idle connection to `address`, and how long it has been idle.
    fn take_idle(&self, address: SocketAddr) -> Option<(Sender, Duration)> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let senders = idle.get_mut(&address)?;
        while let Some((sender, since)) = senders.pop() {
            let idle_for = since.elapsed();
            if !sender.is_closed() && idle_for < MAX_IDLE_TIME {
                return Some((sender, idle_for));
            }
        }
        None
    }

    /// Returns a connection whose last response has been read to the end.
    pub fn checkin(&self, address: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let senders = idle.entry(address).or_default();
        let now = Instant::now();
        if senders.len() >= MAX_IDLE_PER_SERVER {
            senders.retain(|(sender, since)| !sender.is_closed() && now - *since < MAX_IDLE_TIME);
        }
        if senders.len() < MAX_IDLE_PER_SERVER {
            senders.push((sender, now));
        }
    }
}

async fn connect(address: SocketAddr, timeout: Duration) -> io::Result<Sender> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    // Flat: a request head (and a small body) leaves in one send(2), not a sendmsg(2).
    let (sender, connection) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(Socket(stream)))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%address, %error, "server connection ended");
        }
    });
    Ok(sender)
}
