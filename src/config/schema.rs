//! The config file as written: what serde reads before validation.
//!
//! No struct denies unknown keys itself: the reader collects every one (`yaml::deserialize`)
//! and reports them all, with the keys allowed there (`known_keys`), so a typo is an error
//! rather than a silently ignored setting, and hides no other error. Addresses, durations and status matches stay raw text here: their errors are
//! collected during validation instead of stopping deserialization at the first one. `Option`
//! marks a key that may be left out; validation fills in the default.

pub use super::recover::Unit;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The whole file. A new top-level section is a new field here. Each section and each list item
/// is a recovery `Unit`: one that does not fit is reported and skipped, and the others still
/// read.
#[derive(Debug, Deserialize)]
pub struct FileSpec {
    pub node: Unit<NodeSpec>,
    pub log: Option<Unit<LogSpec>>,
    #[serde(default)]
    pub frontends: Vec<Unit<FrontendSpec>>,
    #[serde(default)]
    pub backends: Vec<Unit<BackendSpec>>,
    pub vrrp: Option<VrrpSpec>,
    pub admin: Option<Unit<AdminSpec>>,
    pub access_log: Option<Unit<AccessLogSpec>>,
    pub announce: Option<Unit<AnnounceSpec>>,
}

#[derive(Debug, Deserialize)]
pub struct AdminSpec {
    pub listen: String,
    pub token_file: Option<String>,
    pub socket: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AccessLogSpec {
    pub format: Option<LogFormatSpec>,
    pub path: Option<String>,
    pub syslog: Option<SyslogSpec>,
}

/// `format: json`, `format: text` or `format: { template: "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormatSpec {
    Json,
    Text,
    Template(String),
}

/// `access_log.syslog`, as written: `{ address: "udp://198.51.100.1:514", facility: local0 }`.
#[derive(Debug, Deserialize)]
pub struct SyslogSpec {
    pub address: String,
    pub facility: Option<String>,
    pub level: Option<String>,
    pub hostname: Option<String>,
    pub tag: Option<String>,
    pub max_length: Option<IntegerSpec>,
}

#[derive(Debug, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub threads: Option<usize>,
    pub shutdown_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LogSpec {
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FrontendSpec {
    pub name: String,
    pub listen: String,
    pub mode: ModeSpec,
    /// Required unless `redirect_https` answers every request.
    pub backend: Option<String>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub timeouts: FrontendTimeoutsSpec,
    pub accept_proxy: Option<bool>,
    pub tls: Option<TlsSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    pub request_headers: Option<HeaderRulesSpec>,
    pub response_headers: Option<HeaderRulesSpec>,
    pub redirect_https: Option<IntegerSpec>,
    /// Named matchers, for rules to refer to.
    pub matchers: Option<BTreeMap<String, MatcherSpec>>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Status code to the file answering it when tandem answers itself.
    pub error_pages: Option<BTreeMap<IntegerSpec, String>>,
    pub request_id: Option<RequestIdSpec>,
    pub client_limits: Option<ClientLimitsSpec>,
    pub compression: Option<CompressionSpec>,
    /// The protocols a client may switch to with `Upgrade`; `None`: WebSocket only.
    pub upgrades: Option<Vec<String>>,
    pub tcp_keepalive: Option<TcpKeepaliveSpec>,
}

/// A condition on a request; every key given must hold.
#[derive(Debug, Default, Deserialize)]
pub struct MatcherSpec {
    pub host: Option<OneOrMany>,
    pub host_regex: Option<String>,
    pub path: Option<OneOrMany>,
    pub path_prefix: Option<OneOrMany>,
    pub path_regex: Option<String>,
    pub method: Option<OneOrMany>,
    pub header: Option<BTreeMap<String, ValueTestSpec>>,
    pub query: Option<BTreeMap<String, ValueTestSpec>>,
    pub cookie: Option<BTreeMap<String, ValueTestSpec>>,
    pub client: Option<OneOrMany>,
    pub client_file: Option<String>,
    pub sni: Option<OneOrMany>,
    pub not: Option<Box<MatchSpec>>,
    pub any: Option<Vec<MatchSpec>>,
    pub client_cert: Option<ClientCertSpec>,
}

/// A matcher's `client_cert:`: a test on the verified client certificate of the connection.
#[derive(Debug, Deserialize)]
pub struct ClientCertSpec {
    /// On the subject as RFC 4514 text (`CN=alice,O=Example`); `true`: a certificate was
    /// presented, `false`: none.
    pub subject: ValueTestSpec,
}

/// A matcher where one is expected: a named matcher's name, or one written in place.
#[derive(Debug)]
pub enum MatchSpec {
    Name(String),
    Inline(Box<MatcherSpec>),
}

/// A header's, query parameter's or cookie's test: text (`value`, `~regex`, `!...`), or
/// `true`/`false` for present/absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueTestSpec {
    Text(String),
    Present(bool),
}

/// One value or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

#[derive(Debug, Default, Deserialize)]
pub struct RuleSpec {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Option<MatchSpec>,
    pub backend: Option<String>,
    pub deny: Option<DenySpec>,
    pub redirect: Option<RedirectSpec>,
    pub respond: Option<RespondSpec>,
    pub rewrite: Option<RewriteSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    pub set_request_headers: Option<BTreeMap<String, ScalarText>>,
    pub remove_request_headers: Option<Vec<String>>,
    pub set_response_headers: Option<BTreeMap<String, ScalarText>>,
    pub remove_response_headers: Option<Vec<String>>,
}

/// `deny: 403`, or `deny: { status, body }`.
#[derive(Debug)]
pub enum DenySpec {
    Status(IntegerSpec),
    Answer(RespondSpec),
}

#[derive(Debug, Deserialize)]
pub struct RedirectSpec {
    pub location: String,
    pub code: Option<IntegerSpec>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RespondSpec {
    pub status: Option<IntegerSpec>,
    pub headers: Option<BTreeMap<String, ScalarText>>,
    pub body: Option<String>,
    pub body_file: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RewriteSpec {
    pub path: Option<String>,
    pub path_regex: Option<PathRegexSpec>,
}

#[derive(Debug, Deserialize)]
pub struct PathRegexSpec {
    pub from: String,
    pub to: String,
}

/// `request_id: true`, or `request_id: { header: X-Trace-ID }`.
#[derive(Debug, Default)]
pub struct RequestIdSpec {
    pub header: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TlsSpec {
    /// Left out and empty are the same mistake, reported by validation.
    #[serde(default)]
    pub certificates: Vec<CertificateSpec>,
    pub alpn: Option<Vec<AlpnSpec>>,
    pub min_version: Option<TlsVersionSpec>,
    pub max_version: Option<TlsVersionSpec>,
    /// Names as IANA or OpenSSL write them; an item may hold several joined by `:`.
    pub cipher_suites: Option<OneOrMany>,
    pub prefer_server_ciphers: Option<bool>,
    pub session_tickets: Option<bool>,
    pub session_ticket_keys: Option<String>,
    pub client_auth: Option<ClientAuthSpec>,
}

#[derive(Debug, Deserialize)]
pub struct CertificateSpec {
    pub cert: String,
    pub key: String,
    /// A DER OCSP response to staple.
    pub ocsp: Option<String>,
}

/// `client_auth:` on a frontend's `tls`: client certificates checked against `ca`.
#[derive(Debug, Deserialize)]
pub struct ClientAuthSpec {
    pub ca: String,
    pub required: Option<bool>,
}

/// A TLS version as written: `"1.2"`, or `1.2`, which YAML reads as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsVersionSpec(pub String);

impl<'de> Deserialize<'de> for TlsVersionSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;

        impl Visitor<'_> for VersionVisitor {
            type Value = TlsVersionSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TLS version, \"1.2\" or \"1.3\"")
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<TlsVersionSpec, E> {
                Ok(TlsVersionSpec(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<TlsVersionSpec, E> {
                Ok(TlsVersionSpec(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<TlsVersionSpec, E> {
                Ok(TlsVersionSpec(value.to_string()))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<TlsVersionSpec, E> {
                Ok(TlsVersionSpec(value.to_string()))
            }
        }

        deserializer.deserialize_any(VersionVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AlpnSpec {
    #[serde(rename = "h2")]
    H2,
    #[serde(rename = "http/1.1")]
    Http11,
}

#[derive(Debug, Deserialize)]
pub struct RouteSpec {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub backend: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct HeaderRulesSpec {
    /// Sorted by name here; the order of `set` doesn't matter, as each name is set once.
    #[serde(default)]
    pub set: BTreeMap<String, ScalarText>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSpec {
    Http,
    Tcp,
}

#[derive(Debug, Default, Deserialize)]
pub struct FrontendTimeoutsSpec {
    pub request_header: Option<String>,
    pub client_idle: Option<String>,
    pub tunnel: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct BackendSpec {
    pub name: String,
    pub balance: Option<BalanceSpec>,
    /// Only meaningful with `balance: uri_hash`.
    pub hash_query: Option<bool>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub retries: Option<u32>,
    pub health_check: Option<HealthCheckSpec>,
    /// Left out and empty are the same mistake, reported by validation.
    #[serde(default)]
    pub servers: Vec<ServerSpec>,
    pub persistence: Option<PersistenceSpec>,
    pub send_proxy: Option<ProxyVersionSpec>,
    pub protocol: Option<UpstreamProtocolSpec>,
    /// How servers named by DNS are resolved and re-resolved.
    pub resolve: Option<ResolveSpec>,
    /// TLS to the servers; a server's own `tls` overrides it key by key.
    pub tls: Option<UpstreamTlsSpec>,
    pub tcp_keepalive: Option<TcpKeepaliveSpec>,
    pub all_backups: Option<bool>,
    pub queue_timeout: Option<String>,
    pub queue_size: Option<u32>,
    pub slow_start: Option<String>,
    pub on_down: Option<OnDownSpec>,
    pub on_up: Option<OnUpSpec>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResolveSpec {
    pub interval: Option<String>,
    pub min_interval: Option<String>,
    pub timeout: Option<String>,
    pub nameservers: Option<Vec<String>>,
    pub prefer: Option<FamilySpec>,
    pub max_addresses: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilySpec {
    Ipv4,
    Ipv6,
}

/// `tls:` on a backend or a server: how tandem connects to servers over TLS.
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamTlsSpec {
    pub verify: Option<bool>,
    pub ca: Option<String>,
    pub sni: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub alpn: Option<Vec<AlpnSpec>>,
}

/// What happens to a server's sessions when it is marked down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDownSpec {
    /// They carry on until they end (the default).
    KeepSessions,
    ShutdownSessions,
}

/// What happens to the backup servers' sessions when a primary comes back up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUpSpec {
    /// They carry on until they end (the default).
    KeepBackupSessions,
    ShutdownBackupSessions,
}

#[derive(Debug, Deserialize)]
pub struct PersistenceSpec {
    #[serde(rename = "type")]
    pub kind: PersistenceKindSpec,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistenceKindSpec {
    Cookie,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyVersionSpec {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UpstreamProtocolSpec {
    #[serde(rename = "http/1.1")]
    Http11,
    #[serde(rename = "h2")]
    H2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceSpec {
    RoundRobin,
    WeightedRoundRobin,
    LeastConn,
    SourceHash,
    UriHash,
}

#[derive(Debug, Deserialize)]
pub struct HealthCheckSpec {
    #[serde(rename = "type")]
    pub kind: CheckKindSpec,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// http checks only, like `host` and `expect_status`.
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect_status: Option<StatusSpec>,
    /// The check's connection over TLS; left out, it follows whether the server has `tls`.
    pub tls: Option<bool>,
    /// The name a TLS check sends and verifies in place of the server's `tls.sni`.
    pub sni: Option<String>,
    /// Where to check instead of the server's own port and IP (HAProxy's `port` and `addr`).
    pub port: Option<IntegerSpec>,
    pub address: Option<String>,
    /// tcp checks: what to send and what to expect, in order.
    pub steps: Option<Vec<CheckStepSpec>>,
    /// http checks, beside `path`.
    pub method: Option<String>,
    pub headers: Option<BTreeMap<String, ScalarText>>,
    pub expect_body: Option<PatternSpec>,
    /// mysql and postgres checks: who logs in (no password), and postgres's database.
    pub user: Option<String>,
    pub database: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKindSpec {
    Http,
    Tcp,
    Mysql,
    Postgres,
    Redis,
}

/// One step of a tcp check: exactly one of the two, which validation checks.
#[derive(Debug, Deserialize)]
pub struct CheckStepSpec {
    pub send: Option<PatternSpec>,
    pub expect: Option<PatternSpec>,
}

/// Bytes to send or to look for: text as written, or `{ regex: ... }` or `{ hex: ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternSpec {
    Text(String),
    Map(PatternMapSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PatternMapSpec {
    pub regex: Option<String>,
    pub hex: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ServerSpec {
    pub name: String,
    pub address: String,
    pub weight: Option<u32>,
    pub tls: Option<UpstreamTlsSpec>,
    pub backup: Option<bool>,
    pub max_connections: Option<u32>,
    pub slow_start: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VrrpSpec {
    #[serde(default)]
    pub instances: Vec<Unit<VrrpInstanceSpec>>,
    /// The hook of every instance that has no `notify:` of its own.
    pub notify: Option<NotifySpec>,
    #[serde(default)]
    pub sync_groups: Vec<SyncGroupSpec>,
}

/// `notify:` on `vrrp:` or an instance: a program and its arguments, run on each state change.
#[derive(Debug, Deserialize)]
pub struct NotifySpec {
    /// The program's absolute path first, then its arguments; no shell reads it.
    #[serde(default)]
    pub command: Vec<String>,
    pub timeout: Option<String>,
}

/// One `sync_groups:` item: instances that change state together (keepalived's
/// `vrrp_sync_group`).
#[derive(Debug, Deserialize)]
pub struct SyncGroupSpec {
    pub name: String,
    #[serde(default)]
    pub instances: Vec<String>,
}

/// One virtual router. A new per-instance setting is a new field here and a new step in
/// `Validator::vrrp_instance`.
#[derive(Debug, Deserialize)]
pub struct VrrpInstanceSpec {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: IntegerSpec,
    pub priority: Option<IntegerSpec>,
    pub advert_interval: Option<String>,
    pub version: Option<IntegerSpec>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<String>,
    /// Version 2 only.
    pub authentication: Option<AuthenticationSpec>,
    pub source_ip: Option<String>,
    #[serde(default)]
    pub unicast_peers: Vec<String>,
    /// Left out and empty are the same mistake, reported by validation.
    #[serde(default)]
    pub virtual_ips: Vec<String>,
    /// Version 3 over IPv4 only.
    pub v3_checksum: Option<V3ChecksumSpec>,
    /// RFC 9568 §7.2's virtual MAC, through a macvlan tandem creates (keepalived `use_vmac`).
    pub virtual_mac: Option<bool>,
    #[serde(default)]
    pub track: Vec<TrackSpec>,
    /// Overrides `vrrp.notify` for this instance.
    pub notify: Option<NotifySpec>,
}

/// One `track:` item: exactly one of `backend`, `frontend` and `interface`, checked by
/// validation so the message can say which.
#[derive(Debug, Deserialize)]
pub struct TrackSpec {
    pub backend: Option<String>,
    pub frontend: Option<String>,
    pub interface: Option<String>,
    /// Backends only; defaults to 1.
    pub min_healthy: Option<IntegerSpec>,
    /// None or 0: Fault while failing.
    pub weight: Option<IntegerSpec>,
}

#[derive(Debug, Deserialize)]
pub struct AuthenticationSpec {
    /// Raw text, so that `ah` gets its own explanation rather than serde's "unknown variant".
    #[serde(rename = "type")]
    pub kind: String,
    /// Any scalar is taken as written, so an unquoted `0011` stays `0011`.
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum V3ChecksumSpec {
    PseudoHeader,
    NoPseudoHeader,
}

/// An integer as its decimal text, so that one out of range (`256`, `-1`, or larger than any
/// machine integer) reaches validation and is reported as written instead of stopping
/// deserialization. Anything but an integer is still a type error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IntegerSpec(pub String);

impl<'de> Deserialize<'de> for IntegerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;

        impl Visitor<'_> for IntegerVisitor {
            type Value = IntegerSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<IntegerSpec, E> {
                Ok(IntegerSpec(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<IntegerSpec, E> {
                Ok(IntegerSpec(value.to_string()))
            }

            fn visit_i128<E: de::Error>(self, value: i128) -> Result<IntegerSpec, E> {
                Ok(IntegerSpec(value.to_string()))
            }

            fn visit_u128<E: de::Error>(self, value: u128) -> Result<IntegerSpec, E> {
                Ok(IntegerSpec(value.to_string()))
            }
        }

        deserializer.deserialize_any(IntegerVisitor)
    }
}

/// A string, integer or boolean as its text, so that a header value YAML reads as a number
/// (`X-Port: 8443`) is taken as written. A float is refused: `1.10` would come back as `1.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<ScalarText, E> {
                Ok(ScalarText(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(value.to_string()))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(value.to_string()))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `expect_status` as written: YAML gives `200` as a number and `2xx` as a string, and both
/// are checked by validation. A number is kept as its decimal text so that any integer, however
/// large, is reported as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSpec {
    Number(String),
    Text(String),
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;

        impl Visitor<'_> for StatusVisitor {
            type Value = StatusSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code such as 200 or a class such as 2xx")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Number(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Number(value.to_string()))
            }

            fn visit_i128<E: de::Error>(self, value: i128) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Number(value.to_string()))
            }

            fn visit_u128<E: de::Error>(self, value: u128) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Number(value.to_string()))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<StatusSpec, E> {
                Ok(StatusSpec::Text(value.to_string()))
            }
        }

        deserializer.deserialize_any(StatusVisitor)
    }
}

/// A type that YAML writes either as a scalar or as a mapping, read as `Self` from either.
trait ScalarOrMap: Sized {
    const EXPECTING: &'static str;
    fn scalar<E: de::Error>(text: String, kind: Scalar) -> Result<Self, E>;
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// What kind of scalar YAML gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Bool,
    Integer,
    Text,
}

struct ScalarOrMapVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: ScalarOrMap> Visitor<'de> for ScalarOrMapVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<T, E> {
        T::scalar(value.to_string(), Scalar::Bool)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        T::scalar(value.to_string(), Scalar::Integer)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        T::scalar(value.to_string(), Scalar::Integer)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        T::scalar(value.to_string(), Scalar::Text)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::map(map)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        let _ = seq;
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

fn scalar_or_map<'de, D: Deserializer<'de>, T: ScalarOrMap>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(ScalarOrMapVisitor(std::marker::PhantomData))
}

/// Reads a mapping as `T`, through the reader's own map access so that its unknown keys are
/// still reported.
fn inline<'de, T: Deserialize<'de>, A: de::MapAccess<'de>>(map: A) -> Result<T, A::Error> {
    T::deserialize(de::value::MapAccessDeserializer::new(map))
}

impl ScalarOrMap for MatchSpec {
    const EXPECTING: &'static str = "a matcher's name or a matcher";
    fn scalar<E: de::Error>(text: String, kind: Scalar) -> Result<Self, E> {
        match kind {
            Scalar::Text => Ok(MatchSpec::Name(text)),
            _ => Err(E::invalid_type(
                de::Unexpected::Str(&text),
                &Self::EXPECTING,
            )),
        }
    }
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(MatchSpec::Inline(Box::new(inline(map)?)))
    }
}

impl ScalarOrMap for ValueTestSpec {
    const EXPECTING: &'static str = "a value, ~regex, !value, or true/false for present/absent";
    fn scalar<E: de::Error>(text: String, kind: Scalar) -> Result<Self, E> {
        Ok(match kind {
            Scalar::Bool => ValueTestSpec::Present(text == "true"),
            _ => ValueTestSpec::Text(text),
        })
    }
    fn map<'de, A: de::MapAccess<'de>>(_map: A) -> Result<Self, A::Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::Map,
            &Self::EXPECTING,
        ))
    }
}

impl ScalarOrMap for PatternSpec {
    const EXPECTING: &'static str = "text, { regex: ... } or { hex: ... }";
    fn scalar<E: de::Error>(text: String, _kind: Scalar) -> Result<Self, E> {
        Ok(PatternSpec::Text(text))
    }
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(PatternSpec::Map(inline(map)?))
    }
}

impl ScalarOrMap for DenySpec {
    const EXPECTING: &'static str = "a status code, or { status, body }";
    fn scalar<E: de::Error>(text: String, kind: Scalar) -> Result<Self, E> {
        match kind {
            Scalar::Integer => Ok(DenySpec::Status(IntegerSpec(text))),
            _ => Err(E::invalid_type(
                de::Unexpected::Str(&text),
                &Self::EXPECTING,
            )),
        }
    }
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Ok(DenySpec::Answer(inline(map)?))
    }
}

impl ScalarOrMap for RequestIdSpec {
    const EXPECTING: &'static str = "true, or { header: NAME }";
    fn scalar<E: de::Error>(text: String, kind: Scalar) -> Result<Self, E> {
        match (kind, text.as_str()) {
            (Scalar::Bool, "true") => Ok(RequestIdSpec::default()),
            _ => Err(E::invalid_value(
                de::Unexpected::Str(&text),
                &Self::EXPECTING,
            )),
        }
    }
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        #[derive(Deserialize)]
        struct Fields {
            header: Option<String>,
        }
        let fields: Fields = inline(map)?;
        Ok(RequestIdSpec {
            header: fields.header,
        })
    }
}

/// `tcp_keepalive:` on a frontend or backend: `true` for the kernel's timing, or
/// `{ idle, interval, count }` (each optional).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TcpKeepaliveSpec {
    /// `false` turns it off, as leaving it out does.
    pub enabled: bool,
    pub idle: Option<String>,
    pub interval: Option<String>,
    pub count: Option<u32>,
}

impl ScalarOrMap for TcpKeepaliveSpec {
    const EXPECTING: &'static str = "true, false, or { idle, interval, count }";
    fn scalar<E: de::Error>(text: String, kind: Scalar) -> Result<Self, E> {
        match kind {
            Scalar::Bool => Ok(TcpKeepaliveSpec {
                enabled: text == "true",
                ..TcpKeepaliveSpec::default()
            }),
            _ => Err(E::invalid_value(
                de::Unexpected::Str(&text),
                &Self::EXPECTING,
            )),
        }
    }
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        #[derive(Deserialize)]
        struct Fields {
            idle: Option<String>,
            interval: Option<String>,
            count: Option<u32>,
        }
        let fields: Fields = inline(map)?;
        Ok(TcpKeepaliveSpec {
            enabled: true,
            idle: fields.idle,
            interval: fields.interval,
            count: fields.count,
        })
    }
}

impl ScalarOrMap for LogFormatSpec {
    const EXPECTING: &'static str = "json, text, or { template: \"...\" }";
    fn scalar<E: de::Error>(text: String, _kind: Scalar) -> Result<Self, E> {
        match text.as_str() {
            "json" => Ok(LogFormatSpec::Json),
            "text" => Ok(LogFormatSpec::Text),
            _ => Err(E::invalid_value(
                de::Unexpected::Str(&text),
                &Self::EXPECTING,
            )),
        }
    }
    fn map<'de, A: de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        #[derive(Deserialize)]
        struct Fields {
            template: String,
        }
        let fields: Fields = inline(map)?;
        Ok(LogFormatSpec::Template(fields.template))
    }
}

macro_rules! deserialize_scalar_or_map {
    ($($type:ty),*) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                scalar_or_map(deserializer)
            }
        }
    )*};
}

deserialize_scalar_or_map!(
    MatchSpec,
    ValueTestSpec,
    DenySpec,
    RequestIdSpec,
    TcpKeepaliveSpec,
    PatternSpec,
    LogFormatSpec
);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![value.to_string()]))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(ScalarText(value)) = seq.next_element()? {
                    values.push(value);
                }
                Ok(OneOrMany(values))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

/// The keys a mapping of the file may have, by its field path with list indexes left out
/// (`backends[].servers[]`), for the message about a key that is none of them. A new struct
/// above is a new line here.
pub fn known_keys(path: &str) -> Option<&'static [&'static str]> {
    use super::recover::field_names as of;
    Some(match path {
        "" => of::<FileSpec>(),
        "node" => of::<NodeSpec>(),
        "log" => of::<LogSpec>(),
        "admin" => of::<AdminSpec>(),
        "access_log" => of::<AccessLogSpec>(),
        "frontends[]" => of::<FrontendSpec>(),
        "frontends[].timeouts" => of::<FrontendTimeoutsSpec>(),
        "frontends[].tls" => of::<TlsSpec>(),
        "frontends[].tls.certificates[]" => of::<CertificateSpec>(),
        "frontends[].tls.client_auth" => of::<ClientAuthSpec>(),
        "frontends[].routes[]" => of::<RouteSpec>(),
        "frontends[].request_headers" | "frontends[].response_headers" => of::<HeaderRulesSpec>(),
        "frontends[].rules[]" => of::<RuleSpec>(),
        "frontends[].rules[].deny" | "frontends[].rules[].respond" => of::<RespondSpec>(),
        "frontends[].rules[].redirect" => of::<RedirectSpec>(),
        "frontends[].rules[].rewrite" => of::<RewriteSpec>(),
        "frontends[].rules[].rewrite.path_regex" => of::<PathRegexSpec>(),
        "frontends[].request_id" => &["header"],
        "frontends[].rules[].rate_limit" => of::<RateLimitSpec>(),
        "frontends[].rules[].rate_limit.key" => &["header"],
        "frontends[].client_limits" => of::<ClientLimitsSpec>(),
        "frontends[].compression" => of::<CompressionSpec>(),
        path if is_matcher_path(path) => of::<MatcherSpec>(),
        path if path
            .strip_suffix(".client_cert")
            .is_some_and(is_matcher_path) =>
        {
            of::<ClientCertSpec>()
        }
        "backends[]" => of::<BackendSpec>(),
        "backends[].health_check" => of::<HealthCheckSpec>(),
        "backends[].health_check.steps[]" => of::<CheckStepSpec>(),
        "backends[].health_check.steps[].send"
        | "backends[].health_check.steps[].expect"
        | "backends[].health_check.expect_body" => of::<PatternMapSpec>(),
        "backends[].servers[]" => of::<ServerSpec>(),
        "backends[].persistence" => of::<PersistenceSpec>(),
        "backends[].resolve" => of::<ResolveSpec>(),
        "backends[].tls" | "backends[].servers[].tls" => of::<UpstreamTlsSpec>(),
        "frontends[].tcp_keepalive" | "backends[].tcp_keepalive" => &["idle", "interval", "count"],
        "vrrp" => of::<VrrpSpec>(),
        "vrrp.instances[]" => of::<VrrpInstanceSpec>(),
        "vrrp.instances[].authentication" => of::<AuthenticationSpec>(),
        "vrrp.instances[].track[]" => of::<TrackSpec>(),
        "access_log.format" => &["template"],
        "access_log.syslog" => of::<SyslogSpec>(),
        "vrrp.notify" | "vrrp.instances[].notify" => of::<NotifySpec>(),
        "vrrp.sync_groups[]" => of::<SyncGroupSpec>(),
        "announce" => of::<AnnounceSpec>(),
        "announce.track[]" => of::<TrackSpec>(),
        "announce.withdraw" => of::<WithdrawSpec>(),
        _ => return None,
    })
}

/// Whether `path` is a matcher's mapping: a named one, a rule's `match`, or one nested in
/// `not` or `any`.
fn is_matcher_path(path: &str) -> bool {
    let named =
        (path.strip_prefix("frontends[].matchers.")).is_some_and(|name| !name.contains('.'));
    named || path.ends_with(".match") || path.ends_with(".not") || path.ends_with(".any[]")
}

/// `client_limits:` on a frontend: what one client address may hold at once.
#[derive(Debug, Deserialize)]
pub struct ClientLimitsSpec {
    pub connections: IntegerSpec,
}

/// A rule's `rate_limit:` action, as written: `{ key: client, rate: 100/s, burst: 50 }`.
#[derive(Debug, Deserialize)]
pub struct RateLimitSpec {
    pub key: RateKeySpec,
    /// `N/s`, `N/m`, `N/h` or `N/<duration>` (`5/10s`); a bare number reaches validation, which
    /// says how to write it.
    pub rate: ScalarText,
    /// Left out: the rate's count.
    pub burst: Option<IntegerSpec>,
}

/// What a rate limit counts requests by: `client` or `{ header: NAME }`. Read by hand: the
/// YAML reader takes an enum's data variants as tags (`!header NAME`), not mappings.
#[derive(Debug)]
pub enum RateKeySpec {
    Client,
    Header(String),
}

#[derive(Deserialize)]
struct HeaderKeySpec {
    header: String,
}

impl<'de> Deserialize<'de> for RateKeySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = RateKeySpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`client` or `{ header: NAME }`")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RateKeySpec, E> {
                match value {
                    "client" => Ok(RateKeySpec::Client),
                    _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
                }
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RateKeySpec, A::Error> {
                let spec = HeaderKeySpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RateKeySpec::Header(spec.header))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

/// `compression` on an http frontend. Names and sizes stay text, so that validation reports
/// each bad one with the ones allowed.
#[derive(Debug, Deserialize)]
pub struct CompressionSpec {
    pub algorithms: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub min_size: Option<SizeSpec>,
}

/// A size as written: YAML gives `512` as a number and `1KiB` as a string; both are kept as
/// text and parsed by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeSpec(pub String);

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = SizeSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 512 or 1KiB")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<SizeSpec, E> {
                Ok(SizeSpec(value.to_string()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<SizeSpec, E> {
                Ok(SizeSpec(value.to_string()))
            }

            fn visit_i128<E: de::Error>(self, value: i128) -> Result<SizeSpec, E> {
                Ok(SizeSpec(value.to_string()))
            }

            fn visit_u128<E: de::Error>(self, value: u128) -> Result<SizeSpec, E> {
                Ok(SizeSpec(value.to_string()))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<SizeSpec, E> {
                Ok(SizeSpec(value.to_string()))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// `announce:`: the addresses this node asks its routers for, through a local FRR, while its
/// tracked items are healthy.
#[derive(Debug, Deserialize)]
pub struct AnnounceSpec {
    pub interface: Option<String>,
    /// Left out and empty are the same mistake, reported by validation.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The items of `vrrp.instances[].track`; a `weight` is read so that validation can say
    /// why it has none here.
    #[serde(default)]
    pub track: Vec<TrackSpec>,
    pub withdraw: Option<WithdrawSpec>,
}

/// `announce.withdraw`: how a drain waits for the routers after withdrawing.
#[derive(Debug, Deserialize)]
pub struct WithdrawSpec {
    pub quiet: Option<String>,
    pub max_wait: Option<String>,
}
