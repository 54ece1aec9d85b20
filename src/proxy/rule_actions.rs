//! The rule layer applied to one request: where it goes or how it is answered here, its
//! headers and path changed, and the changes its response will get. `crate::rules` decides;
//! this module does what was decided.

use std::sync::Arc;

use http::header::{self, HeaderMap};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, StatusCode, Uri};

use super::client::Client;
use super::local::{Local, NO_SERVER};
use super::routing;
use super::FrontendRuntime;
use crate::backend::BackendState;
use crate::config::rules::{Decision, HeaderEdits, Rewrite, Rule, RuleSet, Template, Var};
use crate::config::RateKey;
use crate::rules::rate_limit::{self, RateKeyValue};
use crate::rules::{self, template, Matched, RequestView};

/// What the rules did to a request, and will do to its headers and its response's.
pub struct Ruled<'f> {
    pub target: Result<&'f Arc<BackendState>, Local>,
    /// The request's ID, when the frontend gives requests one.
    pub request_id: Option<HeaderValue>,
    /// Applied last to the request as it leaves for the server, so that a rule's header
    /// wins over what the proxy adds (X-Forwarded-Proto, say).
    pub request_headers: HeaderChanges,
    pub response_headers: HeaderChanges,
}

/// The header changes of the rules a request matched, their templates rendered while the
/// request was at hand.
pub struct HeaderChanges {
    matched: Matched,
    rendered: Vec<Option<HeaderValue>>,
    edits: fn(&Rule) -> &HeaderEdits,
}

/// Applies `frontend`'s rules to `request`, whose ID (if the frontend gives them) is
/// `request_id`.
pub fn apply<'f, B>(
    request: &mut Request<B>,
    request_id: Option<HeaderValue>,
    client: &Client,
    frontend: &'f FrontendRuntime,
) -> Ruled<'f> {
    let set = &frontend.config.rules;
    if set.rules.is_empty() {
        return Ruled {
            target: frontend.backend.as_ref().ok_or(NO_SERVER),
            request_id,
            request_headers: HeaderChanges::none(request_edits),
            response_headers: HeaderChanges::none(response_edits),
        };
    }
    let host = (set.uses_host)
        .then(|| routing::request_host(request.uri(), request.headers()))
        .flatten();
    let path = rules::path::normalize(rules::path_of(request.uri()));
    let view = RequestView {
        method: request.method(),
        uri: request.uri(),
        path: &path,
        headers: request.headers(),
        host: host.as_deref(),
        client: client.address,
        sni: client.sni.as_deref(),
        scheme: client.scheme,
        request_id: request_id.as_ref(),
        client_subject: client.client_subject.as_deref(),
    };
    let verdict = rules::evaluate(set, &view);
    for index in verdict.matched.iter() {
        frontend.rule_hits[index].increment(1);
    }
    let mut target = match verdict.decided {
        Some(index) => decide(&set.rules[index], &view, frontend),
        None => frontend.backend.as_ref().ok_or(NO_SERVER),
    };
    if set.rate_limits {
        if let Some(limited) = rate_limited(set, &verdict, &view, frontend) {
            target = Err(limited);
        }
    }
    let matched_rules = || verdict.matched.iter().map(|index| &set.rules[index]);
    let changes = |wanted: bool, edits: fn(&Rule) -> &HeaderEdits| match wanted {
        true => HeaderChanges {
            rendered: render_all(matched_rules(), edits, &view),
            matched: verdict.matched.clone(),
            edits,
        },
        false => HeaderChanges::none(edits),
    };
    let response_headers = changes(set.edits_responses, response_edits);
    let request_headers = changes(set.edits_requests && target.is_ok(), request_edits);
    // `OPTIONS *` names no resource whose path could be rewritten.
    let rewrites = set.rewrites && target.is_ok() && view.uri.path().starts_with('/');
    let path = rewrites
        .then(|| rewritten_path(matched_rules(), &view))
        .flatten();
    if let Some(path) = path {
        set_path(request, &path);
    }
    Ruled {
        target,
        request_id,
        request_headers,
        response_headers,
    }
}

fn request_edits(rule: &Rule) -> &HeaderEdits {
    &rule.request_headers
}

fn response_edits(rule: &Rule) -> &HeaderEdits {
    &rule.response_headers
}

impl Ruled<'_> {
    /// A request refused before rules see it. Its answer still gets the response headers that
    /// every request gets (rules without a matcher, whose values are fixed: HSTS, say).
    pub fn refused(local: Local, request_id: Option<HeaderValue>, set: &RuleSet) -> Self {
        let mut unconditional = Matched::default();
        for (index, rule) in set.rules.iter().enumerate() {
            let edits = &rule.response_headers;
            let fixed = edits.set.iter().all(|(_, value)| value.fixed.is_some());
            if rule.matcher.is_none() && !edits.is_empty() && fixed {
                unconditional.insert(index);
            }
        }
        Ruled {
            target: Err(local),
            request_id,
            request_headers: HeaderChanges::none(request_edits),
            response_headers: HeaderChanges {
                matched: unconditional,
                rendered: Vec::new(),
                edits: response_edits,
            },
        }
    }
}

impl HeaderChanges {
    fn none(edits: fn(&Rule) -> &HeaderEdits) -> HeaderChanges {
        HeaderChanges {
            matched: Matched::default(),
            rendered: Vec::new(),
            edits,
        }
    }

    /// Applies the changes of the rules the request matched, in their order, to `headers`.
    pub fn apply(&self, rules: &RuleSet, headers: &mut HeaderMap) {
        if self.matched.is_empty() {
            return;
        }
        let mut rendered = self.rendered.iter().cloned();
        for index in self.matched.iter() {
            edit((self.edits)(&rules.rules[index]), headers, &mut rendered);
        }
    }
}

/// What the deciding `rule` does with the request.
fn decide<'f>(
    rule: &Rule,
    view: &RequestView<'_>,
    frontend: &'f FrontendRuntime,
) -> Result<&'f Arc<BackendState>, Local> {
    let decision = rule
        .decision
        .as_ref()
        .expect("a deciding rule has a decision");
    let captures = || rules::captures(rule, view);
    match decision {
        Decision::Backend(slot) => Ok(&frontend.rule_backends[*slot]),
        Decision::Deny { status, body } => {
            frontend.stats.denied.increment(1);
            Err(match body {
                Some(body) => Local::given(*status, body.clone(), "denied"),
                None => Local::new(*status, reason(*status), "denied"),
            })
        }
        Decision::Redirect { status, location } => {
            if view.host.is_none() && location.uses(|var| *var == Var::Host) {
                return Err(Local::new(
                    StatusCode::BAD_REQUEST,
                    "no host to redirect to\n",
                    "bad_request",
                ));
            }
            let captures = captures();
            let rendered = template::render(location, view, captures.as_ref());
            let mut local = Local::given(*status, bytes::Bytes::new(), "redirect");
            local.location = rendered;
            Err(local)
        }
        Decision::Respond {
            status,
            headers,
            body,
        } => {
            let captures = captures();
            let mut local = Local::given(*status, body.clone(), "responded");
            local.headers = (headers.iter())
                .filter_map(|(name, value)| {
                    let value = template::render(value, view, captures.as_ref())?;
                    Some((name.clone(), value))
                })
                .collect();
            Err(local)
        }
    }
}

/// The 429 of the first matching rule whose rate limit the request exceeds. Rules after one
/// that answers the request here (deny, redirect, respond) don't count it.
fn rate_limited(
    set: &RuleSet,
    verdict: &rules::Verdict,
    view: &RequestView<'_>,
    frontend: &FrontendRuntime,
) -> Option<Local> {
    let answered_here = (verdict.decided)
        .filter(|&index| !matches!(set.rules[index].decision, Some(Decision::Backend(_))));
    let mut now = None;
    for index in verdict.matched.iter() {
        if answered_here.is_some_and(|decided| decided < index) {
            break;
        }
        let (Some(limit), Some(Some(limiter))) = (
            &set.rules[index].rate_limit,
            frontend.rate_limits.get(index),
        ) else {
            continue;
        };
        let key = match &limit.key {
            RateKey::Client => RateKeyValue::Client(view.client.ip()),
            RateKey::Header(name) => {
                RateKeyValue::Header(view.headers.get(name).map(HeaderValue::as_bytes))
            }
        };
        let now = *now.get_or_insert_with(std::time::Instant::now);
        if let Err(wait) = limiter.check(key, now) {
            frontend.stats.rate_limited.increment(1);
            let mut local = Local::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests\n",
                "rate_limited",
            );
            let seconds = rate_limit::retry_after_seconds(wait);
            local
                .headers
                .push((header::RETRY_AFTER, HeaderValue::from(seconds)));
            return Some(local);
        }
    }
    None
}

/// A short text for a denial without a body: the status's reason phrase.
fn reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::UNAUTHORIZED => "unauthorized\n",
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed\n",
        StatusCode::TOO_MANY_REQUESTS => "too many requests\n",
        _ => "denied\n",
    }
}

/// The values of the templated sets among `edits` of the matched rules, in order; fixed values
/// are not rendered (nor allocated for).
fn render_all<'r>(
    rules: impl Iterator<Item = &'r Rule>,
    edits: fn(&Rule) -> &HeaderEdits,
    view: &RequestView<'_>,
) -> Vec<Option<HeaderValue>> {
    let mut rendered = Vec::new();
    for rule in rules {
        let templated = (edits(rule).set.iter()).filter(|(_, value)| value.fixed.is_none());
        let mut captures = None;
        for (_, template) in templated {
            let captures = captures.get_or_insert_with(|| rules::captures(rule, view));
            rendered.push(template::render(template, view, captures.as_ref()));
        }
    }
    rendered
}

/// Applies one rule's `edits` to `headers`: its removals, then its sets, the templated ones'
/// values taken from `rendered` in order (a value that did not render leaves the header out).
fn edit(
    edits: &HeaderEdits,
    headers: &mut HeaderMap,
    rendered: &mut impl Iterator<Item = Option<HeaderValue>>,
) {
    for name in &edits.remove {
        headers.remove(name);
    }
    for (name, template) in &edits.set {
        let value = match &template.fixed {
            Some(fixed) => Some(fixed.clone()),
            None => rendered.next().flatten(),
        };
        match value {
            Some(value) => {
                headers.insert(name.clone(), value);
            }
            None => {
                headers.remove(name);
            }
        }
    }
}

/// The path after the rewrites of the matched rules, each applied to what the one before
/// left; `None` when none changed it.
fn rewritten_path<'r>(
    rules: impl Iterator<Item = &'r Rule>,
    view: &RequestView<'_>,
) -> Option<String> {
    let mut path: Option<String> = None;
    for rule in rules {
        let Some(rewrite) = &rule.rewrite else {
            continue;
        };
        let current = path.as_deref().unwrap_or(view.path);
        // A rewrite's `{path}` is what the rewrites before it left.
        let moved = (path.is_some())
            .then(|| with_path(view.uri, current))
            .flatten();
        let uri = moved.as_ref().unwrap_or(view.uri);
        let at = RequestView {
            uri,
            path: rules::path_of(uri),
            ..*view
        };
        let next = match rewrite {
            Rewrite::Path(template) => {
                let captures = rules::captures(rule, view);
                render_path(template, &at, captures.as_ref())
            }
            Rewrite::PathRegex { from, to } => {
                (from.captures(current)).and_then(|captures| render_path(to, &at, Some(&captures)))
            }
        };
        if next.is_some() {
            path = next;
        }
    }
    path
}

/// `uri`'s query behind `path`, as a request target.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    PathAndQuery::try_from(target).ok().map(Uri::from)
}

fn render_path(
    template: &Template,
    view: &RequestView<'_>,
    captures: Option<&regex::Captures<'_>>,
) -> Option<String> {
    let rendered = template::render(template, view, captures)?;
    let path = std::str::from_utf8(rendered.as_bytes()).ok()?;
    path.starts_with('/').then(|| path.to_owned())
}

/// Sets `request`'s path to `path`, keeping its query unless `path` carries one. A path that
/// is not a valid request target leaves the request as it was.
fn set_path<B>(request: &mut Request<B>, path: &str) {
    let uri = request.uri();
    let path_and_query = match (path.contains('?'), uri.query()) {
        (false, Some(query)) => format!("{path}?{query}"),
        _ => path.to_owned(),
    };
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}
