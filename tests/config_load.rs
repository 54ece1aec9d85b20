//! Loads the shipped config and the broken fixtures through the public API, checking the
//! exact model and the exact messages an operator would see.

use std::path::Path;
use std::time::Duration;
use tandem::config::*;

/// Each error as its operator-facing line.
fn errors(path: &str) -> Vec<String> {
    let errors = load(Path::new(path)).expect_err("the fixture is invalid");
    errors.0.iter().map(ToString::to_string).collect()
}

#[test]
fn shipped_config_loads_with_the_meaning_its_comments_give() {
    let config = load(Path::new("config/tandem.yaml")).expect("the shipped config is valid");
    let expected = Config {
        node: Node {
            name: "lb-a".into(),
            threads: 2,
            shutdown_timeout: Duration::from_secs(30),
        },
        log_level: None,
        admin: Some(Admin {
            listen: "127.0.0.1:9900".parse().unwrap(),
            token: None,
            socket: None,
        }),
        access_log: Some(AccessLog {
            format: LogFormat::Json,
            target: LogTarget::File("/var/log/tandem/access.log".into()),
            syslog: None,
        }),
        frontends: vec![
            Frontend {
                name: "web".into(),
                listen: "127.0.0.1:8080".parse().unwrap(),
                mode: Mode::Http,
                backend: Some(0),
                max_connections: None,
                timeouts: FrontendTimeouts {
                    request_header: Duration::from_secs(10),
                    client_idle: Duration::from_secs(60),
                    tunnel: Duration::from_secs(3600),
                },
                accept_proxy: false,
                tls: None,
                rules: RuleSet::default(),
                error_pages: ErrorPages::default(),
                request_id: None,
                client_limits: None,
                compression: Some(Compression {
                    algorithms: vec![Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip],
                    types: vec![
                        MediaRange {
                            main: "text".into(),
                            subtype: None,
                        },
                        MediaRange {
                            main: "application".into(),
                            subtype: Some("json".into()),
                        },
                    ],
                    min_size: 1024,
                }),
                upgrades: vec!["websocket".into()],
                tcp_keepalive: None,
            },
            Frontend {
                name: "db".into(),
                listen: "127.0.0.1:13306".parse().unwrap(),
                mode: Mode::Tcp,
                backend: Some(1),
                max_connections: None,
                timeouts: FrontendTimeouts {
                    request_header: Duration::from_secs(10),
                    client_idle: Duration::from_secs(60),
                    tunnel: Duration::from_secs(3600),
                },
                accept_proxy: false,
                tls: None,
                rules: RuleSet::default(),
                error_pages: ErrorPages::default(),
                request_id: None,
                client_limits: None,
                compression: None,
                upgrades: vec!["websocket".into()],
                tcp_keepalive: None,
            },
        ],
        backends: vec![
            Backend {
                name: "web_pool".into(),
                balance: Balance::WeightedRoundRobin,
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(30),
                retries: 1,
                health_check: Some(HealthCheck {
                    kind: CheckKind::Http {
                        path: "/health".into(),
                        host: None,
                        expect: StatusMatch::Code(200),
                        method: http::Method::GET,
                        headers: Vec::new(),
                        expect_body: None,
                    },
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_millis(500),
                    rise: 2,
                    fall: 2,
                    tls: None,
                    sni: None,
                    port: None,
                    address: None,
                }),
                servers: vec![
                    Server {
                        name: "s1".into(),
                        address: ServerAddress::Ip("127.0.0.1:9001".parse().unwrap()),
                        weight: 3,
                        tls: None,
                        backup: false,
                        max_connections: None,
                        slow_start: None,
                    },
                    Server {
                        name: "s2".into(),
                        address: ServerAddress::Ip("127.0.0.1:9002".parse().unwrap()),
                        weight: 1,
                        tls: None,
                        backup: false,
                        max_connections: None,
                        slow_start: None,
                    },
                ],
                persistence: None,
                send_proxy: None,
                protocol: UpstreamProtocol::Http11,
                resolve: Resolve::default(),
                tls: None,
                tcp_keepalive: None,
                all_backups: false,
                queue_timeout: Duration::from_secs(2),
                queue_size: 1024,
                shutdown_sessions_on_down: false,
                shutdown_backup_sessions_on_up: false,
            },
            Backend {
                name: "db_pool".into(),
                balance: Balance::LeastConn,
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(30),
                retries: 1,
                health_check: Some(HealthCheck {
                    kind: CheckKind::Tcp,
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(1),
                    rise: 2,
                    fall: 3,
                    tls: None,
                    sni: None,
                    port: None,
                    address: None,
                }),
                servers: vec![Server {
                    name: "db1".into(),
                    address: ServerAddress::Ip("127.0.0.1:3307".parse().unwrap()),
                    weight: 1,
                    tls: None,
                    backup: false,
                    max_connections: None,
                    slow_start: None,
                }],
                persistence: None,
                send_proxy: None,
                protocol: UpstreamProtocol::Http11,
                resolve: Resolve::default(),
                tls: None,
                tcp_keepalive: None,
                all_backups: false,
                queue_timeout: Duration::from_secs(2),
                queue_size: 1024,
                shutdown_sessions_on_down: false,
                shutdown_backup_sessions_on_up: false,
            },
        ],
        // No vrrp section: this node holds no VIP.
        vrrp: vec![],
        // The announce section is commented out: this node announces nothing.
        announce: None,
    };
    assert_eq!(config, expected);
}

#[test]
fn shipped_announce_example_loads_with_the_meaning_its_comments_give() {
    let shipped = std::fs::read_to_string("config/tandem.yaml").unwrap();
    let start = shipped
        .find("\n# announce:\n")
        .expect("the example is in the file")
        + 1;
    // Uncommented as an operator would: the leading "# " of each line goes.
    let example: String = (shipped[start..].lines())
        .map(|line| {
            let line = (line.strip_prefix('#')).expect("the example is the end of the file");
            format!("{}\n", line.strip_prefix(' ').unwrap_or(line))
        })
        .collect();
    let text = format!("{shipped}{example}");
    let config = parse(&text, Path::new("config/tandem.yaml")).expect("the example is valid");
    assert_eq!(
        config.announce,
        Some(Announce {
            interface: "tandem0".into(),
            addresses: vec!["203.0.113.10".parse().unwrap()],
            track: vec![
                Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 1,
                    },
                    weight: TrackWeight::Fault,
                },
                Track {
                    target: TrackTarget::Frontend(0),
                    weight: TrackWeight::Fault,
                },
            ],
            withdraw_quiet: Duration::from_secs(1),
            withdraw_max_wait: Duration::from_secs(10),
        })
    );
    assert_eq!(config.backends[0].name, "web_pool");
    assert_eq!(config.frontends[0].name, "web");
}

#[test]
fn parse_names_the_given_file_in_errors() {
    let errors = parse("node: {}\n", Path::new("inline.yaml")).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "inline.yaml:1:7: node: missing field `name`"
    );
}

#[test]
fn parse_reads_the_log_level() {
    let text = "node: { name: n }\nlog: { level: debug }\n";
    let config = parse(text, Path::new("inline.yaml")).unwrap();
    assert_eq!(config.log_level.as_deref(), Some("debug"));
}

#[test]
fn an_unreadable_file_is_one_error_without_a_line() {
    let errors = load(Path::new("config/broken/does_not_exist.yaml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, None);
    assert!(
        errors
            .to_string()
            .starts_with("config/broken/does_not_exist.yaml: cannot read the config file: "),
        "{errors}"
    );
}

#[test]
fn a_syntax_error_names_its_place() {
    assert_eq!(
        errors("config/broken/syntax.yaml"),
        ["config/broken/syntax.yaml:8:10: frontends[0]: mapping values are not allowed in this context"]
    );
}

/// Every key a backend may have, as the unknown-key message lists them.
const BACKEND_KEYS: &str = "`name`, `balance`, `hash_query`, `connect_timeout`, \
    `response_timeout`, `retries`, `health_check`, `servers`, `persistence`, `send_proxy`, \
    `protocol`, `resolve`, `tls`, `tcp_keepalive`, `all_backups`, `queue_timeout`, `queue_size`, \
    `slow_start`, `on_down`, `on_up`";

/// Every key a server may have, likewise.
const SERVER_KEYS: &str = "`name`, `address`, `weight`, `tls`, `backup`, `max_connections`, \
    `slow_start`";

#[test]
fn an_unknown_key_names_the_allowed_ones() {
    assert_eq!(
        errors("config/broken/unknown_key.yaml"),
        [format!(
            "config/broken/unknown_key.yaml:13:5: backends[0].helth_check: unknown field \
             `helth_check`, expected one of {BACKEND_KEYS}"
        )]
    );
}

#[test]
fn a_missing_key_names_its_mapping() {
    assert_eq!(
        errors("config/broken/missing_key.yaml"),
        ["config/broken/missing_key.yaml:10:5: frontends[1]: missing field `listen`"]
    );
}

#[test]
fn a_wrong_type_names_the_value() {
    assert_eq!(
        errors("config/broken/wrong_type.yaml"),
        [
            "config/broken/wrong_type.yaml:7:14: backends[0].retries: invalid type: string \
          \"twice\", expected u32"
        ]
    );
}

#[test]
fn an_unknown_mode_names_the_known_ones() {
    assert_eq!(
        errors("config/broken/unknown_mode.yaml"),
        [
            "config/broken/unknown_mode.yaml:8:11: frontends[0].mode: unknown variant `udp`, \
          expected `http` or `tcp`"
        ]
    );
}

#[test]
fn an_invalid_address_is_located_in_a_flow_mapping() {
    assert_eq!(
        errors("config/broken/bad_address.yaml"),
        [
            "config/broken/bad_address.yaml:15:30: backends[0].servers[1].address: invalid server \
          address \"127.0.0.1:99999\": port \"99999\" is not 1..=65535; write IP:port such as \
          127.0.0.1:8080 or [::1]:8080, or name:port such as app.internal:8080"
        ]
    );
}

#[test]
fn every_semantic_error_is_reported_in_line_order() {
    let file = "config/broken/many_errors.yaml";
    let expected: Vec<String> = [
        "4:12: node.threads: must be at least 1; leave it out to use one per CPU",
        "11:22: frontends[0].max_connections: must be at least 1",
        "12:33: frontends[0].timeouts.request_header: invalid duration \"10\": missing unit; \
         write e.g. 10s or 10ms",
        "12:50: frontends[0].timeouts.client_idle: must be longer than zero",
        "13:11: frontends[1].name: duplicate frontend name \"web\"; frontends[0] already uses it",
        "14:13: frontends[1].listen: listen address 127.0.0.1:8080 is already used by frontend \
         \"web\"",
        "16:14: frontends[1].backend: backend \"hashed\" balances by uri_hash, which needs http \
         requests; use mode: http here or another balance there",
        "18:13: frontends[2].listen: invalid socket address \"localhost:8081\"; write IP:port \
         such as 127.0.0.1:8080 or [::1]:8080 (host names are not resolved)",
        "20:14: frontends[2].backend: unknown backend \"api_pool\"; defined backends: web_pool, \
         hashed",
        "25:17: backends[0].hash_query: only applies to balance: uri_hash; remove it or change \
         balance",
        "26:22: backends[0].connect_timeout: invalid duration \"2 s\": unknown unit \" s\"; use \
         ms, s, m or h, e.g. 500ms or 2s",
        "29:13: backends[0].health_check.path: path \"health\" must start with \"/\", e.g. \
         /health",
        "30:22: backends[0].health_check.expect_status: invalid status 700; expected a code \
         100..=599 such as 200, or a class such as 2xx",
        "32:16: backends[0].health_check.timeout: timeout 2s is longer than interval 1s; checks \
         would overlap, so shorten it or lengthen the interval",
        "33:13: backends[0].health_check.rise: must be at least 1",
        "35:54: backends[0].servers[0].weight: weight 300 is out of range 0..=256 (0 drains the \
         server)",
        "36:17: backends[0].servers[1].name: duplicate server name \"s1\"; \
         backends[0].servers[0] already uses it",
        "36:30: backends[0].servers[1].address: invalid server address \"127.0.0.1:99999\": port \
         \"99999\" is not 1..=65535; write IP:port such as 127.0.0.1:8080 or [::1]:8080, or \
         name:port such as app.internal:8080",
        // Left out, so located at the backend that lacks it.
        "37:5: backends[1].servers: backend \"hashed\" has no servers; add at least one",
        "39:38: backends[1].health_check.path: only applies to type: http checks; remove it or \
         change the type",
        "40:5: backends[2].servers: backend \"hashed\" has no servers; add at least one",
        "40:11: backends[2].name: duplicate backend name \"hashed\"; backends[1] already uses it",
    ]
    .iter()
    .map(|error| format!("{file}:{error}"))
    .collect();
    assert_eq!(errors(file), expected);
}

#[test]
fn vrrp_example_loads_with_the_meaning_its_comments_give() {
    let config = load(Path::new("config/vrrp-example.yaml")).expect("the example is valid");
    assert_eq!(
        config.vrrp,
        [VrrpInstance {
            name: "VI_1".into(),
            interface: "eth0".into(),
            virtual_router_id: 33,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            version: VrrpVersion::V2,
            preempt: true,
            preempt_delay: Duration::ZERO,
            password: Some("1111".into()),
            source_ip: Some("198.51.100.11".parse().unwrap()),
            unicast_peers: vec![],
            virtual_ips: vec![VirtualIp {
                address: "198.51.100.10".parse().unwrap(),
                prefix_len: 24,
            }],
            v3_checksum_pseudo_header: true,
            virtual_mac: false,
            track: vec![
                Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 1,
                    },
                    weight: TrackWeight::Points(-50),
                },
                Track {
                    target: TrackTarget::Frontend(0),
                    weight: TrackWeight::Points(-50),
                },
                Track {
                    target: TrackTarget::Interface("eth0".into()),
                    weight: TrackWeight::Fault,
                },
            ],
            notify: None,
            sync_group: None,
        }]
    );
    assert_eq!(config.frontends.len(), 1);
    assert_eq!(
        config.backends[config.frontends[0].backend.unwrap()].name,
        "web_pool"
    );
}

#[test]
fn parse_reads_a_v3_instance_with_its_checksum_choice() {
    let text = "node: { name: n }\n\
                vrrp:\n  \
                  instances:\n    \
                    - { name: VI_1, interface: eth0, virtual_router_id: 1, version: 3, \
                        advert_interval: 50ms, v3_checksum: no_pseudo_header, \
                        virtual_ips: [198.51.100.10/24] }\n";
    let config = parse(text, Path::new("inline.yaml")).unwrap();
    let instance = &config.vrrp[0];
    assert_eq!(instance.version, VrrpVersion::V3);
    assert_eq!(instance.advert_interval, Duration::from_millis(50));
    assert!(!instance.v3_checksum_pseudo_header);
}

#[test]
fn an_unknown_vrrp_key_names_the_allowed_ones() {
    assert_eq!(
        errors("config/broken/vrrp_unknown_key.yaml"),
        [
            "config/broken/vrrp_unknown_key.yaml:10:7: vrrp.instances[0].advert_int: unknown \
          field `advert_int`, expected one of `name`, `interface`, `virtual_router_id`, \
          `priority`, `advert_interval`, `version`, `preempt`, `preempt_delay`, \
          `authentication`, `source_ip`, `unicast_peers`, `virtual_ips`, `v3_checksum`, \
          `virtual_mac`, `track`, `notify`"
        ]
    );
}

#[test]
fn every_vrrp_error_is_reported_in_line_order() {
    let file = "config/broken/vrrp_errors.yaml";
    let expected: Vec<String> = [
        "9:26: vrrp.instances[0].virtual_router_id: virtual_router_id 0 is out of range 1..=255",
        "10:17: vrrp.instances[0].priority: priority 0 is out of range 1..=255 (0 is reserved \
         for a Master resigning; 255 makes this node the address owner)",
        "11:24: vrrp.instances[0].advert_interval: advert_interval 1500ms cannot be sent: \
         VRRPv2 carries whole seconds from 1s to 255s; use 1s or 2s",
        // The password itself is not shown: errors end up in logs.
        "12:47: vrrp.instances[0].authentication.password: password is 9 bytes, but VRRPv2 \
         carries at most 8; shorten it on every node of the group",
        "13:20: vrrp.instances[0].v3_checksum: only applies to version 3 over IPv4; remove it",
        "14:21: vrrp.instances[0].virtual_ips[0]: virtual IP 198.51.100.10 has no prefix \
         length; write e.g. 198.51.100.10/24",
        "14:36: vrrp.instances[0].virtual_ips[1]: prefix length /33 is too long for IPv4; IPv4 \
         has at most 32 bits",
        // The first valid VIP sets the instance's family.
        "14:54: vrrp.instances[0].virtual_ips[2]: IPv6 needs version: 3; VRRPv2 is IPv4 only",
        "15:13: vrrp.instances[1].name: duplicate instance name \"VI_1\"; vrrp.instances[0] \
         already uses it",
        // Empty, so located at its key.
        "16:7: vrrp.instances[1].interface: must not be empty",
        "17:26: vrrp.instances[1].virtual_router_id: virtual_router_id 256 is out of range \
         1..=255",
        "18:16: vrrp.instances[1].version: unknown VRRP version 4; use 2 (keepalived's default) \
         or 3",
        "19:7: vrrp.instances[1].virtual_ips: instance \"VI_1\" has no virtual_ips; add at \
         least one, e.g. 198.51.100.10/24",
        "24:24: vrrp.instances[2].advert_interval: advert_interval 15ms cannot be sent: VRRPv3 \
         carries multiples of 10ms from 10ms to 40.95s; use 10ms or 20ms",
        "25:7: vrrp.instances[2].authentication: VRRPv3 has no authentication; remove it",
        "26:18: vrrp.instances[2].source_ip: 2001:db8::11 is IPv6 but the virtual IPs are IPv4; \
         use an IPv4 address",
        "27:38: vrrp.instances[2].unicast_peers[1]: 2001:db8::12 is IPv6 but the virtual IPs \
         are IPv4; use an IPv4 address",
        "27:52: vrrp.instances[2].unicast_peers[2]: invalid IP address \"peer.example\"; write \
         e.g. 198.51.100.11 or 2001:db8::11, without a prefix length (host names are not \
         resolved)",
        "28:39: vrrp.instances[2].virtual_ips[1]: 2001:db8::20/64 is IPv6 but virtual_ips[0] is \
         IPv4; an instance holds one address family, so put the IPv6 addresses in an instance \
         of their own",
        // VI_6 below shares VRID 40 on eth0 as well, but over IPv6.
        "31:26: vrrp.instances[3].virtual_router_id: virtual_router_id 40 is already used for \
         IPv4 on eth0 by vrrp.instances[2] (\"VI_3\"); give each virtual router on a link its \
         own ID",
        "34:31: vrrp.instances[3].authentication.type: authentication type ah (IPsec AH) is not \
         supported; use type: pass, or remove authentication",
        "39:21: vrrp.instances[4].virtual_ips[0]: IPv6 needs version: 3; VRRPv2 is IPv4 only",
    ]
    .iter()
    .map(|error| format!("{file}:{error}"))
    .collect();
    assert_eq!(errors(file), expected);
}

#[test]
fn every_track_error_is_located() {
    let file = "config/broken/track_errors.yaml";
    let expected: Vec<String> = [
        "18:11: vrrp.instances[0].track[0]: names nothing to track; give one of backend, \
         frontend or interface, e.g. { backend: web_pool, weight: -50 }",
        "19:22: vrrp.instances[0].track[1].backend: unknown backend \"web\"; defined backends: \
         web_pool",
        "20:45: vrrp.instances[0].track[2].min_healthy: min_healthy 3 is out of range 1..=2 \
         (backend \"web_pool\" has 2 servers): 0 would never fail and more would never pass",
        "21:40: vrrp.instances[0].track[3].weight: weight -300 is out of range -254..=254 \
         (negative: subtracted while failing; positive: added while fine; none: Fault while \
         failing)",
        "22:11: vrrp.instances[0].track[4]: names more than one of backend, frontend and \
         interface; give each its own item",
    ]
    .iter()
    .map(|error| format!("{file}:{error}"))
    .collect();
    assert_eq!(errors(file), expected);
}

/// Each error of `text`, read as the file `inline.yaml`, as its operator-facing line.
fn inline_errors(text: &str) -> Vec<String> {
    let errors = parse(text, Path::new("inline.yaml")).expect_err("the text is invalid");
    errors.0.iter().map(ToString::to_string).collect()
}

#[test]
fn thread_counts_that_cannot_run_are_refused() {
    assert_eq!(
        inline_errors("node: { name: n, threads: 2147483648 }\n"),
        ["inline.yaml:1:27: node.threads: 2147483648 threads is more than 1024, the most tandem \
          runs; leave it out to use one per CPU"]
    );
    let config = parse(
        "node: { name: n, threads: 1024 }\n",
        Path::new("inline.yaml"),
    )
    .unwrap();
    assert_eq!(config.node.threads, 1024);
}

#[test]
fn durations_too_long_to_run_are_refused_with_their_bound() {
    let text = "\
node: { name: n, shutdown_timeout: 25h }
frontends:
  - name: f
    listen: 127.0.0.1:80
    mode: http
    backend: b
    timeouts: { request_header: 1441m, client_idle: 999999999999s }
backends:
  - name: b
    connect_timeout: 3601s
    response_timeout: 86400001ms
    health_check: { type: tcp, interval: 999999999999s, timeout: 2h }
    servers: [{ name: s, address: 127.0.0.1:81 }]
vrrp:
  instances:
    - { name: v, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.1/24], preempt_delay: 61m }
";
    assert_eq!(
        inline_errors(text),
        [
            "inline.yaml:1:36: node.shutdown_timeout: 25h is longer than this can be; the most \
             is 24h",
            "inline.yaml:7:33: frontends[0].timeouts.request_header: 1441m is longer than this \
             can be; the most is 24h",
            "inline.yaml:7:53: frontends[0].timeouts.client_idle: 999999999999s is longer than \
             this can be; the most is 24h",
            "inline.yaml:10:22: backends[0].connect_timeout: 3601s is longer than this can be; \
             the most is 1h",
            "inline.yaml:11:23: backends[0].response_timeout: 86400001ms is longer than this can \
             be; the most is 24h",
            "inline.yaml:12:42: backends[0].health_check.interval: 999999999999s is longer than \
             this can be; the most is 1h",
            "inline.yaml:12:66: backends[0].health_check.timeout: 2h is longer than this can be; \
             the most is 1h",
            "inline.yaml:16:104: vrrp.instances[0].preempt_delay: 61m is longer than this can \
             be; the most is 1h",
        ]
    );
}

#[test]
fn vrrp_on_the_loopback_interface_is_refused() {
    let text = "node: { name: n }\nvrrp:\n  instances:\n    - { name: v, interface: lo, \
                virtual_router_id: 1, virtual_ips: [198.51.100.1/24] }\n";
    assert_eq!(
        inline_errors(text),
        [
            "inline.yaml:4:29: vrrp.instances[0].interface: VRRP cannot run on the loopback \
          interface: adverts are multicast to the link and clients find the VIP by ARP or \
          neighbour discovery, which lo has neither of; name the interface that faces the \
          clients"
        ]
    );
}

#[test]
fn more_virtual_ips_than_an_advert_carries_are_refused() {
    let vips: Vec<String> = (0..256).map(|i| format!("'2001:db8::{i:x}/64'")).collect();
    let text = format!(
        "node: {{ name: n }}\nvrrp:\n  instances:\n    - name: v\n      interface: eth0\n      \
         version: 3\n      virtual_router_id: 1\n      virtual_ips: [{}]\n",
        vips.join(", ")
    );
    assert_eq!(
        inline_errors(&text),
        [
            "inline.yaml:8:7: vrrp.instances[0].virtual_ips: 256 virtual IPs, but an advert \
          carries at most 255; split them over several instances"
        ]
    );
}

#[test]
fn connection_limits_beyond_open_files_are_refused() {
    let text = "node: { name: n }\nfrontends: [{ name: f, listen: 127.0.0.1:80, mode: tcp, \
                backend: b, max_connections: 18446744073709551615 }]\nbackends: [{ name: b, \
                servers: [{ name: s, address: 127.0.0.1:81 }] }]\n";
    assert_eq!(
        inline_errors(text),
        [
            "inline.yaml:2:86: frontends[0].max_connections: 18446744073709551615 is more than \
          1048576, the most open files a process may have by default"
        ]
    );
}

#[test]
fn a_file_past_the_size_limit_is_refused_without_reading_it_all() {
    let errors = load(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "/dev/zero: the config file is larger than 16 MiB; is this the right file?"
    );
}

#[test]
fn invalid_utf8_is_placed_at_its_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(
        &path,
        b"node: { name: n }\n# caf\xc3\xa9 ok\nlog: { level: caf\xe9 }\n",
    )
    .unwrap();
    let errors = load(&path).unwrap_err();
    assert_eq!(
        errors.to_string(),
        format!(
            "{}:3:18: not valid UTF-8; a config file is UTF-8 text",
            path.display()
        )
    );
}

#[test]
fn deep_nesting_is_refused_at_once_with_its_place() {
    for depth in [65, 300, 40_000] {
        let text = format!(
            "node: {{ name: n }}\nfrontends: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let errors = inline_errors(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("inline.yaml:2:")
                && errors[0].ends_with(
                    ": collections nested more than 64 deep; no setting is nested like this"
                ),
            "{depth}: {errors:?}"
        );
    }
    let depth_64 = format!(
        "node: {{ name: n }}\nlog: {}{}\n",
        "[".repeat(63),
        "]".repeat(63)
    );
    assert!(!inline_errors(&depth_64)[0].contains("nested"));
}

#[test]
fn structural_and_semantic_errors_are_reported_together() {
    let file = "config/broken/mixed_errors.yaml";
    let expected: Vec<String> = [
        "2:30: node.threads: must be at least 1; leave it out to use one per CPU",
        "3:1: frontend: unknown field `frontend`, expected one of `node`, `log`, `frontends`, \
         `backends`, `vrrp`, `admin`, `access_log`, `announce`",
        "8:11: frontends[0].mode: unknown variant `udp`, expected `http` or `tcp`",
        "14:5: frontends[1].colour: unknown field `colour`, expected one of `name`, `listen`, \
         `mode`, `backend`, `max_connections`, `timeouts`, `accept_proxy`, `tls`, `routes`, \
         `request_headers`, `response_headers`, `redirect_https`, `matchers`, `rules`, \
         `error_pages`, `request_id`, `client_limits`, `compression`, `upgrades`, `tcp_keepalive`",
        "16:13: frontends[2].listen: invalid socket address \"127.0.0.1:99999\"; write IP:port \
         such as 127.0.0.1:8080 or [::1]:8080 (host names are not resolved)",
        "21:14: backends[0].retries: invalid type: string \"twice\", expected u32",
        "24:36: backends[1].servers[0].address: invalid server address \"127.0.0.1:99999\": port \
         \"99999\" is not 1..=65535; write IP:port such as 127.0.0.1:8080 or [::1]:8080, or \
         name:port such as app.internal:8080",
        "28:18: vrrp.instances[0].interface: VRRP cannot run on the loopback interface: adverts \
         are multicast to the link and clients find the VIP by ARP or neighbour discovery, which \
         lo has neither of; name the interface that faces the clients",
        "29:26: vrrp.instances[0].virtual_router_id: virtual_router_id 300 is out of range \
         1..=255",
    ]
    .iter()
    .map(|error| format!("{file}:{error}"))
    .collect();
    // The frontends and the tracker naming the skipped backend `pool`, and the tracker naming
    // the skipped frontend `api`, are not reported as unknown references too.
    assert_eq!(errors(file), expected);
}

#[test]
fn unknown_top_level_keys_are_all_reported_beside_semantic_errors() {
    let text = "node: { name: '' }\nfrontend: []\nbackend: []\nvrrp: { instances: [] }\n";
    assert_eq!(
        inline_errors(text),
        [
            "inline.yaml:1:9: node.name: must not be empty",
            "inline.yaml:2:1: frontend: unknown field `frontend`, expected one of `node`, `log`, \
             `frontends`, `backends`, `vrrp`, `admin`, `access_log`, `announce`",
            "inline.yaml:3:1: backend: unknown field `backend`, expected one of `node`, `log`, \
             `frontends`, `backends`, `vrrp`, `admin`, `access_log`, `announce`",
        ]
    );
}

#[test]
fn every_unknown_key_is_reported_and_hides_nothing_else() {
    let text = "\
node: { name: n }
backends:
  - name: pool
    helth_check: { type: tcp }
    servers:
      - { name: s1, address: 127.0.0.1:99999, wieght: 2 }
    balanse: least_conn
vrrp:
  instances:
    - { name: v, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.1/24],
        track: [{ interface: eth1, weigth: -10 }] }
";
    assert_eq!(
        inline_errors(text),
        [
            format!(
                "inline.yaml:4:5: backends[0].helth_check: unknown field `helth_check`, expected \
                 one of {BACKEND_KEYS}"
            ),
            "inline.yaml:6:30: backends[0].servers[0].address: invalid server address \
             \"127.0.0.1:99999\": port \"99999\" is not 1..=65535; write IP:port such as \
             127.0.0.1:8080 or [::1]:8080, or name:port such as app.internal:8080"
                .to_owned(),
            format!(
                "inline.yaml:6:47: backends[0].servers[0].wieght: unknown field `wieght`, \
                 expected one of {SERVER_KEYS}"
            ),
            format!(
                "inline.yaml:7:5: backends[0].balanse: unknown field `balanse`, expected one of \
                 {BACKEND_KEYS}"
            ),
            "inline.yaml:11:36: vrrp.instances[0].track[0].weigth: unknown field `weigth`, \
             expected one of `backend`, `frontend`, `interface`, `min_healthy`, `weight`"
                .to_owned(),
        ]
    );
}

#[test]
fn an_unknown_key_in_any_mapping_names_the_keys_allowed_there() {
    let text = "\
node: { name: n, zz: 1 }
log: { level: info, zz: 1 }
admin: { listen: 127.0.0.1:9, zz: 1 }
access_log: { zz: 1 }
frontends:
  - name: f
    listen: 127.0.0.1:80
    mode: http
    backend: b
    zz: 1
    timeouts: { zz: 1 }
    tls: { certificates: [{ cert: a.pem, key: a.key, zz: 1 }], zz: 1 }
    routes: [{ host: a.example, backend: b, zz: 1 }]
    request_headers: { zz: 1 }
    response_headers: { zz: 1 }
backends:
  - name: b
    zz: 1
    health_check: { type: tcp, zz: 1 }
    servers: [{ name: s, address: 127.0.0.1:81, zz: 1 }]
    persistence: { type: cookie, name: C, zz: 1 }
vrrp:
  zz: 1
  instances:
    - { name: v, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.1/24], zz: 1,
        authentication: { type: pass, password: x, zz: 1 }, track: [{ interface: eth1, zz: 1 }] }
announce:
  zz: 1
  addresses: [203.0.113.10]
  track: [{ interface: eth1, zz: 1 }]
  withdraw: { quiet: 1s, zz: 1 }
zz: 1
";
    let errors = parse(text, Path::new("inline.yaml")).unwrap_err().0;
    let unknown: Vec<&ConfigError> = (errors.iter())
        .filter(|error| error.field == "zz" || error.field.ends_with(".zz"))
        .collect();
    assert_eq!(unknown.len(), 23, "{errors:#?}");
    for error in unknown {
        assert!(
            error.message.starts_with("unknown field `zz`, expected "),
            "{error}"
        );
    }
}

#[test]
fn every_rule_error_is_located() {
    let found = errors("config/broken/rule_errors.yaml");
    let expected = [
        "config/broken/rule_errors.yaml:16:39: frontends[0].rules[4].match.frobnicate: unknown \
         field `frobnicate`",
        "config/broken/rule_errors.yaml:9:26: frontends[0].matchers.api.path_regex: invalid regex \
         \"^/api/(v[0-9]+\": unclosed group",
        "config/broken/rule_errors.yaml:11:18: frontends[0].rules[0].match: unknown matcher \
         \"office\": the named matchers are api",
        "config/broken/rule_errors.yaml:12:48: frontends[0].rules[1].backend: unknown backend \
         \"nowhere\"",
        "config/broken/rule_errors.yaml:13:45: frontends[0].rules[2].set_request_headers.X-Real-IP: \
         unknown variable {client_address}",
        "config/broken/rule_errors.yaml:14:36: frontends[0].rules[3].match.header.X-Role: invalid \
         regex \"(admin\": unclosed group",
        "config/broken/rule_errors.yaml:17:65: frontends[0].rules[5].rate_limit.rate: invalid rate \
         \"100\": write a count per period",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for wanted in expected {
        assert!(
            found.iter().any(|error| error.starts_with(wanted)),
            "{wanted}\nnot among\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn rules_example_loads_with_every_rule() {
    let config = load(Path::new("config/rules-example.yaml")).expect("the rules example is valid");
    let web = &config.frontends[0];
    let names: Vec<&str> = (web.rules.rules.iter())
        .map(|rule| rule.name.as_str())
        .collect();
    assert_eq!(names, ["blocked", "admin", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(
        web.request_id,
        Some(http::HeaderName::from_static("x-request-id"))
    );
    assert_eq!(web.error_pages.0.len(), 1);
}

#[test]
fn tcp_keepalive_and_upgrade_errors_are_located() {
    let text = "node: { name: n }\n\
        frontends:\n\
        - { name: f, listen: 127.0.0.1:80, mode: http, backend: b, tcp_keepalive: { idel: 60s }, upgrades: [websocket, 'a b'] }\n\
        backends:\n\
        - { name: b, servers: [{ name: s, address: 127.0.0.1:81 }], tcp_keepalive: yes }\n";
    let errors: Vec<String> = parse(text, Path::new("inline.yaml"))
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "inline.yaml:3:77: frontends[0].tcp_keepalive.idel: unknown field `idel`, expected \
             one of `idle`, `interval`, `count`",
            "inline.yaml:3:112: frontends[0].upgrades[1]: \"a b\" is not a protocol name (RFC \
             9110 token), such as websocket",
            "inline.yaml:5:76: backends[0].tcp_keepalive: invalid value: string \"yes\", expected \
             true, false, or { idle, interval, count }",
        ]
    );
}

#[test]
fn hook_and_sync_group_errors_are_located() {
    let file = "config/broken/vrrp_hooks.yaml";
    let expected: Vec<String> = [
        "6:23: vrrp.notify.command[0]: \"on-vrrp\" is not an absolute path: hooks run without \
         a shell or PATH lookup; give the full path, e.g. /usr/local/bin/on-vrrp",
        "12:27: vrrp.instances[0].notify.command[0]: /nonexistent/on-vrrp cannot be used: No \
         such file or directory (os error 2)",
        "17:27: vrrp.instances[1].notify.command[0]: /etc/passwd is not executable; chmod +x \
         it, or give the interpreter first, e.g. [/bin/sh, /etc/passwd]",
        "17:50: vrrp.instances[1].notify.timeout: must be more than 0",
        "19:36: vrrp.sync_groups[0].instances[1]: unknown instance \"VI_9\"; defined instances: \
         VI_1, VI_2",
        "20:36: vrrp.sync_groups[1].instances[1]: instance \"VI_1\" is already in sync group \
         \"g\" (vrrp.sync_groups[0]); an instance belongs to one group at most",
    ]
    .iter()
    .map(|error| format!("{file}:{error}"))
    .collect();
    assert_eq!(errors(file), expected);
}

#[test]
fn a_missing_or_empty_admin_token_file_is_an_error_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.yaml");
    let empty = dir.path().join("token");
    std::fs::write(&empty, "\n").unwrap();
    let text = |file: &str| {
        format!("node: {{ name: n }}\nadmin:\n  listen: 127.0.0.1:9900\n  token_file: {file}\n")
    };
    std::fs::write(&path, text("missing")).unwrap();
    let errors = errors(path.to_str().unwrap());
    let missing = dir.path().join("missing");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}:4:15: admin.token_file: cannot read {}: ",
            path.display(),
            missing.display()
        )),
        "{errors:?}"
    );
    std::fs::write(&path, text("token")).unwrap();
    assert_eq!(
        self::errors(path.to_str().unwrap()),
        [format!(
            "{}:4:15: admin.token_file: {} is empty: put the token in it",
            path.display(),
            empty.display()
        )]
    );
}
