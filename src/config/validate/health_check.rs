//! A backend's `health_check`: how often, and what counts as a pass; its kinds are in
//! `check_kinds.rs`.

use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use std::time::Duration;

const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// A server checked less often than hourly is not being watched; the timeout is shorter still,
/// being at most the interval.
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
const DEFAULT_CHECK_PATH: &str = "/";
const DEFAULT_EXPECT: StatusMatch = StatusMatch::Class(2);

impl Validator {
    pub(super) fn health_check(&mut self, at: &str, mut spec: HealthCheckSpec) -> HealthCheck {
        let interval = self.timeout(
            format!("{at}.interval"),
            spec.interval.as_deref(),
            DEFAULT_CHECK_INTERVAL,
            MAX_CHECK_INTERVAL,
        );
        let timeout = self.timeout(
            format!("{at}.timeout"),
            spec.timeout.as_deref(),
            DEFAULT_CHECK_TIMEOUT,
            MAX_CHECK_INTERVAL,
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
        let tls = spec.tls;
        let sni = self.check_tls(at, tls, spec.sni.take());
        let port = self.check_port(at, spec.port.as_ref());
        let address = self.check_address(at, spec.address.as_deref());
        let kind = self.check_kind(at, spec);
        HealthCheck {
            kind,
            interval,
            timeout,
            rise,
            fall,
            tls,
            sni,
            port,
            address,
        }
    }

    /// An http check's path, Host and expected status.
    pub(super) fn http_check(
        &mut self,
        at: &str,
        path: Option<String>,
        host: Option<String>,
        expect: Option<StatusSpec>,
    ) -> (String, Option<String>, StatusMatch) {
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
        (path, host, expect)
    }
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
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn leaves_health_checks_off_unless_configured() {
        assert_eq!(valid(&one_backend("")).backends[0].health_check, None);
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
                _ => unreachable!("the check is http"),
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
                method: http::Method::GET,
                headers: Vec::new(),
                expect_body: None,
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
}
