//! Validation of the limits put on one client: a rule's `rate_limit` (requests per period and a
//! burst, by client address or header) and a frontend's `client_limits` (connections at once).

use std::time::Duration;

use super::super::duration;
use super::super::model::*;
use super::super::schema::*;
use super::frontends::MAX_CONNECTIONS;
use super::Validator;

/// The longest period a rate may be given over: longer ones are a typo or the job of
/// something other than a proxy.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// The most credit a key may hold (`burst` times the interval between requests): the limiter
/// counts time in nanoseconds, and a year's credit is a quota, not a rate limit.
const MAX_CREDIT: Duration = Duration::from_secs(365 * 24 * 3600);

const RATE_FORM: &str = "write a count per period, e.g. 100/s, 20/m, 1000/h or 5/10s";

impl Validator {
    /// A rule's `rate_limit` action; `at` is the field path of its `rate_limit` key. `None`
    /// when any part of it is invalid (each reported).
    pub(super) fn rate_limit(&mut self, at: &str, spec: RateLimitSpec) -> Option<RateLimit> {
        let key = match spec.key {
            RateKeySpec::Client => Some(RateKey::Client),
            RateKeySpec::Header(name) => self
                .header_name(format!("{at}.key.header"), &name)
                .map(RateKey::Header),
        };
        let rate = parse_rate(&spec.rate.0)
            .map_err(|message| self.error(format!("{at}.rate"), message))
            .ok();
        let burst = match (&spec.burst, rate) {
            (None, Some((count, _))) => Some(count),
            (None, None) => None,
            (Some(burst), _) => match burst.0.parse::<u32>() {
                Ok(0) => {
                    self.error(format!("{at}.burst"), "must be at least 1");
                    None
                }
                Ok(burst) => Some(burst),
                Err(_) => {
                    self.error(
                        format!("{at}.burst"),
                        format!("{} is out of range 1..={}", burst.0, u32::MAX),
                    );
                    None
                }
            },
        };
        let limit = RateLimit {
            key: key?,
            rate: rate?.0,
            period: rate?.1,
            burst: burst?,
        };
        let credit = (limit.emission_interval().as_nanos()) * u128::from(limit.burst);
        if credit > MAX_CREDIT.as_nanos() {
            self.error(
                format!("{at}.burst"),
                format!(
                    "a burst of {} at {} is more than a year's worth of requests; lower the burst",
                    limit.burst, spec.rate.0
                ),
            );
            return None;
        }
        Some(limit)
    }

    /// A frontend's `client_limits`; `at` is the frontend's field path.
    pub(super) fn client_limits(
        &mut self,
        at: &str,
        spec: Option<ClientLimitsSpec>,
    ) -> Option<ClientLimits> {
        let spec = spec?;
        let field = format!("{at}.client_limits.connections");
        match spec.connections.0.parse::<usize>() {
            Ok(0) => {
                self.error(field, "must be at least 1");
                None
            }
            Ok(connections) if connections <= MAX_CONNECTIONS => Some(ClientLimits {
                connections: connections as u32,
            }),
            _ => {
                self.error(
                    field,
                    format!(
                        "{} is out of range 1..={MAX_CONNECTIONS}, the most open files a process \
                         may have by default",
                        spec.connections.0
                    ),
                );
                None
            }
        }
    }
}

/// `N/s`, `N/m`, `N/h` or `N/<duration>` as a count and its period.
fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let Some((count, period)) = text.split_once('/') else {
        return Err(format!("invalid rate {text:?}: {RATE_FORM}"));
    };
    let (count, period) = (count.trim(), period.trim());
    if count.is_empty() || !count.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "invalid rate {text:?}: the count must be a whole number; {RATE_FORM}"
        ));
    }
    let count = match count.parse::<u32>() {
        Ok(0) => {
            return Err(format!(
                "invalid rate {text:?}: the count must be at least 1"
            ))
        }
        Ok(count) => count,
        Err(_) => {
            return Err(format!(
                "invalid rate {text:?}: the count is more than {}",
                u32::MAX
            ))
        }
    };
    let period = match period {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ if !period.starts_with(|c: char| c.is_ascii_digit()) => {
            return Err(format!(
                "invalid rate {text:?}: unknown period {period:?}; use s, m, h or a duration \
                 such as 10s"
            ))
        }
        _ => duration::parse(period)
            .map_err(|message| format!("invalid rate {text:?}: period: {message}"))?,
    };
    if period.is_zero() {
        return Err(format!(
            "invalid rate {text:?}: the period must be longer than zero"
        ));
    }
    if period > MAX_PERIOD {
        return Err(format!(
            "invalid rate {text:?}: the period is longer than {}; give a rate per hour or less",
            duration::display(MAX_PERIOD)
        ));
    }
    if u128::from(count) > period.as_nanos() {
        return Err(format!(
            "invalid rate {text:?}: more than one request per nanosecond cannot be told apart"
        ));
    }
    Ok((count, period))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{one_backend, problems, valid};
    use super::super::{FieldError, Validator};
    use super::*;
    use http::HeaderName;

    /// Validates `spec` (the YAML of a `rate_limit` value) at `rules[0].rate_limit`.
    fn check(spec: &str) -> Result<RateLimit, Vec<String>> {
        let spec: RateLimitSpec = serde_yaml::from_str(spec).expect("fits the schema");
        let mut validator = Validator {
            errors: Vec::new(),
            base: "/etc/tandem".into(),
            skipped_backends: Vec::new(),
            skipped_frontends: Vec::new(),
        };
        let limit = validator.rate_limit("rules[0].rate_limit", spec);
        let errors: Vec<String> = (validator.errors.into_iter())
            .map(|FieldError { field, message }| format!("{field}: {message}"))
            .collect();
        match limit {
            Some(limit) if errors.is_empty() => Ok(limit),
            None if !errors.is_empty() => Err(errors),
            _ => panic!("a limit and errors, or neither: {limit:?} {errors:?}"),
        }
    }

    fn limit(key: RateKey, rate: u32, period: u64, burst: u32) -> RateLimit {
        RateLimit {
            key,
            rate,
            period: Duration::from_secs(period),
            burst,
        }
    }

    #[test]
    fn reads_the_issue_example() {
        assert_eq!(
            check("{ key: client, rate: 100/s, burst: 50 }"),
            Ok(limit(RateKey::Client, 100, 1, 50))
        );
        assert_eq!(
            check("{ key: client, rate: 100/s, burst: 50 }")
                .unwrap()
                .emission_interval(),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn reads_each_period_form_and_a_header_key() {
        let header = || RateKey::Header(HeaderName::from_static("x-api-key"));
        assert_eq!(
            check("{ key: { header: X-Api-Key }, rate: 20/m }"),
            Ok(limit(header(), 20, 60, 20))
        );
        assert_eq!(
            check("{ key: client, rate: 1000/h, burst: 10 }"),
            Ok(limit(RateKey::Client, 1000, 3600, 10))
        );
        assert_eq!(
            check("{ key: client, rate: 5/10s }"),
            Ok(limit(RateKey::Client, 5, 10, 5))
        );
        let half_second = check("{ key: client, rate: 1/500ms }").unwrap();
        assert_eq!(half_second.period, Duration::from_millis(500));
        assert_eq!(
            check("{ key: client, rate: 3/s }")
                .unwrap()
                .emission_interval(),
            Duration::from_nanos(333_333_333)
        );
    }

    #[test]
    fn a_key_is_client_or_a_header() {
        for key in ["server", "{ cookie: id }", "7"] {
            let text = format!("{{ key: {key}, rate: 1/s }}");
            let error = serde_yaml::from_str::<RateLimitSpec>(&text).unwrap_err();
            let message = error.to_string();
            let expected = match key.starts_with('{') {
                true => "missing field `header`",
                false => "expected `client` or `{ header: NAME }`",
            };
            assert!(message.contains(expected), "{key}: {message}");
        }
    }

    #[test]
    fn the_burst_defaults_to_the_count() {
        assert_eq!(check("{ key: client, rate: 7/s }").unwrap().burst, 7);
    }

    #[test]
    fn rejects_rates_that_are_not_a_count_per_period() {
        let cases = [
            ("100", "invalid rate \"100\": write a count per period, e.g. 100/s, 20/m, 1000/h or 5/10s"),
            ("0/s", "invalid rate \"0/s\": the count must be at least 1"),
            ("-1/s", "invalid rate \"-1/s\": the count must be a whole number; write a count per period, e.g. 100/s, 20/m, 1000/h or 5/10s"),
            ("1.5/s", "invalid rate \"1.5/s\": the count must be a whole number; write a count per period, e.g. 100/s, 20/m, 1000/h or 5/10s"),
            ("4294967296/h", "invalid rate \"4294967296/h\": the count is more than 4294967295"),
            ("99999999999999999999999/s", "invalid rate \"99999999999999999999999/s\": the count is more than 4294967295"),
            ("10/d", "invalid rate \"10/d\": unknown period \"d\"; use s, m, h or a duration such as 10s"),
            ("10/", "invalid rate \"10/\": unknown period \"\"; use s, m, h or a duration such as 10s"),
            ("10/10", "invalid rate \"10/10\": period: invalid duration \"10\": missing unit; write e.g. 10s or 10ms"),
            ("10/0s", "invalid rate \"10/0s\": the period must be longer than zero"),
            ("10/25h", "invalid rate \"10/25h\": the period is longer than 24h; give a rate per hour or less"),
            ("10/99999999999999999999h", "invalid rate \"10/99999999999999999999h\": period: invalid duration \"99999999999999999999h\": too large"),
            ("2000000000/s", "invalid rate \"2000000000/s\": more than one request per nanosecond cannot be told apart"),
        ];
        for (rate, message) in cases {
            assert_eq!(
                check(&format!("{{ key: client, rate: \"{rate}\" }}")),
                Err(vec![format!("rules[0].rate_limit.rate: {message}")]),
                "{rate}"
            );
        }
        assert_eq!(
            check("{ key: client, rate: 100 }"),
            Err(vec![format!(
                "rules[0].rate_limit.rate: invalid rate \"100\": {RATE_FORM}"
            )])
        );
    }

    #[test]
    fn rejects_a_zero_huge_or_year_long_burst() {
        assert_eq!(
            check("{ key: client, rate: 10/s, burst: 0 }"),
            Err(vec!["rules[0].rate_limit.burst: must be at least 1".into()])
        );
        assert_eq!(
            check("{ key: client, rate: 10/s, burst: -3 }"),
            Err(vec![
                "rules[0].rate_limit.burst: -3 is out of range 1..=4294967295".into()
            ])
        );
        assert_eq!(
            check("{ key: client, rate: 1/h, burst: 9000 }"),
            Err(vec![
                "rules[0].rate_limit.burst: a burst of 9000 at 1/h is more than a year's \
                 worth of requests; lower the burst"
                    .into()
            ])
        );
        assert!(check("{ key: client, rate: 1/h, burst: 8760 }").is_ok());
    }

    #[test]
    fn rejects_a_bad_header_name_with_the_other_problems() {
        assert_eq!(
            check("{ key: { header: \"X Api\" }, rate: 0/s, burst: 0 }"),
            Err(vec![
                "rules[0].rate_limit.key.header: \"X Api\" is not a valid header name \
                 (letters, digits and !#$%&'*+-.^_`|~)"
                    .into(),
                "rules[0].rate_limit.rate: invalid rate \"0/s\": the count must be at least 1"
                    .into(),
                "rules[0].rate_limit.burst: must be at least 1".into(),
            ])
        );
    }

    fn with_client_limits(limits: &str) -> String {
        one_backend("").replace(
            "backend: b }",
            &format!("backend: b, client_limits: {limits} }}"),
        )
    }

    #[test]
    fn reads_client_limits() {
        assert_eq!(valid(&one_backend("")).frontends[0].client_limits, None);
        assert_eq!(
            valid(&with_client_limits("{ connections: 20 }")).frontends[0].client_limits,
            Some(ClientLimits { connections: 20 })
        );
    }

    #[test]
    fn rejects_zero_and_huge_client_connection_limits() {
        assert_eq!(
            problems(&with_client_limits("{ connections: 0 }")),
            ["frontends[0].client_limits.connections: must be at least 1"]
        );
        for huge in ["1048577", "-1", "99999999999999999999999"] {
            assert_eq!(
                problems(&with_client_limits(&format!("{{ connections: {huge} }}"))),
                [format!(
                    "frontends[0].client_limits.connections: {huge} is out of range \
                     1..=1048576, the most open files a process may have by default"
                )]
            );
        }
    }
}
