//! The validated configuration: what the rest of tandem runs from.
//!
//! Everything here has passed validation: names are unique, references resolve, durations and
//! addresses are parsed and defaults are filled in. Nothing downstream re-checks these facts.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::log_template::LogTemplate;
use super::rules::{ErrorPages, RuleSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub node: Node,
    /// Log filter from the `log.level` key (`info`, `debug`, `tandem=trace`...); `RUST_LOG` wins.
    pub log_level: Option<String>,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    /// The `vrrp.instances` list; empty when the node holds no VIP.
    pub vrrp: Vec<VrrpInstance>,
    /// `None`: no admin endpoint, and no metrics are recorded.
    pub admin: Option<Admin>,
    /// `None`: no access log.
    pub access_log: Option<AccessLog>,
    /// `None`: the node announces nothing to routers.
    pub announce: Option<Announce>,
}

/// `announce:`: addresses this node asks its routers (through a local FRR) to send it traffic
/// for, while every tracked item is healthy. Several nodes announcing the same address share
/// its traffic by ECMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The TUN device tandem creates and holds open, and puts the addresses on while it
    /// announces them; FRR redistributes its connected routes. When the process dies, the
    /// kernel deletes the device, and FRR withdraws.
    pub interface: String,
    /// Host addresses (each a /32 or /128), unique, all unicast.
    pub addresses: Vec<IpAddr>,
    /// Items whose failure withdraws the addresses; each item's weight is always
    /// [`TrackWeight::Fault`]: a node announces or it doesn't.
    pub track: Vec<Track>,
    /// `withdraw.quiet`: after withdrawing for a drain, the routers are taken to have moved new
    /// flows away once no new client connection has arrived for this long.
    pub withdraw_quiet: Duration,
    /// `withdraw.max_wait`: the drain goes on after this long however busy it still is.
    pub withdraw_max_wait: Duration,
}

/// The admin endpoint: `GET /metrics` and `GET /status`, and the runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub listen: SocketAddr,
    /// `token_file`: writes over TCP need this bearer token; without it they are refused.
    pub token: Option<Token>,
    /// `socket`: a unix socket serving the same API, its file permissions (0600) the
    /// authentication.
    pub socket: Option<PathBuf>,
}

/// The runtime API's bearer token, read from `admin.token_file` at start and on every reload.
/// Never printed: `Debug` shows the file only.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub file: PathBuf,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token {{ file: {:?} }}", self.file)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub format: LogFormat,
    pub target: LogTarget,
    /// Each line sent to syslog too (or only, when `target` says so).
    pub syslog: Option<Syslog>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
    /// `format: { template: "..." }`.
    Template(LogTemplate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    /// Appended to, and reopened on SIGHUP so logrotate can move it away.
    File(std::path::PathBuf),
    /// No `path` beside `syslog`: the lines go to syslog alone.
    SyslogOnly,
}

/// `access_log.syslog`: RFC 5424 messages, one datagram per line, as HAProxy's `log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    pub address: SyslogAddress,
    /// 0 (kern) to 23 (local7).
    pub facility: u8,
    /// 0 (emerg) to 7 (debug).
    pub severity: u8,
    /// HOSTNAME; `None`: the system's host name.
    pub hostname: Option<String>,
    /// APP-NAME.
    pub tag: String,
    /// A longer message is cut to this many bytes, as HAProxy's `len`.
    pub max_length: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddress {
    /// A datagram socket such as `/dev/log`.
    Unix(std::path::PathBuf),
    Udp(SocketAddr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// Data-plane worker threads; defaults to the number of CPUs.
    pub threads: usize,
    /// On SIGTERM, how long open connections may finish before the process exits anyway.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Http,
    Tcp,
}

/// As the config writes it: `http`, `tcp`.
impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    pub name: String,
    pub listen: SocketAddr,
    pub mode: Mode,
    /// Index into `Config::backends`: where requests no route matches go. `None` only on an
    /// http frontend that redirects every request to https.
    pub backend: Option<usize>,
    /// Clients accepted at once; further ones wait in the kernel backlog. `None`: derived from
    /// the open-file limit when applied (`limits::default_max_connections`).
    pub max_connections: Option<usize>,
    pub timeouts: FrontendTimeouts,
    /// Each connection starts with a PROXY protocol header (v1 or v2) from a balancer in front,
    /// whose client address then stands for the connection's.
    pub accept_proxy: bool,
    /// `None`: plain TCP (http mode then also takes HTTP/2 with prior knowledge).
    pub tls: Option<Tls>,
    /// http only: the rules, the shorthands (`routes`, header sets, `redirect_https`) among
    /// them.
    pub rules: RuleSet,
    /// http only: the bodies of tandem's own answers, by status.
    pub error_pages: ErrorPages,
    /// http only: the header carrying each request's ID, made when a request comes without
    /// one; `None`: no IDs.
    pub request_id: Option<HeaderName>,
    /// What one client address may hold at once; `None`: no per-client limit.
    pub client_limits: Option<ClientLimits>,
    /// http only: servers' responses compressed for clients that accept it.
    pub compression: Option<Compression>,
    /// http only: the protocols (in lower case) a client may switch to with `Upgrade`, its
    /// connection then tunnelled to the server; an upgrade to anything else is not passed on.
    pub upgrades: Vec<String>,
    /// TCP keepalive on accepted connections; `None`: off.
    pub tcp_keepalive: Option<TcpKeepalive>,
}

/// TCP keepalive probes on a connection (SO_KEEPALIVE); `None` leaves a setting to the kernel
/// (net.ipv4.tcp_keepalive_time, _intvl, _probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpKeepalive {
    /// Idle time before the first probe (TCP_KEEPIDLE).
    pub idle: Option<Duration>,
    /// Between probes (TCP_KEEPINTVL).
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (TCP_KEEPCNT).
    pub count: Option<u32>,
}

/// TLS termination on a frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Picked by SNI against each certificate's names; the first is the default.
    pub certificates: Vec<CertificateFiles>,
    /// Protocols offered by ALPN, in order of preference.
    pub alpn: Vec<Alpn>,
    /// The TLS versions served, from `min_version` to `max_version`: 1.2 and 1.3 by default.
    pub versions: TlsVersions,
    /// In order of preference; `None`: rustls's default list.
    pub cipher_suites: Option<Vec<rustls::CipherSuite>>,
    /// The server's order of `cipher_suites` wins over the client's.
    pub prefer_server_ciphers: bool,
    pub session_tickets: SessionTickets,
    /// mTLS: client certificates checked against a CA.
    pub client_auth: Option<ClientAuth>,
}

/// The TLS versions a frontend serves: `min` to `max`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    pub min: TlsVersion,
    pub max: TlsVersion,
}

impl TlsVersions {
    pub const ALL: TlsVersions = TlsVersions {
        min: TlsVersion::Tls12,
        max: TlsVersion::Tls13,
    };

    pub fn contains(self, version: TlsVersion) -> bool {
        self.min <= version && version <= self.max
    }
}

/// In order, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// How a frontend resumes TLS sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTickets {
    /// Stateless tickets under keys made at each (re)load, so a reload or a failover costs
    /// clients one full handshake.
    Ephemeral,
    /// Stateless tickets under the keys of a file, which both nodes of a pair share.
    KeyFile(PathBuf),
    /// No tickets: only sessions kept in this process's memory resume.
    Off,
}

/// `client_auth:` on a frontend's `tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM certificates of the CAs client certificates must chain to.
    pub ca: PathBuf,
    /// Whether a client without a certificate is refused at the handshake; when not, its
    /// requests go on without one (rules can tell).
    pub required: bool,
}

/// A certificate chain and its private key, as PEM files. Relative paths in the config file
/// are resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A DER OCSP response stapled to handshakes serving this certificate (frontends only).
    pub ocsp: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    H2,
    Http11,
}

impl Alpn {
    /// The protocol's ALPN identifier.
    pub fn id(self) -> &'static [u8] {
        match self {
            Alpn::H2 => b"h2",
            Alpn::Http11 => b"http/1.1",
        }
    }
}

/// A routing rule: a request matching every condition given goes to `backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub host: Option<HostMatch>,
    /// Starts with `/`; matched byte for byte against the request path.
    pub path_prefix: Option<String>,
    /// Index into `Config::backends`.
    pub backend: usize,
}

/// A host condition, compared without the port and case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Lowercase: `static.example.com`.
    Exact(String),
    /// `*.example.com` is kept as `.example.com`: any name ending in it (any depth of
    /// subdomain), but not `example.com` itself.
    Suffix(String),
}

impl HostMatch {
    /// Case-insensitive, as host names are; the config holds them lowercase already.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(name) => host.eq_ignore_ascii_case(name),
            // The suffix starts with its dot, so a longer host has at least one more label.
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// Header changes: `remove` first, then `set` (replacing any value already there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendTimeouts {
    /// Time a client has to send a complete request head, counted from when the connection is
    /// ready for one (so it also bounds keep-alive idle time, like HAProxy's `timeout http-request`).
    pub request_header: Duration,
    /// Inactivity on the client connection (no byte either way) before it is closed.
    pub client_idle: Duration,
    /// Inactivity on an upgraded connection (WebSocket), both sides together, before it is
    /// closed.
    pub tunnel: Duration,
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
    /// http only: keep a client on the server that first answered it.
    pub persistence: Option<Persistence>,
    /// Each connection to a server starts with a PROXY protocol header naming the client.
    pub send_proxy: Option<ProxyVersion>,
    /// What http requests are sent to servers with.
    pub protocol: UpstreamProtocol,
    /// How the servers named by DNS are resolved.
    pub resolve: Resolve,
    /// TLS to the servers as written on the backend; `Server::tls` overrides it key by key
    /// (`UpstreamTls::of`).
    pub tls: Option<UpstreamTlsKeys>,
    /// TCP keepalive on connections to servers; `None`: off.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// While no primary server is up: balance over every backup server that is up, rather than
    /// use the first one up in list order (HAProxy's `option allbackups`).
    pub all_backups: bool,
    /// How long a request or connection may wait for a server with `max_connections` to have
    /// room before it is refused (503 in http mode, closed in tcp mode).
    pub queue_timeout: Duration,
    /// How many may wait at once over the backend; one more is refused at once.
    pub queue_size: usize,
    /// `on_down: shutdown_sessions`: a server marked down has its sessions closed.
    pub shutdown_sessions_on_down: bool,
    /// `on_up: shutdown_backup_sessions`: when a primary server comes up and the backups stop
    /// taking traffic, their sessions are closed.
    pub shutdown_backup_sessions_on_up: bool,
}

impl Backend {
    /// Whether any server is named by DNS.
    pub fn resolves(&self) -> bool {
        (self.servers.iter()).any(|server| matches!(server.address, ServerAddress::Name(_)))
    }
}

/// `resolve:` of a backend. A name is looked up again when its answer's TTL runs out, but no
/// sooner than `min_interval` and no later than `interval`; a failed lookup is tried again
/// after `min_interval`, doubling up to `interval`, and keeps the addresses last known.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolve {
    pub interval: Duration,
    pub min_interval: Duration,
    /// For one lookup, all of its tries.
    pub timeout: Duration,
    /// Empty: the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    pub prefer: Family,
    /// Addresses taken from one answer, so one answer makes at most this many servers.
    pub max_addresses: usize,
}

impl Default for Resolve {
    fn default() -> Self {
        Resolve {
            interval: Duration::from_secs(30),
            min_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            nameservers: Vec::new(),
            prefer: Family::Ipv4,
            max_addresses: 16,
        }
    }
}

/// Which address family a name is looked up in first; the other is asked only when the first
/// has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// `tls:` on a backend or a server, as written: a key left out falls back to the backend's, then
/// to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsKeys {
    pub verify: Option<bool>,
    pub ca: Option<PathBuf>,
    pub sni: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub alpn: Option<Vec<Alpn>>,
}

/// TLS to one server, its keys merged and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// On unless `verify: false`: the server's certificate must chain to `ca` and be valid for
    /// `sni` (or, without one, for the server's IP address).
    pub verify: bool,
    /// PEM CA certificates to trust; `None`: the system's (/etc/ssl/certs).
    pub ca: Option<PathBuf>,
    /// Sent as SNI and verified against; `None`: no SNI is sent (a server named by IP address).
    pub sni: Option<String>,
    /// Presented when the server asks for a client certificate.
    pub client_certificate: Option<CertificateFiles>,
    /// Offered by ALPN, in order; by default the backend's `protocol`.
    pub alpn: Vec<Alpn>,
}

impl UpstreamTls {
    /// The TLS a server of `backend` is connected with: the server's `tls` keys over the
    /// backend's, or `None` when neither has `tls`. A `client_cert` without its `client_key`
    /// (rejected by validation) presents none.
    pub fn of(backend: &Backend, server: &Server) -> Option<UpstreamTls> {
        let empty = UpstreamTlsKeys::default();
        let (own, shared) = match (&server.tls, &backend.tls) {
            (None, None) => return None,
            (own, shared) => (
                own.as_ref().unwrap_or(&empty),
                shared.as_ref().unwrap_or(&empty),
            ),
        };
        let client_cert = own.client_cert.as_ref().or(shared.client_cert.as_ref());
        let client_key = own.client_key.as_ref().or(shared.client_key.as_ref());
        let default_alpn = match backend.protocol {
            UpstreamProtocol::Http11 => Alpn::Http11,
            UpstreamProtocol::H2 => Alpn::H2,
        };
        Some(UpstreamTls {
            verify: own.verify.or(shared.verify).unwrap_or(true),
            ca: own.ca.clone().or_else(|| shared.ca.clone()),
            sni: own.sni.clone().or_else(|| shared.sni.clone()),
            client_certificate: match (client_cert, client_key) {
                (Some(cert), Some(key)) => Some(CertificateFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ocsp: None,
                }),
                _ => None,
            },
            alpn: (own.alpn.clone())
                .or_else(|| shared.alpn.clone())
                .unwrap_or_else(|| vec![default_alpn]),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// HAProxy's `cookie <name> insert indirect nocache`: a response from a server the client was
    /// not pinned to sets the cookie `<name>=<server name>` (and `Cache-Control: private`); a
    /// request carrying it goes to that server while it is up, and the cookie is taken out of
    /// the request before it is sent.
    Cookie { name: String },
}

/// The PROXY protocol version a backend sends, as the codec that writes it names it.
pub use crate::codec::proxy_protocol::ProxyVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http11,
    /// HTTP/2 with prior knowledge (h2c): requests share connections, trailers pass (gRPC).
    H2,
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
    /// Whether checks go over TLS (with the server's `tls` settings, or the defaults);
    /// `None`: when the server has `tls`.
    pub tls: Option<bool>,
    /// The name a TLS check sends and verifies, in place of the server's `tls.sni`.
    pub sni: Option<String>,
    /// Checked instead of the server's own port, as a database's health agent on another port
    /// (Patroni, Galera's clustercheck).
    pub port: Option<u16>,
    /// Checked instead of the server's own IP.
    pub address: Option<IpAddr>,
}

impl HealthCheck {
    /// Where the check connects for a server at `server`.
    pub fn target(&self, server: SocketAddr) -> SocketAddr {
        SocketAddr::new(
            self.address.unwrap_or(server.ip()),
            self.port.unwrap_or(server.port()),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// A connection is enough.
    Tcp,
    Http {
        path: String,
        /// Host header sent; `None` sends the server's address.
        host: Option<String>,
        expect: StatusMatch,
        method: http::Method,
        /// Sent after tandem's own (Host, User-Agent).
        headers: Vec<(HeaderName, HeaderValue)>,
        /// Looked for in the first [`CHECK_BODY_LIMIT`] bytes of the body.
        expect_body: Option<BytesMatch>,
    },
    /// `type: tcp` with `steps`: after connecting, each step in order.
    TcpSteps(Vec<CheckStep>),
    /// `PING` answered by `+PONG`.
    Redis,
    /// The server's greeting, and with a user a login and COM_QUIT.
    Mysql { user: Option<String> },
    /// A StartupMessage answered by an authentication request or ReadyForQuery.
    Postgres {
        user: String,
        database: Option<String>,
    },
}

/// How much of a server's answer a check reads while looking for what it expects.
pub const CHECK_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum CheckStep {
    Send(Vec<u8>),
    /// Wait until what the server sent since the previous match holds this.
    Expect(BytesMatch),
}

/// What a check looks for in a server's bytes.
#[derive(Debug, Clone)]
pub enum BytesMatch {
    /// The bytes appear (text as written, or `hex`).
    Contains(Vec<u8>),
    Regex(regex::bytes::Regex),
}

impl BytesMatch {
    /// Where the first match in `haystack` ends, if there is one.
    pub fn find_end(&self, haystack: &[u8]) -> Option<usize> {
        match self {
            BytesMatch::Contains(needle) => {
                memchr::memmem::find(haystack, needle).map(|start| start + needle.len())
            }
            BytesMatch::Regex(regex) => regex.find(haystack).map(|found| found.end()),
        }
    }
}

impl PartialEq for BytesMatch {
    /// Regexes don't compare: two are alike when written alike.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (BytesMatch::Contains(one), BytesMatch::Contains(other)) => one == other,
            (BytesMatch::Regex(one), BytesMatch::Regex(other)) => one.as_str() == other.as_str(),
            _ => false,
        }
    }
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
    pub address: ServerAddress,
    /// 0..=256; 0 drains the server (no new traffic).
    pub weight: u32,
    /// This server's `tls` keys, over its backend's.
    pub tls: Option<UpstreamTlsKeys>,
    /// Takes traffic only while no primary (non-backup) server of its backend is up.
    pub backup: bool,
    /// Requests (http) or connections (tcp) in flight to it at most; more wait in the backend's
    /// queue. `None`: no limit.
    pub max_connections: Option<u32>,
    /// Its own `slow_start` or else its backend's: after coming back up, its weight ramps from
    /// almost nothing to `weight` over this time.
    pub slow_start: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    Ip(SocketAddr),
    /// Looked up at run time: each address of the answer is a server of its own, named after
    /// this one (`web-1`, `web-2`...), as HAProxy's `server-template` does.
    Name(DnsName),
}

impl From<SocketAddr> for ServerAddress {
    fn from(address: SocketAddr) -> Self {
        ServerAddress::Ip(address)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsName {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for DnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One virtual router: a VRID on an interface and the VIPs its master holds.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    /// 1..=255; the same on every node of the group.
    pub virtual_router_id: u8,
    /// 1..=255; 255 marks the address owner.
    pub priority: u8,
    /// v2: whole seconds; v3: a multiple of 10 ms up to 40.95 s.
    pub advert_interval: Duration,
    pub version: VrrpVersion,
    /// `false` is keepalived's `nopreempt`.
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// v2 simple-text password (`authentication: { type: pass }`), at most 8 bytes.
    pub password: Option<String>,
    /// `None`: the interface's primary address (IPv4) or link-local address (IPv6).
    pub source_ip: Option<IpAddr>,
    /// Non-empty: adverts go by unicast to these, and only these are heard.
    pub unicast_peers: Vec<IpAddr>,
    /// All of one address family; IPv6 needs version 3.
    pub virtual_ips: Vec<VirtualIp>,
    /// v3 over IPv4 only: whether the checksum covers the IPv4 pseudo-header (keepalived and FRR
    /// do; RFC 9568 and Cisco don't). Received adverts are accepted either way.
    pub v3_checksum_pseudo_header: bool,
    /// Adverts, announcements and ARP/ND answers for the VIPs carry 00-00-5E-00-01-{VRID}
    /// (IPv6: 00-00-5E-00-02-{VRID}) from a macvlan on `interface` that holds the VIPs.
    pub virtual_mac: bool,
    /// What moves the effective priority or puts the instance in Fault (`track:`).
    pub track: Vec<Track>,
    /// Run on each state change: the instance's `notify:`, else `vrrp.notify`.
    pub notify: Option<Notify>,
    /// The sync group this instance belongs to, if any (at most one).
    pub sync_group: Option<SyncGroup>,
}

/// A state-change hook: a program run without a shell, detached from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// An absolute path to an executable file (checked at load).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// After this the hook's process group is killed.
    pub timeout: Duration,
}

/// Instances that change state together: a Fault in one holds all in Fault, and none is
/// Master while another follows a peer's Master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    pub name: String,
    /// Member instance names, as written.
    pub instances: Vec<String>,
}

/// One `track:` item: something the instance depends on, and what its failure does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub target: TrackTarget,
    pub weight: TrackWeight,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackTarget {
    /// Failing while the frontend's listeners cannot accept; index into `Config::frontends`.
    Frontend(usize),
    /// Failing while fewer than `min_healthy` of the backend's servers are up.
    Backend {
        /// Index into `Config::backends`.
        backend: usize,
        min_healthy: usize,
    },
    /// Failing while the link is down (not running: no carrier, or administratively down).
    Interface(String),
}

/// keepalived's weight semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackWeight {
    /// No weight (or 0): Fault while failing.
    Fault,
    /// -254..=254 except 0: a negative one is subtracted while failing, a positive one added
    /// while fine.
    Points(i16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpVersion {
    V2,
    V3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualIp {
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// Per-client limits of a frontend. The client is the PROXY header's source address with
/// `accept_proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Connections one client address may have open at once (at least 1); one more is closed
    /// as soon as it is accepted (and its PROXY header read).
    pub connections: u32,
}

/// A rule's `rate_limit:`: each key may send `burst` requests at once, and one more every
/// `period / rate` after that (GCRA, a token bucket of `burst` refilled at the rate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub key: RateKey,
    /// Requests per `period`; at least 1, and at most one per nanosecond.
    pub rate: u32,
    pub period: Duration,
    /// Requests a key with full credit may send back to back; at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// The steady spacing of requests: `period / rate`, at least a nanosecond.
    pub fn emission_interval(&self) -> Duration {
        self.period / self.rate
    }
}

/// What a rate limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The client address (the PROXY header's source with `accept_proxy`).
    Client,
    /// The value of this request header; requests without it share one key.
    Header(HeaderName),
}

/// Response compression on an http frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// Distinct; the first wins among those a client weighs the same.
    pub algorithms: Vec<Algorithm>,
    /// The Content-Types compressed.
    pub types: Vec<MediaRange>,
    /// A response whose Content-Length is below this goes as it is (one without a length, a
    /// stream, is compressed whatever its size).
    pub min_size: u64,
}

/// A content coding tandem compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Zstd,
    Brotli,
    Gzip,
}

impl Algorithm {
    /// Its name in the config, Accept-Encoding and Content-Encoding.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Zstd => "zstd",
            Algorithm::Brotli => "br",
            Algorithm::Gzip => "gzip",
        }
    }
}

/// A media type pattern, lowercase: `text/html`, or `text/*` for any subtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    pub main: String,
    /// `None`: any subtype.
    pub subtype: Option<String>,
}
