//! A health check's `type` and the keys that belong to it: where to check (`port`,
//! `address`), http's request and expected body, tcp's send/expect `steps`, and the login of
//! the database protocols (`user`, `database`).

use std::net::IpAddr;

use http::{HeaderValue, Method};
use regex::bytes::RegexBuilder;

use super::super::model::*;
use super::super::schema::*;
use super::Validator;

/// As for the rules' regexes: far above any sane pattern, far below what would hurt.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const HTTP: &[CheckKindSpec] = &[CheckKindSpec::Http];

impl Validator {
    pub(super) fn check_port(&mut self, at: &str, port: Option<&IntegerSpec>) -> Option<u16> {
        let port = port?;
        let parsed = port.0.parse::<u16>().ok().filter(|port| *port != 0);
        if parsed.is_none() {
            self.error(
                format!("{at}.port"),
                format!("port {} is out of range 1..=65535", port.0),
            );
        }
        parsed
    }

    pub(super) fn check_address(&mut self, at: &str, address: Option<&str>) -> Option<IpAddr> {
        let address = address?;
        let parsed = address.parse().ok();
        if parsed.is_none() {
            self.error(
                format!("{at}.address"),
                format!(
                    "invalid IP address {address:?}; write an IP such as 127.0.0.1 or ::1 (the \
                     port goes in `port`; host names are not resolved)"
                ),
            );
        }
        parsed
    }

    pub(super) fn check_kind(&mut self, at: &str, spec: HealthCheckSpec) -> CheckKind {
        self.keys_of_other_kinds(at, &spec);
        match spec.kind {
            CheckKindSpec::Tcp => match spec.steps {
                None => CheckKind::Tcp,
                Some(steps) => CheckKind::TcpSteps(self.check_steps(&format!("{at}.steps"), steps)),
            },
            CheckKindSpec::Http => {
                let (path, host, expect) =
                    self.http_check(at, spec.path, spec.host, spec.expect_status);
                let method = self.check_method(at, spec.method.as_deref());
                if method == Method::HEAD && spec.expect_body.is_some() {
                    self.error(
                        format!("{at}.expect_body"),
                        "the answer to HEAD has no body; use GET, or leave expect_body out",
                    );
                }
                CheckKind::Http {
                    path,
                    host,
                    expect,
                    method,
                    headers: self.check_headers(at, spec.headers.unwrap_or_default()),
                    expect_body: (spec.expect_body.as_ref())
                        .and_then(|body| self.pattern(&format!("{at}.expect_body"), body)),
                }
            }
            CheckKindSpec::Redis => CheckKind::Redis,
            CheckKindSpec::Mysql => CheckKind::Mysql {
                user: spec
                    .user
                    .map(|user| self.login(&format!("{at}.user"), user)),
            },
            CheckKindSpec::Postgres => {
                let user = match spec.user {
                    Some(user) => self.login(&format!("{at}.user"), user),
                    None => {
                        self.error(
                            format!("{at}.user"),
                            "a postgres check logs in: name the user (no password is sent), as \
                             HAProxy's `pgsql-check user NAME`",
                        );
                        String::new()
                    }
                };
                let database =
                    (spec.database).map(|name| self.login(&format!("{at}.database"), name));
                CheckKind::Postgres { user, database }
            }
        }
    }

    /// A key given for a type it does not apply to is a mistake, not a no-op.
    fn keys_of_other_kinds(&mut self, at: &str, spec: &HealthCheckSpec) {
        use CheckKindSpec::*;
        let keys: [(&str, bool, &[CheckKindSpec]); 9] = [
            ("path", spec.path.is_some(), HTTP),
            ("host", spec.host.is_some(), HTTP),
            ("expect_status", spec.expect_status.is_some(), HTTP),
            ("method", spec.method.is_some(), HTTP),
            ("headers", spec.headers.is_some(), HTTP),
            ("expect_body", spec.expect_body.is_some(), HTTP),
            ("steps", spec.steps.is_some(), &[Tcp]),
            ("user", spec.user.is_some(), &[Mysql, Postgres]),
            ("database", spec.database.is_some(), &[Postgres]),
        ];
        for (key, given, kinds) in keys {
            if given && !kinds.contains(&spec.kind) {
                let names: Vec<&str> = kinds.iter().map(|kind| kind_name(*kind)).collect();
                self.error(
                    format!("{at}.{key}"),
                    format!(
                        "only applies to type: {} checks; remove it or change the type",
                        names.join(" and ")
                    ),
                );
            }
        }
    }

    fn check_steps(&mut self, at: &str, steps: Vec<CheckStepSpec>) -> Vec<CheckStep> {
        if steps.is_empty() {
            self.error(
                at,
                "must not be empty; leave steps out to check only that a connection opens",
            );
        }
        let mut checked = Vec::with_capacity(steps.len());
        for (index, step) in steps.into_iter().enumerate() {
            let at = format!("{at}[{index}]");
            match (step.send, step.expect) {
                (Some(send), None) => checked.extend(self.sent(&format!("{at}.send"), &send)),
                (None, Some(expect)) => checked.extend(
                    (self.pattern(&format!("{at}.expect"), &expect)).map(CheckStep::Expect),
                ),
                (Some(_), Some(_)) => {
                    self.error(at, "a step either sends or expects; make it two steps")
                }
                (None, None) => self.error(at, "a step needs `send` or `expect`"),
            }
        }
        checked
    }

    /// What a `send` step sends: text as written, or `{ hex: ... }`.
    fn sent(&mut self, field: &str, spec: &PatternSpec) -> Option<CheckStep> {
        if let PatternSpec::Map(PatternMapSpec { regex: Some(_), .. }) = spec {
            self.error(
                format!("{field}.regex"),
                "a regex can be expected, not sent; send text or { hex: ... }",
            );
            return None;
        }
        match self.pattern(field, spec)? {
            BytesMatch::Contains(bytes) => Some(CheckStep::Send(bytes)),
            BytesMatch::Regex(_) => None,
        }
    }

    /// Text as written, `{ regex: ... }` or `{ hex: ... }`.
    fn pattern(&mut self, field: &str, spec: &PatternSpec) -> Option<BytesMatch> {
        let parsed = match spec {
            PatternSpec::Text(text) if text.is_empty() => Err("must not be empty".to_string()),
            PatternSpec::Text(text) => Ok(BytesMatch::Contains(text.clone().into_bytes())),
            PatternSpec::Map(PatternMapSpec {
                regex: Some(regex),
                hex: None,
            }) => regex_match(regex),
            PatternSpec::Map(PatternMapSpec {
                regex: None,
                hex: Some(hex),
            }) => hex_bytes(hex).map(BytesMatch::Contains),
            PatternSpec::Map(_) => {
                Err("write exactly one of { regex: ... } or { hex: ... }".into())
            }
        };
        parsed.map_err(|message| self.error(field, message)).ok()
    }

    fn check_method(&mut self, at: &str, method: Option<&str>) -> Method {
        let Some(method) = method else {
            return Method::GET;
        };
        // Method::from_bytes takes any token; an empty one or lower case is a typo here.
        match Method::from_bytes(method.as_bytes()) {
            Ok(parsed) if !method.is_empty() && !method.bytes().any(|b| b.is_ascii_lowercase()) => {
                parsed
            }
            _ => {
                self.error(
                    format!("{at}.method"),
                    format!("invalid method {method:?}; write one such as GET, HEAD or OPTIONS"),
                );
                Method::GET
            }
        }
    }

    fn check_headers(
        &mut self,
        at: &str,
        headers: std::collections::BTreeMap<String, ScalarText>,
    ) -> Vec<(http::HeaderName, HeaderValue)> {
        let mut checked = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let field = format!("{at}.headers.{name}");
            let Some(header) = self.settable_header(&field, &name, "the check manages") else {
                continue;
            };
            if header == http::header::HOST {
                self.error(field, "set the check's Host with `host`");
                continue;
            }
            if (checked.iter()).any(|(set, _): &(http::HeaderName, HeaderValue)| *set == header) {
                self.error(
                    field,
                    format!("{name} is set twice (header names are case-insensitive)"),
                );
                continue;
            }
            if let Some(value) = self.header_value(field, &value.0) {
                checked.push((header, value));
            }
        }
        checked
    }

    /// A user or database name goes into the protocol as a NUL-terminated string.
    fn login(&mut self, field: &str, name: String) -> String {
        if name.is_empty() {
            self.error(field, "must not be empty");
        } else if name.contains('\0') {
            self.error(field, "must not contain a NUL character");
        }
        name
    }
}

fn kind_name(kind: CheckKindSpec) -> &'static str {
    match kind {
        CheckKindSpec::Http => "http",
        CheckKindSpec::Tcp => "tcp",
        CheckKindSpec::Mysql => "mysql",
        CheckKindSpec::Postgres => "postgres",
        CheckKindSpec::Redis => "redis",
    }
}

fn regex_match(pattern: &str) -> Result<BytesMatch, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(BytesMatch::Regex)
        .map_err(|error| {
            // The crate's message spans lines, pointing into the pattern; its last line says
            // what is wrong.
            let text = error.to_string();
            let last = text.lines().last().unwrap_or(&text).trim();
            let last = last.strip_prefix("error: ").unwrap_or(last);
            format!("invalid regex {pattern:?}: {last}")
        })
}

/// Pairs of hex digits, spaces between them allowed for reading.
fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let invalid = || format!("invalid hex {text:?}; write pairs of hex digits such as \"0d0a\"");
    // from_str_radix alone would take a sign: "+f".
    if digits.is_empty() || digits.len() % 2 != 0 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid());
    }
    (digits.chunks(2))
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            u8::from_str_radix(pair, 16).map_err(|_| invalid())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    fn kind(keys: &str) -> CheckKind {
        valid(&check(keys)).backends[0]
            .health_check
            .take()
            .unwrap()
            .kind
    }

    #[test]
    fn reads_where_to_check() {
        let config = valid(&check("type: tcp, port: 8008, address: 127.0.0.2"));
        let checked = config.backends[0].health_check.as_ref().unwrap();
        assert_eq!(
            (checked.port, checked.address),
            (Some(8008), Some("127.0.0.2".parse().unwrap()))
        );
        assert_eq!(
            checked.target("127.0.0.1:5432".parse().unwrap()),
            "127.0.0.2:8008".parse().unwrap()
        );
        let only_port = valid(&check("type: tcp, port: 8008")).backends[0]
            .health_check
            .take()
            .unwrap();
        assert_eq!(
            only_port.target("[::1]:5432".parse().unwrap()),
            "[::1]:8008".parse().unwrap()
        );
    }

    #[test]
    fn rejects_bad_check_ports_and_addresses() {
        assert_eq!(
            problems(&check("type: tcp, port: 0, address: '127.0.0.1:80'")),
            [
                "backends[0].health_check.port: port 0 is out of range 1..=65535",
                "backends[0].health_check.address: invalid IP address \"127.0.0.1:80\"; write an \
                 IP such as 127.0.0.1 or ::1 (the port goes in `port`; host names are not \
                 resolved)",
            ]
        );
        assert_eq!(
            problems(&check("type: tcp, port: 65536")),
            ["backends[0].health_check.port: port 65536 is out of range 1..=65535"]
        );
    }

    #[test]
    fn reads_the_database_kinds() {
        assert_eq!(kind("type: redis"), CheckKind::Redis);
        assert_eq!(kind("type: mysql"), CheckKind::Mysql { user: None });
        assert_eq!(
            kind("type: mysql, user: haproxy"),
            CheckKind::Mysql {
                user: Some("haproxy".into())
            }
        );
        assert_eq!(
            kind("type: postgres, user: check, database: app"),
            CheckKind::Postgres {
                user: "check".into(),
                database: Some("app".into())
            }
        );
    }

    #[test]
    fn a_postgres_check_needs_a_user() {
        assert_eq!(
            problems(&check("type: postgres")),
            [
                "backends[0].health_check.user: a postgres check logs in: name the user (no \
                 password is sent), as HAProxy's `pgsql-check user NAME`"
            ]
        );
        assert_eq!(
            problems(&check("type: mysql, user: ''")),
            ["backends[0].health_check.user: must not be empty"]
        );
    }

    #[test]
    fn rejects_keys_of_other_kinds() {
        let only = |kinds: &str| {
            format!("only applies to type: {kinds} checks; remove it or change the type")
        };
        assert_eq!(
            problems(&check(
                "type: redis, method: HEAD, headers: { a: b }, expect_body: ok, steps: [], \
                 user: u, database: d"
            )),
            [
                format!("backends[0].health_check.method: {}", only("http")),
                format!("backends[0].health_check.headers: {}", only("http")),
                format!("backends[0].health_check.expect_body: {}", only("http")),
                format!("backends[0].health_check.steps: {}", only("tcp")),
                format!(
                    "backends[0].health_check.user: {}",
                    only("mysql and postgres")
                ),
                format!("backends[0].health_check.database: {}", only("postgres")),
            ]
        );
        assert_eq!(
            problems(&check("type: mysql, database: d")),
            [format!(
                "backends[0].health_check.database: {}",
                only("postgres")
            )]
        );
    }

    #[test]
    fn reads_tcp_steps_as_text_regex_and_hex() {
        let steps = kind(
            r#"type: tcp, steps: [{ send: "PING\r\n" }, { expect: "+PONG" }, { send: { hex: "2a31 0d0a" } }, { expect: { regex: "^\\$[0-9]+" } }, { expect: { hex: "0D0a" } }]"#,
        );
        let CheckKind::TcpSteps(steps) = steps else {
            panic!("{steps:?}")
        };
        assert_eq!(steps[0], CheckStep::Send(b"PING\r\n".to_vec()));
        assert_eq!(
            steps[1],
            CheckStep::Expect(BytesMatch::Contains(b"+PONG".to_vec()))
        );
        assert_eq!(steps[2], CheckStep::Send(b"*1\r\n".to_vec()));
        let CheckStep::Expect(regex) = &steps[3] else {
            panic!("{:?}", steps[3])
        };
        assert_eq!(regex.find_end(b"$12\r\n"), Some(3));
        assert_eq!(regex.find_end(b"x$12"), None);
        assert_eq!(
            steps[4],
            CheckStep::Expect(BytesMatch::Contains(b"\r\n".to_vec()))
        );
        assert_eq!(kind("type: tcp"), CheckKind::Tcp);
    }

    #[test]
    fn rejects_bad_steps() {
        assert_eq!(
            problems(&check(
                "type: tcp, steps: [{ send: a, expect: b }, {}, { send: { regex: a } }, \
                 { expect: { regex: '(' } }, { expect: { hex: '0g' } }, { send: { hex: '+f' } }, \
                 { expect: '' }, { expect: { hex: '0a', regex: a } }]"
            )),
            [
                "backends[0].health_check.steps[0]: a step either sends or expects; make it two \
                 steps",
                "backends[0].health_check.steps[1]: a step needs `send` or `expect`",
                "backends[0].health_check.steps[2].send.regex: a regex can be expected, not \
                 sent; send text or { hex: ... }",
                "backends[0].health_check.steps[3].expect: invalid regex \"(\": unclosed group",
                "backends[0].health_check.steps[4].expect: invalid hex \"0g\"; write pairs of \
                 hex digits such as \"0d0a\"",
                "backends[0].health_check.steps[5].send: invalid hex \"+f\"; write pairs of hex \
                 digits such as \"0d0a\"",
                "backends[0].health_check.steps[6].expect: must not be empty",
                "backends[0].health_check.steps[7].expect: write exactly one of { regex: ... } \
                 or { hex: ... }",
            ]
        );
        assert_eq!(
            problems(&check("type: tcp, steps: []")),
            [
                "backends[0].health_check.steps: must not be empty; leave steps out to check \
                 only that a connection opens"
            ]
        );
    }

    #[test]
    fn reads_the_http_request_and_body_expectation() {
        let CheckKind::Http {
            method,
            headers,
            expect_body,
            ..
        } = kind("type: http, method: OPTIONS, headers: { X-Check: tandem, accept: text/plain }, expect_body: { regex: 'ok|ready' }")
        else {
            panic!("an http check")
        };
        assert_eq!(method, http::Method::OPTIONS);
        assert_eq!(
            headers,
            [
                (
                    http::HeaderName::from_static("x-check"),
                    http::HeaderValue::from_static("tandem")
                ),
                (
                    http::header::ACCEPT,
                    http::HeaderValue::from_static("text/plain")
                ),
            ]
        );
        assert_eq!(expect_body.unwrap().find_end(b"is ready"), Some(8));
        let CheckKind::Http { expect_body, .. } = kind("type: http, expect_body: OK") else {
            panic!("an http check")
        };
        assert_eq!(expect_body, Some(BytesMatch::Contains(b"OK".to_vec())));
    }

    #[test]
    fn rejects_a_body_expected_from_head() {
        assert_eq!(
            problems(&check("type: http, method: HEAD, expect_body: ok")),
            [
                "backends[0].health_check.expect_body: the answer to HEAD has no body; use GET, \
                 or leave expect_body out"
            ]
        );
    }

    #[test]
    fn rejects_bad_http_requests() {
        assert_eq!(
            problems(&check(
                "type: http, method: get, headers: { Host: a, Connection: close, 'a b': c, \
                 X-A: \"\\x01\", x-b: 1, X-B: 2 }"
            )),
            [
                "backends[0].health_check.method: invalid method \"get\"; write one such as GET, \
                 HEAD or OPTIONS",
                "backends[0].health_check.headers.Connection: Connection describes the \
                 connection or the message framing, which the check manages; it cannot be set",
                "backends[0].health_check.headers.Host: set the check's Host with `host`",
                "backends[0].health_check.headers.X-A: \"\\u{1}\" is not a valid header value \
                 (control characters and non-ASCII are not allowed)",
                "backends[0].health_check.headers.a b: \"a b\" is not a valid header name \
                 (letters, digits and !#$%&'*+-.^_`|~)",
                "backends[0].health_check.headers.x-b: x-b is set twice (header names are \
                 case-insensitive)",
            ]
        );
    }

    #[test]
    fn errors_in_steps_are_located_in_the_file() {
        let text = "node: { name: n }\n\
                    backends:\n  - name: b\n    servers: [{ name: s, address: 127.0.0.1:81 }]\n    \
                    health_check:\n      type: tcp\n      steps:\n        - send: x\n        \
                    - expect: { regex: '(' }\n";
        let errors = crate::config::parse(text, Path::new("inline.yaml")).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "inline.yaml:9:11: backends[0].health_check.steps[1].expect: invalid regex \"(\": \
             unclosed group"
        );
    }
}
