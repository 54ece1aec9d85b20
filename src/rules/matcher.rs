//! Whether a matcher holds for a request. Run for every rule of every request: no allocation,
//! and regexes only where a matcher has one.

use http::header::COOKIE;

use super::RequestView;
use crate::config::rules::{Matcher, ValueTest};

pub fn matches(matcher: &Matcher, request: &RequestView<'_>) -> bool {
    match matcher {
        Matcher::All(all) => all.iter().all(|inner| matches(inner, request)),
        Matcher::Any(any) => any.iter().any(|inner| matches(inner, request)),
        Matcher::Not(inner) => !matches(inner, request),
        Matcher::Named(inner) => matches(inner, request),
        Matcher::Host(hosts) => {
            (request.host).is_some_and(|host| hosts.iter().any(|wanted| wanted.matches(host)))
        }
        Matcher::HostRegex(regex) => request.host.is_some_and(|host| regex.is_match(host)),
        Matcher::Path(paths) => paths.iter().any(|path| path == request.uri.path()),
        Matcher::PathPrefix(prefixes) => {
            let path = request.uri.path().as_bytes();
            (prefixes.iter()).any(|prefix| path.starts_with(prefix.as_bytes()))
        }
        Matcher::PathRegex(regex) => regex.is_match(request.uri.path()),
        Matcher::Method(methods) => methods.contains(request.method),
        Matcher::Header(name, test) => {
            let values = request.headers.get_all(name).iter();
            holds(test, &mut values.map(|value| value.as_bytes()))
        }
        Matcher::Query(name, test) => {
            let query = request.uri.query().unwrap_or("");
            holds(test, &mut pairs(query, b'&', name).map(str::as_bytes))
        }
        Matcher::Cookie(name, test) => {
            let headers = request.headers.get_all(COOKIE).iter();
            let mut values = headers
                .filter_map(|header| header.to_str().ok())
                .flat_map(|header| pairs(header, b';', name))
                .map(str::as_bytes);
            holds(test, &mut values)
        }
        Matcher::Client(set) => set.contains(request.client.ip()),
        Matcher::Sni(names) => {
            (request.sni).is_some_and(|sni| names.iter().any(|wanted| wanted.matches(sni)))
        }
    }
}

/// Whether `test` holds for a value that has `values` (none when absent); a test on the value
/// holds when any of them passes.
fn holds<'v>(test: &ValueTest, values: &mut impl Iterator<Item = &'v [u8]>) -> bool {
    match test {
        ValueTest::Present(present) => values.next().is_some() == *present,
        ValueTest::Equals(wanted) => values.any(|value| value == wanted.as_bytes()),
        ValueTest::Regex(regex) => {
            values.any(|value| std::str::from_utf8(value).is_ok_and(|text| regex.is_match(text)))
        }
        ValueTest::Not(inner) => !holds(inner, values),
    }
}

/// The values of `name` in `text`, a list of `name=value` pairs split at `separator` (a query,
/// or a Cookie header); a bare `name` has an empty value. Names and values are compared and
/// given as written, without percent-decoding.
pub fn pairs<'a>(text: &'a str, separator: u8, name: &'a str) -> impl Iterator<Item = &'a str> {
    (text.split(char::from(separator)))
        .map(str::trim_start)
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
}
