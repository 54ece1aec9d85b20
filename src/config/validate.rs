//! Turns the file schema into the validated model, collecting every problem rather than
//! stopping at the first, so that one run shows an operator everything to fix.

use super::duration;
use super::model::*;
use super::schema::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A semantic problem at a field path; the caller locates it in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
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

/// Stands in for an address that failed to parse; the model is discarded whenever one does.
const UNPARSED_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Validates `spec`, returning every problem found.
pub fn validate(spec: FileSpec) -> Result<Config, Vec<FieldError>> {
    let mut validator = Validator::default();
    let config = validator.config(spec);
    if validator.errors.is_empty() {
        Ok(config)
    } else {
        Err(validator.errors)
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
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
        Config {
            node,
            log_level,
            frontends,
            backends,
        }
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
        Node {
            name: spec.name,
            threads,
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
        let backend = self.backend_reference(&at, &spec.backend, mode, backends);
        let max_connections = spec.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
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
        Frontend {
            name: spec.name,
            listen,
            mode,
            backend,
            max_connections,
            timeouts,
        }
    }

    /// Resolves a frontend's `backend` to an index; 0 stands in when it does not resolve, since
    /// the model is then discarded.
    fn backend_reference(
        &mut self,
        frontend: &str,
        name: &str,
        mode: Mode,
        backends: &[Backend],
    ) -> usize {
        let field = format!("{frontend}.backend");
        let Some(index) = backends.iter().position(|backend| backend.name == name) else {
            let known = if backends.is_empty() {
                "no backends are defined".to_string()
            } else {
                let mut names: Vec<&str> = Vec::with_capacity(backends.len());
                for backend in backends {
                    // A duplicate is reported on its own; listing it twice would only confuse.
                    if !names.contains(&backend.name.as_str()) {
                        names.push(&backend.name);
                    }
                }
                format!("defined backends: {}", names.join(", "))
            };
            self.error(field, format!("unknown backend {name:?}; {known}"));
            return 0;
        };
        if mode == Mode::Tcp && matches!(backends[index].balance, Balance::UriHash { .. }) {
            self.error(
                field,
                format!(
                    "backend {name:?} balances by uri_hash, which needs http requests; \
                     use mode: http here or another balance there"
                ),
            );
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
        Backend {
            name: spec.name,
            balance,
            connect_timeout,
            response_timeout,
            retries: spec.retries.unwrap_or(DEFAULT_RETRIES),
            health_check,
            servers,
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

    fn spec(text: &str) -> FileSpec {
        yaml::deserialize(text).expect("test YAML fits the schema")
    }

    fn valid(text: &str) -> Config {
        validate(spec(text)).expect("test YAML is valid")
    }

    /// Every problem as `field: message`, in the order found.
    fn problems(text: &str) -> Vec<String> {
        validate(spec(text))
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
                },
                log_level: None,
                frontends: vec![Frontend {
                    name: "f".into(),
                    listen: "127.0.0.1:80".parse().unwrap(),
                    mode: Mode::Http,
                    backend: 0,
                    max_connections: 10_000,
                    timeouts: FrontendTimeouts {
                        request_header: Duration::from_secs(10),
                        client_idle: Duration::from_secs(60),
                    },
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
                }],
            }
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
        assert_eq!(valid(text).frontends[0].backend, 1);
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
        match validate(spec(&text)) {
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
}
