//! Answers made here instead of by a server: refusals, redirects, rule answers and errors, each
//! with the reason the access log gives.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::config::ErrorPages;

/// A request answered here instead of by a server.
#[derive(Clone)]
pub struct Local {
    pub status: StatusCode,
    pub body: Bytes,
    /// Whether `body` is tandem's own short text, which an error page for the status replaces.
    pub replaceable: bool,
    /// Why, in the access log.
    pub end: &'static str,
    pub location: Option<HeaderValue>,
    /// Headers a `respond` rule gives (Content-Type among them, if it sets one).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Local {
    /// tandem's own answer: `text`, or the frontend's error page for `status`.
    pub const fn new(status: StatusCode, text: &'static str, end: &'static str) -> Local {
        Local {
            status,
            body: Bytes::from_static(text.as_bytes()),
            replaceable: true,
            end,
            location: None,
            headers: Vec::new(),
        }
    }

    /// An answer whose body a rule gives; no error page replaces it.
    pub fn given(status: StatusCode, body: Bytes, end: &'static str) -> Local {
        Local {
            replaceable: false,
            body,
            ..Local::new(status, "", end)
        }
    }

    /// The answer as the client gets it, with `pages` in place of tandem's own texts.
    pub fn response(&self, pages: &ErrorPages) -> Response<Full<Bytes>> {
        let page = (self.replaceable).then(|| pages.get(self.status)).flatten();
        let (body, content_type) = match page {
            Some(page) => (page.body.clone(), page.content_type.clone()),
            None => (self.body.clone(), HeaderValue::from_static("text/plain")),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if !self.body.is_empty() || page.is_some() {
            headers.insert(header::CONTENT_TYPE, content_type);
        }
        if let Some(location) = &self.location {
            headers.insert(header::LOCATION, location.clone());
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        response
    }

    /// The body's length as sent, for the access log.
    pub fn sent(&self, pages: &ErrorPages) -> u64 {
        let page = (self.replaceable).then(|| pages.get(self.status)).flatten();
        page.map_or(self.body.len(), |page| page.body.len()) as u64
    }
}

pub const NO_SERVER: Local = Local::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "no server available\n",
    "no_server",
);
