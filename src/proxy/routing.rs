//! The host an http request is for, and whether a Host or authority is well-formed.
//!
//! Pure functions over the request's URI and headers, run on every request: they allocate only
//! to lowercase a host that arrives with capitals.

use std::borrow::Cow;

use http::header::{HeaderMap, HOST};
use http::Uri;

use crate::rules::matcher::header_values;

/// The host a request is for, lowercased, without port or trailing dot: from the Host header, or for
/// HTTP/2 (and absolute-form HTTP/1.1) from the URI authority, which wins over Host when present
/// (RFC 9113 §8.3.1 / RFC 9112 §3.2.2). None if neither. IPv6 literals `[2001:db8::1]:8080` -> `[2001:db8::1]`.
pub fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<Cow<'a, str>> {
    if let Some(authority) = uri.authority() {
        // `Authority::host` leaves out userinfo and port; normalizing again is harmless.
        return host_name(authority.host());
    }
    // A Host header that is not visible ASCII names no host we could route on.
    host_name(header_values(headers, &HOST).next()?.to_str().ok()?)
}

/// `host[:port]` as a lowercase name without port or trailing dot; `None` if nothing is left.
fn host_name(host: &str) -> Option<Cow<'_, str>> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        // A name or IPv4 address holds no colon: the first one starts the port.
        let end = (host.bytes())
            .position(|byte| byte == b':')
            .unwrap_or(host.len());
        &host[..end]
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || !is_host_name(name) {
        None
    } else if name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// A DNS name or IPv4 address (letters, digits, `-`, `_`, `.`), or an IPv6 literal in brackets:
/// anything else (`evil.com/x?`, `user@host`, spaces) names no host, to route by or redirect to.
fn is_host_name(name: &str) -> bool {
    match name
        .strip_prefix('[')
        .and_then(|literal| literal.strip_suffix(']'))
    {
        Some(literal) => {
            !literal.is_empty()
                && (literal.bytes())
                    .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.')
        }
        None => (name.bytes())
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')),
    }
}

/// Whether `authority` is `host [ ":" port ]` as RFC 3986 §3.2.2 and §3.2.3 write it: an IP
/// literal in brackets, or an IPv4 address or registered name (unreserved characters,
/// sub-delims, percent-encodings; possibly empty), then optionally a colon and digits. A Host
/// header must be this (RFC 9112 §3.2), and so must HTTP/2's `:authority`, which may not carry
/// userinfo either (RFC 9113 §8.3.1). Run on every request: one pass over the bytes by class,
/// no allocation.
pub fn is_valid_authority(authority: &[u8]) -> bool {
    let port = match authority {
        [b'[', rest @ ..] => match rest.iter().position(|&byte| byte == b']') {
            Some(end) if is_ip_literal(&rest[..end]) => &rest[end + 1..],
            _ => return false,
        },
        _ => {
            let end = (authority.iter())
                .position(|&byte| byte == b':')
                .unwrap_or(authority.len());
            if !is_reg_name(&authority[..end]) {
                return false;
            }
            &authority[end..]
        }
    };
    match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// RFC 3986's unreserved characters and sub-delims: what a reg-name holds besides
/// percent-encodings (an IPv4 address is one too).
const fn reg_name_bytes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        byte += 1;
    }
    table
}

static REG_NAME: [bool; 256] = reg_name_bytes();

fn is_reg_name(name: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        match name[at] {
            b'%' => match name.get(at + 1..at + 3) {
                Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => at += 3,
                _ => return false,
            },
            byte if REG_NAME[byte as usize] => at += 1,
            _ => return false,
        }
    }
    true
}

/// What goes between the brackets: an IPv6 address, or an IPvFuture `v` HEXDIG+ `.` (unreserved,
/// sub-delims or `:`)+. Rare enough to parse properly.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = literal {
        let Some(dot) = rest.iter().position(|&byte| byte == b'.') else {
            return false;
        };
        let (version, address) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !address.is_empty()
            && (address.iter()).all(|&byte| byte == b':' || REG_NAME[byte as usize]);
    }
    std::str::from_utf8(literal).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_authority_is_a_host_and_an_optional_port_as_rfc_3986_writes_them() {
        for good in [
            "example.com",
            "example.com:8080",
            "Example.COM.",
            "192.0.2.1:80",
            "[2001:db8::1]",
            "[2001:db8::1]:8443",
            "[::ffff:192.0.2.1]",
            "[v7.a:b]",
            "a_b-c~d",
            "caf%C3%A9.example",
            "a!$&'()*+,;=b",
            "",
            "host:",
        ] {
            assert!(super::is_valid_authority(good.as_bytes()), "{good:?}");
        }
        for bad in [
            "a b",
            "a@evil.example",
            "user:pass@example.com",
            "a:badport",
            "a:80:80",
            "a:8 0",
            "evil.com/x?",
            "evil.com\\@good",
            "a%2",
            "a%zz",
            "[::1",
            "[]",
            "[::g]",
            "[::1]x",
            "[::1]:a",
            "[fe80::1%25eth0]",
            "[v.a]",
            "[v7.]",
            "a\tb",
            "caf\u{e9}.example",
        ] {
            assert!(!super::is_valid_authority(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn a_host_with_anything_but_a_name_or_address_in_it_is_no_host() {
        let uri = http::Uri::from_static("/");
        for bad in [
            "evil.com/x?",
            "user@evil.com",
            "a b",
            "evil.com\\@good",
            "[::1",
            "[]",
            "[::g]",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::HOST, bad.parse().unwrap());
            assert_eq!(super::request_host(&uri, &headers), None, "{bad}");
        }
        for good in [
            "www.example.com",
            "a_b-c.example",
            "192.0.2.1:80",
            "[2001:db8::1]:8443",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::HOST, good.parse().unwrap());
            assert!(super::request_host(&uri, &headers).is_some(), "{good}");
        }
    }

    use super::*;
    use crate::config::HostMatch;
    use http::HeaderValue;

    fn host_of(uri: &str, host_header: Option<&str>) -> Option<String> {
        let uri: Uri = uri.parse().unwrap();
        let mut headers = HeaderMap::new();
        if let Some(host) = host_header {
            headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        request_host(&uri, &headers).map(Cow::into_owned)
    }

    #[test]
    fn host_comes_from_the_host_header_for_origin_form() {
        assert_eq!(
            host_of("/a", Some("example.com")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("/a", Some("example.com:8080")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("/a", Some("Example.COM:80")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("/a", Some("example.com.")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("/a", Some("example.com.:443")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("/a", Some("198.51.100.7:81")).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            host_of("*", Some("example.com")).as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn ipv6_literals_keep_their_brackets() {
        assert_eq!(
            host_of("/", Some("[2001:db8::1]:8080")).as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(
            host_of("/", Some("[2001:DB8::1]")).as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(
            host_of("https://[2001:db8::1]:8443/x", None).as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(host_of("/", Some("[2001:db8::1")), None);
    }

    #[test]
    fn uri_authority_wins_over_host() {
        assert_eq!(
            host_of("https://Api.Example.com:8443/v1?q", Some("other.example")).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            host_of("http://user:secret@example.com/", None).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of("http://example.net./", None).as_deref(),
            Some("example.net")
        );
    }

    #[test]
    fn no_host_anywhere_or_an_empty_one_is_none() {
        assert_eq!(host_of("/", None), None);
        assert_eq!(host_of("/", Some("")), None);
        assert_eq!(host_of("/", Some(":80")), None);
        assert_eq!(host_of("/", Some(".")), None);
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_bytes(b"caf\xc3\xa9.example").unwrap(),
        );
        assert_eq!(request_host(&uri, &headers), None);
    }

    #[test]
    fn a_lowercase_portless_host_is_borrowed() {
        let uri: Uri = "/".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("example.com"));
        assert!(matches!(
            request_host(&uri, &headers),
            Some(Cow::Borrowed("example.com"))
        ));
        headers.insert(HOST, HeaderValue::from_static("example.com:8080"));
        assert!(matches!(
            request_host(&uri, &headers),
            Some(Cow::Borrowed("example.com"))
        ));
        headers.insert(HOST, HeaderValue::from_static("Example.com"));
        assert!(matches!(request_host(&uri, &headers), Some(Cow::Owned(_))));
        let uri: Uri = "https://example.com/".parse().unwrap();
        assert!(matches!(
            request_host(&uri, &headers),
            Some(Cow::Borrowed("example.com"))
        ));
    }

    #[test]
    fn an_exact_host_matches_only_that_host_in_any_case() {
        let exact = HostMatch::Exact("static.example.com".into());
        assert!(exact.matches("static.example.com"));
        assert!(exact.matches("Static.Example.com"));
        for other in ["example.com", "a.static.example.com", "static.example.co"] {
            assert!(!exact.matches(other), "{other}");
        }
    }

    #[test]
    fn a_wildcard_needs_at_least_one_more_label() {
        let suffix = HostMatch::Suffix(".example.com".into());
        for host in ["a.example.com", "a.b.example.com", "A.EXAMPLE.COM"] {
            assert!(suffix.matches(host), "{host}");
        }
        for other in [
            "example.com",
            ".example.com",
            "badexample.com",
            "example.com.evil",
            "xample.com",
        ] {
            assert!(!suffix.matches(other), "{other}");
        }
    }
}
