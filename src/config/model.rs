//! The validated configuration: what the rest of tandem runs from.
//!
//! Everything here has passed validation: names are unique, references resolve, durations and
//! addresses are parsed and defaults are filled in. Nothing downstream re-checks these facts.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: Node,
    /// Log filter from the `log.level` key (`info`, `debug`, `tandem=trace`...); `RUST_LOG` wins.
    pub log_level: Option<String>,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// Data-plane worker threads; defaults to the number of CPUs.
    pub threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    pub name: String,
    pub listen: SocketAddr,
    pub mode: Mode,
    /// Index into `Config::backends`.
    pub backend: usize,
    /// Clients accepted at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
    pub timeouts: FrontendTimeouts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendTimeouts {
    /// Time a client has to send a complete request head, counted from when the connection is
    /// ready for one (so it also bounds keep-alive idle time, like HAProxy's `timeout http-request`).
    pub request_header: Duration,
    /// Inactivity on the client connection (no byte either way) before it is closed.
    pub client_idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    WeightedRoundRobin,
    LeastConn,
    SourceHash,
    /// `hash_query`: the query string is part of the hashed key.
    UriHash {
        hash_query: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// Time from sending a request to receiving the response head.
    pub response_timeout: Duration,
    /// Further servers tried after a connect failure.
    pub retries: u32,
    /// `None`: servers are always considered up.
    pub health_check: Option<HealthCheck>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that mark a down server up.
    pub rise: u32,
    /// Consecutive failures that mark an up server down.
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Tcp,
    Http {
        path: String,
        /// Host header sent; `None` sends the server's address.
        host: Option<String>,
        expect: StatusMatch,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    /// The hundreds digit: 2 for `2xx`.
    Class(u8),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => status == code,
            StatusMatch::Class(class) => status / 100 == u16::from(class),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    /// 0..=256; 0 drains the server (no new traffic).
    pub weight: u32,
}
