//! A template's value for one request. A variable with nothing to give (a missing header, no
//! TLS name, a capture that did not take part) renders as nothing.

use std::fmt::Write;

use bytes::Bytes;
use http::header::COOKIE;
use http::HeaderValue;

use super::matcher::pairs;
use super::RequestView;
use crate::config::rules::{Part, Template, Var};

/// `template` for `request`; `None` only if a value rendered into it is not a valid header
/// value (a capture of a path holding a control character cannot be, as a path can't).
pub fn render(
    template: &Template,
    request: &RequestView<'_>,
    captures: Option<&regex::Captures<'_>>,
) -> Option<HeaderValue> {
    if let Some(fixed) = &template.fixed {
        return Some(fixed.clone());
    }
    let mut out = String::with_capacity(64);
    for part in &template.parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Var(var) => push(&mut out, var, request, captures),
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
}

fn push(
    out: &mut String,
    var: &Var,
    request: &RequestView<'_>,
    captures: Option<&regex::Captures<'_>>,
) {
    match var {
        Var::ClientIp => {
            let _ = write!(out, "{}", request.client.ip().to_canonical());
        }
        Var::ClientPort => {
            let _ = write!(out, "{}", request.client.port());
        }
        Var::Host => out.push_str(request.host.unwrap_or("")),
        Var::Path => out.push_str(request.path),
        Var::Query => {
            if let Some(query) = request.uri.query() {
                out.push('?');
                out.push_str(query);
            }
        }
        Var::Method => out.push_str(request.method.as_str()),
        Var::Scheme => out.push_str(request.scheme),
        Var::RequestId => {
            out.push_str(
                request
                    .request_id
                    .and_then(|id| id.to_str().ok())
                    .unwrap_or(""),
            );
        }
        Var::Sni => out.push_str(request.sni.unwrap_or("")),
        Var::Header(name) => {
            let value = request
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok());
            out.push_str(value.unwrap_or(""));
        }
        Var::Cookie(name) => {
            let value = (request.headers.get_all(COOKIE).iter())
                .filter_map(|header| header.to_str().ok())
                .find_map(|header| pairs(header, b';', name).next());
            out.push_str(value.unwrap_or(""));
        }
        Var::Capture(group) => {
            let capture = captures.and_then(|captures| captures.get(*group));
            out.push_str(capture.map_or("", |capture| capture.as_str()));
        }
        Var::ClientSubject => out.push_str(request.client_subject.unwrap_or("")),
    }
}
