//! The client of one connection, with what its requests need of it worked out once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use http::HeaderValue;

use super::headers;
use super::tunnel::Joined;
use super::upstream::UpstreamPool;

/// The client of a connection.
pub struct Client {
    /// Who the client is: the peer, or the source its PROXY header carried.
    pub address: SocketAddr,
    /// The address the client connected to (or the destination its PROXY header carried);
    /// the listening address when no backend of the frontend sends a PROXY header.
    pub destination: SocketAddr,
    pub forwarded_for: HeaderValue,
    /// `http` or `https`, as X-Forwarded-Proto says.
    pub scheme: &'static str,
    /// The server name a TLS client asked for.
    pub sni: Option<Box<str>>,
    /// Connections to servers that get a PROXY header naming this client: never shared with
    /// another client, and closed once the client connection and every response still
    /// streaming from them are gone.
    /// Made on first use, so other clients don't pay for it.
    private_pool: OnceLock<Arc<UpstreamPool>>,
    /// An HTTP/1.1 connection's tunnel, once its request has been answered 101: run by the
    /// connection's task after hyper hands the connection over, so the connection stays
    /// counted (open, against `max_connections`, draining) until the tunnel ends.
    tunnel: Mutex<Option<Joined>>,
    /// Tunnels open on this (HTTP/2) connection: while there are any, it is not idle.
    tunnels: AtomicUsize,
    /// The subject of the certificate the client presented (and the frontend verified);
    /// shared with each request's access log line.
    pub client_subject: Option<Arc<str>>,
}

impl Client {
    pub fn new(address: SocketAddr, destination: SocketAddr, scheme: &'static str) -> Client {
        Client {
            address,
            destination,
            forwarded_for: headers::forwarded_for(address.ip()),
            scheme,
            sni: None,
            private_pool: OnceLock::new(),
            tunnel: Mutex::new(None),
            tunnels: AtomicUsize::new(0),
            client_subject: None,
        }
    }

    pub fn with_sni(mut self, sni: Option<&str>) -> Client {
        self.sni = sni.map(Box::from);
        self
    }

    pub fn with_client_subject(mut self, subject: Option<Box<str>>) -> Client {
        self.client_subject = subject.map(Arc::from);
        self
    }

    /// The pool of connections that name this client in a PROXY header.
    pub fn private_pool(&self) -> &Arc<UpstreamPool> {
        (self.private_pool).get_or_init(|| Arc::new(UpstreamPool::private()))
    }

    /// Hands the connection's tunnel to its task, to run once hyper lets go of the connection.
    pub fn set_tunnel(&self, tunnel: Joined) {
        *self
            .tunnel
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(tunnel);
    }

    pub fn take_tunnel(&self) -> Option<Joined> {
        (self
            .tunnel
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
        .take()
    }

    /// Counts a tunnel open on this connection until the guard drops.
    pub fn tunnel_opened(self: &Arc<Self>) -> TunnelOpen {
        self.tunnels.fetch_add(1, Ordering::Relaxed);
        TunnelOpen(Arc::clone(self))
    }

    /// Whether a tunnel is open on this connection.
    pub fn has_tunnels(&self) -> bool {
        self.open_tunnels() > 0
    }

    /// Tunnels open on this connection (an HTTP/2 connection may carry several).
    pub fn open_tunnels(&self) -> usize {
        self.tunnels.load(Ordering::Relaxed)
    }
}

pub struct TunnelOpen(Arc<Client>);

impl Drop for TunnelOpen {
    fn drop(&mut self) {
        self.0.tunnels.fetch_sub(1, Ordering::Relaxed);
    }
}
