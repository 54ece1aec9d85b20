//! Answers made here instead of by a server: refusals, redirects and errors, each with the
//! reason the access log gives.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// A request answered here instead of by a server.
pub struct Local {
    pub status: StatusCode,
    pub text: &'static str,
    /// Why, in the access log.
    pub end: &'static str,
    pub location: Option<HeaderValue>,
}

impl Local {
    pub const fn new(status: StatusCode, text: &'static str, end: &'static str) -> Local {
        Local {
            status,
            text,
            end,
            location: None,
        }
    }

    /// The answer as the client gets it.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = Full::new(Bytes::from_static(self.text.as_bytes()));
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let Some(location) = &self.location {
            headers.insert(header::LOCATION, location.clone());
        }
        response
    }
}

pub const NO_SERVER: Local = Local::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "no server available\n",
    "no_server",
);
