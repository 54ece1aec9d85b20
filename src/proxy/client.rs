//! The client of one connection, with what its requests need of it worked out once.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use http::HeaderValue;

use super::headers;
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
        }
    }

    pub fn with_sni(mut self, sni: Option<&str>) -> Client {
        self.sni = sni.map(Box::from);
        self
    }

    /// The pool of connections that name this client in a PROXY header.
    pub fn private_pool(&self) -> &Arc<UpstreamPool> {
        (self.private_pool).get_or_init(|| Arc::new(UpstreamPool::private()))
    }
}
