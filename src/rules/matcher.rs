//! Whether a matcher holds for a request. Run for every rule of every request: no allocation,
//! and regexes only where a matcher has one.

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};

use super::RequestView;
use crate::config::rules::{Matcher, ValueTest};

pub fn matches(matcher: &Matcher, request: &RequestView<'_>) -> bool {
    match matcher {
        Matcher::All(all) => all.iter().all(|inner| matches(inner, request)),
        Matcher::Any(any) => any.iter().any(|inner| matches(inner, request)),
        Matcher::Not(inner) => !matches(inner, request),
        Matcher::Named(inner) => matches(inner, request),
        leaf => leaf_matches(leaf, request),
    }
}

/// [`matches`] with the top level and the common leaves of an all-of inlined into the caller,
/// the loop over a frontend's rules: most rules are a few such leaves, and a call per rule and
/// condition cost more than the tests themselves.
#[inline(always)]
pub fn matches_inline(matcher: &Matcher, request: &RequestView<'_>) -> bool {
    match matcher {
        Matcher::All(all) => all.iter().all(|inner| leaf_matches(inner, request)),
        other => leaf_matches(other, request),
    }
}

#[inline(always)]
fn leaf_matches(matcher: &Matcher, request: &RequestView<'_>) -> bool {
    match matcher {
        Matcher::Host(hosts) => {
            (request.host).is_some_and(|host| hosts.iter().any(|wanted| wanted.matches(host)))
        }
        Matcher::Path(paths) => paths.iter().any(|path| path == request.path),
        Matcher::PathPrefix(prefixes) => {
            let path = request.path.as_bytes();
            (prefixes.iter()).any(|prefix| path.starts_with(prefix.as_bytes()))
        }
        Matcher::Method(methods) => methods.contains(request.method),
        other => matches_rest(other, request),
    }
}

#[inline(always)]
fn matches_rest(matcher: &Matcher, request: &RequestView<'_>) -> bool {
    match matcher {
        Matcher::HostRegex(regex) => request.host.is_some_and(|host| regex.is_match(host)),
        Matcher::PathRegex(regex) => regex.is_match(request.path),
        Matcher::Header(name, test) => header_holds(test, request.headers, name),
        Matcher::Query(name, test) => match request.uri.query() {
            Some(query) => holds(test, &mut pairs(query, b'&', name).map(str::as_bytes)),
            None => holds(test, &mut std::iter::empty()),
        },
        Matcher::Cookie(name, test) => {
            let mut cookies = header_values(request.headers, &COOKIE).peekable();
            if cookies.peek().is_none() {
                return holds(test, &mut std::iter::empty());
            }
            let mut values = cookies
                .filter_map(|header| header.to_str().ok())
                .flat_map(|header| pairs(header, b';', name))
                .map(str::as_bytes);
            holds(test, &mut values)
        }
        Matcher::Client(set) => set.contains(request.client.ip()),
        Matcher::Sni(names) => {
            (request.sni).is_some_and(|sni| names.iter().any(|wanted| wanted.matches(sni)))
        }
        Matcher::ClientSubject(test) => holds(
            test,
            &mut request.client_subject.map(str::as_bytes).into_iter(),
        ),
        Matcher::Not(inner) => !matches(inner, request),
        _ => matches(matcher, request),
    }
}

/// Whether `test` holds for header `name`.
fn header_holds(test: &ValueTest, headers: &HeaderMap, name: &HeaderName) -> bool {
    holds(
        test,
        &mut header_values(headers, name).map(HeaderValue::as_bytes),
    )
}

/// The values of header `name`. A request usually has a handful of headers: comparing their
/// names costs less than hashing the one wanted, which a lookup does first.
pub fn header_values<'h>(headers: &'h HeaderMap, name: &'h HeaderName) -> HeaderValues<'h> {
    match headers.keys_len() <= FEW_HEADERS {
        true => HeaderValues::Scan(headers.iter(), name),
        false => HeaderValues::Lookup(headers.get_all(name).iter()),
    }
}

pub enum HeaderValues<'h> {
    Scan(http::header::Iter<'h, HeaderValue>, &'h HeaderName),
    Lookup(http::header::ValueIter<'h, HeaderValue>),
}

impl<'h> Iterator for HeaderValues<'h> {
    type Item = &'h HeaderValue;

    fn next(&mut self) -> Option<&'h HeaderValue> {
        match self {
            HeaderValues::Scan(headers, name) => {
                (headers.find(|(present, _)| present == name)).map(|(_, value)| value)
            }
            HeaderValues::Lookup(values) => values.next(),
        }
    }
}

/// Up to this many header names, a header is found by comparing names rather than by hash.
const FEW_HEADERS: usize = 8;

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
