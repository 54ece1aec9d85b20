//! Servers named by DNS: the `name:port` form of a server's address, and a backend's
//! `resolve:` settings.

use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use super::UNPARSED_ADDRESS;
use std::net::SocketAddr;
use std::time::Duration;

const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// More servers than this from one name is a wrong name, not a deployment.
const MAX_MAX_ADDRESSES: usize = 256;
const DNS_PORT: u16 = 53;

impl Validator {
    /// `IP:port`, or `name:port` for a server to look up.
    pub(super) fn server_address(&mut self, field: String, text: &str) -> ServerAddress {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return ServerAddress::Ip(address);
        }
        match dns_name(text) {
            Ok(name) => ServerAddress::Name(name),
            Err(why) => {
                self.error(
                    field,
                    format!(
                        "invalid server address {text:?}: {why}; write IP:port such as \
                         127.0.0.1:8080 or [::1]:8080, or name:port such as app.internal:8080"
                    ),
                );
                ServerAddress::Ip(UNPARSED_ADDRESS)
            }
        }
    }

    /// A server named by DNS takes the names `NAME-1`, `NAME-2`... for its addresses; no other
    /// server of the backend may be called so.
    pub(super) fn numbered_names_free(&mut self, at: &str, servers: &[Server]) {
        for (index, server) in servers.iter().enumerate() {
            let taken_by = servers.iter().find(|named| {
                matches!(named.address, ServerAddress::Name(_))
                    && (server.name.strip_prefix(named.name.as_str()))
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|number| number.parse::<u32>().is_ok())
            });
            if let Some(named) = taken_by {
                self.error(
                    format!("{at}.servers[{index}].name"),
                    format!(
                        "{:?} is the name of one of the servers {:?} resolves to; rename one",
                        server.name, named.name
                    ),
                );
            }
        }
    }

    pub(super) fn resolve(&mut self, at: &str, spec: Option<ResolveSpec>) -> Resolve {
        let at = format!("{at}.resolve");
        let spec = spec.unwrap_or_default();
        let default = Resolve::default();
        let interval = self.timeout(
            format!("{at}.interval"),
            spec.interval.as_deref(),
            default.interval,
            MAX_INTERVAL,
        );
        let min_interval = self.timeout(
            format!("{at}.min_interval"),
            spec.min_interval.as_deref(),
            default.min_interval.min(interval),
            MAX_INTERVAL,
        );
        if min_interval > interval {
            self.error(
                format!("{at}.min_interval"),
                "is longer than interval; the floor of the re-resolve time must not be above \
                 its ceiling",
            );
        }
        let timeout = self.timeout(
            format!("{at}.timeout"),
            spec.timeout.as_deref(),
            default.timeout,
            MAX_TIMEOUT,
        );
        let nameservers = (spec.nameservers.unwrap_or_default().iter().enumerate())
            .filter_map(|(index, text)| {
                let field = format!("{at}.nameservers[{index}]");
                nameserver(text).or_else(|| {
                    self.error(
                        field,
                        format!(
                            "invalid name server {text:?}; write an IP address, with a port if \
                             not 53, such as 192.0.2.53 or 127.0.0.1:5353"
                        ),
                    );
                    None
                })
            })
            .collect();
        let max_addresses = spec.max_addresses.unwrap_or(default.max_addresses);
        if !(1..=MAX_MAX_ADDRESSES).contains(&max_addresses) {
            self.error(
                format!("{at}.max_addresses"),
                format!("{max_addresses} is out of range 1..={MAX_MAX_ADDRESSES}"),
            );
        }
        Resolve {
            interval,
            min_interval: min_interval.min(interval),
            timeout,
            nameservers,
            prefer: match spec.prefer {
                None | Some(FamilySpec::Ipv4) => Family::Ipv4,
                Some(FamilySpec::Ipv6) => Family::Ipv6,
            },
            max_addresses: max_addresses.clamp(1, MAX_MAX_ADDRESSES),
        }
    }
}

fn nameserver(text: &str) -> Option<SocketAddr> {
    (text.parse().ok()).or_else(|| Some(SocketAddr::new(text.parse().ok()?, DNS_PORT)))
}

/// `host:port` with a host name by RFC 1123 (letters, digits and hyphens in dot-separated
/// labels of at most 63), plus underscores, which container platforms put in service names and
/// resolvers answer for.
fn dns_name(text: &str) -> Result<DnsName, String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("no port".into());
    };
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(format!("port {port:?} is not 1..=65535")),
        Ok(port) => port,
    };
    let bare = host.strip_suffix('.').unwrap_or(host);
    if bare.is_empty() || bare.len() > 253 {
        return Err("a host name is 1 to 253 characters".into());
    }
    if bare.contains(':') || bare.starts_with('[') {
        return Err("an IPv6 address goes in brackets: [2001:db8::1]:8080".into());
    }
    for label in bare.split('.') {
        let valid = (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && (label.bytes()).all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte));
        if !valid {
            return Err(format!("{label:?} is not a valid label of a host name"));
        }
    }
    if (bare.bytes()).all(|byte| byte.is_ascii_digit() || byte == b'.') {
        return Err(format!(
            "{host:?} is neither an IPv4 address nor a host name"
        ));
    }
    Ok(DnsName {
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    fn server(address: &str) -> String {
        one_backend(&format!(", servers: [{{ name: s, address: {address:?} }}]"))
    }

    #[test]
    fn reads_ip_literals_and_host_names() {
        let address = |text: &str| valid(&server(text)).backends[0].servers[0].address.clone();
        assert_eq!(
            address("127.0.0.1:81"),
            ServerAddress::Ip(([127, 0, 0, 1], 81).into())
        );
        assert_eq!(
            address("[::1]:81"),
            ServerAddress::Ip("[::1]:81".parse().unwrap())
        );
        for (text, host, port) in [
            ("app:8080", "app", 8080),
            ("App.Internal.:443", "app.internal.", 443),
            ("my_service:80", "my_service", 80),
            (
                "db-1.eu-west-1.rds.amazonaws.com:5432",
                "db-1.eu-west-1.rds.amazonaws.com",
                5432,
            ),
        ] {
            assert_eq!(
                address(text),
                ServerAddress::Name(DnsName {
                    host: host.into(),
                    port
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_what_is_neither_an_address_nor_a_name() {
        for (text, why) in [
            ("app", "no port"),
            ("app:0", "port \"0\" is not 1..=65535"),
            ("app:http", "port \"http\" is not 1..=65535"),
            (":80", "a host name is 1 to 253 characters"),
            (
                "2001:db8::1:80",
                "an IPv6 address goes in brackets: [2001:db8::1]:8080",
            ),
            ("-app:80", "\"-app\" is not a valid label of a host name"),
            ("a..b:80", "\"\" is not a valid label of a host name"),
            (
                "app space:80",
                "\"app space\" is not a valid label of a host name",
            ),
            (
                "10.0.0.300:80",
                "\"10.0.0.300\" is neither an IPv4 address nor a host name",
            ),
        ] {
            assert_eq!(
                problems(&server(text)),
                [format!(
                    "backends[0].servers[0].address: invalid server address {text:?}: {why}; \
                     write IP:port such as 127.0.0.1:8080 or [::1]:8080, or name:port such as \
                     app.internal:8080"
                )],
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_a_server_named_like_the_servers_of_a_name() {
        let servers = ", servers: [{ name: web, address: app:80 }, \
                       { name: web-2, address: 127.0.0.1:81 }, { name: web-x, address: 127.0.0.1:82 }]";
        assert_eq!(
            problems(&one_backend(servers)),
            [
                "backends[0].servers[1].name: \"web-2\" is the name of one of the servers \"web\" \
              resolves to; rename one"
            ]
        );
    }

    #[test]
    fn reads_resolve_with_defaults() {
        let resolve = |keys: &str| {
            let text = one_backend(&format!(
                ", servers: [{{ name: s, address: app:80 }}]{keys}"
            ));
            valid(&text).backends[0].resolve.clone()
        };
        assert_eq!(
            resolve(""),
            Resolve {
                interval: Duration::from_secs(30),
                min_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(2),
                nameservers: vec![],
                prefer: Family::Ipv4,
                max_addresses: 16,
            }
        );
        let set = resolve(
            ", resolve: { interval: 10s, min_interval: 2s, timeout: 1s, prefer: ipv6, \
             max_addresses: 3, nameservers: [192.0.2.53, \"127.0.0.1:5353\", \"[::1]:53\"] }",
        );
        assert_eq!(set.interval, Duration::from_secs(10));
        assert_eq!(set.min_interval, Duration::from_secs(2));
        assert_eq!(set.timeout, Duration::from_secs(1));
        assert_eq!(set.prefer, Family::Ipv6);
        assert_eq!(set.max_addresses, 3);
        assert_eq!(
            set.nameservers,
            [
                "192.0.2.53:53".parse().unwrap(),
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            resolve(", resolve: { interval: 500ms }").min_interval,
            Duration::from_millis(500),
            "the default floor is never above the ceiling"
        );
    }

    #[test]
    fn rejects_bad_resolve_settings_all_at_once() {
        assert_eq!(
            problems(&one_backend(
                ", servers: [{ name: s, address: app:80 }], resolve: { interval: 1s, \
                 min_interval: 5s, max_addresses: 0, nameservers: [dns.example] }"
            )),
            [
                "backends[0].resolve.min_interval: is longer than interval; the floor of the \
                 re-resolve time must not be above its ceiling",
                "backends[0].resolve.nameservers[0]: invalid name server \"dns.example\"; write \
                 an IP address, with a port if not 53, such as 192.0.2.53 or 127.0.0.1:5353",
                "backends[0].resolve.max_addresses: 0 is out of range 1..=256",
            ]
        );
    }
}
