//! The rule layer of http frontends, as pure functions over a request's view: which rules
//! match, which one decides, and the values their templates render to. The proxy applies what
//! this returns; nothing here does IO or reads a clock.
//!
//! Rules are evaluated in order against the request as the client sent it: the first matching
//! rule with a decision (backend, deny, redirect, respond) decides, and the header and rewrite
//! actions of every matching rule apply, in order.

pub mod matcher;
pub mod path;
pub mod rate_limit;
pub mod template;

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::config::rules::{CaptureSource, Rule, RuleSet};

/// What rules see of a request.
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    /// `uri`'s path as rules read it: normalised (`path::normalize`); `/` for a request
    /// without one in origin form (`OPTIONS *`).
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// Lowercase, without port (see `proxy::routing::request_host`); only worked out when a
    /// rule uses it (`RuleSet::uses_host`).
    pub host: Option<&'a str>,
    /// The client: the PROXY header's source when the frontend accepts one.
    pub client: SocketAddr,
    /// The server name a TLS client asked for.
    pub sni: Option<&'a str>,
    pub scheme: &'a str,
    pub request_id: Option<&'a HeaderValue>,
    /// The subject of the client's verified certificate (`tls::client_auth::subject`).
    pub client_subject: Option<&'a str>,
}

/// `uri`'s path for [`RequestView::path`].
pub fn path_of(uri: &Uri) -> &str {
    match uri.path() {
        path if path.starts_with('/') => path,
        _ => "/",
    }
}

/// Which rules matched a request, and which of them decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The first matching rule with a decision.
    pub decided: Option<usize>,
    pub matched: Matched,
}

/// A set of rule indexes: inline up to 128 rules, so that evaluating allocates nothing for
/// any real frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    first: u128,
    rest: Vec<u128>,
}

impl Matched {
    pub fn insert(&mut self, index: usize) {
        let (word, bit) = (index / 128, index % 128);
        let word = match word {
            0 => &mut self.first,
            _ => {
                if self.rest.len() < word {
                    self.rest.resize(word, 0);
                }
                &mut self.rest[word - 1]
            }
        };
        *word |= 1 << bit;
    }

    #[cfg(test)]
    pub fn contains(&self, index: usize) -> bool {
        let (word, bit) = (index / 128, index % 128);
        let word = match word {
            0 => self.first,
            _ => self.rest.get(word - 1).copied().unwrap_or(0),
        };
        word & (1 << bit) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.first == 0 && self.rest.iter().all(|word| *word == 0)
    }

    /// The indexes, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.first)
            .chain(self.rest.iter().copied())
            .enumerate()
            .flat_map(|(word, mut bits)| {
                std::iter::from_fn(move || {
                    (bits != 0).then(|| {
                        let bit = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        word * 128 + bit
                    })
                })
            })
    }
}

/// Evaluates `set` against `request`. Once a rule has decided, later rules are matched only
/// if they have header, rewrite or rate-limit actions to apply.
pub fn evaluate(set: &RuleSet, request: &RequestView<'_>) -> Verdict {
    let mut verdict = Verdict {
        decided: None,
        matched: Matched::default(),
    };
    for (index, rule) in set.rules.iter().enumerate() {
        if verdict.decided.is_some() && !has_edits(rule) {
            continue;
        }
        let applies =
            (rule.matcher.as_ref()).is_none_or(|wanted| matcher::matches_inline(wanted, request));
        if !applies {
            continue;
        }
        verdict.matched.insert(index);
        if verdict.decided.is_none() && rule.decision.is_some() {
            verdict.decided = Some(index);
        }
    }
    verdict
}

fn has_edits(rule: &Rule) -> bool {
    rule.rewrite.is_some()
        || rule.rate_limit.is_some()
        || !rule.request_headers.is_empty()
        || !rule.response_headers.is_empty()
}

/// The captures of `rule`'s regex on `request`, for its templates' `{1}`..; `None` when it has
/// none or they don't match (the templates then render them empty).
pub fn captures<'a>(rule: &Rule, request: &RequestView<'a>) -> Option<regex::Captures<'a>> {
    match rule.captures.as_ref()? {
        CaptureSource::Path(regex) => regex.captures(request.path),
        CaptureSource::Host(regex) => regex.captures(request.host?),
    }
}

#[cfg(test)]
mod tests;
