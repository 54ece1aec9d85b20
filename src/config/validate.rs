//! Turns the file schema into the validated model, collecting every problem rather than
//! stopping at the first, so that one run shows an operator everything to fix.

mod edge;

use super::duration;
use super::model::*;
use super::schema::*;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A semantic problem at a field path; the caller locates it in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

const DEFAULT_REQUEST_HEADER: Duration = Duration::from_secs(10);
const DEFAULT_CLIENT_IDLE: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 1;
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
const DEFAULT_CHECK_PATH: &str = "/";
const DEFAULT_EXPECT: StatusMatch = StatusMatch::Class(2);
const DEFAULT_WEIGHT: u32 = 1;
const MAX_WEIGHT: u32 = 256;
const DEFAULT_VRRP_PRIORITY: u8 = 100;
const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// VRRPv2 carries the interval as whole seconds in one byte.
const V2_INTERVAL_STEP: Duration = Duration::from_secs(1);
const V2_INTERVAL_MAX: Duration = Duration::from_secs(255);
/// VRRPv3 carries it as 12 bits of centiseconds.
const V3_INTERVAL_STEP: Duration = Duration::from_millis(10);
const V3_INTERVAL_MAX: Duration = Duration::from_millis(40_950);
/// The VRRPv2 authentication data field.
const MAX_PASSWORD_BYTES: usize = 8;

/// Stands in for an address that failed to parse; the model is discarded whenever one does.
const UNPARSED_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Validates `spec`, returning every problem found. Relative paths in it are taken from `base`,
/// the config file's directory.
pub fn validate(spec: FileSpec, base: &Path) -> Result<Config, Vec<FieldError>> {
    let mut validator = Validator {
        errors: Vec::new(),
        base: base.to_path_buf(),
    };
    let config = validator.config(spec);
    if validator.errors.is_empty() {
        Ok(config)
    } else {
        Err(validator.errors)
    }
}

struct Validator {
    errors: Vec<FieldError>,
    base: PathBuf,
}

impl Validator {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn config(&mut self, spec: FileSpec) -> Config {
        let node = self.node(spec.node);
        let log_level = spec.log.and_then(|log| log.level);
        if log_level.as_deref() == Some("") {
            self.error(
                "log.level",
                "must not be empty; leave it out for the default",
            );
        }
        let backends: Vec<Backend> = spec
            .backends
            .into_iter()
            .enumerate()
            .map(|(index, backend)| self.backend(index, backend))
            .collect();
        self.unique_names("backends", "backend", backends.iter().map(|b| &b.name));
        let mut frontends: Vec<Frontend> = Vec::with_capacity(spec.frontends.len());
        for (index, frontend) in spec.frontends.into_iter().enumerate() {
            let frontend = self.frontend(index, frontend, &backends, &frontends);
            frontends.push(frontend);
        }
        self.unique_names("frontends", "frontend", frontends.iter().map(|f| &f.name));
        let vrrp = spec
            .vrrp
            .map_or_else(Vec::new, |vrrp| self.vrrp(vrrp, &frontends, &backends));
        let admin = spec.admin.map(|admin| self.admin(admin, &frontends));
        let access_log = spec.access_log.map(|log| self.access_log(log));
        Config {
            node,
            log_level,
            frontends,
            backends,
            vrrp,
            admin,
            access_log,
        }
    }

    fn admin(&mut self, spec: AdminSpec, frontends: &[Frontend]) -> Admin {
        let listen = self
            .socket_address("admin.listen".to_owned(), &spec.listen)
            .unwrap_or(UNPARSED_ADDRESS);
        if let Some(other) = listen_clash(listen, frontends) {
            self.error(
                "admin.listen",
                format!(
                    "listen address {listen} is taken by frontend {:?} on {}",
                    other.name, other.listen
                ),
            );
        }
        Admin { listen }
    }

    fn access_log(&mut self, spec: AccessLogSpec) -> AccessLog {
        let format = match spec.format.unwrap_or(LogFormatSpec::Json) {
            LogFormatSpec::Json => LogFormat::Json,
            LogFormatSpec::Text => LogFormat::Text,
        };
        let target = match spec.path.as_deref() {
            None | Some("stdout") => LogTarget::Stdout,
            Some(path) if std::path::Path::new(path).is_absolute() => LogTarget::File(path.into()),
            Some(path) => {
                self.error(
                    "access_log.path",
                    format!("{path:?} is neither `stdout` nor an absolute path"),
                );
                LogTarget::Stdout
            }
        };
        AccessLog { format, target }
    }

    fn node(&mut self, spec: NodeSpec) -> Node {
        self.non_empty("node.name", &spec.name);
        let threads = spec.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if threads == 0 {
            self.error(
                "node.threads",
                "must be at least 1; leave it out to use one per CPU",
            );
        }
        let shutdown_timeout = self.timeout(
            "node.shutdown_timeout".to_owned(),
            spec.shutdown_timeout.as_deref(),
            Duration::from_secs(30),
        );
        Node {
            name: spec.name,
            threads,
            shutdown_timeout,
        }
    }

    /// `earlier` are the frontends before this one, for listen address clashes.
    fn frontend(
        &mut self,
        index: usize,
        spec: FrontendSpec,
        backends: &[Backend],
        earlier: &[Frontend],
    ) -> Frontend {
        let at = format!("frontends[{index}]");
        self.non_empty(format!("{at}.name"), &spec.name);
        let listen = self
            .socket_address(format!("{at}.listen"), &spec.listen)
            .unwrap_or(UNPARSED_ADDRESS);
        if let Some(other) = listen_clash(listen, earlier) {
            let clash = if other.listen == listen {
                format!("is already used by frontend {:?}", other.name)
            } else {
                format!("overlaps frontend {:?} on {}", other.name, other.listen)
            };
            self.error(
                format!("{at}.listen"),
                format!("listen address {listen} {clash}"),
            );
        }
        let mode = match spec.mode {
            ModeSpec::Http => Mode::Http,
            ModeSpec::Tcp => Mode::Tcp,
        };
        let redirect_https = self.redirect_https(&at, &spec);
        let backend = match spec.backend.as_deref() {
            Some(name) => {
                Some(self.backend_reference(format!("{at}.backend"), name, mode, backends))
            }
            None if spec.redirect_https.is_some() => None,
            None => {
                self.error(
                    format!("{at}.backend"),
                    "missing: name the backend that serves this frontend \
                     (an http frontend may redirect_https instead)",
                );
                None
            }
        };
        let max_connections = spec.max_connections;
        if max_connections == Some(0) {
            self.error(format!("{at}.max_connections"), "must be at least 1");
        }
        let timeouts = FrontendTimeouts {
            request_header: self.timeout(
                format!("{at}.timeouts.request_header"),
                spec.timeouts.request_header.as_deref(),
                DEFAULT_REQUEST_HEADER,
            ),
            client_idle: self.timeout(
                format!("{at}.timeouts.client_idle"),
                spec.timeouts.client_idle.as_deref(),
                DEFAULT_CLIENT_IDLE,
            ),
        };
        self.http_only(&at, mode, &spec);
        let tls = spec.tls.map(|tls| self.tls(&format!("{at}.tls"), tls));
        let routes = self.routes(&at, spec.routes, backends);
        let request_headers =
            self.header_rules(&format!("{at}.request_headers"), spec.request_headers);
        let response_headers =
            self.header_rules(&format!("{at}.response_headers"), spec.response_headers);
        Frontend {
            name: spec.name,
            listen,
            mode,
            backend,
            max_connections,
            timeouts,
            accept_proxy: spec.accept_proxy.unwrap_or(false),
            tls,
            routes,
            request_headers,
            response_headers,
            redirect_https,
        }
    }

    /// Resolves a frontend's or a route's `backend` (at `field`) to an index; 0 stands in when
    /// it does not resolve, since the model is then discarded.
    fn backend_reference(
        &mut self,
        field: String,
        name: &str,
        mode: Mode,
        backends: &[Backend],
    ) -> usize {
        let Some(index) = backends.iter().position(|backend| backend.name == name) else {
            self.error(
                field,
                format!("unknown backend {name:?}; {}", known_backends(backends)),
            );
            return 0;
        };
        if mode == Mode::Tcp {
            let backend = &backends[index];
            let http_feature = if matches!(backend.balance, Balance::UriHash { .. }) {
                Some("balances by uri_hash, which needs http requests; use mode: http here or another balance there")
            } else if backend.persistence.is_some() {
                Some("keeps clients on a server by cookie, which needs http requests; use mode: http here or remove persistence there")
            } else if backend.protocol == UpstreamProtocol::H2 {
                Some("speaks h2 to its servers, which needs http requests; use mode: http here or remove protocol there")
            } else {
                None
            };
            if let Some(why) = http_feature {
                self.error(field, format!("backend {name:?} {why}"));
            }
        }
        index
    }

    fn backend(&mut self, index: usize, spec: BackendSpec) -> Backend {
        let at = format!("backends[{index}]");
        self.non_empty(format!("{at}.name"), &spec.name);
        let balance = match spec.balance.unwrap_or(BalanceSpec::RoundRobin) {
            BalanceSpec::RoundRobin => Balance::RoundRobin,
            BalanceSpec::WeightedRoundRobin => Balance::WeightedRoundRobin,
            BalanceSpec::LeastConn => Balance::LeastConn,
            BalanceSpec::SourceHash => Balance::SourceHash,
            BalanceSpec::UriHash => Balance::UriHash {
                hash_query: spec.hash_query.unwrap_or(false),
            },
        };
        if spec.hash_query.is_some() && !matches!(balance, Balance::UriHash { .. }) {
            self.error(
                format!("{at}.hash_query"),
                "only applies to balance: uri_hash; remove it or change balance",
            );
        }
        let connect_timeout = self.timeout(
            format!("{at}.connect_timeout"),
            spec.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        );
        let response_timeout = self.timeout(
            format!("{at}.response_timeout"),
            spec.response_timeout.as_deref(),
            DEFAULT_RESPONSE_TIMEOUT,
        );
        let health_check = spec
            .health_check
            .map(|check| self.health_check(&format!("{at}.health_check"), check));
        if spec.servers.is_empty() {
            self.error(
                format!("{at}.servers"),
                format!("backend {:?} has no servers; add at least one", spec.name),
            );
        }
        let servers: Vec<Server> = spec
            .servers
            .into_iter()
            .enumerate()
            .map(|(index, server)| self.server(&format!("{at}.servers[{index}]"), server))
            .collect();
        self.unique_names(
            &format!("{at}.servers"),
            "server",
            servers.iter().map(|s| &s.name),
        );
        let persistence =
            (spec.persistence).map(|persistence| self.persistence(&at, persistence, &servers));
        Backend {
            name: spec.name,
            balance,
            connect_timeout,
            response_timeout,
            retries: spec.retries.unwrap_or(DEFAULT_RETRIES),
            health_check,
            servers,
            persistence,
            send_proxy: spec.send_proxy.map(|version| match version {
                ProxyVersionSpec::V1 => ProxyVersion::V1,
                ProxyVersionSpec::V2 => ProxyVersion::V2,
            }),
            protocol: match spec.protocol {
                None | Some(UpstreamProtocolSpec::Http11) => UpstreamProtocol::Http11,
                Some(UpstreamProtocolSpec::H2) => UpstreamProtocol::H2,
            },
        }
    }

    fn health_check(&mut self, at: &str, spec: HealthCheckSpec) -> HealthCheck {
        let interval = self.timeout(
            format!("{at}.interval"),
            spec.interval.as_deref(),
            DEFAULT_CHECK_INTERVAL,
        );
        let timeout = self.timeout(
            format!("{at}.timeout"),
            spec.timeout.as_deref(),
            DEFAULT_CHECK_TIMEOUT,
        );
        if timeout > interval {
            self.error(
                format!("{at}.timeout"),
                format!(
                    "timeout {timeout:?} is longer than interval {interval:?}; \
                     checks would overlap, so shorten it or lengthen the interval"
                ),
            );
        }
        let rise = self.at_least_one(format!("{at}.rise"), spec.rise.unwrap_or(DEFAULT_RISE));
        let fall = self.at_least_one(format!("{at}.fall"), spec.fall.unwrap_or(DEFAULT_FALL));
        let kind = match spec.kind {
            CheckKindSpec::Http => self.http_check(at, spec.path, spec.host, spec.expect_status),
            CheckKindSpec::Tcp => {
                let http_only = [
                    ("path", spec.path.is_some()),
                    ("host", spec.host.is_some()),
                    ("expect_status", spec.expect_status.is_some()),
                ];
                for (key, given) in http_only {
                    if given {
                        self.error(
                            format!("{at}.{key}"),
                            "only applies to type: http checks; remove it or change the type",
                        );
                    }
                }
                CheckKind::Tcp
            }
        };
        HealthCheck {
            kind,
            interval,
            timeout,
            rise,
            fall,
        }
    }

    fn http_check(
        &mut self,
        at: &str,
        path: Option<String>,
        host: Option<String>,
        expect: Option<StatusSpec>,
    ) -> CheckKind {
        let path = path.unwrap_or_else(|| DEFAULT_CHECK_PATH.to_string());
        if !path.starts_with('/') {
            self.error(
                format!("{at}.path"),
                format!("path {path:?} must start with \"/\", e.g. /health"),
            );
        }
        if host.as_deref() == Some("") {
            self.error(
                format!("{at}.host"),
                "must not be empty; leave it out to send the server's address",
            );
        }
        let expect = match expect {
            None => DEFAULT_EXPECT,
            Some(spec) => status_match(&spec).unwrap_or_else(|message| {
                self.error(format!("{at}.expect_status"), message);
                DEFAULT_EXPECT
            }),
        };
        CheckKind::Http { path, host, expect }
    }

    fn server(&mut self, at: &str, spec: ServerSpec) -> Server {
        self.non_empty(format!("{at}.name"), &spec.name);
        let address = self
            .socket_address(format!("{at}.address"), &spec.address)
            .unwrap_or(UNPARSED_ADDRESS);
        let weight = spec.weight.unwrap_or(DEFAULT_WEIGHT);
        if weight > MAX_WEIGHT {
            self.error(
                format!("{at}.weight"),
                format!("weight {weight} is out of range 0..={MAX_WEIGHT} (0 drains the server)"),
            );
        }
        Server {
            name: spec.name,
            address,
            weight,
        }
    }

    /// Reports each name used before in the same list, pointing at the first use. Empty names
    /// are reported on their own and not again here.
    fn unique_names<'a>(
        &mut self,
        list: &str,
        what: &str,
        names: impl Iterator<Item = &'a String>,
    ) {
        let mut first_use: HashMap<&str, usize> = HashMap::new();
        for (index, name) in names.enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(first) = first_use.get(name.as_str()) {
                self.error(
                    format!("{list}[{index}].name"),
                    format!("duplicate {what} name {name:?}; {list}[{first}] already uses it"),
                );
            } else {
                first_use.insert(name, index);
            }
        }
    }

    fn non_empty(&mut self, field: impl Into<String>, value: &str) {
        if value.is_empty() {
            self.error(field, "must not be empty");
        }
    }

    fn at_least_one(&mut self, field: String, value: u32) -> u32 {
        if value == 0 {
            self.error(field, "must be at least 1");
        }
        value
    }

    fn socket_address(&mut self, field: String, text: &str) -> Option<SocketAddr> {
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.error(
                field,
                format!(
                    "invalid socket address {text:?}; write IP:port such as 127.0.0.1:8080 or \
                     [::1]:8080 (host names are not resolved)"
                ),
            );
        }
        parsed
    }

    /// A duration that must be positive: a zero timeout or interval would fire at once.
    fn timeout(&mut self, field: String, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match duration::parse(text) {
            Ok(Duration::ZERO) => {
                self.error(field, "must be longer than zero");
                default
            }
            Ok(duration) => duration,
            Err(message) => {
                self.error(field, message);
                default
            }
        }
    }
}

/// What validation learnt about one VRRP instance beyond its model, for the checks across
/// instances.
struct InstanceFacts {
    /// The VIPs' address family; `None` when no VIP is valid (already reported).
    family: Option<Family>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The defined backends' names for an "unknown backend" message.
fn known_backends(backends: &[Backend]) -> String {
    if backends.is_empty() {
        return "no backends are defined".to_string();
    }
    let mut names: Vec<&str> = Vec::with_capacity(backends.len());
    for backend in backends {
        // A duplicate is reported on its own; listing it twice would only confuse.
        if !names.contains(&backend.name.as_str()) {
            names.push(&backend.name);
        }
    }
    format!("defined backends: {}", names.join(", "))
}

/// The `vrrp` section: each instance on its own, then the checks across instances.
impl Validator {
    fn vrrp(
        &mut self,
        spec: VrrpSpec,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> Vec<VrrpInstance> {
        let mut instances = Vec::with_capacity(spec.instances.len());
        let mut facts = Vec::with_capacity(spec.instances.len());
        for (index, instance) in spec.instances.into_iter().enumerate() {
            let (instance, fact) = self.vrrp_instance(index, instance, frontends, backends);
            instances.push(instance);
            facts.push(fact);
        }
        self.unique_names(
            "vrrp.instances",
            "instance",
            instances.iter().map(|i| &i.name),
        );
        self.unique_vrids(&instances, &facts);
        instances
    }

    fn vrrp_instance(
        &mut self,
        index: usize,
        spec: VrrpInstanceSpec,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> (VrrpInstance, InstanceFacts) {
        let at = format!("vrrp.instances[{index}]");
        self.non_empty(format!("{at}.name"), &spec.name);
        self.non_empty(format!("{at}.interface"), &spec.interface);
        let virtual_router_id = self
            .integer_in(
                format!("{at}.virtual_router_id"),
                &spec.virtual_router_id,
                1..=255,
                "virtual_router_id",
                "",
            )
            .unwrap_or(0);
        let priority = match &spec.priority {
            None => DEFAULT_VRRP_PRIORITY,
            Some(priority) => self
                .integer_in(
                    format!("{at}.priority"),
                    priority,
                    1..=255,
                    "priority",
                    " (0 is reserved for a Master resigning; 255 makes this node the address owner)",
                )
                .unwrap_or(DEFAULT_VRRP_PRIORITY),
        };
        // `None`: invalid and reported, so the checks that depend on it are skipped.
        let version = match spec.version.as_ref().map(|version| version.0.as_str()) {
            None | Some("2") => Some(VrrpVersion::V2),
            Some("3") => Some(VrrpVersion::V3),
            Some(other) => {
                self.error(
                    format!("{at}.version"),
                    format!("unknown VRRP version {other}; use 2 (keepalived's default) or 3"),
                );
                None
            }
        };
        let advert_interval = self.advert_interval(
            format!("{at}.advert_interval"),
            spec.advert_interval.as_deref(),
            version,
        );
        let preempt = spec.preempt.unwrap_or(true);
        // Zero is the RFC behaviour; with preempt: false the delay is simply unused.
        let preempt_delay = match spec.preempt_delay.as_deref() {
            None => Duration::ZERO,
            Some(text) => duration::parse(text).unwrap_or_else(|message| {
                self.error(format!("{at}.preempt_delay"), message);
                Duration::ZERO
            }),
        };
        let password = spec
            .authentication
            .and_then(|auth| self.authentication(&format!("{at}.authentication"), auth, version));

        let virtual_ips = self.virtual_ips(&at, &spec.name, &spec.virtual_ips);
        let family = virtual_ips.first().map(|vip| Family::of(vip.address));
        if family == Some(Family::V6) && version == Some(VrrpVersion::V2) {
            // Pointed at the first IPv6 address, where the reader looks.
            self.error(
                format!("{at}.virtual_ips[{}]", first_valid_vip(&spec.virtual_ips)),
                "IPv6 needs version: 3; VRRPv2 is IPv4 only",
            );
        }
        let source_ip = spec
            .source_ip
            .as_deref()
            .and_then(|text| self.instance_address(format!("{at}.source_ip"), text, family));
        let unicast_peers: Vec<IpAddr> = spec
            .unicast_peers
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                self.instance_address(format!("{at}.unicast_peers[{i}]"), text, family)
            })
            .collect();
        if spec.v3_checksum.is_some()
            && (version == Some(VrrpVersion::V2) || family == Some(Family::V6))
        {
            self.error(
                format!("{at}.v3_checksum"),
                "only applies to version 3 over IPv4; remove it",
            );
        }
        let v3_checksum_pseudo_header = spec.v3_checksum != Some(V3ChecksumSpec::NoPseudoHeader);
        let track = (spec.track.into_iter().enumerate())
            .filter_map(|(i, item)| {
                let at = format!("{at}.track[{i}]");
                self.track(at, item, priority, frontends, backends)
            })
            .collect();

        let instance = VrrpInstance {
            name: spec.name,
            interface: spec.interface,
            virtual_router_id,
            priority,
            advert_interval,
            // A stand-in when the version is invalid: the model is then discarded.
            version: version.unwrap_or(VrrpVersion::V2),
            preempt,
            preempt_delay,
            password,
            source_ip,
            unicast_peers,
            virtual_ips,
            v3_checksum_pseudo_header,
            // Any VRID and family has its virtual MAC: nothing to check.
            virtual_mac: spec.virtual_mac.unwrap_or(false),
            track,
        };
        (instance, InstanceFacts { family })
    }

    /// One `track:` item; `None` when it is invalid (reported).
    fn track(
        &mut self,
        at: String,
        spec: TrackSpec,
        priority: u8,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> Option<Track> {
        let weight = self.track_weight(&at, spec.weight.as_ref(), priority);
        if spec.min_healthy.is_some() && spec.backend.is_none() {
            self.error(
                format!("{at}.min_healthy"),
                "only applies to a backend; remove it",
            );
        }
        let target = match (spec.backend, spec.frontend, spec.interface) {
            (Some(backend), None, None) => {
                self.tracked_backend(&at, &backend, spec.min_healthy.as_ref(), backends)
            }
            (None, Some(frontend), None) => {
                let index = frontends.iter().position(|known| known.name == frontend);
                if index.is_none() {
                    let known: Vec<&str> = frontends.iter().map(|f| f.name.as_str()).collect();
                    self.error(
                        format!("{at}.frontend"),
                        format!(
                            "unknown frontend \"{frontend}\"; defined frontends: {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                index.map(TrackTarget::Frontend)
            }
            (None, None, Some(interface)) => {
                self.non_empty(format!("{at}.interface"), &interface);
                Some(TrackTarget::Interface(interface))
            }
            (None, None, None) => {
                self.error(
                    at,
                    "names nothing to track; give one of backend, frontend or interface, e.g. \
                     { backend: web_pool, weight: -50 }",
                );
                None
            }
            _ => {
                self.error(
                    at,
                    "names more than one of backend, frontend and interface; give each its \
                     own item",
                );
                None
            }
        };
        Some(Track {
            target: target?,
            weight: weight?,
        })
    }

    /// keepalived's weight: none or 0 means Fault while failing.
    fn track_weight(
        &mut self,
        at: &str,
        weight: Option<&IntegerSpec>,
        priority: u8,
    ) -> Option<TrackWeight> {
        let Some(weight) = weight else {
            return Some(TrackWeight::Fault);
        };
        let field = format!("{at}.weight");
        let Some(points) = (weight.0.parse::<i16>().ok()).filter(|w| (-254..=254).contains(w))
        else {
            self.error(
                field,
                format!(
                    "weight {} is out of range -254..=254 (negative: subtracted while failing; \
                     positive: added while fine; none: Fault while failing)",
                    weight.0
                ),
            );
            return None;
        };
        if points > 0 && priority == 255 {
            self.error(
                field,
                "a positive weight cannot raise an address owner (priority 255) and would only \
                 take it down to 254; use a negative weight, or none for Fault",
            );
            return None;
        }
        Some(match points {
            0 => TrackWeight::Fault,
            points => TrackWeight::Points(points),
        })
    }

    fn tracked_backend(
        &mut self,
        at: &str,
        name: &str,
        min_healthy: Option<&IntegerSpec>,
        backends: &[Backend],
    ) -> Option<TrackTarget> {
        let Some(index) = backends.iter().position(|backend| backend.name == name) else {
            self.error(
                format!("{at}.backend"),
                format!("unknown backend {name:?}; {}", known_backends(backends)),
            );
            return None;
        };
        let backend = &backends[index];
        if backend.health_check.is_none() {
            self.error(
                format!("{at}.backend"),
                format!(
                    "backend {name:?} has no health_check, so its servers always count as up \
                     and this would never fail; add a health_check to it"
                ),
            );
            return None;
        }
        let servers = backend.servers.len();
        let min_healthy = match min_healthy {
            None => 1,
            Some(text) => match text.0.parse::<usize>() {
                Ok(count) if (1..=servers).contains(&count) => count,
                _ => {
                    self.error(
                        format!("{at}.min_healthy"),
                        format!(
                            "min_healthy {} is out of range 1..={servers} (backend {name:?} has \
                             {servers} servers): 0 would never fail and more would never pass",
                            text.0
                        ),
                    );
                    return None;
                }
            },
        };
        Some(TrackTarget::Backend {
            backend: index,
            min_healthy,
        })
    }

    /// An integer that must lie in `range`; `None` (reported) when it does not.
    fn integer_in(
        &mut self,
        field: String,
        value: &IntegerSpec,
        range: std::ops::RangeInclusive<u8>,
        what: &str,
        why: &str,
    ) -> Option<u8> {
        let parsed = value.0.parse::<u8>().ok().filter(|n| range.contains(n));
        if parsed.is_none() {
            self.error(
                field,
                format!(
                    "{what} {} is out of range {}..={}{why}",
                    value.0,
                    range.start(),
                    range.end()
                ),
            );
        }
        parsed
    }

    /// The interval must be one the version's advert carries exactly: keepalived silently
    /// truncates any other, so a group can end up advertising something no one wrote. We refuse
    /// instead and name the nearest valid values.
    fn advert_interval(
        &mut self,
        field: String,
        text: Option<&str>,
        version: Option<VrrpVersion>,
    ) -> Duration {
        let Some(text) = text else {
            return DEFAULT_ADVERT_INTERVAL;
        };
        let interval = match duration::parse(text) {
            Ok(interval) => interval,
            Err(message) => {
                self.error(field, message);
                return DEFAULT_ADVERT_INTERVAL;
            }
        };
        let (step, max, carries) = match version {
            None => return interval,
            Some(VrrpVersion::V2) => (
                V2_INTERVAL_STEP,
                V2_INTERVAL_MAX,
                "VRRPv2 carries whole seconds",
            ),
            Some(VrrpVersion::V3) => (
                V3_INTERVAL_STEP,
                V3_INTERVAL_MAX,
                "VRRPv3 carries multiples of 10ms",
            ),
        };
        let nearest = nearest_steps(interval, step, max);
        if nearest != [interval] {
            let nearest: Vec<String> = nearest.iter().map(|d| format!("{d:?}")).collect();
            self.error(
                field,
                format!(
                    "advert_interval {text} cannot be sent: {carries} from {step:?} to \
                     {max:?}; use {}",
                    nearest.join(" or ")
                ),
            );
            return DEFAULT_ADVERT_INTERVAL;
        }
        interval
    }

    /// The v2 password, `None` when there is none or it is invalid (reported).
    fn authentication(
        &mut self,
        at: &str,
        spec: AuthenticationSpec,
        version: Option<VrrpVersion>,
    ) -> Option<String> {
        if version == Some(VrrpVersion::V3) {
            self.error(at, "VRRPv3 has no authentication; remove it");
            return None;
        }
        match spec.kind.as_str() {
            "pass" => {}
            "ah" => {
                self.error(
                    format!("{at}.type"),
                    "authentication type ah (IPsec AH) is not supported; use type: pass, or \
                     remove authentication",
                );
                return None;
            }
            other => {
                self.error(
                    format!("{at}.type"),
                    format!("unknown authentication type {other:?}; the only one is pass"),
                );
                return None;
            }
        }
        let Some(password) = spec.password else {
            self.error(
                at,
                "type: pass needs a password; add one of at most 8 bytes, e.g. \
                 { type: pass, password: \"1111\" }",
            );
            return None;
        };
        // The password itself stays out of messages: they end up in logs.
        if password.is_empty() {
            self.error(
                format!("{at}.password"),
                "must not be empty; remove authentication for none",
            );
            return None;
        }
        if password.len() > MAX_PASSWORD_BYTES {
            self.error(
                format!("{at}.password"),
                format!(
                    "password is {} bytes, but VRRPv2 carries at most {MAX_PASSWORD_BYTES}; \
                     shorten it on every node of the group",
                    password.len()
                ),
            );
            return None;
        }
        Some(password)
    }

    /// Parses every VIP and checks that they share one address family, which the first valid
    /// one sets.
    fn virtual_ips(&mut self, at: &str, name: &str, texts: &[String]) -> Vec<VirtualIp> {
        if texts.is_empty() {
            self.error(
                format!("{at}.virtual_ips"),
                format!(
                    "instance {name:?} has no virtual_ips; add at least one, e.g. 198.51.100.10/24"
                ),
            );
        }
        let mut vips: Vec<VirtualIp> = Vec::with_capacity(texts.len());
        let mut first: Option<(usize, Family)> = None;
        for (index, text) in texts.iter().enumerate() {
            let field = format!("{at}.virtual_ips[{index}]");
            let vip = match virtual_ip(text) {
                Ok(vip) => vip,
                Err(message) => {
                    self.error(field, message);
                    continue;
                }
            };
            let family = Family::of(vip.address);
            match first {
                None => first = Some((index, family)),
                Some((first_index, first_family)) if first_family != family => {
                    self.error(
                        field,
                        format!(
                            "{text} is {family} but virtual_ips[{first_index}] is {first_family}; \
                             an instance holds one address family, so put the {family} \
                             addresses in an instance of their own"
                        ),
                    );
                    continue;
                }
                Some(_) => {}
            }
            vips.push(vip);
        }
        vips
    }

    /// A source or peer address, which must be of the VIPs' `family` when that is known.
    fn instance_address(
        &mut self,
        field: String,
        text: &str,
        family: Option<Family>,
    ) -> Option<IpAddr> {
        let Ok(address) = text.parse::<IpAddr>() else {
            self.error(
                field,
                format!(
                    "invalid IP address {text:?}; write e.g. 198.51.100.11 or 2001:db8::11, \
                     without a prefix length (host names are not resolved)"
                ),
            );
            return None;
        };
        match family {
            Some(family) if Family::of(address) != family => {
                self.error(
                    field,
                    format!(
                        "{address} is {} but the virtual IPs are {family}; use an {family} address",
                        Family::of(address)
                    ),
                );
                None
            }
            _ => Some(address),
        }
    }

    /// Two virtual routers on one link and address family with the same VRID would take each
    /// other's adverts. IPv4 and IPv6 ones may share it, as in keepalived.
    fn unique_vrids(&mut self, instances: &[VrrpInstance], facts: &[InstanceFacts]) {
        let mut first_use: HashMap<(&str, u8, Family), usize> = HashMap::new();
        for (index, (instance, fact)) in instances.iter().zip(facts).enumerate() {
            // An empty interface or a VRID out of range (0 stands in) is reported on its own.
            let Some(family) = fact.family else { continue };
            if instance.interface.is_empty() || instance.virtual_router_id == 0 {
                continue;
            }
            let key = (
                instance.interface.as_str(),
                instance.virtual_router_id,
                family,
            );
            if let Some(&first) = first_use.get(&key) {
                self.error(
                    format!("vrrp.instances[{index}].virtual_router_id"),
                    format!(
                        "virtual_router_id {} is already used for {family} on {} by \
                         vrrp.instances[{first}] ({:?}); give each virtual router on a link its \
                         own ID",
                        instance.virtual_router_id, instance.interface, instances[first].name
                    ),
                );
            } else {
                first_use.insert(key, index);
            }
        }
    }
}

/// `address/prefix_len`, the prefix length within the address family's bits.
fn virtual_ip(text: &str) -> Result<VirtualIp, String> {
    let invalid = || {
        format!(
            "invalid virtual IP {text:?}; write an address with its prefix length, e.g. \
             198.51.100.10/24 or 2001:db8::10/64"
        )
    };
    let Some((address, prefix)) = text.split_once('/') else {
        let address: IpAddr = text.parse().map_err(|_| invalid())?;
        let example = match address {
            IpAddr::V4(_) => 24,
            IpAddr::V6(_) => 64,
        };
        return Err(format!(
            "virtual IP {address} has no prefix length; write e.g. {address}/{example}"
        ));
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    // Digits only: `parse` alone would take `+24`.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let bits: u8 = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    match prefix.parse::<u8>() {
        Ok(prefix_len) if prefix_len <= bits => Ok(VirtualIp {
            address,
            prefix_len,
        }),
        _ => Err(format!(
            "prefix length /{prefix} is too long for {}; {} has at most {bits} bits",
            Family::of(address),
            Family::of(address),
        )),
    }
}

/// Index of the first VIP that parses, which set the instance's family.
fn first_valid_vip(texts: &[String]) -> usize {
    texts
        .iter()
        .position(|text| virtual_ip(text).is_ok())
        .unwrap_or(0)
}

/// The valid intervals nearest `interval`: itself if valid, else the multiples of `step`
/// either side of it within `step..=max` (one when they coincide).
fn nearest_steps(interval: Duration, step: Duration, max: Duration) -> Vec<Duration> {
    let step_nanos = step.as_nanos();
    let below = interval.as_nanos() / step_nanos * step_nanos;
    let above = below
        + if below == interval.as_nanos() {
            0
        } else {
            step_nanos
        };
    let clamp = |nanos: u128| {
        let nanos = nanos.clamp(step_nanos, max.as_nanos());
        Duration::from_nanos(u64::try_from(nanos).expect("max fits in u64 nanoseconds"))
    };
    let mut nearest = vec![clamp(below)];
    if clamp(above) != nearest[0] {
        nearest.push(clamp(above));
    }
    nearest
}

/// The earlier frontend whose listen address makes binding `listen` fail: the same address, or
/// the same port where one side is the wildcard of the same address family. Port 0 lets the
/// kernel pick, so it never clashes (and is what an unparsed address stands in as).
fn listen_clash(listen: SocketAddr, earlier: &[Frontend]) -> Option<&Frontend> {
    if listen.port() == 0 {
        return None;
    }
    earlier.iter().find(|other| {
        let other = other.listen;
        other.port() == listen.port()
            && (other.ip() == listen.ip()
                || (other.is_ipv4() == listen.is_ipv4()
                    && (other.ip().is_unspecified() || listen.ip().is_unspecified())))
    })
}

fn status_match(spec: &StatusSpec) -> Result<StatusMatch, String> {
    const EXPECTED: &str = "expected a code 100..=599 such as 200, or a class such as 2xx";
    let (text, shown) = match spec {
        StatusSpec::Number(digits) => (digits, digits.clone()),
        StatusSpec::Text(text) => (text, format!("{text:?}")),
    };
    let invalid = || format!("invalid status {shown}; {EXPECTED}");
    if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
        return match class.as_bytes() {
            [digit @ b'1'..=b'5'] => Ok(StatusMatch::Class(digit - b'0')),
            _ => Err(invalid()),
        };
    }
    // Exactly three digits: `parse` alone would take `+200` and `0200`.
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse::<u16>()
        .ok()
        .filter(|code| (100..=599).contains(code))
        .map(StatusMatch::Code)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    /// Where the test configs live, for relative paths.
    const TEST_BASE: &str = "/etc/tandem";

    fn spec(text: &str) -> FileSpec {
        yaml::deserialize(text).expect("test YAML fits the schema")
    }

    pub(super) fn valid(text: &str) -> Config {
        validate(spec(text), Path::new(TEST_BASE)).expect("test YAML is valid")
    }

    /// Every problem as `field: message`, in the order found.
    pub(super) fn problems(text: &str) -> Vec<String> {
        validate(spec(text), Path::new(TEST_BASE))
            .expect_err("test YAML is invalid")
            .into_iter()
            .map(|error| format!("{}: {}", error.field, error.message))
            .collect()
    }

    /// A valid file with one http frontend on backend `b`; `backend` adds keys to `b`, with
    /// its servers defaulting to one.
    fn one_backend(backend: &str) -> String {
        let servers = if backend.contains("servers:") {
            ""
        } else {
            ", servers: [{ name: s, address: 127.0.0.1:81 }]"
        };
        format!(
            "node: {{ name: n }}\n\
             frontends: [{{ name: f, listen: 127.0.0.1:80, mode: http, backend: b }}]\n\
             backends: [{{ name: b{servers}{backend} }}]\n"
        )
    }

    fn check(keys: &str) -> String {
        one_backend(&format!(", health_check: {{ {keys} }}"))
    }

    #[test]
    fn fills_in_every_default() {
        let config = valid(&one_backend(", health_check: { type: http }"));
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(
            config,
            Config {
                node: Node {
                    name: "n".into(),
                    threads: cpus,
                    shutdown_timeout: Duration::from_secs(30),
                },
                log_level: None,
                frontends: vec![Frontend {
                    name: "f".into(),
                    listen: "127.0.0.1:80".parse().unwrap(),
                    mode: Mode::Http,
                    backend: Some(0),
                    max_connections: None,
                    timeouts: FrontendTimeouts {
                        request_header: Duration::from_secs(10),
                        client_idle: Duration::from_secs(60),
                    },
                    accept_proxy: false,
                    tls: None,
                    routes: Vec::new(),
                    request_headers: HeaderRules::default(),
                    response_headers: HeaderRules::default(),
                    redirect_https: None,
                }],
                backends: vec![Backend {
                    name: "b".into(),
                    balance: Balance::RoundRobin,
                    connect_timeout: Duration::from_secs(2),
                    response_timeout: Duration::from_secs(30),
                    retries: 1,
                    health_check: Some(HealthCheck {
                        kind: CheckKind::Http {
                            path: "/".into(),
                            host: None,
                            expect: StatusMatch::Class(2),
                        },
                        interval: Duration::from_secs(2),
                        timeout: Duration::from_secs(1),
                        rise: 2,
                        fall: 3,
                    }),
                    servers: vec![Server {
                        name: "s".into(),
                        address: "127.0.0.1:81".parse().unwrap(),
                        weight: 1,
                    }],
                    persistence: None,
                    send_proxy: None,
                    protocol: UpstreamProtocol::Http11,
                }],
                vrrp: Vec::new(),
                admin: None,
                access_log: None,
            }
        );
    }

    #[test]
    fn reads_admin_and_access_log() {
        let text = one_backend("")
            + "admin: { listen: 127.0.0.1:9900 }\naccess_log: { format: text, path: /var/log/t.log }\n";
        let config = valid(&text);
        assert_eq!(
            config.admin,
            Some(Admin {
                listen: "127.0.0.1:9900".parse().unwrap()
            })
        );
        assert_eq!(
            config.access_log,
            Some(AccessLog {
                format: LogFormat::Text,
                target: LogTarget::File("/var/log/t.log".into()),
            })
        );
        let defaults = valid(&(one_backend("") + "access_log: {}\n"));
        assert_eq!(
            defaults.access_log,
            Some(AccessLog {
                format: LogFormat::Json,
                target: LogTarget::Stdout,
            })
        );
    }

    #[test]
    fn rejects_a_clashing_admin_address_and_a_relative_log_path() {
        let text = one_backend("")
            + "admin: { listen: 0.0.0.0:80 }\naccess_log: { path: logs/access.log }\n";
        assert_eq!(
            problems(&text),
            [
                "admin.listen: listen address 0.0.0.0:80 is taken by frontend \"f\" on 127.0.0.1:80",
                "access_log.path: \"logs/access.log\" is neither `stdout` nor an absolute path",
            ]
        );
    }

    #[test]
    fn leaves_health_checks_off_unless_configured() {
        assert_eq!(valid(&one_backend("")).backends[0].health_check, None);
    }

    #[test]
    fn reads_the_log_level() {
        let text = format!("log: {{ level: debug }}\n{}", one_backend(""));
        assert_eq!(valid(&text).log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn rejects_an_empty_log_level() {
        let text = format!("log: {{ level: '' }}\n{}", one_backend(""));
        assert_eq!(
            problems(&text),
            ["log.level: must not be empty; leave it out for the default"]
        );
    }

    #[test]
    fn rejects_empty_names() {
        let text = "node: { name: '' }\n\
                    frontends: [{ name: '', listen: 127.0.0.1:80, mode: http, backend: '' }]\n\
                    backends: [{ name: '', servers: [{ name: '', address: 127.0.0.1:81 }] }]\n";
        assert_eq!(
            problems(text),
            [
                "node.name: must not be empty",
                "backends[0].name: must not be empty",
                "backends[0].servers[0].name: must not be empty",
                "frontends[0].name: must not be empty",
            ]
        );
    }

    #[test]
    fn rejects_zero_threads() {
        let text = one_backend("").replace("name: n", "name: n, threads: 0");
        assert_eq!(
            problems(&text),
            ["node.threads: must be at least 1; leave it out to use one per CPU"]
        );
    }

    #[test]
    fn rejects_invalid_socket_addresses() {
        let text = one_backend("")
            .replace("127.0.0.1:80,", "localhost:80,")
            .replace("127.0.0.1:81", "127.0.0.1:99999");
        assert_eq!(
            problems(&text),
            [
                "backends[0].servers[0].address: invalid socket address \"127.0.0.1:99999\"; \
                 write IP:port such as 127.0.0.1:8080 or [::1]:8080 (host names are not resolved)",
                "frontends[0].listen: invalid socket address \"localhost:80\"; \
                 write IP:port such as 127.0.0.1:8080 or [::1]:8080 (host names are not resolved)",
            ]
        );
    }

    #[test]
    fn accepts_ipv6_addresses() {
        let text = one_backend("").replace("127.0.0.1:80,", "'[::1]:80',");
        assert_eq!(
            valid(&text).frontends[0].listen,
            "[::1]:80".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn rejects_invalid_and_zero_durations_everywhere() {
        let text = "node: { name: n }\n\
            frontends:\n\
            - name: f\n  listen: 127.0.0.1:80\n  mode: http\n  backend: b\n  \
              timeouts: { request_header: 0s, client_idle: soon }\n\
            backends:\n\
            - name: b\n  connect_timeout: 0ms\n  response_timeout: 30\n  \
              health_check: { type: tcp, interval: 0h, timeout: 1x }\n  \
              servers: [{ name: s, address: 127.0.0.1:81 }]\n";
        assert_eq!(
            problems(text),
            [
                "backends[0].connect_timeout: must be longer than zero",
                "backends[0].response_timeout: invalid duration \"30\": missing unit; \
                 write e.g. 30s or 30ms",
                "backends[0].health_check.interval: must be longer than zero",
                "backends[0].health_check.timeout: invalid duration \"1x\": unknown unit \"x\"; \
                 use ms, s, m or h, e.g. 500ms or 2s",
                "frontends[0].timeouts.request_header: must be longer than zero",
                "frontends[0].timeouts.client_idle: invalid duration \"soon\": expected a whole \
                 number and a unit; use ms, s, m or h, e.g. 500ms or 2s",
            ]
        );
    }

    #[test]
    fn rejects_duplicate_frontend_and_backend_names() {
        let text = "node: { name: n }\n\
            frontends:\n\
            - { name: f, listen: 127.0.0.1:80, mode: http, backend: b }\n\
            - { name: f, listen: 127.0.0.1:81, mode: http, backend: b }\n\
            backends:\n\
            - { name: b, servers: [{ name: s, address: 127.0.0.1:90 }] }\n\
            - { name: c, servers: [{ name: s, address: 127.0.0.1:90 }] }\n\
            - { name: b, servers: [{ name: s, address: 127.0.0.1:90 }] }\n";
        assert_eq!(
            problems(text),
            [
                "backends[2].name: duplicate backend name \"b\"; backends[0] already uses it",
                "frontends[1].name: duplicate frontend name \"f\"; frontends[0] already uses it",
            ]
        );
    }

    #[test]
    fn rejects_duplicate_server_names_within_a_backend_only() {
        let text = one_backend(
            ", servers: [{ name: s, address: 127.0.0.1:81 }, { name: t, address: 127.0.0.1:82 }, \
             { name: s, address: 127.0.0.1:83 }]",
        );
        assert_eq!(
            problems(&text),
            ["backends[0].servers[2].name: duplicate server name \"s\"; \
              backends[0].servers[0] already uses it"]
        );
    }

    #[test]
    fn resolves_frontends_to_backend_indexes() {
        let text = "node: { name: n }\n\
            frontends: [{ name: f, listen: 127.0.0.1:80, mode: tcp, backend: second }]\n\
            backends:\n\
            - { name: first, servers: [{ name: s, address: 127.0.0.1:90 }] }\n\
            - { name: second, servers: [{ name: s, address: 127.0.0.1:90 }] }\n";
        assert_eq!(valid(text).frontends[0].backend, Some(1));
    }

    #[test]
    fn rejects_an_unknown_backend_naming_the_defined_ones() {
        let text = "node: { name: n }\n\
            frontends: [{ name: f, listen: 127.0.0.1:80, mode: tcp, backend: pool }]\n\
            backends:\n\
            - { name: first, servers: [{ name: s, address: 127.0.0.1:90 }] }\n\
            - { name: second, servers: [{ name: s, address: 127.0.0.1:90 }] }\n";
        assert_eq!(
            problems(text),
            ["frontends[0].backend: unknown backend \"pool\"; defined backends: first, second"]
        );
    }

    #[test]
    fn lists_each_defined_backend_once() {
        let text = "node: { name: n }\n\
            frontends: [{ name: f, listen: 127.0.0.1:80, mode: tcp, backend: pool }]\n\
            backends:\n\
            - { name: first, servers: [{ name: s, address: 127.0.0.1:90 }] }\n\
            - { name: first, servers: [{ name: s, address: 127.0.0.1:90 }] }\n";
        assert!(problems(text).contains(
            &"frontends[0].backend: unknown backend \"pool\"; defined backends: first".into()
        ));
    }

    #[test]
    fn says_when_no_backends_are_defined() {
        let text =
            "node: { name: n }\nfrontends: [{ name: f, listen: 127.0.0.1:80, mode: tcp, backend: b }]\n";
        assert_eq!(
            problems(text),
            ["frontends[0].backend: unknown backend \"b\"; no backends are defined"]
        );
    }

    #[test]
    fn rejects_a_backend_without_servers() {
        let expected = ["backends[0].servers: backend \"b\" has no servers; add at least one"];
        assert_eq!(problems(&one_backend(", servers: []")), expected);
        let left_out =
            one_backend("").replace(", servers: [{ name: s, address: 127.0.0.1:81 }]", "");
        assert_eq!(problems(&left_out), expected);
    }

    #[test]
    fn bounds_weights_to_256() {
        let servers = |weight: u32| {
            one_backend(&format!(
                ", servers: [{{ name: s, address: 127.0.0.1:81, weight: {weight} }}]"
            ))
        };
        assert_eq!(valid(&servers(0)).backends[0].servers[0].weight, 0);
        assert_eq!(valid(&servers(256)).backends[0].servers[0].weight, 256);
        assert_eq!(
            problems(&servers(257)),
            [
                "backends[0].servers[0].weight: weight 257 is out of range 0..=256 \
              (0 drains the server)"
            ]
        );
    }

    #[test]
    fn reads_hash_query_with_uri_hash() {
        let balance = |text: &str| valid(&one_backend(text)).backends[0].balance;
        assert_eq!(
            balance(", balance: uri_hash"),
            Balance::UriHash { hash_query: false }
        );
        assert_eq!(
            balance(", balance: uri_hash, hash_query: true"),
            Balance::UriHash { hash_query: true }
        );
        assert_eq!(balance(", balance: source_hash"), Balance::SourceHash);
    }

    #[test]
    fn rejects_hash_query_with_another_balance() {
        for text in [
            ", hash_query: false",
            ", balance: source_hash, hash_query: true",
        ] {
            assert_eq!(
                problems(&one_backend(text)),
                [
                    "backends[0].hash_query: only applies to balance: uri_hash; \
                  remove it or change balance"
                ]
            );
        }
    }

    #[test]
    fn rejects_uri_hash_behind_a_tcp_frontend() {
        let text = one_backend(", balance: uri_hash").replace("mode: http", "mode: tcp");
        assert_eq!(
            problems(&text),
            [
                "frontends[0].backend: backend \"b\" balances by uri_hash, which needs http \
              requests; use mode: http here or another balance there"
            ]
        );
    }

    fn two_frontends(first: &str, second: &str) -> String {
        format!(
            "node: {{ name: n }}\n\
             frontends:\n\
             - {{ name: f, listen: '{first}', mode: tcp, backend: b }}\n\
             - {{ name: g, listen: '{second}', mode: tcp, backend: b }}\n\
             backends: [{{ name: b, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}]\n"
        )
    }

    #[test]
    fn rejects_two_frontends_on_one_listen_address() {
        assert_eq!(
            problems(&two_frontends("127.0.0.1:80", "127.0.0.1:80")),
            ["frontends[1].listen: listen address 127.0.0.1:80 is already used by frontend \"f\""]
        );
    }

    #[test]
    fn rejects_a_wildcard_overlapping_a_specific_address() {
        assert_eq!(
            problems(&two_frontends("127.0.0.1:80", "0.0.0.0:80")),
            [
                "frontends[1].listen: listen address 0.0.0.0:80 overlaps frontend \"f\" on \
              127.0.0.1:80"
            ]
        );
        assert_eq!(problems(&two_frontends("[::]:80", "[::1]:80")).len(), 1);
    }

    #[test]
    fn lets_distinct_addresses_and_kernel_picked_ports_coexist() {
        valid(&two_frontends("127.0.0.1:80", "127.0.0.1:81"));
        valid(&two_frontends("127.0.0.1:80", "127.0.0.2:80"));
        valid(&two_frontends("0.0.0.0:80", "[::]:80"));
        valid(&two_frontends("127.0.0.1:0", "127.0.0.1:0"));
    }

    #[test]
    fn rejects_zero_max_connections() {
        let text = one_backend("").replace("backend: b }", "backend: b, max_connections: 0 }");
        assert_eq!(
            problems(&text),
            ["frontends[0].max_connections: must be at least 1"]
        );
    }

    #[test]
    fn rejects_zero_rise_and_fall() {
        assert_eq!(
            problems(&check("type: tcp, rise: 0, fall: 0")),
            [
                "backends[0].health_check.rise: must be at least 1",
                "backends[0].health_check.fall: must be at least 1",
            ]
        );
    }

    fn expect(status: &str) -> Result<StatusMatch, Vec<String>> {
        let text = check(&format!("type: http, expect_status: {status}"));
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => match &config.backends[0].health_check.as_ref().unwrap().kind {
                CheckKind::Http { expect, .. } => Ok(*expect),
                CheckKind::Tcp => unreachable!("the check is http"),
            },
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn reads_status_codes_and_classes() {
        assert_eq!(expect("200"), Ok(StatusMatch::Code(200)));
        assert_eq!(expect("'204'"), Ok(StatusMatch::Code(204)));
        assert_eq!(expect("599"), Ok(StatusMatch::Code(599)));
        assert_eq!(expect("2xx"), Ok(StatusMatch::Class(2)));
        assert_eq!(expect("3XX"), Ok(StatusMatch::Class(3)));
        assert_eq!(expect("1xx"), Ok(StatusMatch::Class(1)));
    }

    #[test]
    fn rejects_bad_status_matches() {
        let hint = "expected a code 100..=599 such as 200, or a class such as 2xx";
        let field = "backends[0].health_check.expect_status";
        assert_eq!(
            expect("99"),
            Err(vec![format!("{field}: invalid status 99; {hint}")])
        );
        assert_eq!(
            expect("600"),
            Err(vec![format!("{field}: invalid status 600; {hint}")])
        );
        for number in ["-200", "2000", "99999999999999999999"] {
            assert_eq!(
                expect(number),
                Err(vec![format!("{field}: invalid status {number}; {hint}")])
            );
        }
        for text in [
            "ok", "6xx", "0xx", "xx", "20x", "'0200'", "'+200'", "'2000'",
        ] {
            let quoted = text.trim_matches('\'');
            assert_eq!(
                expect(text),
                Err(vec![format!("{field}: invalid status {quoted:?}; {hint}")]),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_an_http_check_path_without_a_leading_slash() {
        assert_eq!(
            problems(&check("type: http, path: health")),
            ["backends[0].health_check.path: path \"health\" must start with \"/\", e.g. /health"]
        );
    }

    #[test]
    fn reads_the_http_check_host() {
        let config = valid(&check("type: http, host: example.test, path: /ready"));
        assert_eq!(
            config.backends[0].health_check.as_ref().unwrap().kind,
            CheckKind::Http {
                path: "/ready".into(),
                host: Some("example.test".into()),
                expect: StatusMatch::Class(2),
            }
        );
    }

    #[test]
    fn rejects_an_empty_http_check_host() {
        assert_eq!(
            problems(&check("type: http, host: ''")),
            [
                "backends[0].health_check.host: must not be empty; leave it out to send the \
              server's address"
            ]
        );
    }

    #[test]
    fn rejects_http_settings_on_a_tcp_check() {
        let message = "only applies to type: http checks; remove it or change the type";
        assert_eq!(
            problems(&check("type: tcp, path: /, host: h, expect_status: 200")),
            [
                format!("backends[0].health_check.path: {message}"),
                format!("backends[0].health_check.host: {message}"),
                format!("backends[0].health_check.expect_status: {message}"),
            ]
        );
    }

    #[test]
    fn rejects_a_check_timeout_longer_than_its_interval() {
        let overlap = "checks would overlap, so shorten it or lengthen the interval";
        assert_eq!(
            problems(&check("type: tcp, interval: 1s, timeout: 1500ms")),
            [format!(
                "backends[0].health_check.timeout: timeout 1.5s is longer than interval 1s; \
                 {overlap}"
            )]
        );
        // Against the default interval of 2s.
        assert_eq!(
            problems(&check("type: tcp, timeout: 3s")),
            [format!(
                "backends[0].health_check.timeout: timeout 3s is longer than interval 2s; \
                 {overlap}"
            )]
        );
        valid(&check("type: tcp, interval: 1s, timeout: 1s"));
    }

    #[test]
    fn collects_every_problem_instead_of_stopping_at_the_first() {
        let text = "node: { name: n, threads: 0 }\n\
            frontends: [{ name: f, listen: nowhere, mode: tcp, backend: missing }]\n\
            backends: [{ name: b, connect_timeout: never, servers: [] }]\n";
        assert_eq!(problems(text).len(), 5, "{:#?}", problems(text));
    }
    /// A valid file with VRRP instances, one per line of `instances` (the keys of a flow
    /// mapping).
    fn vrrp(instances: &[&str]) -> String {
        let mut text = "node: { name: n }\nvrrp:\n  instances:\n".to_string();
        for keys in instances {
            text.push_str(&format!("    - {{ {keys} }}\n"));
        }
        text
    }

    /// One instance: `VI_1` on eth0, VRID 33, VIP 198.51.100.10/24 unless `keys` give
    /// virtual_ips, plus `keys`.
    fn instance(keys: &str) -> String {
        let vips = if keys.contains("virtual_ips:") {
            ""
        } else {
            ", virtual_ips: [198.51.100.10/24]"
        };
        vrrp(&[&format!(
            "name: VI_1, interface: eth0, virtual_router_id: 33{vips}{keys}"
        )])
    }

    fn vip(text: &str) -> VirtualIp {
        let (address, prefix_len) = text.split_once('/').unwrap();
        VirtualIp {
            address: address.parse().unwrap(),
            prefix_len: prefix_len.parse().unwrap(),
        }
    }

    #[test]
    fn leaves_vrrp_empty_unless_configured() {
        assert_eq!(valid(&one_backend("")).vrrp, []);
        let text = format!("{}vrrp: {{}}\n", one_backend(""));
        assert_eq!(valid(&text).vrrp, []);
    }

    #[test]
    fn fills_in_every_vrrp_default() {
        assert_eq!(
            valid(&instance("")).vrrp,
            [VrrpInstance {
                name: "VI_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 33,
                priority: 100,
                advert_interval: Duration::from_secs(1),
                version: VrrpVersion::V2,
                preempt: true,
                preempt_delay: Duration::ZERO,
                password: None,
                source_ip: None,
                unicast_peers: vec![],
                virtual_ips: vec![vip("198.51.100.10/24")],
                v3_checksum_pseudo_header: true,
                virtual_mac: false,
                track: vec![],
            }]
        );
    }

    #[test]
    fn reads_a_v3_ipv6_instance() {
        let config = valid(&instance(
            ", version: 3, advert_interval: 100ms, priority: 255, preempt: false, \
             preempt_delay: 30s, source_ip: 'fe80::1', unicast_peers: ['fe80::2', 'fe80::3'], \
             virtual_ips: ['2001:db8::10/64', '2001:db8::11/128'], virtual_mac: true",
        ));
        assert_eq!(
            config.vrrp,
            [VrrpInstance {
                name: "VI_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 33,
                priority: 255,
                advert_interval: Duration::from_millis(100),
                version: VrrpVersion::V3,
                preempt: false,
                preempt_delay: Duration::from_secs(30),
                password: None,
                source_ip: Some("fe80::1".parse().unwrap()),
                unicast_peers: vec!["fe80::2".parse().unwrap(), "fe80::3".parse().unwrap()],
                virtual_ips: vec![vip("2001:db8::10/64"), vip("2001:db8::11/128")],
                v3_checksum_pseudo_header: true,
                virtual_mac: true,
                track: vec![],
            }]
        );
    }

    #[test]
    fn reads_the_v3_checksum_choice_over_ipv4() {
        let checksum = |keys: &str| valid(&instance(keys)).vrrp[0].v3_checksum_pseudo_header;
        assert!(checksum(", version: 3"));
        assert!(checksum(", version: 3, v3_checksum: pseudo_header"));
        assert!(!checksum(", version: 3, v3_checksum: no_pseudo_header"));
    }

    #[test]
    fn rejects_the_v3_checksum_choice_elsewhere() {
        let message =
            "vrrp.instances[0].v3_checksum: only applies to version 3 over IPv4; remove it";
        assert_eq!(
            problems(&instance(", v3_checksum: pseudo_header")),
            [message]
        );
        assert_eq!(
            problems(&instance(
                ", version: 3, v3_checksum: no_pseudo_header, virtual_ips: ['2001:db8::10/64']"
            )),
            [message]
        );
    }

    #[test]
    fn bounds_the_virtual_router_id_to_1_through_255() {
        assert_eq!(
            valid(&instance("").replace("33", "1")).vrrp[0].virtual_router_id,
            1
        );
        assert_eq!(
            valid(&instance("").replace("33", "255")).vrrp[0].virtual_router_id,
            255
        );
        for vrid in ["0", "256", "-1", "99999999999999999999"] {
            assert_eq!(
                problems(&instance("").replace("33", vrid)),
                [format!(
                    "vrrp.instances[0].virtual_router_id: virtual_router_id {vrid} is out of \
                     range 1..=255"
                )]
            );
        }
    }

    #[test]
    fn bounds_the_priority_to_1_through_255() {
        assert_eq!(valid(&instance(", priority: 1")).vrrp[0].priority, 1);
        assert_eq!(valid(&instance(", priority: 255")).vrrp[0].priority, 255);
        for priority in ["0", "256"] {
            assert_eq!(
                problems(&instance(&format!(", priority: {priority}"))),
                [format!(
                    "vrrp.instances[0].priority: priority {priority} is out of range 1..=255 \
                     (0 is reserved for a Master resigning; 255 makes this node the address \
                     owner)"
                )]
            );
        }
    }

    #[test]
    fn rejects_an_unknown_version_without_checking_what_depends_on_it() {
        // 1500ms would be wrong for either version; an IPv6 VIP for version 2.
        assert_eq!(
            problems(&instance(
                ", version: 4, advert_interval: 1500ms, virtual_ips: ['2001:db8::10/64']"
            )),
            [
                "vrrp.instances[0].version: unknown VRRP version 4; use 2 (keepalived's default) \
              or 3"
            ]
        );
    }

    fn interval(keys: &str) -> Result<Duration, Vec<String>> {
        let text = instance(keys);
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => Ok(config.vrrp[0].advert_interval),
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn takes_v2_intervals_in_whole_seconds_up_to_255() {
        assert_eq!(
            interval(", advert_interval: 1s"),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            interval(", advert_interval: 3000ms"),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            interval(", advert_interval: 255s"),
            Ok(Duration::from_secs(255))
        );
        let refused = |nearest: &str| {
            format!("cannot be sent: VRRPv2 carries whole seconds from 1s to 255s; use {nearest}")
        };
        for (written, nearest) in [
            ("1500ms", "1s or 2s"),
            ("500ms", "1s"),
            ("0s", "1s"),
            ("256s", "255s"),
            ("1h", "255s"),
        ] {
            assert_eq!(
                interval(&format!(", advert_interval: {written}")),
                Err(vec![format!(
                    "vrrp.instances[0].advert_interval: advert_interval {written} {}",
                    refused(nearest)
                )]),
                "{written}"
            );
        }
    }

    #[test]
    fn takes_v3_intervals_in_10ms_steps_up_to_40_95s() {
        let v3 = |written: &str| interval(&format!(", version: 3, advert_interval: {written}"));
        assert_eq!(v3("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(v3("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(v3("40950ms"), Ok(Duration::from_millis(40_950)));
        for (written, nearest) in [
            ("15ms", "10ms or 20ms"),
            ("5ms", "10ms"),
            ("0ms", "10ms"),
            ("1001ms", "1s or 1.01s"),
            ("41s", "40.95s"),
        ] {
            assert_eq!(
                v3(written),
                Err(vec![format!(
                    "vrrp.instances[0].advert_interval: advert_interval {written} cannot be sent: \
                     VRRPv3 carries multiples of 10ms from 10ms to 40.95s; use {nearest}"
                )]),
                "{written}"
            );
        }
    }

    #[test]
    fn rejects_invalid_vrrp_durations() {
        assert_eq!(
            problems(&instance(", advert_interval: 1, preempt_delay: soon")),
            [
                "vrrp.instances[0].advert_interval: invalid duration \"1\": missing unit; \
                 write e.g. 1s or 1ms",
                "vrrp.instances[0].preempt_delay: invalid duration \"soon\": expected a whole \
                 number and a unit; use ms, s, m or h, e.g. 500ms or 2s",
            ]
        );
    }

    #[test]
    fn ignores_a_preempt_delay_without_preempt() {
        let config = valid(&instance(", preempt: false, preempt_delay: 10s"));
        assert!(!config.vrrp[0].preempt);
        assert_eq!(config.vrrp[0].preempt_delay, Duration::from_secs(10));
    }

    fn password(keys: &str) -> Result<Option<String>, Vec<String>> {
        let text = instance(keys);
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => Ok(config.vrrp[0].password.clone()),
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn reads_a_v2_password_as_written() {
        let auth = |written: &str| {
            password(&format!(
                ", authentication: {{ type: pass, password: {written} }}"
            ))
        };
        assert_eq!(auth("'1111'"), Ok(Some("1111".into())));
        assert_eq!(auth("0011"), Ok(Some("0011".into())));
        assert_eq!(auth("12345678"), Ok(Some("12345678".into())));
    }

    #[test]
    fn rejects_bad_v2_passwords_without_showing_them() {
        let at = "vrrp.instances[0].authentication";
        assert_eq!(
            password(", authentication: { type: pass, password: '123456789' }"),
            Err(vec![format!(
                "{at}.password: password is 9 bytes, but VRRPv2 carries at most 8; shorten it \
                 on every node of the group"
            )])
        );
        assert_eq!(
            password(", authentication: { type: pass, password: '' }"),
            Err(vec![format!(
                "{at}.password: must not be empty; remove authentication for none"
            )])
        );
        assert_eq!(
            password(", authentication: { type: pass }"),
            Err(vec![format!(
                "{at}: type: pass needs a password; add one of at most 8 bytes, e.g. \
                 {{ type: pass, password: \"1111\" }}"
            )])
        );
    }

    #[test]
    fn supports_only_the_pass_authentication_type() {
        let at = "vrrp.instances[0].authentication.type";
        assert_eq!(
            password(", authentication: { type: ah, password: secret }"),
            Err(vec![format!(
                "{at}: authentication type ah (IPsec AH) is not supported; use type: pass, or \
                 remove authentication"
            )])
        );
        assert_eq!(
            password(", authentication: { type: md5, password: secret }"),
            Err(vec![format!(
                "{at}: unknown authentication type \"md5\"; the only one is pass"
            )])
        );
    }

    #[test]
    fn rejects_authentication_on_version_3() {
        assert_eq!(
            password(", version: 3, authentication: { type: pass, password: '1111' }"),
            Err(vec![
                "vrrp.instances[0].authentication: VRRPv3 has no authentication; remove it".into()
            ])
        );
    }

    fn vips(list: &str) -> Result<Vec<VirtualIp>, Vec<String>> {
        let text = instance(&format!(", version: 3, virtual_ips: [{list}]"));
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => Ok(config.vrrp[0].virtual_ips.clone()),
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn reads_virtual_ips_with_their_prefix_length() {
        assert_eq!(
            vips("198.51.100.10/24, 198.51.100.11/32, 0.0.0.0/0"),
            Ok(vec![
                vip("198.51.100.10/24"),
                vip("198.51.100.11/32"),
                vip("0.0.0.0/0"),
            ])
        );
        assert_eq!(
            vips("'2001:db8::10/128'"),
            Ok(vec![vip("2001:db8::10/128")])
        );
    }

    #[test]
    fn rejects_a_virtual_ip_without_a_prefix_length_and_shows_one() {
        let at = "vrrp.instances[0].virtual_ips";
        assert_eq!(
            vips("198.51.100.10, '2001:db8::10'"),
            Err(vec![
                format!(
                    "{at}[0]: virtual IP 198.51.100.10 has no prefix length; write e.g. \
                     198.51.100.10/24"
                ),
                format!(
                    "{at}[1]: virtual IP 2001:db8::10 has no prefix length; write e.g. \
                     2001:db8::10/64"
                ),
            ])
        );
    }

    #[test]
    fn rejects_invalid_virtual_ips_and_prefixes_too_long_for_the_family() {
        let at = "vrrp.instances[0].virtual_ips";
        let invalid = |text: &str| {
            format!(
                "invalid virtual IP {text:?}; write an address with its prefix length, e.g. \
                 198.51.100.10/24 or 2001:db8::10/64"
            )
        };
        assert_eq!(
            vips(
                "vip.example/24, 198.51.100.10/, 198.51.100.10/+24, 198.51.100.10/24/1, \
                  198.51.100.300/24"
            ),
            Err((0..5)
                .map(|i| {
                    let text = [
                        "vip.example/24",
                        "198.51.100.10/",
                        "198.51.100.10/+24",
                        "198.51.100.10/24/1",
                        "198.51.100.300/24",
                    ][i];
                    format!("{at}[{i}]: {}", invalid(text))
                })
                .collect())
        );
        assert_eq!(
            vips("198.51.100.10/33, '2001:db8::10/129', 198.51.100.10/999"),
            Err(vec![
                format!(
                    "{at}[0]: prefix length /33 is too long for IPv4; IPv4 has at most 32 bits"
                ),
                format!(
                    "{at}[1]: prefix length /129 is too long for IPv6; IPv6 has at most 128 bits"
                ),
                format!(
                    "{at}[2]: prefix length /999 is too long for IPv4; IPv4 has at most 32 bits"
                ),
            ])
        );
    }

    #[test]
    fn rejects_mixed_address_families_in_one_instance() {
        assert_eq!(
            vips("'2001:db8::10/64', 198.51.100.10/24, '2001:db8::11/64', 198.51.100.11/24"),
            Err(vec![
                "vrrp.instances[0].virtual_ips[1]: 198.51.100.10/24 is IPv4 but virtual_ips[0] \
                 is IPv6; an instance holds one address family, so put the IPv4 addresses in an \
                 instance of their own"
                    .into(),
                "vrrp.instances[0].virtual_ips[3]: 198.51.100.11/24 is IPv4 but virtual_ips[0] \
                 is IPv6; an instance holds one address family, so put the IPv4 addresses in an \
                 instance of their own"
                    .into(),
            ])
        );
    }

    #[test]
    fn rejects_ipv6_on_version_2_once_at_the_first_valid_address() {
        assert_eq!(
            problems(&instance(
                ", virtual_ips: [nonsense, '2001:db8::10/64', '2001:db8::11/64']"
            )),
            [
                "vrrp.instances[0].virtual_ips[0]: invalid virtual IP \"nonsense\"; write an \
                 address with its prefix length, e.g. 198.51.100.10/24 or 2001:db8::10/64",
                "vrrp.instances[0].virtual_ips[1]: IPv6 needs version: 3; VRRPv2 is IPv4 only",
            ]
        );
    }

    #[test]
    fn rejects_an_instance_without_virtual_ips() {
        let expected = [
            "vrrp.instances[0].virtual_ips: instance \"VI_1\" has no virtual_ips; add at least \
             one, e.g. 198.51.100.10/24",
        ];
        assert_eq!(problems(&instance(", virtual_ips: []")), expected);
        let left_out = vrrp(&["name: VI_1, interface: eth0, virtual_router_id: 33"]);
        assert_eq!(problems(&left_out), expected);
    }

    #[test]
    fn rejects_source_and_peers_of_the_other_family() {
        assert_eq!(
            problems(&instance(
                ", source_ip: '2001:db8::1', unicast_peers: [198.51.100.12, 'fe80::2', \
                 198.51.100.13/24, peer.example]"
            )),
            [
                "vrrp.instances[0].source_ip: 2001:db8::1 is IPv6 but the virtual IPs are IPv4; \
                 use an IPv4 address",
                "vrrp.instances[0].unicast_peers[1]: fe80::2 is IPv6 but the virtual IPs are \
                 IPv4; use an IPv4 address",
                "vrrp.instances[0].unicast_peers[2]: invalid IP address \"198.51.100.13/24\"; \
                 write e.g. 198.51.100.11 or 2001:db8::11, without a prefix length (host names \
                 are not resolved)",
                "vrrp.instances[0].unicast_peers[3]: invalid IP address \"peer.example\"; write \
                 e.g. 198.51.100.11 or 2001:db8::11, without a prefix length (host names are \
                 not resolved)",
            ]
        );
    }

    #[test]
    fn rejects_empty_instance_names_and_interfaces() {
        assert_eq!(
            problems(&vrrp(&[
                "name: '', interface: '', virtual_router_id: 1, virtual_ips: [198.51.100.10/24]"
            ])),
            [
                "vrrp.instances[0].name: must not be empty",
                "vrrp.instances[0].interface: must not be empty",
            ]
        );
    }

    #[test]
    fn rejects_duplicate_instance_names() {
        assert_eq!(
            problems(&vrrp(&[
                "name: VI_1, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.10/24]",
                "name: VI_1, interface: eth0, virtual_router_id: 2, virtual_ips: [198.51.100.11/24]",
            ])),
            ["vrrp.instances[1].name: duplicate instance name \"VI_1\"; vrrp.instances[0] \
              already uses it"]
        );
    }

    #[test]
    fn rejects_a_vrid_used_twice_on_one_link_and_family() {
        assert_eq!(
            problems(&vrrp(&[
                "name: a, interface: eth0, virtual_router_id: 7, virtual_ips: [198.51.100.10/24]",
                "name: b, interface: eth0, virtual_router_id: 7, virtual_ips: [198.51.100.11/24]",
            ])),
            ["vrrp.instances[1].virtual_router_id: virtual_router_id 7 is already used for IPv4 \
              on eth0 by vrrp.instances[0] (\"a\"); give each virtual router on a link its own \
              ID"]
        );
    }

    #[test]
    fn lets_a_vrid_repeat_on_another_link_or_family() {
        valid(&vrrp(&[
            "name: a, interface: eth0, virtual_router_id: 7, virtual_ips: [198.51.100.10/24]",
            "name: b, interface: eth1, virtual_router_id: 7, virtual_ips: [198.51.100.11/24]",
            "name: c, interface: eth0, virtual_router_id: 7, version: 3, \
             virtual_ips: ['2001:db8::10/64']",
        ]));
    }

    /// Backends `web` (two servers, health-checked) and `plain` (no check), and one instance
    /// `VI_1` of `priority` with `track` as its track list.
    fn tracking(priority: u8, track: &str) -> String {
        format!(
            "node: {{ name: n }}\n\
             frontends:\n\
             \x20 - {{ name: web, listen: 127.0.0.1:8080, mode: http, backend: web }}\n\
             backends:\n\
             \x20 - {{ name: web, health_check: {{ type: tcp }}, servers: [\
             {{ name: s1, address: 127.0.0.1:81 }}, {{ name: s2, address: 127.0.0.1:82 }}] }}\n\
             \x20 - {{ name: plain, servers: [{{ name: s1, address: 127.0.0.1:83 }}] }}\n\
             vrrp:\n  instances:\n    - {{ name: VI_1, interface: eth0, virtual_router_id: 33, \
             priority: {priority}, virtual_ips: [198.51.100.10/24], track: [{track}] }}\n"
        )
    }

    #[test]
    fn tracks_frontends_by_name() {
        let config = valid(&tracking(150, "{ frontend: web, weight: -50 }"));
        assert_eq!(config.vrrp[0].track[0].target, TrackTarget::Frontend(0));
        assert_eq!(
            problems(&tracking(150, "{ frontend: api, min_healthy: 1 }")),
            [
                "vrrp.instances[0].track[0].min_healthy: only applies to a backend; remove it",
                "vrrp.instances[0].track[0].frontend: unknown frontend \"api\"; defined frontends: web",
            ]
        );
    }

    #[test]
    fn reads_track_items_with_keepalived_weights() {
        let config = valid(&tracking(
            150,
            "{ backend: web, min_healthy: 2, weight: -50 }, { backend: web }, \
             { interface: eth1, weight: 0 }, { interface: eth0, weight: 10 }",
        ));
        assert_eq!(
            config.vrrp[0].track,
            [
                Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 2
                    },
                    weight: TrackWeight::Points(-50),
                },
                Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 1
                    },
                    weight: TrackWeight::Fault,
                },
                Track {
                    target: TrackTarget::Interface("eth1".into()),
                    weight: TrackWeight::Fault,
                },
                Track {
                    target: TrackTarget::Interface("eth0".into()),
                    weight: TrackWeight::Points(10),
                },
            ]
        );
    }

    #[test]
    fn rejects_track_items_that_name_no_or_several_targets() {
        let at = "vrrp.instances[0].track";
        assert_eq!(
            problems(&tracking(
                100,
                "{ weight: -10 }, { backend: web, interface: eth0 }, { interface: '' }"
            )),
            [
                format!(
                    "{at}[0]: names nothing to track; give one of backend, frontend or interface, e.g. \
                     {{ backend: web_pool, weight: -50 }}"
                ),
                format!("{at}[1]: names more than one of backend, frontend and interface; give each its own item"),
                format!("{at}[2].interface: must not be empty"),
            ]
        );
    }

    #[test]
    fn rejects_track_backends_that_cannot_be_tracked() {
        let at = "vrrp.instances[0].track";
        assert_eq!(
            problems(&tracking(100, "{ backend: nope }, { backend: plain }")),
            [
                format!("{at}[0].backend: unknown backend \"nope\"; defined backends: web, plain"),
                format!(
                    "{at}[1].backend: backend \"plain\" has no health_check, so its servers \
                     always count as up and this would never fail; add a health_check to it"
                ),
            ]
        );
    }

    #[test]
    fn rejects_min_healthy_that_could_never_fail_or_never_pass() {
        let at = "vrrp.instances[0].track";
        let message = |index: usize, written: &str| {
            format!(
                "{at}[{index}].min_healthy: min_healthy {written} is out of range 1..=2 \
                 (backend \"web\" has 2 servers): 0 would never fail and more would never pass"
            )
        };
        assert_eq!(
            problems(&tracking(
                100,
                "{ backend: web, min_healthy: 0 }, { backend: web, min_healthy: 3 }, \
                 { interface: eth0, min_healthy: 1 }"
            )),
            [
                message(0, "0"),
                message(1, "3"),
                format!("{at}[2].min_healthy: only applies to a backend; remove it"),
            ]
        );
    }

    #[test]
    fn rejects_weights_out_of_range_and_positive_weights_on_an_owner() {
        let at = "vrrp.instances[0].track";
        let range = |index: usize, written: &str| {
            format!(
                "{at}[{index}].weight: weight {written} is out of range -254..=254 (negative: \
                 subtracted while failing; positive: added while fine; none: Fault while failing)"
            )
        };
        assert_eq!(
            problems(&tracking(
                100,
                "{ backend: web, weight: -255 }, { backend: web, weight: 255 }, \
                 { backend: web, weight: 99999999999 }"
            )),
            [range(0, "-255"), range(1, "255"), range(2, "99999999999")]
        );
        assert_eq!(
            problems(&tracking(255, "{ interface: eth0, weight: 5 }")),
            [format!(
                "{at}[0].weight: a positive weight cannot raise an address owner (priority \
                 255) and would only take it down to 254; use a negative weight, or none for \
                 Fault"
            )]
        );
        valid(&tracking(255, "{ interface: eth0, weight: -254 }"));
    }
}
