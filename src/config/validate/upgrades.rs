//! A frontend's protocol upgrades: which protocols clients may switch to (`upgrades`), and how
//! long an upgraded connection may idle (`timeouts.tunnel`).

use super::super::model::*;
use super::Validator;
use std::time::Duration;

/// HAProxy's documentation sets `timeout tunnel 1h` for WebSocket, and nginx deployments raise
/// `proxy_read_timeout` to an hour for it: a quiet chat or dashboard is not cut off, and an
/// abandoned one does not stay for ever.
pub(super) const DEFAULT_TUNNEL: Duration = Duration::from_secs(3600);
const MAX_TUNNEL: Duration = Duration::from_secs(7 * 24 * 3600);

impl Validator {
    /// The upgrade allow-list, in lower case: WebSocket unless the frontend names its own.
    pub(super) fn upgrades(
        &mut self,
        at: &str,
        mode: Mode,
        spec: Option<Vec<String>>,
    ) -> Vec<String> {
        let Some(protocols) = spec else {
            return vec!["websocket".to_owned()];
        };
        if mode == Mode::Tcp {
            self.error(
                format!("{at}.upgrades"),
                "upgrades needs mode: http; a tcp frontend relays bytes as they are",
            );
        }
        let mut allowed: Vec<String> = Vec::with_capacity(protocols.len());
        for (index, protocol) in protocols.into_iter().enumerate() {
            let field = format!("{at}.upgrades[{index}]");
            let name = protocol.to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                self.error(
                    field,
                    format!(
                        "{protocol:?} is not a protocol name (RFC 9110 token), such as websocket"
                    ),
                );
            } else if name == "h2c" {
                self.error(
                    field,
                    "h2c is not tunnelled: tandem speaks HTTP/2 to clients itself (TLS with ALPN h2, \
                     or prior knowledge)",
                );
            } else if !allowed.contains(&name) {
                allowed.push(name);
            }
        }
        allowed
    }

    /// `timeouts.tunnel`, which only an http frontend's upgraded connections have.
    pub(super) fn tunnel_timeout(&mut self, at: &str, mode: Mode, text: Option<&str>) -> Duration {
        let field = format!("{at}.timeouts.tunnel");
        if mode == Mode::Tcp && text.is_some() {
            self.error(
                field.clone(),
                "tunnel needs mode: http; a tcp frontend's connections idle out by client_idle",
            );
        }
        self.timeout(field, text, DEFAULT_TUNNEL, MAX_TUNNEL)
    }
}

/// A byte of an RFC 9110 token (`tchar`); a protocol's version follows a `/`, also allowed.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    fn frontend(extra: &str) -> String {
        one_backend("").replace("backend: b }", &format!("backend: b{extra} }}"))
    }

    #[test]
    fn websocket_is_allowed_and_tunnels_idle_an_hour_unless_told() {
        let config = valid(&frontend(""));
        assert_eq!(config.frontends[0].upgrades, ["websocket"]);
        assert_eq!(
            config.frontends[0].timeouts.tunnel,
            Duration::from_secs(3600)
        );

        let config = valid(&frontend(
            ", upgrades: [WebSocket, x-custom/2, websocket], timeouts: { tunnel: 90s }",
        ));
        assert_eq!(config.frontends[0].upgrades, ["websocket", "x-custom/2"]);
        assert_eq!(config.frontends[0].timeouts.tunnel, Duration::from_secs(90));
        assert!(valid(&frontend(", upgrades: []")).frontends[0]
            .upgrades
            .is_empty());
    }

    #[test]
    fn bad_protocol_names_h2c_and_tcp_frontends_are_refused() {
        assert_eq!(
            problems(&frontend(", upgrades: ['web socket', h2c], timeouts: { tunnel: 0s }")),
            [
                "frontends[0].timeouts.tunnel: must be longer than zero",
                "frontends[0].upgrades[0]: \"web socket\" is not a protocol name (RFC 9110 token), \
                 such as websocket",
                "frontends[0].upgrades[1]: h2c is not tunnelled: tandem speaks HTTP/2 to clients \
                 itself (TLS with ALPN h2, or prior knowledge)",
            ]
        );
        let tcp = frontend(", upgrades: [websocket], timeouts: { tunnel: 1m }")
            .replace("mode: http", "mode: tcp");
        assert_eq!(
            problems(&tcp),
            [
                "frontends[0].timeouts.tunnel: tunnel needs mode: http; a tcp frontend's \
                 connections idle out by client_idle",
                "frontends[0].upgrades: upgrades needs mode: http; a tcp frontend relays bytes \
                 as they are",
            ]
        );
    }
}
