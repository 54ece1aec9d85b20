//! The runtime API as pure functions: which endpoint a request asks for, whether it may, and
//! what change it asks for. The IO (serving, applying) is elsewhere.
//!
//! | request | body | |
//! |---|---|---|
//! | `GET /health` | | 200 while the process runs |
//! | `GET /ready` | | 200 once the config is loaded and listeners bound, 503 before and while stopping |
//! | `GET /status`, `GET /metrics` | | the state as JSON, the metrics |
//! | `PUT /api/servers/{backend}/{server}/state` | `ready`, `drain` or `maint` | |
//! | `PUT /api/servers/{backend}/{server}/weight` | `0`..=`256` | |
//! | `PUT /api/frontends/{name}/state` | `enabled` or `disabled` | |
//! | `POST /api/vrrp/{instance}/resign` | | |
//! | `PUT /api/vrrp/{instance}/maintenance` | `on` or `off` | |
//! | `PUT /api/announce/state` | `drain` or `ready` | drain answers once routers have moved new flows away |
//!
//! Writes answer 200 with a line saying what changed, or an error with a line saying why:
//! 400 (a bad value, naming those allowed), 401 (over TCP, a missing or wrong token), 403
//! (over TCP without `admin.token_file`), 404 (an unknown name, named).

use http::{HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq as _;

use crate::backend::admin_state::AdminState;

/// The highest weight the config allows, and so the runtime API.
pub const MAX_WEIGHT: u32 = 256;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    Status,
    Metrics,
    Change(Change),
}

/// A runtime change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    ServerState {
        backend: String,
        server: String,
        state: AdminState,
    },
    ServerWeight {
        backend: String,
        server: String,
        weight: u32,
    },
    Frontend {
        name: String,
        enabled: bool,
    },
    VrrpResign {
        instance: String,
    },
    VrrpMaintenance {
        instance: String,
        on: bool,
    },
    /// `drain`: withdraw the announced addresses and keep them withdrawn; `ready`: announce
    /// them again when the trackers allow.
    Announce {
        drain: bool,
    },
}

/// Why a request is answered with an error: the status and a line for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::NOT_FOUND, message)
    }
}

/// How the request came: over TCP a write needs the token; over the unix socket, reaching
/// the socket (its file permissions) is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Socket,
}

/// The endpoint `method` and `path` ask for, with the body of a write.
pub fn route(method: &Method, path: &str, body: &[u8]) -> Result<Endpoint, Refusal> {
    let read = match path {
        "/health" => Some(Endpoint::Health),
        "/ready" => Some(Endpoint::Ready),
        "/status" => Some(Endpoint::Status),
        "/metrics" => Some(Endpoint::Metrics),
        _ => None,
    };
    if let Some(endpoint) = read {
        return match *method == Method::GET || *method == Method::HEAD {
            true => Ok(endpoint),
            false => Err(method_not_allowed("GET")),
        };
    }
    let segments: Vec<&str> = match path.strip_prefix("/api/") {
        Some(rest) => rest.split('/').collect(),
        None => {
            return Err(Refusal::not_found(format!(
                "no endpoint {path}: try /status, /metrics, /health, /ready or /api/..."
            )))
        }
    };
    let value = std::str::from_utf8(body).unwrap_or("\u{fffd}").trim();
    let (wanted, change) = match segments[..] {
        ["servers", backend, server, "state"] => (
            Method::PUT,
            value.parse().map(|state| Change::ServerState {
                backend: backend.to_owned(),
                server: server.to_owned(),
                state,
            }),
        ),
        ["servers", backend, server, "weight"] => (
            Method::PUT,
            weight(value).map(|weight| Change::ServerWeight {
                backend: backend.to_owned(),
                server: server.to_owned(),
                weight,
            }),
        ),
        ["frontends", name, "state"] => (
            Method::PUT,
            one_of(value, "a frontend state", ["enabled", "disabled"]).map(|enabled| {
                Change::Frontend {
                    name: name.to_owned(),
                    enabled: enabled == "enabled",
                }
            }),
        ),
        ["vrrp", instance, "resign"] => (
            Method::POST,
            Ok(Change::VrrpResign {
                instance: instance.to_owned(),
            }),
        ),
        ["vrrp", instance, "maintenance"] => (
            Method::PUT,
            one_of(value, "a maintenance mode", ["on", "off"]).map(|on| Change::VrrpMaintenance {
                instance: instance.to_owned(),
                on: on == "on",
            }),
        ),
        ["announce", "state"] => (
            Method::PUT,
            one_of(value, "an announce state", ["drain", "ready"]).map(|state| Change::Announce {
                drain: state == "drain",
            }),
        ),
        _ => return Err(Refusal::not_found(format!("no endpoint {path}"))),
    };
    if *method != wanted {
        return Err(method_not_allowed(wanted.as_str()));
    }
    (change.map(Endpoint::Change)).map_err(|message| Refusal::new(StatusCode::BAD_REQUEST, message))
}

/// Whether a request for `endpoint` over `transport` may go on: reads always, writes over
/// the unix socket always, writes over TCP with the bearer `token` only.
pub fn authorize(
    endpoint: &Endpoint,
    transport: Transport,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    if !matches!(endpoint, Endpoint::Change(_)) || transport == Transport::Socket {
        return Ok(());
    }
    let Some(token) = token else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "writes over TCP are off: set admin.token_file and send `Authorization: Bearer TOKEN`, \
             or use admin.socket",
        ));
    };
    let offered = (headers.get(http::header::AUTHORIZATION))
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    match offered {
        Some(offered) if bool::from(offered.ct_eq(token.as_bytes())) => Ok(()),
        Some(_) => Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong token")),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "a write needs `Authorization: Bearer TOKEN` (the token in admin.token_file)",
        )),
    }
}

fn method_not_allowed(allowed: &str) -> Refusal {
    Refusal::new(StatusCode::METHOD_NOT_ALLOWED, format!("{allowed} only"))
}

fn weight(value: &str) -> Result<u32, String> {
    (value.parse::<u32>().ok())
        .filter(|weight| *weight <= MAX_WEIGHT)
        .ok_or_else(|| format!("{value:?} is not a weight: a whole number from 0 to {MAX_WEIGHT}"))
}

fn one_of<'a, const N: usize>(
    value: &str,
    what: &str,
    allowed: [&'a str; N],
) -> Result<&'a str, String> {
    (allowed.into_iter())
        .find(|allowed| *allowed == value)
        .ok_or_else(|| format!("{value:?} is not {what}: {}", allowed.join(" or ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn change(method: Method, path: &str, body: &str) -> Result<Endpoint, Refusal> {
        route(&method, path, body.as_bytes())
    }

    fn status(result: Result<Endpoint, Refusal>) -> StatusCode {
        result.expect_err("refused").status
    }

    #[test]
    fn routes_each_write_with_its_value() {
        assert_eq!(
            change(Method::PUT, "/api/servers/web/a/state", "drain\n"),
            Ok(Endpoint::Change(Change::ServerState {
                backend: "web".into(),
                server: "a".into(),
                state: AdminState::Drain
            }))
        );
        assert_eq!(
            change(Method::PUT, "/api/servers/web/a/weight", "0"),
            Ok(Endpoint::Change(Change::ServerWeight {
                backend: "web".into(),
                server: "a".into(),
                weight: 0
            }))
        );
        assert_eq!(
            change(Method::PUT, "/api/frontends/f/state", "disabled"),
            Ok(Endpoint::Change(Change::Frontend {
                name: "f".into(),
                enabled: false
            }))
        );
        assert_eq!(
            change(Method::POST, "/api/vrrp/VI_1/resign", ""),
            Ok(Endpoint::Change(Change::VrrpResign {
                instance: "VI_1".into()
            }))
        );
        assert_eq!(
            change(Method::PUT, "/api/vrrp/VI_1/maintenance", "on"),
            Ok(Endpoint::Change(Change::VrrpMaintenance {
                instance: "VI_1".into(),
                on: true
            }))
        );
        assert_eq!(
            change(Method::PUT, "/api/announce/state", "drain"),
            Ok(Endpoint::Change(Change::Announce { drain: true }))
        );
        assert_eq!(
            change(Method::PUT, "/api/announce/state", "ready\n"),
            Ok(Endpoint::Change(Change::Announce { drain: false }))
        );
        assert_eq!(
            change(Method::PUT, "/api/announce/state", "withdraw"),
            Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "\"withdraw\" is not an announce state: drain or ready"
            ))
        );
        assert_eq!(change(Method::GET, "/ready", ""), Ok(Endpoint::Ready));
    }

    #[test]
    fn bad_values_say_what_is_allowed_and_wrong_methods_and_paths_are_refused() {
        assert_eq!(
            change(Method::PUT, "/api/servers/web/a/weight", "257"),
            Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "\"257\" is not a weight: a whole number from 0 to 256"
            ))
        );
        assert_eq!(
            change(Method::PUT, "/api/frontends/f/state", "off"),
            Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "\"off\" is not a frontend state: enabled or disabled"
            ))
        );
        assert_eq!(
            status(change(Method::PUT, "/api/servers/web/a/state", "up")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(change(Method::GET, "/api/servers/web/a/state", "drain")),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(change(Method::POST, "/status", "")),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(change(Method::PUT, "/api/servers/web/state", "drain")),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn writes_over_tcp_need_the_token_and_reads_and_the_socket_do_not() {
        let write = change(Method::PUT, "/api/servers/web/a/state", "drain").unwrap();
        let bearer = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        let none = HeaderMap::new();
        let tcp = Transport::Tcp;
        assert_eq!(authorize(&Endpoint::Status, tcp, None, &none), Ok(()));
        assert_eq!(
            authorize(&write, Transport::Socket, Some("t0ken"), &none),
            Ok(())
        );
        assert_eq!(
            authorize(&write, tcp, Some("t0ken"), &bearer("Bearer t0ken")),
            Ok(())
        );
        let refused = |token: Option<&str>, headers: &HeaderMap| {
            authorize(&write, tcp, token, headers).unwrap_err().status
        };
        assert_eq!(refused(Some("t0ken"), &none), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused(Some("t0ken"), &bearer("Bearer t0ke")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refused(Some("t0ken"), &bearer("Basic t0ken")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refused(None, &bearer("Bearer t0ken")),
            StatusCode::FORBIDDEN
        );
    }
}
