//! The validated rule layer of an http frontend: its rules in order, with every matcher,
//! template and regex compiled at load. Evaluating them is `crate::rules`' job.
//!
//! The shorthands (`routes`, `request_headers`, `response_headers`, `redirect_https`) are
//! compiled into rules here too, so requests take one path whichever way a config is written.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;

use super::model::{HostMatch, RateLimit};

/// An http frontend's rules, in order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Indexes into `Config::backends` of the backends rules name, each once;
    /// `Decision::Backend` indexes this list.
    pub backends: Vec<usize>,
    /// Whether a matcher or template looks at the request's host, so that it is worked out
    /// only then.
    pub uses_host: bool,
    /// Whether any rule has request header actions, response header actions, or a rewrite:
    /// a request pays for rendering and applying them only then.
    pub edits_requests: bool,
    pub edits_responses: bool,
    pub rewrites: bool,
    /// Whether any rule has a rate limit.
    pub rate_limits: bool,
}

impl PartialEq for RuleSet {
    /// Rules hold compiled regexes, which don't compare: two sets are alike when written alike.
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

impl Eq for RuleSet {}

#[derive(Debug, Clone)]
pub struct Rule {
    /// The metrics label: `name` as written, else the rule's index in `rules`; a shorthand's
    /// is its key (`routes[0]`, `redirect_https`, ...).
    pub name: String,
    /// `None`: every request.
    pub matcher: Option<Matcher>,
    /// Where `{1}`..`{9}` in this rule's templates come from: the rule's own `path_regex` or,
    /// without one, its `host_regex`.
    pub captures: Option<CaptureSource>,
    pub decision: Option<Decision>,
    /// Requests beyond it are answered 429, unless an earlier rule answers them itself.
    pub rate_limit: Option<RateLimit>,
    pub rewrite: Option<Rewrite>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
}

impl Rule {
    /// A rule that matches every request and does nothing yet.
    pub fn new(name: String) -> Rule {
        Rule {
            name,
            matcher: None,
            captures: None,
            decision: None,
            rate_limit: None,
            rewrite: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
        }
    }

    /// Every template of the rule.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let decision: Vec<&Template> = match &self.decision {
            Some(Decision::Redirect { location, .. }) => vec![location],
            Some(Decision::Respond { headers, .. }) => {
                headers.iter().map(|(_, value)| value).collect()
            }
            _ => Vec::new(),
        };
        let rewrite = self.rewrite.as_ref().map(|rewrite| match rewrite {
            Rewrite::Path(template) | Rewrite::PathRegex { to: template, .. } => template,
        });
        (decision.into_iter().chain(rewrite))
            .chain(self.request_headers.set.iter().map(|(_, value)| value))
            .chain(self.response_headers.set.iter().map(|(_, value)| value))
    }

    pub fn uses_host(&self) -> bool {
        self.matcher.as_ref().is_some_and(Matcher::uses_host)
            || matches!(self.captures, Some(CaptureSource::Host(_)))
            || self
                .templates()
                .any(|template| template.uses(|var| *var == Var::Host))
    }

    pub fn uses_request_id(&self) -> bool {
        self.templates()
            .any(|template| template.uses(|var| *var == Var::RequestId))
    }
}

impl Matcher {
    fn uses_host(&self) -> bool {
        match self {
            Matcher::Host(_) | Matcher::HostRegex(_) => true,
            Matcher::All(all) | Matcher::Any(all) => all.iter().any(Matcher::uses_host),
            Matcher::Not(inner) => inner.uses_host(),
            Matcher::Named(inner) => inner.uses_host(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub enum CaptureSource {
    Path(Regex),
    Host(Regex),
}

/// What the first matching rule with one decides.
#[derive(Debug, Clone)]
pub enum Decision {
    /// An index into `RuleSet::backends`.
    Backend(usize),
    Deny {
        status: StatusCode,
        /// `None`: the frontend's error page for the status, or a short text.
        body: Option<Bytes>,
    },
    Redirect {
        status: StatusCode,
        location: Template,
    },
    Respond {
        status: StatusCode,
        headers: Vec<(HeaderName, Template)>,
        body: Bytes,
    },
}

/// A condition on a request; keys written in one mapping are all required.
#[derive(Debug, Clone)]
pub enum Matcher {
    All(Vec<Matcher>),
    Any(Vec<Matcher>),
    Not(Box<Matcher>),
    /// A named matcher, compiled once and shared by every rule naming it.
    Named(Arc<Matcher>),
    Host(Vec<HostMatch>),
    HostRegex(Regex),
    Path(Vec<String>),
    PathPrefix(Vec<String>),
    PathRegex(PathPattern),
    Method(Vec<Method>),
    Header(HeaderName, ValueTest),
    Query(String, ValueTest),
    Cookie(String, ValueTest),
    Client(Arc<AddressSet>),
    Sni(Vec<HostMatch>),
    /// On the subject of the client's verified certificate; absent without one.
    ClientSubject(ValueTest),
}

/// A path regex, and the text every path it matches starts with (from a `^` and the literal
/// text after it): a path without it is refused before the regex runs.
#[derive(Debug, Clone)]
pub struct PathPattern {
    pub regex: Regex,
    pub prefix: String,
}

impl PathPattern {
    pub fn new(regex: Regex) -> PathPattern {
        let prefix = literal_prefix(regex.as_str());
        PathPattern { regex, prefix }
    }

    pub fn is_match(&self, path: &str) -> bool {
        path.starts_with(&self.prefix) && self.regex.is_match(path)
    }
}

/// The literal text after a leading `^`, up to the first character with a meaning in a regex
/// (less the one before a `?`, `*` or `{`, which may be left out). Nothing for a pattern with
/// alternatives: `^/a|^/b` matches paths that don't start with `/a`.
fn literal_prefix(pattern: &str) -> String {
    let Some(rest) = pattern.strip_prefix('^').filter(|_| !pattern.contains('|')) else {
        return String::new();
    };
    let end = rest
        .find(|c| "\\.+*?()|[]{}^$".contains(c))
        .unwrap_or(rest.len());
    let mut prefix = rest[..end].to_owned();
    if rest[end..].starts_with(['?', '*', '{']) {
        prefix.pop();
    }
    prefix
}

/// A test on a header's, query parameter's or cookie's value.
#[derive(Debug, Clone)]
pub enum ValueTest {
    /// `true`: present with any value; `false`: absent.
    Present(bool),
    Equals(String),
    Regex(Regex),
    /// `!...`: true when the inner test is false, absence included.
    Not(Box<ValueTest>),
}

/// Header changes of one rule: every `remove` first, then each `set`.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, Template)>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }
}

#[derive(Debug, Clone)]
pub enum Rewrite {
    /// The path becomes the template (which may name `{path}`).
    Path(Template),
    /// When `from` matches the path, it becomes `to`, whose `{1}`.. are `from`'s captures.
    PathRegex { from: Regex, to: Template },
}

/// Text with request values in it, parsed at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
    /// The whole value when it names no variable: used as is, nothing rendered per request.
    pub fixed: Option<HeaderValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    ClientIp,
    ClientPort,
    Host,
    Path,
    /// `?` and the query when there is one; nothing otherwise.
    Query,
    Method,
    Scheme,
    RequestId,
    Sni,
    Header(HeaderName),
    Cookie(String),
    /// 1..=9.
    Capture(usize),
    /// The subject of the client's verified certificate (RFC 4514 text).
    ClientSubject,
}

impl Template {
    /// A template of fixed text.
    pub fn fixed(value: HeaderValue) -> Template {
        Template {
            parts: vec![Part::Text(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )],
            fixed: Some(value),
        }
    }

    pub fn uses(&self, wanted: impl Fn(&Var) -> bool) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Var(var) if wanted(var)))
    }
}

/// The bodies of tandem's own answers, read from `error_pages` files at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorPages(pub Vec<ErrorPage>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: HeaderValue,
}

impl ErrorPages {
    pub fn get(&self, status: StatusCode) -> Option<&ErrorPage> {
        self.0.iter().find(|page| page.status == status)
    }
}

/// Client addresses and networks, as sorted merged ranges per family: a lookup is a binary
/// search however many were listed (a `client_file` may hold thousands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl AddressSet {
    /// From networks as (address, prefix length); a prefix longer than the family's is the
    /// caller's to refuse.
    pub fn new(networks: impl IntoIterator<Item = (IpAddr, u8)>) -> AddressSet {
        let mut set = AddressSet::default();
        for (address, prefix) in networks {
            // An IPv4-mapped network holds IPv4 clients, which are looked up as IPv4.
            let (address, prefix) = match address {
                IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                    Some(v4) => (IpAddr::V4(v4), prefix - 96),
                    None => (address, prefix),
                },
                _ => (address, prefix),
            };
            match address {
                IpAddr::V4(address) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    let start = u32::from(address) & mask;
                    set.v4.push((start, start | !mask));
                }
                IpAddr::V6(address) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    let start = u128::from(address) & mask;
                    set.v6.push((start, start | !mask));
                }
            }
        }
        merge(&mut set.v4, |end| end.saturating_add(1));
        merge(&mut set.v6, |end| end.saturating_add(1));
        set
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match address {
            IpAddr::V4(address) => covers(&self.v4, u32::from(address)),
            // An IPv4 client on a dual-stack socket arrives mapped; the IPv4 networks hold it.
            IpAddr::V6(address) => match address.to_ipv4_mapped() {
                Some(mapped) => covers(&self.v4, u32::from(mapped)),
                None => covers(&self.v6, u128::from(address)),
            },
        }
    }
}

/// Sorts `ranges` and joins those that overlap or touch (`next` is the address after one).
fn merge<T: Ord + Copy>(ranges: &mut Vec<(T, T)>, next: impl Fn(T) -> T) {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if start <= next(last.1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    *ranges = merged;
}

fn covers<T: Ord + Copy>(ranges: &[(T, T)], address: T) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= address);
    after > 0 && address <= ranges[after - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(networks: &[(&str, u8)]) -> AddressSet {
        AddressSet::new(
            networks
                .iter()
                .map(|(address, prefix)| (address.parse().unwrap(), *prefix)),
        )
    }

    #[test]
    fn an_address_set_holds_its_networks_and_nothing_else() {
        let set = set(&[
            ("192.0.2.0", 24),
            ("::ffff:198.51.100.7", 128),
            ("2001:db8::", 32),
            ("203.0.113.0", 25),
            ("203.0.113.128", 25),
        ]);
        for inside in [
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.7",
            "2001:db8:ffff::1",
            "203.0.113.200",
            "::ffff:192.0.2.9",
        ] {
            assert!(set.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in [
            "192.0.1.255",
            "192.0.3.0",
            "198.51.100.6",
            "198.51.100.8",
            "2001:db9::",
            "::ffff:192.0.3.1",
            "0.0.0.0",
        ] {
            assert!(!set.contains(outside.parse().unwrap()), "{outside}");
        }
        assert_eq!(
            set.v4.len(),
            3,
            "the two halves of 203.0.113.0/24 are merged"
        );
    }

    #[test]
    fn a_path_regex_knows_the_literal_text_its_paths_start_with() {
        for (pattern, prefix) in [
            ("^/api/v[0-9]+/", "/api/v"),
            ("^/[.]git/", "/"),
            ("[.]php$", ""),
            ("^/ab?c", "/a"),
            ("^/ab*", "/a"),
            ("^/ab{2}", "/a"),
            ("^/ab+", "/ab"),
            ("^(?i)/admin", ""),
            ("^/a\\.b", "/a"),
            ("^/exact$", "/exact"),
            ("^/admin|^/internal", ""),
            ("^/(a|b)", ""),
        ] {
            let pattern = PathPattern::new(Regex::new(pattern).unwrap());
            assert_eq!(pattern.prefix, prefix, "{}", pattern.regex);
        }
        let api = PathPattern::new(Regex::new("^/api/v[0-9]+/").unwrap());
        assert!(api.is_match("/api/v2/x") && !api.is_match("/api/x") && !api.is_match("/"));
    }

    #[test]
    fn a_zero_prefix_holds_its_whole_family() {
        let set = set(&[("0.0.0.0", 0)]);
        assert!(set.contains("255.255.255.255".parse().unwrap()));
        assert!(!set.contains("::1".parse().unwrap()));
        let set = self::set(&[("::", 0)]);
        assert!(set.contains("ffff::1".parse().unwrap()));
    }

    #[test]
    fn overlapping_and_nested_networks_merge() {
        let set = set(&[("10.0.0.0", 8), ("10.1.0.0", 16), ("10.255.255.255", 32)]);
        assert_eq!(set.v4, vec![(0x0a00_0000, 0x0aff_ffff)]);
        let empty = AddressSet::default();
        assert!(!empty.contains("10.0.0.1".parse().unwrap()));
    }
}
