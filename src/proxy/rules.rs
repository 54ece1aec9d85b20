//! The configured header changes, and the redirect to https.
//!
//! Pure functions run on every request: with no rules configured they do nothing at all.

use std::fmt::Write;

use http::header::{HeaderMap, HeaderValue};
use http::Uri;

use crate::config::HeaderRules;

/// Applies header rules: every `remove` name first, then each `set` (replacing all values of that name).
pub fn apply(rules: &HeaderRules, headers: &mut HeaderMap) {
    for name in &rules.remove {
        headers.remove(name);
    }
    for (name, value) in &rules.set {
        // Clones share the configured bytes; nothing is copied.
        headers.insert(name.clone(), value.clone());
    }
}

/// The Location for a redirect to https on `port` (443 is left out of the URL): the request's host
/// (as from request_host) and its path and query kept byte for byte. None when the request has no host.
pub fn https_location(host: &str, port: u16, uri: &Uri) -> Option<HeaderValue> {
    if host.is_empty() {
        return None;
    }
    // Asterisk-form (`OPTIONS *`) names no resource: send the client to the root.
    let (path, query) = match uri.path() {
        path if path.starts_with('/') => (path, uri.query()),
        "*" => ("/", None),
        _ => ("/", uri.query()),
    };
    let mut location = String::with_capacity(
        "https://".len()
            + host.len()
            + ":65535".len()
            + path.len()
            + query.map_or(0, |q| q.len() + 1),
    );
    location.push_str("https://");
    location.push_str(host);
    if port != 443 {
        write!(location, ":{port}").expect("writing to a String cannot fail");
    }
    location.push_str(path);
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    HeaderValue::try_from(location).ok()
}

#[cfg(test)]
mod tests {
    use super::super::headers::test_map as map;
    use super::*;
    use http::header::{HeaderName, CACHE_CONTROL, SERVER};

    fn rules(set: &[(&str, &str)], remove: &[&str]) -> HeaderRules {
        HeaderRules {
            set: set
                .iter()
                .map(|(name, value)| {
                    (
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_str(value).unwrap(),
                    )
                })
                .collect(),
            remove: remove
                .iter()
                .map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap())
                .collect(),
        }
    }

    fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        map.get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect()
    }

    #[test]
    fn empty_rules_change_nothing() {
        let mut headers = map(&[("server", "app"), ("x-a", "1"), ("x-a", "2")]);
        let before = headers.clone();
        apply(&HeaderRules::default(), &mut headers);
        assert_eq!(headers, before);
    }

    #[test]
    fn remove_drops_every_value_of_each_name() {
        let mut headers = map(&[("server", "app"), ("x-a", "1"), ("x-a", "2"), ("x-b", "k")]);
        apply(&rules(&[], &["x-a", "server", "x-absent"]), &mut headers);
        assert_eq!(headers, map(&[("x-b", "k")]));
    }

    #[test]
    fn set_replaces_all_values_or_adds_the_header() {
        let mut headers = map(&[("cache-control", "no-cache"), ("cache-control", "private")]);
        apply(
            &rules(
                &[("cache-control", "max-age=60"), ("x-frame-options", "DENY")],
                &[],
            ),
            &mut headers,
        );
        assert_eq!(values(&headers, "cache-control"), ["max-age=60"]);
        assert_eq!(values(&headers, "x-frame-options"), ["DENY"]);
    }

    #[test]
    fn remove_comes_before_set_whatever_the_order_written() {
        let mut headers = map(&[("server", "app")]);
        apply(&rules(&[("server", "tandem")], &["server"]), &mut headers);
        assert_eq!(headers[SERVER], "tandem");
    }

    #[test]
    fn later_sets_of_the_same_name_win() {
        let mut headers = HeaderMap::new();
        apply(
            &rules(&[("cache-control", "a"), ("cache-control", "b")], &[]),
            &mut headers,
        );
        assert_eq!(values(&headers, CACHE_CONTROL.as_str()), ["b"]);
    }

    fn location(host: &str, port: u16, uri: &str) -> Option<String> {
        https_location(host, port, &uri.parse().unwrap())
            .map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn location_keeps_path_and_query_byte_for_byte() {
        assert_eq!(
            location("example.com", 443, "/a/b%2Fc?x=1&y=%20#").as_deref(),
            Some("https://example.com/a/b%2Fc?x=1&y=%20")
        );
        assert_eq!(
            location("example.com", 443, "/?").as_deref(),
            Some("https://example.com/?")
        );
        assert_eq!(
            location("example.com", 443, "/").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            location("example.com", 443, "/a//b/../c").as_deref(),
            Some("https://example.com/a//b/../c")
        );
    }

    #[test]
    fn location_names_any_port_but_443() {
        assert_eq!(
            location("example.com", 8443, "/x?q").as_deref(),
            Some("https://example.com:8443/x?q")
        );
        assert_eq!(
            location("example.com", 80, "/").as_deref(),
            Some("https://example.com:80/")
        );
    }

    #[test]
    fn location_keeps_ipv6_brackets() {
        assert_eq!(
            location("[2001:db8::1]", 443, "/x").as_deref(),
            Some("https://[2001:db8::1]/x")
        );
        assert_eq!(
            location("[2001:db8::1]", 8443, "/x").as_deref(),
            Some("https://[2001:db8::1]:8443/x")
        );
    }

    #[test]
    fn location_for_asterisk_or_absent_path_is_the_root() {
        assert_eq!(
            location("example.com", 443, "*").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            location("example.com", 443, "http://example.com").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            location("example.com", 443, "http://example.com?q=1").as_deref(),
            Some("https://example.com/?q=1")
        );
        assert_eq!(
            location("example.com", 443, "http://other.example:80/p?q").as_deref(),
            Some("https://example.com/p?q")
        );
    }

    #[test]
    fn no_host_no_location() {
        assert_eq!(location("", 443, "/"), None);
    }
}
