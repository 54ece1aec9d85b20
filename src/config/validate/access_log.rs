//! `access_log.format` (a template is parsed here, once) and `access_log.syslog`.

use super::super::log_template::LogTemplate;
use super::super::model::*;
use super::super::schema::*;
use super::Validator;

/// Syslog facilities by their numbers, with HAProxy's names (`auth2` is also `authpriv`).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
/// Severities by their numbers.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
/// HAProxy's default `len`; receivers take at least 480 bytes (RFC 5426) and UDP carries at
/// most 65,507.
const MAX_LENGTH: (usize, std::ops::RangeInclusive<usize>) = (1024, 480..=65_507);
/// The syslog port when `udp://` gives none.
const SYSLOG_PORT: u16 = 514;

impl Validator {
    pub(super) fn log_format(&mut self, spec: LogFormatSpec) -> LogFormat {
        match spec {
            LogFormatSpec::Json => LogFormat::Json,
            LogFormatSpec::Text => LogFormat::Text,
            LogFormatSpec::Template(text) => match LogTemplate::parse(&text) {
                Ok(template) => LogFormat::Template(template),
                Err(error) => {
                    self.error(
                        "access_log.format.template",
                        format!("at offset {}: {}", error.offset, error.message),
                    );
                    LogFormat::Json
                }
            },
        }
    }

    pub(super) fn syslog(&mut self, spec: SyslogSpec) -> Syslog {
        let address = self.syslog_address(&spec.address);
        let facility = self.named_number("facility", spec.facility, "local0", &FACILITIES);
        let severity = self.named_number("level", spec.level, "info", &LEVELS);
        let hostname = spec
            .hostname
            .filter(|hostname| self.header_word("hostname", hostname, 255));
        let tag = spec.tag.unwrap_or_else(|| "tandem".to_owned());
        self.header_word("tag", &tag, 48);
        let (default, range) = MAX_LENGTH;
        let max_length = match spec.max_length {
            None => default,
            Some(length) => match length.0.parse() {
                Ok(length) if range.contains(&length) => length,
                _ => {
                    self.error(
                        "access_log.syslog.max_length",
                        format!(
                            "{} is out of range {}..={} (bytes of a message, header included)",
                            length.0,
                            range.start(),
                            range.end()
                        ),
                    );
                    default
                }
            },
        };
        Syslog {
            address,
            facility,
            severity,
            hostname,
            tag,
            max_length,
        }
    }

    fn syslog_address(&mut self, text: &str) -> SyslogAddress {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.starts_with('/') {
                return SyslogAddress::Unix(path.into());
            }
        } else if let Some(address) = text.strip_prefix("udp://") {
            let with_port = match address.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(std::net::SocketAddr::new(ip, SYSLOG_PORT)),
                Err(_) => address.parse(),
            };
            if let Ok(address) = with_port {
                return SyslogAddress::Udp(address);
            }
        }
        self.error(
            "access_log.syslog.address",
            format!(
                "invalid address {text:?}; write unix:/dev/log, udp://198.51.100.1:514 or \
                 udp://[2001:db8::1]:514 (an IP address; the port defaults to 514)"
            ),
        );
        SyslogAddress::Unix("/dev/log".into())
    }

    /// The number of `name` in `names`, or of `default` when left out.
    fn named_number(
        &mut self,
        key: &str,
        name: Option<String>,
        default: &str,
        names: &[&str],
    ) -> u8 {
        let name = name.as_deref().unwrap_or(default);
        let name = if name == "authpriv" { "auth2" } else { name };
        match names.iter().position(|known| *known == name) {
            Some(number) => number as u8,
            None => {
                self.error(
                    format!("access_log.syslog.{key}"),
                    format!("unknown {key} {name:?}; use one of {}", names.join(", ")),
                );
                0
            }
        }
    }

    /// Whether `text` fits a field of the syslog header: 1 to `longest` printable ASCII
    /// characters, no spaces (RFC 5424 §6).
    fn header_word(&mut self, key: &str, text: &str, longest: usize) -> bool {
        let fits =
            (1..=longest).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        if !fits {
            self.error(
                format!("access_log.syslog.{key}"),
                format!(
                    "{text:?} must be 1 to {longest} printable ASCII characters without spaces"
                ),
            );
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    fn access_log(keys: &str) -> String {
        one_backend("") + &format!("access_log: {{ {keys} }}\n")
    }

    #[test]
    fn reads_a_template_and_a_syslog_output() {
        let config = valid(&access_log(
            "format: { template: \"{client} {status} {request_header.user-agent}\" }, \
             syslog: { address: \"udp://198.51.100.1\", facility: local3, level: notice, \
             hostname: lb1, tag: edge, max_length: 2048 }",
        ));
        let log = config.access_log.unwrap();
        let LogFormat::Template(template) = log.format else {
            panic!("a template: {:?}", log.format)
        };
        assert_eq!(template.pieces.len(), 5);
        assert_eq!(log.target, LogTarget::SyslogOnly, "no path: syslog alone");
        assert_eq!(
            log.syslog,
            Some(Syslog {
                address: SyslogAddress::Udp("198.51.100.1:514".parse().unwrap()),
                facility: 19,
                severity: 5,
                hostname: Some("lb1".into()),
                tag: "edge".into(),
                max_length: 2048,
            })
        );
        let both = valid(&access_log(
            "format: text, path: /var/log/a.log, syslog: { address: \"unix:/dev/log\" }",
        ))
        .access_log
        .unwrap();
        assert_eq!(both.target, LogTarget::File("/var/log/a.log".into()));
        assert_eq!(
            both.syslog,
            Some(Syslog {
                address: SyslogAddress::Unix("/dev/log".into()),
                facility: 16,
                severity: 6,
                hostname: None,
                tag: "tandem".into(),
                max_length: 1024,
            })
        );
    }

    #[test]
    fn a_bad_template_names_the_field_and_where() {
        assert_eq!(
            problems(&access_log("format: { template: \"{status} {agent}\" }")),
            [
                "access_log.format.template: at offset 9: unknown field {agent}; fields are time, \
              frontend, backend, server, client, method, path, status, bytes, connect_us, \
              first_byte_us, total_us, request_id, end, client_subject, request_header.NAME and \
              response_header.NAME"
            ]
        );
    }

    #[test]
    fn rejects_bad_syslog_settings() {
        assert_eq!(
            problems(&access_log(
                "syslog: { address: \"tcp://198.51.100.1\", facility: local9, level: loud, \
                 hostname: \"a b\", tag: \"\", max_length: 100 }"
            )),
            [
                "access_log.syslog.address: invalid address \"tcp://198.51.100.1\"; write \
                 unix:/dev/log, udp://198.51.100.1:514 or udp://[2001:db8::1]:514 (an IP \
                 address; the port defaults to 514)",
                "access_log.syslog.facility: unknown facility \"local9\"; use one of kern, \
                 user, mail, daemon, auth, syslog, lpr, news, uucp, cron, auth2, ftp, ntp, \
                 audit, alert, cron2, local0, local1, local2, local3, local4, local5, local6, \
                 local7",
                "access_log.syslog.level: unknown level \"loud\"; use one of emerg, alert, \
                 crit, err, warning, notice, info, debug",
                "access_log.syslog.hostname: \"a b\" must be 1 to 255 printable ASCII \
                 characters without spaces",
                "access_log.syslog.tag: \"\" must be 1 to 48 printable ASCII characters \
                 without spaces",
                "access_log.syslog.max_length: 100 is out of range 480..=65507 (bytes of a \
                 message, header included)",
            ]
        );
    }
}
