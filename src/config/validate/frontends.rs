//! Frontends: where clients are accepted, the backend that serves them, and the checks that
//! tie the two together (listen clashes, http-only backends behind a tcp frontend).

use super::super::model::*;
use super::super::schema::*;
use super::rules::RuleSources;
use super::{Validator, UNPARSED_ADDRESS};
use std::net::SocketAddr;
use std::time::Duration;

const DEFAULT_REQUEST_HEADER: Duration = Duration::from_secs(10);
const DEFAULT_CLIENT_IDLE: Duration = Duration::from_secs(60);
/// The longest a client may keep a connection idle or take over a request head.
const MAX_CLIENT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The kernel's default ceiling on one process's open files (fs.nr_open): a frontend cannot
/// hold more clients than that, and the connection semaphore has a limit of its own above it.
pub(super) const MAX_CONNECTIONS: usize = 1 << 20;

impl Validator {
    /// `earlier` are the frontends before this one, for listen address clashes.
    pub(super) fn frontend(
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
        // None: derived from the open-file limit when the frontend is started (`limits`).
        let max_connections = spec.max_connections;
        if max_connections == Some(0) {
            self.error(format!("{at}.max_connections"), "must be at least 1");
        } else if let Some(max_connections) = max_connections.filter(|&n| n > MAX_CONNECTIONS) {
            self.error(
                format!("{at}.max_connections"),
                format!(
                    "{max_connections} is more than {MAX_CONNECTIONS}, the most open files a \
                     process may have by default"
                ),
            );
        }
        let timeouts = FrontendTimeouts {
            request_header: self.timeout(
                format!("{at}.timeouts.request_header"),
                spec.timeouts.request_header.as_deref(),
                DEFAULT_REQUEST_HEADER,
                MAX_CLIENT_TIMEOUT,
            ),
            client_idle: self.timeout(
                format!("{at}.timeouts.client_idle"),
                spec.timeouts.client_idle.as_deref(),
                DEFAULT_CLIENT_IDLE,
                MAX_CLIENT_TIMEOUT,
            ),
            tunnel: self.tunnel_timeout(&at, mode, spec.timeouts.tunnel.as_deref()),
        };
        self.http_only(&at, mode, &spec);
        let tls = spec.tls.map(|tls| self.tls(&format!("{at}.tls"), tls));
        let routes = self.routes(&at, spec.routes, backends);
        let request_headers =
            self.header_rules(&format!("{at}.request_headers"), spec.request_headers);
        let response_headers =
            self.header_rules(&format!("{at}.response_headers"), spec.response_headers);
        let sources = RuleSources {
            matchers: spec.matchers,
            rules: spec.rules,
            routes,
            request_headers,
            response_headers,
            redirect_https,
        };
        let rules = self.rule_set(&at, sources, backends);
        self.client_subject_needs_client_auth(&at, tls.as_ref(), &rules);
        let error_pages = self.error_pages(&at, spec.error_pages);
        let request_id = self.request_id(&at, spec.request_id, &rules);
        let client_limits = self.client_limits(&at, spec.client_limits);
        let compression =
            (spec.compression).map(|c| self.compression(&format!("{at}.compression"), c));
        let upgrades = self.upgrades(&at, mode, spec.upgrades);
        let tcp_keepalive = self.tcp_keepalive(&at, spec.tcp_keepalive);
        Frontend {
            name: spec.name,
            listen,
            mode,
            backend,
            max_connections,
            timeouts,
            accept_proxy: spec.accept_proxy.unwrap_or(false),
            tls,
            rules,
            error_pages,
            request_id,
            client_limits,
            compression,
            upgrades,
            tcp_keepalive,
        }
    }

    /// Resolves a frontend's or a route's `backend` (at `field`) to an index; 0 stands in when
    /// it does not resolve, since the model is then discarded.
    pub(super) fn backend_reference(
        &mut self,
        field: String,
        name: &str,
        mode: Mode,
        backends: &[Backend],
    ) -> usize {
        let Some(index) = backends.iter().position(|backend| backend.name == name) else {
            if !self.skipped_backends.iter().any(|skipped| skipped == name) {
                self.error(
                    field,
                    format!("unknown backend {name:?}; {}", known_backends(backends)),
                );
            }
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
}

/// The defined backends' names for an "unknown backend" message.
pub(super) fn known_backends(backends: &[Backend]) -> String {
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

/// The earlier frontend whose listen address makes binding `listen` fail: the same address, or
/// the same port where one side is the wildcard of the same address family. Port 0 lets the
/// kernel pick, so it never clashes (and is what an unparsed address stands in as).
pub(super) fn listen_clash(listen: SocketAddr, earlier: &[Frontend]) -> Option<&Frontend> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn rejects_invalid_socket_addresses() {
        let text = one_backend("")
            .replace("127.0.0.1:80,", "localhost:80,")
            .replace("127.0.0.1:81", "127.0.0.1:99999");
        assert_eq!(
            problems(&text),
            [
                "backends[0].servers[0].address: invalid server address \"127.0.0.1:99999\": port \
                 \"99999\" is not 1..=65535; write IP:port such as 127.0.0.1:8080 or [::1]:8080, or \
                 name:port such as app.internal:8080",
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
}
