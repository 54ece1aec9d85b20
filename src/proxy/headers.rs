//! Header hygiene between the two hops, in one place.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::address_text;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes the hop-by-hop headers, including those the Connection header names.
///
/// Transfer-Encoding is left to hyper, which re-frames bodies on each side. Forwarding a client's
/// `Connection: close` would also cost a fresh upstream connection per request.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few names a message has, then a hashed removal only for those present:
    // most messages carry none, and most responses only `Connection: keep-alive`.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        // Header names, not their text: most compare as one byte each.
        if let Some(index) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present[index] = true;
        }
    }
    if present == [false; HOP_BY_HOP.len()] {
        return;
    }
    // What Connection names beyond `close` and the standard names, which are removed anyway:
    // usually nothing, so no header name is made.
    let mut named = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&byte| byte == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") || is_hop_by_hop(token) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// The names of `HOP_BY_HOP` as text, for the tokens of a Connection header.
const HOP_BY_HOP_NAMES: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Whether `name` (in any case) is one of `HOP_BY_HOP`.
fn is_hop_by_hop(name: &[u8]) -> bool {
    (HOP_BY_HOP_NAMES.iter())
        .any(|hop| hop.len() == name.len() && hop.as_bytes().eq_ignore_ascii_case(name))
}

/// A client's address as an X-Forwarded-For value: made once per connection, and cheap to
/// clone onto each of its requests.
pub fn forwarded_for(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(address_text::ip(client).as_str())
        .expect("an IP address is a valid header value")
}

/// Appends the client (from [`forwarded_for`]) to X-Forwarded-For and states the scheme it used.
pub fn add_forwarded(headers: &mut HeaderMap, client: &HeaderValue, proto: &'static str) {
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(previous) if !previous.is_empty() => {
            let mut value = Vec::with_capacity(previous.len() + 2 + client.len());
            value.extend_from_slice(previous);
            value.extend_from_slice(b", ");
            value.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&value).ok()
        }
        _ => Some(client.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(&X_FORWARDED_FOR, value);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// Joins the Cookie headers an HTTP/2 client may split a cookie list into back into one, as an
/// HTTP/1.1 server expects (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// A header map of `(name, value)` pairs, in order: the fixture the header tests share.
#[cfg(test)]
pub(crate) fn test_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::test_map as headers;
    use super::*;

    #[test]
    fn hop_by_hop_names_as_text_match_the_header_names() {
        for (name, text) in HOP_BY_HOP.iter().zip(HOP_BY_HOP_NAMES) {
            assert_eq!(name.as_str(), text);
        }
        assert!(is_hop_by_hop(b"Keep-Alive"));
        assert!(!is_hop_by_hop(b"x-other"));
    }

    #[test]
    fn removes_standard_and_connection_named_headers() {
        let mut map = headers(&[
            ("connection", "close, X-Session-Token"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-session-token", "secret"),
            ("x-other", "1"),
            ("host", "example.com"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut map);
        let mut left: Vec<_> = map.keys().map(|name| name.as_str()).collect();
        left.sort();
        assert_eq!(left, ["host", "x-kept"]);
    }

    #[test]
    fn headers_named_only_by_connection_stay_when_nothing_is_hop_by_hop() {
        let mut map = headers(&[("host", "example.com"), ("x-session-token", "secret")]);
        remove_hop_by_hop(&mut map);
        assert_eq!(map.len(), 2);
        let mut map = headers(&[("te", "trailers"), ("host", "example.com")]);
        remove_hop_by_hop(&mut map);
        assert_eq!(
            map.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["host"]
        );
    }

    #[test]
    fn x_forwarded_for_is_appended_and_proto_replaced() {
        let mut map = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(
            &mut map,
            &forwarded_for("198.51.100.4".parse().unwrap()),
            "http",
        );
        assert_eq!(map["x-forwarded-for"], "203.0.113.9, 198.51.100.4");
        assert_eq!(map["x-forwarded-proto"], "http");

        let mut map = HeaderMap::new();
        add_forwarded(
            &mut map,
            &forwarded_for("2001:db8::1".parse().unwrap()),
            "http",
        );
        assert_eq!(map["x-forwarded-for"], "2001:db8::1");
    }

    #[test]
    fn split_cookies_are_joined_in_order_and_a_single_one_is_left_alone() {
        let mut map = headers(&[("cookie", "a=1"), ("cookie", "b=2; c=3"), ("host", "h")]);
        join_cookies(&mut map);
        assert_eq!(
            map.get_all("cookie").iter().collect::<Vec<_>>(),
            ["a=1; b=2; c=3"]
        );
        let mut map = headers(&[("cookie", "a=1")]);
        join_cookies(&mut map);
        assert_eq!(map["cookie"], "a=1");
    }
}
