//! Validation of what an http edge adds to a frontend and a backend: TLS, routes, header rules,
//! the https redirect and cookie persistence.

use std::path::Path;

use http::{HeaderName, HeaderValue};

use super::super::model::*;
use super::super::schema::*;
use super::Validator;

/// Names a header rule may not set: they describe the connection or how the message is framed,
/// which tandem manages on each hop itself.
/// Who manages the headers a rule or a header shorthand may not set.
pub(super) const ON_EACH_HOP: &str = "tandem manages on each hop";

const UNSETTABLE: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// Offered by ALPN when `tls.alpn` is left out.
const DEFAULT_ALPN: [Alpn; 2] = [Alpn::H2, Alpn::Http11];

impl Validator {
    /// `redirect_https`'s port; also checks that nothing else is asked of a redirecting frontend.
    pub(super) fn redirect_https(&mut self, at: &str, spec: &FrontendSpec) -> Option<u16> {
        let port = spec.redirect_https.as_ref()?;
        let field = format!("{at}.redirect_https");
        let parsed = port.0.parse::<u16>().ok().filter(|port| *port != 0);
        if parsed.is_none() {
            self.error(
                field.clone(),
                format!("port {} is out of range 1..=65535", port.0),
            );
        }
        if spec.backend.is_some() || !spec.routes.is_empty() {
            self.error(
                field,
                "redirect_https answers every request no rule answers first, so backend and routes \
                 would never be used; remove them or remove redirect_https",
            );
        }
        parsed
    }

    /// Reports each http-only setting on a tcp frontend.
    pub(super) fn http_only(&mut self, at: &str, mode: Mode, spec: &FrontendSpec) {
        if mode == Mode::Http {
            return;
        }
        let used = [
            ("tls", spec.tls.is_some()),
            ("routes", !spec.routes.is_empty()),
            ("request_headers", spec.request_headers.is_some()),
            ("response_headers", spec.response_headers.is_some()),
            ("redirect_https", spec.redirect_https.is_some()),
            ("matchers", spec.matchers.is_some()),
            ("rules", !spec.rules.is_empty()),
            ("error_pages", spec.error_pages.is_some()),
            ("request_id", spec.request_id.is_some()),
            ("compression", spec.compression.is_some()),
        ];
        for (key, _) in used.into_iter().filter(|(_, used)| *used) {
            self.error(
                format!("{at}.{key}"),
                format!("{key} needs mode: http; a tcp frontend relays bytes as they are"),
            );
        }
    }

    pub(super) fn tls(&mut self, at: &str, spec: TlsSpec) -> Tls {
        if spec.certificates.is_empty() {
            self.error(
                format!("{at}.certificates"),
                "needs at least one { cert, key } pair; the first is the default",
            );
        }
        let knobs = self.tls_knobs(at, &spec);
        let certificates = (spec.certificates.into_iter().enumerate())
            .map(|(index, pair)| {
                let at = format!("{at}.certificates[{index}]");
                CertificateFiles {
                    cert: self.file(format!("{at}.cert"), &pair.cert),
                    key: self.file(format!("{at}.key"), &pair.key),
                    ocsp: (pair.ocsp.as_deref()).map(|ocsp| self.file(format!("{at}.ocsp"), ocsp)),
                }
            })
            .collect();
        let alpn = match spec.alpn {
            None => DEFAULT_ALPN.to_vec(),
            Some(protocols) => {
                if protocols.is_empty() {
                    self.error(
                        format!("{at}.alpn"),
                        "must offer at least one protocol; leave it out for [h2, http/1.1]",
                    );
                }
                let alpn: Vec<Alpn> = (protocols.into_iter())
                    .map(|protocol| match protocol {
                        AlpnSpec::H2 => Alpn::H2,
                        AlpnSpec::Http11 => Alpn::Http11,
                    })
                    .collect();
                for (index, protocol) in alpn.iter().enumerate() {
                    if alpn[..index].contains(protocol) {
                        self.error(format!("{at}.alpn[{index}]"), "offered twice");
                    }
                }
                alpn
            }
        };
        Tls {
            certificates,
            alpn,
            versions: knobs.versions,
            cipher_suites: knobs.cipher_suites,
            prefer_server_ciphers: knobs.prefer_server_ciphers,
            session_tickets: knobs.session_tickets,
            client_auth: knobs.client_auth,
        }
    }

    /// A file path, relative ones taken from the config file's directory.
    pub(super) fn file(&mut self, field: String, text: &str) -> std::path::PathBuf {
        self.non_empty(field, text);
        let path = Path::new(text);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    pub(super) fn routes(
        &mut self,
        at: &str,
        specs: Vec<RouteSpec>,
        backends: &[Backend],
    ) -> Vec<Route> {
        (specs.into_iter().enumerate())
            .map(|(index, spec)| {
                let at = format!("{at}.routes[{index}]");
                if spec.host.is_none() && spec.path_prefix.is_none() {
                    self.error(
                        at.clone(),
                        "a route needs host, path_prefix or both; without them it would match \
                         everything, which is what the frontend's backend is for",
                    );
                }
                let host = (spec.host.as_deref()).and_then(|host| {
                    host_match(host)
                        .map_err(|message| self.error(format!("{at}.host"), message))
                        .ok()
                });
                if let Some(prefix) = &spec.path_prefix {
                    if !prefix.starts_with('/') {
                        self.error(
                            format!("{at}.path_prefix"),
                            format!("path_prefix {prefix:?} must start with /"),
                        );
                    }
                }
                let backend = self.backend_reference(
                    format!("{at}.backend"),
                    &spec.backend,
                    Mode::Http,
                    backends,
                );
                Route {
                    host,
                    path_prefix: spec.path_prefix,
                    backend,
                }
            })
            .collect()
    }

    pub(super) fn header_rules(&mut self, at: &str, spec: Option<HeaderRulesSpec>) -> HeaderRules {
        let Some(spec) = spec else {
            return HeaderRules::default();
        };
        let mut rules = HeaderRules::default();
        for (name, value) in spec.set {
            let field = format!("{at}.set.{name}");
            let Some(header) = self.settable_header(&field, &name, ON_EACH_HOP) else {
                continue;
            };
            if rules.set.iter().any(|(set, _)| *set == header) {
                self.error(
                    field,
                    format!("{name} is set twice (header names are case-insensitive)"),
                );
                continue;
            }
            if let Some(value) = self.header_value(field, &value.0) {
                rules.set.push((header, value));
            }
        }
        for (index, name) in spec.remove.iter().enumerate() {
            if let Some(header) = self.header_name(format!("{at}.remove[{index}]"), name) {
                rules.remove.push(header);
            }
        }
        rules
    }

    /// A header a config may set: a valid name, and not one that describes the connection or
    /// the message's framing, which `managed_by` (who sets them) manages.
    pub(super) fn settable_header(
        &mut self,
        field: &str,
        name: &str,
        managed_by: &str,
    ) -> Option<HeaderName> {
        let header = self.header_name(field.to_owned(), name)?;
        if UNSETTABLE.contains(&header.as_str()) {
            self.error(
                field.to_owned(),
                format!(
                    "{name} describes the connection or the message framing, which \
                     {managed_by}; it cannot be set"
                ),
            );
            return None;
        }
        Some(header)
    }

    /// A header value as written: no control characters, nothing beyond ASCII.
    pub(super) fn header_value(&mut self, field: String, text: &str) -> Option<HeaderValue> {
        let value = HeaderValue::from_str(text).ok();
        if value.is_none() {
            self.error(
                field,
                format!(
                    "{text:?} is not a valid header value (control characters and non-ASCII \
                     are not allowed)"
                ),
            );
        }
        value
    }

    pub(super) fn header_name(&mut self, field: String, name: &str) -> Option<HeaderName> {
        let parsed = HeaderName::from_bytes(name.as_bytes()).ok();
        if parsed.is_none() {
            self.error(
                field,
                format!(
                    "{name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)"
                ),
            );
        }
        parsed
    }

    pub(super) fn persistence(
        &mut self,
        at: &str,
        spec: PersistenceSpec,
        servers: &[Server],
    ) -> Persistence {
        let PersistenceKindSpec::Cookie = spec.kind;
        let field = format!("{at}.persistence.name");
        if spec.name.is_empty() || !spec.name.bytes().all(is_token_byte) {
            self.error(
                field,
                format!(
                    "cookie name {:?} must be a non-empty token (letters, digits and \
                     !#$%&'*+-.^_`|~)",
                    spec.name
                ),
            );
        }
        // The cookie's value is the server's name, sent as it is.
        for (index, server) in servers.iter().enumerate() {
            if !server.name.bytes().all(is_cookie_value_byte) {
                self.error(
                    format!("{at}.servers[{index}].name"),
                    format!(
                        "server name {:?} cannot be a cookie value, which persistence makes \
                         it; use letters, digits and punctuation other than \" , ; \\",
                        server.name
                    ),
                );
            }
        }
        Persistence::Cookie { name: spec.name }
    }
}

/// A route's `host` as written: a name, or `*.` and a name.
pub(super) fn host_match(text: &str) -> Result<HostMatch, String> {
    let lower = text.to_ascii_lowercase();
    let (name, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (lower.as_str(), false),
    };
    let valid_name = !name.is_empty()
        && (name.split('.')).all(|label| !label.is_empty() && label.bytes().all(is_host_byte));
    if !valid_name {
        let port_hint = if name.contains(':') {
            " (leave the port out: routes ignore it)"
        } else {
            ""
        };
        return Err(format!(
            "host {text:?} must be a name such as static.example.com or *.example.com{port_hint}"
        ));
    }
    Ok(match wildcard {
        true => HostMatch::Suffix(format!(".{name}")),
        false => HostMatch::Exact(name.to_owned()),
    })
}

fn is_host_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_value_byte(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{problems, valid};
    use super::*;
    use crate::config::rules::{Decision, HeaderEdits, Part, Var};
    use std::path::PathBuf;

    /// The frontends of the issue that asked for these features, as written there.
    const EDGE: &str = r#"
node: { name: n }
frontends:
  - name: edge
    listen: 127.0.0.1:8443
    mode: http
    accept_proxy: false            # true: expect a PROXY v1/v2 header from an L4 balancer in front
    tls:
      certificates:                # picked by SNI from each certificate's names; the first is the default
        - { cert: certs/site.pem, key: certs/site.key }
        - { cert: certs/static.pem, key: certs/static.key }
      alpn: [h2, http/1.1]
    routes:                        # first match wins; no match: the frontend's backend
      - { host: static.example.com, backend: static_pool }
      - { host: "*.example.com", path_prefix: /api/, backend: api_pool }
      - { path_prefix: /img/, backend: static_pool }
    backend: web_pool
    request_headers: { set: { X-Env: prod }, remove: [X-Debug] }
    response_headers: { set: { Strict-Transport-Security: "max-age=31536000" }, remove: [Server] }
  - name: plain
    listen: 127.0.0.1:8080
    mode: http
    redirect_https: 8443           # 308 to https on that port, path and query kept
backends:
  - name: web_pool
    persistence: { type: cookie, name: SERVERID }  # insert a cookie naming the server; honour it while that server is up
    send_proxy: v2                                 # v1 | v2: PROXY header to servers (tcp and http mode)
    servers: [{ name: w1, address: 127.0.0.1:81 }]
  - name: static_pool
    servers: [{ name: s1, address: 127.0.0.1:82 }]
  - name: api_pool
    protocol: h2
    servers: [{ name: a1, address: 127.0.0.1:83 }]
"#;

    fn header(name: &str, value: &str) -> (HeaderName, HeaderValue) {
        (
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        )
    }

    #[test]
    fn reads_the_edge_example_unchanged() {
        let config = valid(EDGE);
        let edge = &config.frontends[0];
        assert!(!edge.accept_proxy);
        assert_eq!(
            edge.tls,
            Some(Tls {
                certificates: vec![
                    CertificateFiles {
                        cert: PathBuf::from("/etc/tandem/certs/site.pem"),
                        key: PathBuf::from("/etc/tandem/certs/site.key"),
                        ocsp: None,
                    },
                    CertificateFiles {
                        cert: PathBuf::from("/etc/tandem/certs/static.pem"),
                        key: PathBuf::from("/etc/tandem/certs/static.key"),
                        ocsp: None,
                    },
                ],
                alpn: vec![Alpn::H2, Alpn::Http11],
                versions: TlsVersions::ALL,
                cipher_suites: None,
                prefer_server_ciphers: false,
                session_tickets: SessionTickets::Ephemeral,
                client_auth: None,
            })
        );
        // The shorthands, compiled into rules: header sets first, then the routes in order.
        let rules = &edge.rules.rules;
        let names: Vec<&str> = rules.iter().map(|rule| rule.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "request_headers",
                "response_headers",
                "routes[0]",
                "routes[1]",
                "routes[2]"
            ]
        );
        let shown =
            |index: usize| format!("{:?} {:?}", rules[index].matcher, rules[index].decision);
        assert_eq!(
            shown(2),
            "Some(Host([Exact(\"static.example.com\")])) Some(Backend(0))"
        );
        assert_eq!(
            shown(3),
            "Some(All([Host([Suffix(\".example.com\")]), PathPrefix([\"/api/\"])])) Some(Backend(1))"
        );
        assert_eq!(shown(4), "Some(PathPrefix([\"/img/\"])) Some(Backend(0))");
        assert_eq!(edge.rules.backends, [1, 2]);
        assert_eq!(edge.backend, Some(0));
        let set = |edits: &HeaderEdits| -> Vec<(HeaderName, Option<HeaderValue>)> {
            (edits.set.iter())
                .map(|(name, value)| (name.clone(), value.fixed.clone()))
                .collect()
        };
        let (name, value) = header("x-env", "prod");
        assert_eq!(set(&rules[0].request_headers), [(name, Some(value))]);
        assert_eq!(
            rules[0].request_headers.remove,
            [HeaderName::from_static("x-debug")]
        );
        let (name, value) = header("strict-transport-security", "max-age=31536000");
        assert_eq!(set(&rules[1].response_headers), [(name, Some(value))]);
        assert_eq!(rules[1].response_headers.remove, [http::header::SERVER]);

        let plain = &config.frontends[1];
        assert_eq!(plain.backend, None);
        assert!(plain.tls.is_none());
        let redirect = &plain.rules.rules[0];
        assert_eq!(redirect.name, "redirect_https");
        let Some(Decision::Redirect { status, location }) = &redirect.decision else {
            panic!("a redirect, not {:?}", redirect.decision);
        };
        assert_eq!(status.as_u16(), 308);
        assert_eq!(
            location.parts,
            [
                Part::Text("https://".into()),
                Part::Var(Var::Host),
                Part::Text(":8443".into()),
                Part::Var(Var::Path),
                Part::Var(Var::Query),
            ]
        );

        let web = &config.backends[0];
        assert_eq!(
            web.persistence,
            Some(Persistence::Cookie {
                name: "SERVERID".into()
            })
        );
        assert_eq!(web.send_proxy, Some(ProxyVersion::V2));
        assert_eq!(web.protocol, UpstreamProtocol::Http11);
        assert_eq!(config.backends[2].protocol, UpstreamProtocol::H2);
    }

    #[test]
    fn fills_in_edge_defaults() {
        let config = valid(
            "node: { name: n }\n\
             frontends: [{ name: f, listen: 127.0.0.1:443, mode: http, backend: b,\n\
               tls: { certificates: [{ cert: /srv/c.pem, key: k.pem }] } }]\n\
             backends: [{ name: b, servers: [{ name: s, address: 127.0.0.1:81 }] }]\n",
        );
        let tls = config.frontends[0].tls.as_ref().unwrap();
        assert_eq!(tls.alpn, [Alpn::H2, Alpn::Http11]);
        assert_eq!(tls.certificates[0].cert, PathBuf::from("/srv/c.pem"));
        assert_eq!(tls.certificates[0].key, PathBuf::from("/etc/tandem/k.pem"));
        let backend = &config.backends[0];
        assert_eq!(
            (backend.persistence.as_ref(), backend.send_proxy),
            (None, None)
        );
        assert_eq!(backend.protocol, UpstreamProtocol::Http11);
    }

    fn frontend(keys: &str) -> String {
        format!(
            "node: {{ name: n }}\n\
             frontends: [{{ name: f, listen: 127.0.0.1:80, {keys} }}]\n\
             backends:\n\
             - {{ name: b, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}\n\
             - {{ name: sticky, persistence: {{ type: cookie, name: SRV }}, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}\n\
             - {{ name: grpc, protocol: h2, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}\n"
        )
    }

    #[test]
    fn rejects_http_settings_on_a_tcp_frontend() {
        let found = problems(&frontend(
            "mode: tcp, backend: b, tls: { certificates: [{ cert: c, key: k }] }, \
             routes: [{ path_prefix: /, backend: b }], request_headers: { remove: [a] }, \
             response_headers: { remove: [a] }",
        ));
        for key in ["tls", "routes", "request_headers", "response_headers"] {
            assert!(
                found.contains(&format!(
                    "frontends[0].{key}: {key} needs mode: http; a tcp frontend relays bytes as they are"
                )),
                "{key}: {found:?}"
            );
        }
        for backend in ["sticky", "grpc"] {
            let found = problems(&frontend(&format!("mode: tcp, backend: {backend}")));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].contains("needs http requests; use mode: http here"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_frontend_needs_a_backend_unless_it_redirects_and_then_nothing_else() {
        assert_eq!(
            problems(&frontend("mode: http")),
            [
                "frontends[0].backend: missing: name the backend that serves this frontend \
              (an http frontend may redirect_https instead)"
            ]
        );
        assert_eq!(
            problems(&frontend("mode: tcp, redirect_https: 443")),
            ["frontends[0].redirect_https: redirect_https needs mode: http; a tcp frontend relays bytes as they are"]
        );
        let found = problems(&frontend("mode: http, redirect_https: 443, backend: b"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(
            "frontends[0].redirect_https: redirect_https answers every request no rule answers first"
        ));
        for port in ["0", "65536", "-1"] {
            assert_eq!(
                problems(&frontend(&format!("mode: http, redirect_https: {port}"))),
                [format!(
                    "frontends[0].redirect_https: port {port} is out of range 1..=65535"
                )]
            );
        }
    }

    #[test]
    fn reads_host_matches_and_rejects_malformed_routes() {
        let config = valid(&frontend(
            "mode: http, backend: b, routes: [{ host: API.Example.com, backend: grpc }, \
             { host: \"*.Example.COM\", path_prefix: /x, backend: sticky }]",
        ));
        let rules = &config.frontends[0].rules;
        assert_eq!(
            format!("{:?}", rules.rules[0].matcher),
            "Some(Host([Exact(\"api.example.com\")]))"
        );
        assert!(matches!(
            rules.rules[0].decision,
            Some(Decision::Backend(0))
        ));
        assert_eq!(rules.backends[0], 2);
        assert_eq!(
            format!("{:?}", rules.rules[1].matcher),
            "Some(All([Host([Suffix(\".example.com\")]), PathPrefix([\"/x\"])]))"
        );

        let found = problems(&frontend(
            "mode: http, backend: b, routes: [{ backend: b }, { host: \"a.*.com\", backend: b }, \
             { host: \"example.com:8443\", backend: b }, { path_prefix: api/, backend: b }, \
             { path_prefix: /, backend: nope }, { host: \"*.\", backend: b }]",
        ));
        assert_eq!(found.len(), 6, "{found:?}");
        assert!(
            found[0].starts_with("frontends[0].routes[0]: a route needs host, path_prefix or both")
        );
        assert!(
            found[1].starts_with("frontends[0].routes[1].host: host \"a.*.com\" must be a name")
        );
        assert!(
            found[2].ends_with("(leave the port out: routes ignore it)"),
            "{found:?}"
        );
        assert_eq!(
            found[3],
            "frontends[0].routes[3].path_prefix: path_prefix \"api/\" must start with /"
        );
        assert!(found[4].starts_with("frontends[0].routes[4].backend: unknown backend \"nope\""));
        assert!(found[5].starts_with("frontends[0].routes[5].host: host \"*.\" must be a name"));
    }

    #[test]
    fn rejects_header_rules_that_cannot_work() {
        let found = problems(&frontend(
            "mode: http, backend: b, request_headers: { set: { Content-Length: 5, \"Bad Name\": x, \
             X-Ok: \"a\\u0001b\", X-Port: 8443 }, remove: [\"no:colon\"] }",
        ));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.iter().any(|p| p.starts_with(
            "frontends[0].request_headers.set.Content-Length: Content-Length describes the connection"
        )));
        assert!(found.iter().any(|p| p.starts_with(
            "frontends[0].request_headers.set.Bad Name: \"Bad Name\" is not a valid header name"
        )));
        assert!(found.iter().any(|p| p.starts_with(
            "frontends[0].request_headers.set.X-Ok: \"a\\u{1}b\" is not a valid header value"
        )));
        assert!(found.iter().any(|p| p.starts_with(
            "frontends[0].request_headers.remove[0]: \"no:colon\" is not a valid header name"
        )));
        let found = problems(&frontend(
            "mode: http, backend: b, response_headers: { set: { x-a: 1, X-A: 2 } }",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].ends_with("is set twice (header names are case-insensitive)"));
        let config = valid(&frontend(
            "mode: http, backend: b, response_headers: { set: { X-Port: 8443, X-On: true } }",
        ));
        let set = &config.frontends[0].rules.rules[0].response_headers.set;
        let values: Vec<(&str, Option<&HeaderValue>)> = (set.iter())
            .map(|(name, value)| (name.as_str(), value.fixed.as_ref()))
            .collect();
        assert_eq!(
            values,
            [
                ("x-on", Some(&HeaderValue::from_static("true"))),
                ("x-port", Some(&HeaderValue::from_static("8443")))
            ]
        );
    }

    #[test]
    fn rejects_tls_without_certificates_and_bad_alpn_lists() {
        let found = problems(&frontend(
            "mode: http, backend: b, tls: { certificates: [], alpn: [] }",
        ));
        assert_eq!(
            found,
            [
                "frontends[0].tls.certificates: needs at least one { cert, key } pair; the first is the default",
                "frontends[0].tls.alpn: must offer at least one protocol; leave it out for [h2, http/1.1]",
            ]
        );
        let found = problems(&frontend(
            "mode: http, backend: b, tls: { certificates: [{ cert: \"\", key: k }], alpn: [h2, h2] }",
        ));
        assert_eq!(
            found,
            [
                "frontends[0].tls.certificates[0].cert: must not be empty",
                "frontends[0].tls.alpn[1]: offered twice",
            ]
        );
    }

    #[test]
    fn persistence_needs_a_token_cookie_name_and_cookie_safe_server_names() {
        let found = problems(
            "node: { name: n }\n\
             frontends: [{ name: f, listen: 127.0.0.1:80, mode: http, backend: b }]\n\
             backends: [{ name: b, persistence: { type: cookie, name: \"my cookie\" },\n\
               servers: [{ name: \"web 1\", address: 127.0.0.1:81 }, { name: \"w;2\", address: 127.0.0.1:82 },\n\
                         { name: w-3.ok, address: 127.0.0.1:83 }] }]\n",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with(
            "backends[0].persistence.name: cookie name \"my cookie\" must be a non-empty token"
        ));
        assert!(found[1].starts_with(
            "backends[0].servers[0].name: server name \"web 1\" cannot be a cookie value"
        ));
        assert!(found[2].starts_with(
            "backends[0].servers[1].name: server name \"w;2\" cannot be a cookie value"
        ));
    }
}
