//! Backends and their servers.

use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use std::time::Duration;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 1;
/// A server that takes longer than this to accept a connection is not coming.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_WEIGHT: u32 = 1;
const MAX_WEIGHT: u32 = 256;

impl Validator {
    pub(super) fn backend(&mut self, index: usize, spec: BackendSpec) -> Backend {
        let at = format!("backends[{index}]");
        self.non_empty(format!("{at}.name"), &spec.name);
        let balance = match spec.balance.unwrap_or(BalanceSpec::RoundRobin) {
            BalanceSpec::RoundRobin => Balance::RoundRobin,
            BalanceSpec::WeightedRoundRobin => Balance::WeightedRoundRobin,
            BalanceSpec::LeastConn => Balance::LeastConn,
            BalanceSpec::SourceHash => Balance::SourceHash,
            BalanceSpec::UriHash => Balance::UriHash {
                hash_query: spec.hash_query.unwrap_or(false),
            },
        };
        if spec.hash_query.is_some() && !matches!(balance, Balance::UriHash { .. }) {
            self.error(
                format!("{at}.hash_query"),
                "only applies to balance: uri_hash; remove it or change balance",
            );
        }
        let connect_timeout = self.timeout(
            format!("{at}.connect_timeout"),
            spec.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
            MAX_CONNECT_TIMEOUT,
        );
        let response_timeout = self.timeout(
            format!("{at}.response_timeout"),
            spec.response_timeout.as_deref(),
            DEFAULT_RESPONSE_TIMEOUT,
            MAX_RESPONSE_TIMEOUT,
        );
        let roles = self.backend_roles(&at, &spec, connect_timeout);
        let health_check = spec
            .health_check
            .map(|check| self.health_check(&format!("{at}.health_check"), check));
        if spec.servers.is_empty() {
            self.error(
                format!("{at}.servers"),
                format!("backend {:?} has no servers; add at least one", spec.name),
            );
        }
        let servers: Vec<Server> = spec
            .servers
            .into_iter()
            .enumerate()
            .map(|(index, server)| {
                self.server(&format!("{at}.servers[{index}]"), server, roles.slow_start)
            })
            .collect();
        self.unique_names(
            &format!("{at}.servers"),
            "server",
            servers.iter().map(|s| &s.name).enumerate(),
        );
        self.numbered_names_free(&at, &servers);
        let persistence =
            (spec.persistence).map(|persistence| self.persistence(&at, persistence, &servers));
        let tcp_keepalive = self.tcp_keepalive(&at, spec.tcp_keepalive);
        let backend = Backend {
            name: spec.name,
            balance,
            connect_timeout,
            response_timeout,
            retries: spec.retries.unwrap_or(DEFAULT_RETRIES),
            health_check,
            servers,
            persistence,
            send_proxy: spec.send_proxy.map(|version| match version {
                ProxyVersionSpec::V1 => ProxyVersion::V1,
                ProxyVersionSpec::V2 => ProxyVersion::V2,
            }),
            protocol: match spec.protocol {
                None | Some(UpstreamProtocolSpec::Http11) => UpstreamProtocol::Http11,
                Some(UpstreamProtocolSpec::H2) => UpstreamProtocol::H2,
            },
            resolve: self.resolve(&at, spec.resolve),
            tls: (spec.tls).map(|tls| self.upstream_tls_keys(&format!("{at}.tls"), tls)),
            tcp_keepalive,
            all_backups: roles.all_backups,
            queue_timeout: roles.queue_timeout,
            queue_size: roles.queue_size,
            shutdown_sessions_on_down: roles.shutdown_sessions_on_down,
            shutdown_backup_sessions_on_up: roles.shutdown_backup_sessions_on_up,
        };
        for (index, server) in backend.servers.iter().enumerate() {
            self.merged_upstream_tls(&format!("{at}.servers[{index}]"), &backend, server);
        }
        backend
    }

    fn server(
        &mut self,
        at: &str,
        spec: ServerSpec,
        backend_slow_start: Option<std::time::Duration>,
    ) -> Server {
        let (max_connections, slow_start) = self.server_limits(at, &spec, backend_slow_start);
        self.non_empty(format!("{at}.name"), &spec.name);
        let address = self.server_address(format!("{at}.address"), &spec.address);
        let weight = spec.weight.unwrap_or(DEFAULT_WEIGHT);
        if weight > MAX_WEIGHT {
            self.error(
                format!("{at}.weight"),
                format!("weight {weight} is out of range 0..={MAX_WEIGHT} (0 drains the server)"),
            );
        }
        Server {
            name: spec.name,
            address,
            weight,
            tls: (spec.tls).map(|tls| self.upstream_tls_keys(&format!("{at}.tls"), tls)),
            backup: spec.backup.unwrap_or(false),
            max_connections,
            slow_start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn rejects_a_backend_without_servers() {
        let expected = ["backends[0].servers: backend \"b\" has no servers; add at least one"];
        assert_eq!(problems(&one_backend(", servers: []")), expected);
        let left_out =
            one_backend("").replace(", servers: [{ name: s, address: 127.0.0.1:81 }]", "");
        assert_eq!(problems(&left_out), expected);
    }

    #[test]
    fn bounds_weights_to_256() {
        let servers = |weight: u32| {
            one_backend(&format!(
                ", servers: [{{ name: s, address: 127.0.0.1:81, weight: {weight} }}]"
            ))
        };
        assert_eq!(valid(&servers(0)).backends[0].servers[0].weight, 0);
        assert_eq!(valid(&servers(256)).backends[0].servers[0].weight, 256);
        assert_eq!(
            problems(&servers(257)),
            [
                "backends[0].servers[0].weight: weight 257 is out of range 0..=256 \
              (0 drains the server)"
            ]
        );
    }

    #[test]
    fn reads_hash_query_with_uri_hash() {
        let balance = |text: &str| valid(&one_backend(text)).backends[0].balance;
        assert_eq!(
            balance(", balance: uri_hash"),
            Balance::UriHash { hash_query: false }
        );
        assert_eq!(
            balance(", balance: uri_hash, hash_query: true"),
            Balance::UriHash { hash_query: true }
        );
        assert_eq!(balance(", balance: source_hash"), Balance::SourceHash);
    }

    #[test]
    fn rejects_hash_query_with_another_balance() {
        for text in [
            ", hash_query: false",
            ", balance: source_hash, hash_query: true",
        ] {
            assert_eq!(
                problems(&one_backend(text)),
                [
                    "backends[0].hash_query: only applies to balance: uri_hash; \
                  remove it or change balance"
                ]
            );
        }
    }
}
