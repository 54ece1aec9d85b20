//! Turns the file schema into the validated model, collecting every problem rather than
//! stopping at the first, so that one run shows an operator everything to fix.

mod access_log;
mod admin;
mod admin_api;
mod announce;
mod backends;
mod check_kinds;
mod compression;
mod edge;
mod fields;
mod frontends;
mod health_check;
mod keepalive;
mod node;
mod rate_limit;
mod resolve;
mod rules;
mod server_roles;
#[cfg(test)]
mod test_support;
mod tls_knobs;
mod track;
mod upgrades;
mod upstream_tls;
mod vrrp;

use super::model::*;
use super::schema::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A semantic problem at a field path; the caller locates it in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Stands in for an address that failed to parse; the model is discarded whenever one does.
const UNPARSED_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Validates `spec`, returning every problem found. Relative paths in it are taken from `base`,
/// the config file's directory.
pub fn validate(spec: FileSpec, base: &Path) -> Result<Config, Vec<FieldError>> {
    let mut validator = Validator {
        errors: Vec::new(),
        base: base.to_path_buf(),
        skipped_backends: Vec::new(),
        skipped_frontends: Vec::new(),
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
    /// The names of backends and frontends skipped for a structural error (reported on its
    /// own): a reference to one of them is not reported as unknown too.
    skipped_backends: Vec<String>,
    skipped_frontends: Vec<String>,
}

impl Validator {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Units skipped for a structural error are left out of the model, which is then discarded
    /// anyway; the rest are validated as usual, under their indexes in the file.
    fn config(&mut self, spec: FileSpec) -> Config {
        let node = match spec.node {
            Unit::Read(node) => self.node(node),
            Unit::Skipped { .. } => Node {
                name: String::new(),
                threads: 1,
                shutdown_timeout: Duration::ZERO,
            },
        };
        let log_level = spec.log.and_then(Unit::read).and_then(|log| log.level);
        if log_level.as_deref() == Some("") {
            self.error(
                "log.level",
                "must not be empty; leave it out for the default",
            );
        }
        let mut backends: Vec<Backend> = Vec::with_capacity(spec.backends.len());
        let mut backend_indexes = Vec::with_capacity(spec.backends.len());
        for (index, backend) in spec.backends.into_iter().enumerate() {
            match backend {
                Unit::Read(backend) => {
                    backends.push(self.backend(index, backend));
                    backend_indexes.push(index);
                }
                Unit::Skipped { name } => self.skipped_backends.extend(name),
            }
        }
        let names = backend_indexes
            .iter()
            .copied()
            .zip(backends.iter().map(|b| &b.name));
        self.unique_names("backends", "backend", names);
        let mut frontends: Vec<Frontend> = Vec::with_capacity(spec.frontends.len());
        let mut frontend_indexes = Vec::with_capacity(spec.frontends.len());
        for (index, frontend) in spec.frontends.into_iter().enumerate() {
            match frontend {
                Unit::Read(frontend) => {
                    let frontend = self.frontend(index, frontend, &backends, &frontends);
                    frontends.push(frontend);
                    frontend_indexes.push(index);
                }
                Unit::Skipped { name } => self.skipped_frontends.extend(name),
            }
        }
        let names = frontend_indexes
            .iter()
            .copied()
            .zip(frontends.iter().map(|f| &f.name));
        self.unique_names("frontends", "frontend", names);
        let vrrp = spec
            .vrrp
            .map_or_else(Vec::new, |vrrp| self.vrrp(vrrp, &frontends, &backends));
        let admin = (spec.admin.and_then(Unit::read)).map(|admin| self.admin(admin, &frontends));
        let access_log = (spec.access_log.and_then(Unit::read)).map(|log| self.access_log(log));
        let announce = (spec.announce.and_then(Unit::read))
            .map(|announce| self.announce(announce, &frontends, &backends, &vrrp));
        Config {
            node,
            log_level,
            frontends,
            backends,
            vrrp,
            admin,
            access_log,
            announce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use crate::config::{ErrorPages, RuleSet};

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
                        tunnel: Duration::from_secs(3600),
                    },
                    accept_proxy: false,
                    tls: None,
                    rules: RuleSet::default(),
                    error_pages: ErrorPages::default(),
                    request_id: None,
                    client_limits: None,
                    compression: None,
                    upgrades: vec!["websocket".into()],
                    tcp_keepalive: None,
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
                            method: http::Method::GET,
                            headers: Vec::new(),
                            expect_body: None,
                        },
                        interval: Duration::from_secs(2),
                        timeout: Duration::from_secs(1),
                        rise: 2,
                        fall: 3,
                        tls: None,
                        sni: None,
                        port: None,
                        address: None,
                    }),
                    servers: vec![Server {
                        name: "s".into(),
                        address: ServerAddress::Ip("127.0.0.1:81".parse().unwrap()),
                        weight: 1,
                        tls: None,
                        backup: false,
                        max_connections: None,
                        slow_start: None,
                    }],
                    persistence: None,
                    send_proxy: None,
                    protocol: UpstreamProtocol::Http11,
                    resolve: Resolve::default(),
                    tls: None,
                    tcp_keepalive: None,
                    all_backups: false,
                    queue_timeout: Duration::from_secs(2),
                    queue_size: 1024,
                    shutdown_sessions_on_down: false,
                    shutdown_backup_sessions_on_up: false,
                }],
                vrrp: Vec::new(),
                admin: None,
                access_log: None,
                announce: None,
            }
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
    fn collects_every_problem_instead_of_stopping_at_the_first() {
        let text = "node: { name: n, threads: 0 }\n\
            frontends: [{ name: f, listen: nowhere, mode: tcp, backend: missing }]\n\
            backends: [{ name: b, connect_timeout: never, servers: [] }]\n";
        assert_eq!(problems(text).len(), 5, "{:#?}", problems(text));
    }
}
