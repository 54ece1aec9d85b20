//! Validation of an http frontend's rule layer: named matchers, rules, templates and regexes,
//! compiled here, with the shorthands compiled into the same rules; and its error pages and
//! request IDs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::{Regex, RegexBuilder};

use super::super::model::*;
use super::super::rules::*;
use super::super::schema::*;
use super::edge::{host_match, ON_EACH_HOP};
use super::Validator;

/// A compiled regex may take this much memory; a pattern needing more is refused at load.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The largest `body_file` or error page read.
const MAX_BODY_FILE: u64 = 1 << 20;
/// The header carrying request IDs when `request_id` names none.
const DEFAULT_REQUEST_ID: &str = "x-request-id";

/// What a frontend's rule layer is made from: its own keys, and the shorthands already
/// validated.
pub(super) struct RuleSources {
    pub matchers: Option<BTreeMap<String, MatcherSpec>>,
    pub rules: Vec<RuleSpec>,
    pub routes: Vec<Route>,
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    pub redirect_https: Option<u16>,
}

/// Named matchers as compiled so far; `None` for one that failed (reported once).
struct Named<'a> {
    at: String,
    specs: &'a BTreeMap<String, MatcherSpec>,
    compiled: BTreeMap<String, Option<Arc<Matcher>>>,
    /// Names being compiled, innermost last: a reference back to one is a cycle.
    compiling: Vec<String>,
}

impl Validator {
    /// The rules in the order requests meet them: the header-set shorthands, the rules as
    /// written, the routes, then `redirect_https`.
    pub(super) fn rule_set(
        &mut self,
        at: &str,
        sources: RuleSources,
        backends: &[Backend],
    ) -> RuleSet {
        let empty = BTreeMap::new();
        let mut named = Named {
            at: format!("{at}.matchers"),
            specs: sources.matchers.as_ref().unwrap_or(&empty),
            compiled: BTreeMap::new(),
            compiling: Vec::new(),
        };
        // Every named matcher, used or not, so that each mistake shows.
        for name in named.specs.keys() {
            self.named_matcher(&mut named, name, None);
        }
        let mut set = RuleSet::default();
        for (name, headers) in [
            ("request_headers", &sources.request_headers),
            ("response_headers", &sources.response_headers),
        ] {
            if headers.remove.is_empty() && headers.set.is_empty() {
                continue;
            }
            let edits = HeaderEdits {
                remove: headers.remove.clone(),
                set: (headers.set.iter())
                    .map(|(name, value)| (name.clone(), Template::fixed(value.clone())))
                    .collect(),
            };
            let mut rule = Rule::new(name.to_owned());
            match name {
                "request_headers" => rule.request_headers = edits,
                _ => rule.response_headers = edits,
            }
            set.rules.push(rule);
        }
        let mut names = BTreeMap::new();
        for (index, spec) in sources.rules.into_iter().enumerate() {
            let at = format!("{at}.rules[{index}]");
            if let Some(name) = &spec.name {
                let taken = name.bytes().all(|byte| byte.is_ascii_digit())
                    || ["request_headers", "response_headers", "redirect_https"].contains(&&**name)
                    || name.starts_with("routes[");
                if taken || name.is_empty() {
                    self.error(
                        format!("{at}.name"),
                        format!(
                            "rule name {name:?} is taken: unnamed rules are known by their index, \
                             and the shorthands by their key; choose a name with a letter in it"
                        ),
                    );
                }
                if let Some(first) = names.insert(name.clone(), index) {
                    self.error(
                        format!("{at}.name"),
                        format!("rule name {name:?} is already rules[{first}]'s"),
                    );
                }
            }
            let rule = self.rule(&at, index, spec, &mut named, backends, &mut set.backends);
            set.rules.push(rule);
        }
        for (index, route) in sources.routes.into_iter().enumerate() {
            let mut conditions = Vec::new();
            conditions.extend(route.host.map(|host| Matcher::Host(vec![host])));
            conditions.extend(
                route
                    .path_prefix
                    .map(|prefix| Matcher::PathPrefix(vec![prefix])),
            );
            let mut rule = Rule::new(format!("routes[{index}]"));
            rule.matcher = all(conditions);
            rule.decision = Some(Decision::Backend(slot(&mut set.backends, route.backend)));
            set.rules.push(rule);
        }
        if let Some(port) = sources.redirect_https {
            let authority = match port {
                443 => String::new(),
                port => format!(":{port}"),
            };
            let location = format!("https://{{host}}{authority}{{path}}{{query}}");
            let mut rule = Rule::new("redirect_https".to_owned());
            rule.decision = Some(Decision::Redirect {
                status: StatusCode::PERMANENT_REDIRECT,
                location: parse_template(&location, 0).expect("the https location parses"),
            });
            set.rules.push(rule);
        }
        set.uses_host = set.rules.iter().any(Rule::uses_host);
        set.edits_requests = set
            .rules
            .iter()
            .any(|rule| !rule.request_headers.is_empty());
        set.edits_responses = set
            .rules
            .iter()
            .any(|rule| !rule.response_headers.is_empty());
        set.rewrites = set.rules.iter().any(|rule| rule.rewrite.is_some());
        set.rate_limits = set.rules.iter().any(|rule| rule.rate_limit.is_some());
        set
    }

    #[allow(clippy::too_many_arguments)] // one rule's whole context
    fn rule(
        &mut self,
        at: &str,
        index: usize,
        spec: RuleSpec,
        named: &mut Named<'_>,
        backends: &[Backend],
        slots: &mut Vec<usize>,
    ) -> Rule {
        let mut rule = Rule::new(spec.name.clone().unwrap_or_else(|| index.to_string()));
        if let Some(matcher) = &spec.matcher {
            let field = format!("{at}.match");
            rule.matcher = self.match_spec(&field, matcher, named);
            if let (MatchSpec::Inline(_), Some(compiled)) = (matcher, &rule.matcher) {
                rule.captures = capture_source(compiled);
            }
        }
        let groups = match &rule.captures {
            Some(CaptureSource::Path(regex) | CaptureSource::Host(regex)) => {
                regex.captures_len() - 1
            }
            None => 0,
        };
        let decisions = [
            ("backend", spec.backend.is_some()),
            ("deny", spec.deny.is_some()),
            ("redirect", spec.redirect.is_some()),
            ("respond", spec.respond.is_some()),
        ];
        let written: Vec<&str> = (decisions.iter())
            .filter(|(_, given)| *given)
            .map(|(key, _)| *key)
            .collect();
        if written.len() > 1 {
            self.error(
                at.to_owned(),
                format!(
                    "a rule decides one way: {} are all given; split them into rules",
                    written.join(", ")
                ),
            );
        }
        if let Some(name) = &spec.backend {
            let backend =
                self.backend_reference(format!("{at}.backend"), name, Mode::Http, backends);
            rule.decision = Some(Decision::Backend(slot(slots, backend)));
        }
        if let Some(deny) = spec.deny {
            rule.decision = self.deny(&format!("{at}.deny"), deny);
        }
        if let Some(redirect) = spec.redirect {
            rule.decision = self.redirect(&format!("{at}.redirect"), redirect, groups);
        }
        if let Some(respond) = spec.respond {
            rule.decision = self.respond(&format!("{at}.respond"), respond, groups);
        }
        // Whether any action is written, compiled or not: one with mistakes is reported as such.
        let acts = !written.is_empty()
            || spec.rewrite.is_some()
            || spec.rate_limit.is_some()
            || spec.set_request_headers.is_some()
            || spec.remove_request_headers.is_some()
            || spec.set_response_headers.is_some()
            || spec.remove_response_headers.is_some();
        if let Some(limit) = spec.rate_limit {
            rule.rate_limit = self.rate_limit(&format!("{at}.rate_limit"), limit);
        }
        if let Some(rewrite) = spec.rewrite {
            rule.rewrite = self.rewrite(&format!("{at}.rewrite"), rewrite, groups);
        }
        rule.request_headers = self.header_edits(
            at,
            ("set_request_headers", spec.set_request_headers),
            ("remove_request_headers", spec.remove_request_headers),
            groups,
        );
        rule.response_headers = self.header_edits(
            at,
            ("set_response_headers", spec.set_response_headers),
            ("remove_response_headers", spec.remove_response_headers),
            groups,
        );
        if !acts {
            self.error(
                at.to_owned(),
                "the rule does nothing: give it backend, deny, redirect, respond, rate_limit, \
                 rewrite or a header action",
            );
        }
        rule
    }

    fn match_spec(&mut self, at: &str, spec: &MatchSpec, named: &mut Named<'_>) -> Option<Matcher> {
        match spec {
            MatchSpec::Name(name) => self
                .named_matcher(named, name, Some(at))
                .map(Matcher::Named),
            MatchSpec::Inline(spec) => self.matcher(at, spec, named),
        }
    }

    /// The named matcher `name`, compiled once; `referred_at` is the field naming it, where an
    /// unknown name or a cycle is reported.
    fn named_matcher(
        &mut self,
        named: &mut Named<'_>,
        name: &str,
        referred_at: Option<&str>,
    ) -> Option<Arc<Matcher>> {
        if let Some(compiled) = named.compiled.get(name) {
            return compiled.clone();
        }
        let Some(spec) = named.specs.get(name) else {
            let known: Vec<&str> = named.specs.keys().map(String::as_str).collect();
            let known = match known.is_empty() {
                true => "no matchers are named".to_owned(),
                false => format!("the named matchers are {}", known.join(", ")),
            };
            self.error(
                referred_at.unwrap_or(&named.at).to_owned(),
                format!("unknown matcher {name:?}: {known}"),
            );
            return None;
        };
        if named.compiling.iter().any(|compiling| compiling == name) {
            let mut cycle = named.compiling.clone();
            cycle.push(name.to_owned());
            self.error(
                referred_at.unwrap_or(&named.at).to_owned(),
                format!(
                    "matchers refer to each other in a loop: {}",
                    cycle.join(" -> ")
                ),
            );
            return None;
        }
        named.compiling.push(name.to_owned());
        let at = format!("{}.{name}", named.at);
        let compiled = self.matcher(&at, spec, named).map(Arc::new);
        named.compiling.pop();
        named.compiled.insert(name.to_owned(), compiled.clone());
        compiled
    }

    fn matcher(&mut self, at: &str, spec: &MatcherSpec, named: &mut Named<'_>) -> Option<Matcher> {
        let mut conditions = Vec::new();
        let mut failed = false;
        let mut keep = |condition: Option<Matcher>| match condition {
            Some(condition) => conditions.push(condition),
            None => failed = true,
        };
        if let Some(hosts) = &spec.host {
            keep(self.hosts(&format!("{at}.host"), hosts).map(Matcher::Host));
        }
        if let Some(pattern) = &spec.host_regex {
            keep(
                self.regex(&format!("{at}.host_regex"), pattern)
                    .map(Matcher::HostRegex),
            );
        }
        if let Some(paths) = &spec.path {
            keep(self.paths(&format!("{at}.path"), paths).map(Matcher::Path));
        }
        if let Some(prefixes) = &spec.path_prefix {
            keep(
                self.paths(&format!("{at}.path_prefix"), prefixes)
                    .map(Matcher::PathPrefix),
            );
        }
        if let Some(pattern) = &spec.path_regex {
            keep(
                self.regex(&format!("{at}.path_regex"), pattern)
                    .map(|regex| Matcher::PathRegex(PathPattern::new(regex))),
            );
        }
        if let Some(methods) = &spec.method {
            keep(
                self.methods(&format!("{at}.method"), methods)
                    .map(Matcher::Method),
            );
        }
        for (name, test) in spec.header.iter().flatten() {
            let field = format!("{at}.header.{name}");
            let header = self.header_name(field.clone(), name);
            let test = self.value_test(&field, test);
            keep(
                header
                    .zip(test)
                    .map(|(header, test)| Matcher::Header(header, test)),
            );
        }
        for (key, tests, make) in [
            (
                "query",
                &spec.query,
                Matcher::Query as fn(String, ValueTest) -> Matcher,
            ),
            ("cookie", &spec.cookie, Matcher::Cookie),
        ] {
            for (name, test) in tests.iter().flatten() {
                let field = format!("{at}.{key}.{name}");
                if name.is_empty() {
                    self.error(field.clone(), format!("a {key} name must not be empty"));
                }
                keep(
                    self.value_test(&field, test)
                        .map(|test| make(name.clone(), test)),
                );
            }
        }
        if spec.client.is_some() || spec.client_file.is_some() {
            keep(
                self.clients(at, spec)
                    .map(|set| Matcher::Client(Arc::new(set))),
            );
        }
        if let Some(names) = &spec.sni {
            keep(self.hosts(&format!("{at}.sni"), names).map(Matcher::Sni));
        }
        if let Some(client_cert) = &spec.client_cert {
            let test = self.value_test(&format!("{at}.client_cert.subject"), &client_cert.subject);
            keep(test.map(Matcher::ClientSubject));
        }
        if let Some(inner) = &spec.not {
            let inner = self.match_spec(&format!("{at}.not"), inner, named);
            keep(inner.map(|inner| Matcher::Not(Box::new(inner))));
        }
        if let Some(choices) = &spec.any {
            if choices.is_empty() {
                self.error(format!("{at}.any"), "any needs at least one matcher");
            }
            let compiled: Vec<Option<Matcher>> = (choices.iter().enumerate())
                .map(|(index, choice)| {
                    self.match_spec(&format!("{at}.any[{index}]"), choice, named)
                })
                .collect();
            keep(
                compiled
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Matcher::Any),
            );
        }
        if conditions.is_empty() && !failed {
            self.error(
                at.to_owned(),
                "an empty matcher would match every request; leave match out for that",
            );
            return None;
        }
        if failed {
            return None;
        }
        all(conditions)
    }

    fn hosts(&mut self, at: &str, hosts: &OneOrMany) -> Option<Vec<HostMatch>> {
        self.each(at, hosts, host_match)
    }

    fn paths(&mut self, at: &str, paths: &OneOrMany) -> Option<Vec<String>> {
        self.each(at, paths, |path| match path.starts_with('/') {
            true => Ok(path.to_owned()),
            false => Err(format!("{path:?} must start with /")),
        })
    }

    fn methods(&mut self, at: &str, methods: &OneOrMany) -> Option<Vec<Method>> {
        self.each(at, methods, |method| {
            let upper = method.to_ascii_uppercase();
            let standard = [
                "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
            ];
            if upper != *method && standard.contains(&upper.as_str()) {
                return Err(format!("methods are case-sensitive: write {upper}"));
            }
            Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("{method:?} is not a method (a token such as GET)"))
        })
    }

    /// Each of `values` through `parse`, every error reported at its index; `None` if any
    /// failed or there were none.
    fn each<T>(
        &mut self,
        at: &str,
        values: &OneOrMany,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        if values.0.is_empty() {
            self.error(at.to_owned(), "needs at least one value");
            return None;
        }
        let single = values.0.len() == 1;
        let mut parsed = Vec::with_capacity(values.0.len());
        for (index, value) in values.0.iter().enumerate() {
            match parse(value) {
                Ok(value) => parsed.push(value),
                Err(message) => {
                    let field = match single {
                        true => at.to_owned(),
                        false => format!("{at}[{index}]"),
                    };
                    self.error(field, message);
                }
            }
        }
        (parsed.len() == values.0.len()).then_some(parsed)
    }

    fn regex(&mut self, at: &str, pattern: &str) -> Option<Regex> {
        compile_regex(pattern)
            .map_err(|message| self.error(at.to_owned(), message))
            .ok()
    }

    fn value_test(&mut self, at: &str, spec: &ValueTestSpec) -> Option<ValueTest> {
        match spec {
            ValueTestSpec::Present(present) => Some(ValueTest::Present(*present)),
            ValueTestSpec::Text(text) => match text.strip_prefix('!') {
                Some(rest) => self
                    .value_test(at, &ValueTestSpec::Text(rest.to_owned()))
                    .map(|inner| ValueTest::Not(Box::new(inner))),
                None => match text.strip_prefix('~') {
                    Some(pattern) => self.regex(at, pattern).map(ValueTest::Regex),
                    None => Some(ValueTest::Equals(text.clone())),
                },
            },
        }
    }

    /// `client` and `client_file` of one matcher, as one set.
    fn clients(&mut self, at: &str, spec: &MatcherSpec) -> Option<AddressSet> {
        let mut networks = Vec::new();
        let mut failed = false;
        if let Some(clients) = &spec.client {
            match self.each(&format!("{at}.client"), clients, network) {
                Some(parsed) => networks.extend(parsed),
                None => failed = true,
            }
        }
        if let Some(file) = &spec.client_file {
            let field = format!("{at}.client_file");
            let path = self.file(field.clone(), file);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    for (number, line) in text.lines().enumerate() {
                        let line = line.split('#').next().unwrap_or("").trim();
                        if line.is_empty() {
                            continue;
                        }
                        match network(line) {
                            Ok(parsed) => networks.push(parsed),
                            Err(message) => {
                                failed = true;
                                self.error(
                                    field.clone(),
                                    format!("{}:{}: {message}", path.display(), number + 1),
                                );
                            }
                        }
                    }
                }
                Err(error) => {
                    failed = true;
                    self.error(field, format!("cannot read {}: {error}", path.display()));
                }
            }
        }
        (!failed).then(|| AddressSet::new(networks))
    }

    fn deny(&mut self, at: &str, spec: DenySpec) -> Option<Decision> {
        let (status, answer) = match spec {
            DenySpec::Status(status) => (Some(status), RespondSpec::default()),
            DenySpec::Answer(answer) => (answer.status.clone(), answer),
        };
        if answer.headers.is_some() {
            self.error(
                format!("{at}.headers"),
                "deny takes a status and a body; use respond to set headers",
            );
        }
        let field = match &status {
            Some(_) if answer.status.is_some() => format!("{at}.status"),
            _ => at.to_owned(),
        };
        let status = match status {
            Some(status) => self.status(&field, &status, 400..=599, "4xx or 5xx")?,
            None => StatusCode::FORBIDDEN,
        };
        let body = self.body(at, &answer)?;
        Some(Decision::Deny {
            status,
            body: (answer.body.is_some() || answer.body_file.is_some()).then_some(body),
        })
    }

    fn redirect(&mut self, at: &str, spec: RedirectSpec, groups: usize) -> Option<Decision> {
        let status = match &spec.code {
            Some(code) => {
                let status = self.status(&format!("{at}.code"), code, 300..=399, "a redirect")?;
                if ![301, 302, 303, 307, 308].contains(&status.as_u16()) {
                    self.error(
                        format!("{at}.code"),
                        format!(
                            "{} is not a redirect: use 301, 302, 303, 307 or 308",
                            code.0
                        ),
                    );
                    return None;
                }
                status
            }
            None => StatusCode::FOUND,
        };
        if spec.location.is_empty() {
            self.error(format!("{at}.location"), "must not be empty");
            return None;
        }
        let location = self.template(&format!("{at}.location"), &spec.location, groups)?;
        Some(Decision::Redirect { status, location })
    }

    fn respond(&mut self, at: &str, spec: RespondSpec, groups: usize) -> Option<Decision> {
        let status = match &spec.status {
            Some(status) => {
                self.status(&format!("{at}.status"), status, 200..=599, "200 to 599")?
            }
            None => StatusCode::OK,
        };
        let mut headers = Vec::new();
        for (name, value) in spec.headers.iter().flatten() {
            let field = format!("{at}.headers.{name}");
            if let Some(header) = self.settable_header(&field, name, ON_EACH_HOP) {
                headers.extend(
                    self.template(&field, &value.0, groups)
                        .map(|value| (header, value)),
                );
            }
        }
        let body = self.body(at, &spec)?;
        if !body.is_empty() && matches!(status.as_u16(), 204 | 304) {
            self.error(
                format!("{at}.status"),
                format!(
                    "a {} answer has no body; remove body or change the status",
                    status.as_u16()
                ),
            );
            return None;
        }
        Some(Decision::Respond {
            status,
            headers,
            body,
        })
    }

    /// `body` or `body_file`'s bytes (empty with neither).
    fn body(&mut self, at: &str, spec: &RespondSpec) -> Option<Bytes> {
        match (&spec.body, &spec.body_file) {
            (Some(_), Some(_)) => {
                self.error(at.to_owned(), "give body or body_file, not both");
                None
            }
            (Some(body), None) => Some(Bytes::from(body.clone())),
            (None, Some(file)) => self.read_body(&format!("{at}.body_file"), file),
            (None, None) => Some(Bytes::new()),
        }
    }

    fn read_body(&mut self, field: &str, file: &str) -> Option<Bytes> {
        let path = self.file(field.to_owned(), file);
        let read = std::fs::metadata(&path).and_then(|metadata| {
            if metadata.len() > MAX_BODY_FILE {
                return Err(std::io::Error::other(format!(
                    "it is larger than {} KiB",
                    MAX_BODY_FILE / 1024
                )));
            }
            std::fs::read(&path)
        });
        read.map(Bytes::from)
            .map_err(|error| {
                self.error(
                    field.to_owned(),
                    format!("cannot read {}: {error}", path.display()),
                )
            })
            .ok()
    }

    fn status(
        &mut self,
        at: &str,
        status: &IntegerSpec,
        range: std::ops::RangeInclusive<u16>,
        what: &str,
    ) -> Option<StatusCode> {
        let parsed = (status.0.parse::<u16>().ok())
            .filter(|code| range.contains(code))
            .and_then(|code| StatusCode::from_u16(code).ok());
        if parsed.is_none() {
            self.error(at.to_owned(), format!("status {} must be {what}", status.0));
        }
        parsed
    }

    fn rewrite(&mut self, at: &str, spec: RewriteSpec, groups: usize) -> Option<Rewrite> {
        match (spec.path, spec.path_regex) {
            (Some(path), None) => {
                let field = format!("{at}.path");
                if !path.starts_with('/') && !path.starts_with('{') {
                    self.error(field, format!("{path:?} must start with / (or a variable)"));
                    return None;
                }
                self.path_template(&field, &path, groups).map(Rewrite::Path)
            }
            (None, Some(PathRegexSpec { from, to })) => {
                let from = self.regex(&format!("{at}.path_regex.from"), &from)?;
                let field = format!("{at}.path_regex.to");
                let to = self.path_template(&field, &to, from.captures_len() - 1)?;
                Some(Rewrite::PathRegex { from, to })
            }
            _ => {
                self.error(
                    at.to_owned(),
                    "rewrite takes path or path_regex: exactly one",
                );
                None
            }
        }
    }

    fn header_edits(
        &mut self,
        at: &str,
        (set_key, set): (&str, Option<BTreeMap<String, ScalarText>>),
        (remove_key, remove): (&str, Option<Vec<String>>),
        groups: usize,
    ) -> HeaderEdits {
        let mut edits = HeaderEdits::default();
        for (index, name) in remove.iter().flatten().enumerate() {
            let field = format!("{at}.{remove_key}[{index}]");
            edits.remove.extend(self.header_name(field, name));
        }
        for (name, value) in set.into_iter().flatten() {
            let field = format!("{at}.{set_key}.{name}");
            let Some(header) = self.settable_header(&field, &name, ON_EACH_HOP) else {
                continue;
            };
            if let Some(value) = self.template(&field, &value.0, groups) {
                edits.set.push((header, value));
            }
        }
        edits
    }

    /// A template for a path: it may not take a header's, cookie's or the query's text, which
    /// could hold `?`, `#` or `..` and so name another resource than the rule meant.
    fn path_template(&mut self, at: &str, text: &str, groups: usize) -> Option<Template> {
        let template = self.template(at, text, groups)?;
        let unsafe_var = |var: &Var| {
            matches!(
                var,
                Var::Header(_) | Var::Cookie(_) | Var::Query | Var::ClientSubject
            )
        };
        if template.uses(unsafe_var) {
            self.error(
                at.to_owned(),
                "a path may not take {header.*}, {cookie.*}, {query} or {client_subject}: their \
                 text could name another resource",
            );
            return None;
        }
        Some(template)
    }

    fn template(&mut self, at: &str, text: &str, groups: usize) -> Option<Template> {
        parse_template(text, groups)
            .map_err(|message| self.error(at.to_owned(), message))
            .ok()
    }

    /// `error_pages`, each file read now (so a SIGHUP reads them again).
    pub(super) fn error_pages(
        &mut self,
        at: &str,
        spec: Option<BTreeMap<IntegerSpec, String>>,
    ) -> ErrorPages {
        let mut pages = Vec::new();
        for (status, file) in spec.into_iter().flatten() {
            let field = format!("{at}.error_pages.{}", status.0);
            let Some(status) = self.status(&field, &status, 400..=599, "4xx or 5xx") else {
                continue;
            };
            let Some(body) = self.read_body(&field, &file) else {
                continue;
            };
            let content_type = match file.rsplit_once('.').map(|(_, extension)| extension) {
                Some("html" | "htm") => "text/html; charset=utf-8",
                Some("json") => "application/json",
                _ => "text/plain; charset=utf-8",
            };
            pages.push(ErrorPage {
                status,
                body,
                content_type: HeaderValue::from_static(content_type),
            });
        }
        ErrorPages(pages)
    }

    /// The request ID header: as `request_id` names it, or the default when a template uses
    /// `{request_id}` without `request_id` set.
    pub(super) fn request_id(
        &mut self,
        at: &str,
        spec: Option<RequestIdSpec>,
        rules: &RuleSet,
    ) -> Option<HeaderName> {
        let wanted = spec.is_some() || rules.rules.iter().any(Rule::uses_request_id);
        if !wanted {
            return None;
        }
        match spec.and_then(|spec| spec.header) {
            Some(name) => {
                self.settable_header(&format!("{at}.request_id.header"), &name, ON_EACH_HOP)
            }
            None => Some(HeaderName::from_static(DEFAULT_REQUEST_ID)),
        }
    }
}

/// The regex whose captures `{1}`.. name, from a rule's own matcher as compiled: its
/// `path_regex`, else its `host_regex`.
fn capture_source(matcher: &Matcher) -> Option<CaptureSource> {
    let conditions = match matcher {
        Matcher::All(all) => all.as_slice(),
        one => std::slice::from_ref(one),
    };
    let path = conditions.iter().find_map(|condition| match condition {
        Matcher::PathRegex(pattern) => Some(CaptureSource::Path(pattern.regex.clone())),
        _ => None,
    });
    path.or_else(|| {
        conditions.iter().find_map(|condition| match condition {
            Matcher::HostRegex(regex) => Some(CaptureSource::Host(regex.clone())),
            _ => None,
        })
    })
}

/// The one condition, or all of them; `None` for none.
fn all(mut conditions: Vec<Matcher>) -> Option<Matcher> {
    match conditions.len() {
        0 => None,
        1 => conditions.pop(),
        _ => Some(Matcher::All(conditions)),
    }
}

/// `backend`'s index in `slots`, added if new.
fn slot(slots: &mut Vec<usize>, backend: usize) -> usize {
    match slots.iter().position(|&used| used == backend) {
        Some(index) => index,
        None => {
            slots.push(backend);
            slots.len() - 1
        }
    }
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| {
            // The crate's message spans lines, pointing into the pattern; its last line says
            // what is wrong.
            let text = error.to_string();
            let last = text.lines().last().unwrap_or(&text).trim();
            let last = last.strip_prefix("error: ").unwrap_or(last);
            format!("invalid regex {pattern:?}: {last}")
        })
}

/// An address, or a network as `address/prefix`.
fn network(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{text:?} is not an address or a network such as 192.0.2.0/24"))?;
    let longest = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix
            .parse::<u8>()
            .ok()
            .filter(|prefix| *prefix <= longest)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {longest}"))?,
        None => longest,
    };
    Ok((address, prefix))
}

/// The variables a template may name, for the message about one that is none of them.
const VARIABLES: &str = "client_ip, client_port, host, path, query, method, scheme, \
                         request_id, sni, client_subject, header.NAME, cookie.NAME, and 1 to 9 \
                         for regex captures";

/// Parses `{variable}`s out of `text` (`{{` and `}}` are braces); `groups` is how many capture
/// groups `{1}`.. may name.
pub(super) fn parse_template(text: &str, groups: usize) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        let brace = &rest[at..];
        if let Some(after) = brace
            .strip_prefix("{{")
            .or_else(|| brace.strip_prefix("}}"))
        {
            literal.push_str(&brace[..1]);
            rest = after;
            continue;
        }
        if brace.starts_with('}') {
            return Err(format!(
                "{text:?} has a }} without a {{ (write }}}} for a brace)"
            ));
        }
        let Some(end) = brace.find('}') else {
            return Err(format!(
                "{text:?} has a {{ without a }} (write {{{{ for a brace)"
            ));
        };
        let name = &brace[1..end];
        let var = variable(name, groups)?;
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(Part::Var(var));
        rest = &brace[end + 1..];
    }
    literal.push_str(rest);
    let only_text = parts.is_empty();
    if !literal.is_empty() {
        parts.push(Part::Text(literal.clone()));
    }
    let fixed = match only_text {
        true => Some(HeaderValue::from_str(&literal).map_err(|_| {
            format!(
                "{text:?} is not a valid header value (control characters and non-ASCII are \
                 not allowed)"
            )
        })?),
        false => {
            if let Some(bad) = (parts.iter()).find_map(|part| match part {
                Part::Text(text) if HeaderValue::from_str(text).is_err() => Some(text),
                _ => None,
            }) {
                return Err(format!("{bad:?} holds characters a header value may not"));
            }
            None
        }
    };
    Ok(Template { parts, fixed })
}

fn variable(name: &str, groups: usize) -> Result<Var, String> {
    Ok(match name {
        "client_ip" => Var::ClientIp,
        "client_port" => Var::ClientPort,
        "host" => Var::Host,
        "path" => Var::Path,
        "query" => Var::Query,
        "method" => Var::Method,
        "scheme" => Var::Scheme,
        "request_id" => Var::RequestId,
        "sni" => Var::Sni,
        "client_subject" => Var::ClientSubject,
        _ => {
            if let Some(header) = name.strip_prefix("header.") {
                let header = HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("{{{name}}}: {header:?} is not a header name"))?;
                return Ok(Var::Header(header));
            }
            if let Some(cookie) = name.strip_prefix("cookie.") {
                if cookie.is_empty() {
                    return Err(format!("{{{name}}} names no cookie"));
                }
                return Ok(Var::Cookie(cookie.to_owned()));
            }
            match name.parse::<usize>() {
                Ok(group @ 1..=9) if group <= groups => Var::Capture(group),
                Ok(group @ 1..=9) => {
                    return Err(match groups {
                        0 => format!(
                            "{{{group}}} names a regex capture, but this rule has no path_regex \
                             or host_regex (or rewrite path_regex) with groups to take it from"
                        ),
                        _ => format!("{{{group}}}: the regex has only {groups} capture groups"),
                    })
                }
                _ => {
                    return Err(format!(
                        "unknown variable {{{name}}}: templates know {VARIABLES}"
                    ))
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn templates_parse_into_text_and_variables() {
        let template = parse_template("https://new.example{path}{query}", 0).unwrap();
        assert_eq!(
            template.parts,
            [
                Part::Text("https://new.example".into()),
                Part::Var(Var::Path),
                Part::Var(Var::Query)
            ]
        );
        assert_eq!(template.fixed, None);
        let fixed = parse_template("a {{b}} c", 0).unwrap();
        assert_eq!(fixed.fixed, Some(HeaderValue::from_static("a {b} c")));
        let vars = parse_template("{header.X-Role}/{cookie.id}/{2}", 2).unwrap();
        assert_eq!(
            vars.parts,
            [
                Part::Var(Var::Header(HeaderName::from_static("x-role"))),
                Part::Text("/".into()),
                Part::Var(Var::Cookie("id".into())),
                Part::Text("/".into()),
                Part::Var(Var::Capture(2)),
            ]
        );
    }

    #[test]
    fn template_mistakes_are_named() {
        for (text, groups, wanted) in [
            ("{clientip}", 0, "unknown variable {clientip}"),
            ("{1}", 0, "this rule has no path_regex"),
            ("{3}", 2, "only 2 capture groups"),
            ("{path", 0, "without a }"),
            ("a}", 0, "without a {"),
            ("{header.a b}", 0, "is not a header name"),
            ("a\u{1}b", 0, "not a valid header value"),
        ] {
            let error = parse_template(text, groups).unwrap_err();
            assert!(error.contains(wanted), "{text}: {error}");
        }
    }

    #[test]
    fn networks_parse_with_or_without_a_prefix() {
        assert_eq!(
            network("192.0.2.0/24"),
            Ok(("192.0.2.0".parse().unwrap(), 24))
        );
        assert_eq!(
            network("2001:db8::1"),
            Ok(("2001:db8::1".parse().unwrap(), 128))
        );
        assert!(network("192.0.2.0/33").unwrap_err().contains("0 to 32"));
        assert!(network("example.com").is_err());
    }

    fn frontend_errors(extra: &str) -> Vec<String> {
        problems(&format!(
            "{}{extra}",
            "node: { name: a }\nbackends:\n  - { name: app, servers: [{ name: s, address: 127.0.0.1:1 }] }\n\
             frontends:\n  - name: web\n    listen: 127.0.0.1:8080\n    mode: http\n    backend: app\n"
        ))
    }

    #[test]
    fn rule_mistakes_are_each_reported_at_their_field() {
        let found = frontend_errors(
            "    matchers:\n      office: { client: [192.0.2.0/24, nope] }\n      loop: { not: loop }\n\
             \x20   rules:\n      - { match: { path_regex: \"^/api(\" }, deny: 403 }\n\
             \x20     - { match: nobody, backend: nope }\n\
             \x20     - { set_request_headers: { X-A: \"{bad}\" } }\n\
             \x20     - { match: { path: /a }, deny: 200 }\n\
             \x20     - { match: { path: /a } }\n\
             \x20     - { backend: app, respond: { status: 200 } }\n\
             \x20     - { name: \"7\", deny: 403 }\n\
             \x20     - { respond: { status: 204, body: x } }\n\
             \x20     - { rewrite: { path: \"/u/{header.X-User}\" } }\n",
        );
        let wanted = [
            "frontends[0].matchers.loop.not: matchers refer to each other in a loop: loop -> loop",
            "frontends[0].matchers.office.client[1]: \"nope\" is not an address",
            "frontends[0].rules[0].match.path_regex: invalid regex \"^/api(\": unclosed group",
            "frontends[0].rules[1].match: unknown matcher \"nobody\": the named matchers are loop, office",
            "frontends[0].rules[1].backend: unknown backend \"nope\"",
            "frontends[0].rules[2].set_request_headers.X-A: unknown variable {bad}",
            "frontends[0].rules[3].deny: status 200 must be 4xx or 5xx",
            "frontends[0].rules[4]: the rule does nothing",
            "frontends[0].rules[5]: a rule decides one way: backend, respond are all given",
            "frontends[0].rules[6].name: rule name \"7\" is taken",
            "frontends[0].rules[7].respond.status: a 204 answer has no body",
            "frontends[0].rules[8].rewrite.path: a path may not take {header.*}",
        ];
        for wanted in wanted {
            assert!(
                found.iter().any(|error| error.starts_with(wanted)),
                "{wanted}\nnot in {found:#?}"
            );
        }
    }

    #[test]
    fn shorthands_become_rules_around_the_written_ones() {
        let config = valid(
            "node: { name: a }\nbackends:\n  - { name: app, servers: [{ name: s, address: 127.0.0.1:1 }] }\n  - { name: api, servers: [{ name: s, address: 127.0.0.1:2 }] }\n\
             frontends:\n  - name: web\n    listen: 127.0.0.1:8080\n    mode: http\n    backend: app\n\
             \x20   request_headers: { set: { X-Env: prod } }\n\
             \x20   routes: [{ path_prefix: /api, backend: api }]\n\
             \x20   rules:\n      - { name: health, match: { path: /healthz }, respond: { body: ok } }\n",
        );
        let rules = &config.frontends[0].rules;
        let names: Vec<&str> = rules.rules.iter().map(|rule| rule.name.as_str()).collect();
        assert_eq!(names, ["request_headers", "health", "routes[0]"]);
        assert_eq!(rules.backends, [1]);
        assert!(!rules.uses_host);
    }
}
