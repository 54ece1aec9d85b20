//! Metric handles, resolved once per frontend, server and VRRP instance, so the hot path only
//! adds to atomics. Label values come from the config (names) or from a fixed set, never from
//! what a client sends. With no recorder installed (no `admin:`), every handle is a no-op.
//!
//! Names and labels mirror HAProxy's Prometheus exporter under the `tandem_` prefix. Gauges
//! are not here: the admin endpoint sets them from live state when scraped.

use std::sync::atomic::AtomicU64;

use http::StatusCode;
use metrics::{counter, histogram, Counter, Histogram};

/// The upper bounds of `tandem_server_response_time_seconds`, in seconds.
pub const RESPONSE_TIME_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
pub const RESPONSE_TIME: &str = "tandem_server_response_time_seconds";

pub struct FrontendStats {
    /// Client connections open now, over all workers (a gauge, read when scraped).
    pub current_sessions: AtomicU64,
    /// Client connections accepted.
    pub sessions: Counter,
    pub requests: Counter,
    /// By status class, 1xx to 5xx.
    responses: [Counter; 5],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Connections closed before any request: no valid PROXY header (with `accept_proxy`).
    pub proxy_header_errors: Counter,
    /// Connections closed before any request: the TLS handshake failed or timed out.
    pub tls_handshake_errors: Counter,
    /// Requests a rule denied.
    pub denied: Counter,
    /// Requests answered 429 by a rule's rate limit.
    pub rate_limited: Counter,
    /// Connections closed at once: their client had `client_limits.connections` open.
    pub denied_connections: Counter,
    /// Upgraded connections (WebSocket) open now, over all workers (a gauge, read when scraped).
    pub current_tunnels: AtomicU64,
    /// Upgraded connections established.
    pub tunnels: Counter,
}

impl FrontendStats {
    pub fn new(frontend: &str) -> FrontendStats {
        let proxy = || ("proxy", frontend.to_owned());
        let response = |code: &'static str| {
            counter!(
                "tandem_frontend_http_responses_total",
                &[proxy(), ("code", code.to_owned())]
            )
        };
        let connection_error = |reason: &'static str| {
            counter!(
                "tandem_frontend_connection_errors_total",
                &[proxy(), ("reason", reason.to_owned())]
            )
        };
        FrontendStats {
            current_sessions: AtomicU64::new(0),
            sessions: counter!("tandem_frontend_sessions_total", &[proxy()]),
            requests: counter!("tandem_frontend_http_requests_total", &[proxy()]),
            responses: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(response),
            bytes_in: counter!("tandem_frontend_bytes_in_total", &[proxy()]),
            bytes_out: counter!("tandem_frontend_bytes_out_total", &[proxy()]),
            proxy_header_errors: connection_error("proxy_header"),
            tls_handshake_errors: connection_error("tls_handshake"),
            denied: counter!("tandem_frontend_denied_total", &[proxy()]),
            rate_limited: counter!("tandem_frontend_rate_limited_total", &[proxy()]),
            denied_connections: counter!("tandem_frontend_denied_connections_total", &[proxy()]),
            current_tunnels: AtomicU64::new(0),
            tunnels: counter!("tandem_frontend_tunnels_total", &[proxy()]),
        }
    }

    pub fn response(&self, status: StatusCode) {
        if let Some(class) = self.responses.get(usize::from(status.as_u16() / 100 - 1)) {
            class.increment(1);
        }
    }
}

pub struct ServerStats {
    /// Requests (http) or connections (tcp) sent to the server; a request resent on a fresh
    /// connection counts again.
    pub sessions: Counter,
    pub connection_errors: Counter,
    /// Attempts that failed on this server and were followed by another, here (a resend) or
    /// on another server.
    pub retries: Counter,
    pub check_failures: Counter,
    /// Times the server went from up to down.
    pub check_up_down: Counter,
    /// From sending the request to the server's response head.
    pub response_time: Histogram,
}

impl ServerStats {
    pub fn new(backend: &str, server: &str) -> ServerStats {
        let labels = || [("proxy", backend.to_owned()), ("server", server.to_owned())];
        ServerStats {
            sessions: counter!("tandem_server_sessions_total", &labels()),
            connection_errors: counter!("tandem_server_connection_errors_total", &labels()),
            retries: counter!("tandem_server_retries_total", &labels()),
            check_failures: counter!("tandem_server_check_failures_total", &labels()),
            check_up_down: counter!("tandem_server_check_up_down_total", &labels()),
            response_time: histogram!(RESPONSE_TIME, &labels()),
        }
    }
}

/// A VRRP instance's counters. The label is `vrrp_instance`, not `instance`: Prometheus sets
/// `instance` on every scraped series to name the target, and would rename ours.
pub struct VrrpStats {
    labels: [(&'static str, String); 2],
    pub adverts_sent: Counter,
    pub adverts_received: Counter,
    /// One per state, in the order of the labels `new` was given.
    transitions: Vec<Counter>,
}

impl VrrpStats {
    /// `states` labels every state an instance can enter, indexed as `entered` is given them.
    pub fn new(instance: &str, vrid: u8, states: &[&'static str]) -> VrrpStats {
        let labels = [
            ("vrrp_instance", instance.to_owned()),
            ("vrid", vrid.to_string()),
        ];
        let transition = |state: &&'static str| {
            let mut labels = labels.to_vec();
            labels.push(("state", (*state).to_owned()));
            counter!("tandem_vrrp_transitions_total", &labels)
        };
        for reason in INSTANCE_DROP_REASONS {
            let mut labels = labels.to_vec();
            labels.push(("reason", reason.to_owned()));
            counter!("tandem_vrrp_packets_dropped_total", &labels).increment(0);
        }
        VrrpStats {
            adverts_sent: counter!("tandem_vrrp_adverts_sent_total", &labels),
            adverts_received: counter!("tandem_vrrp_adverts_received_total", &labels),
            transitions: states.iter().map(transition).collect(),
            labels,
        }
    }

    /// The state of index `state` in the labels `new` was given was entered.
    pub fn entered(&self, state: usize) {
        self.transitions[state].increment(1);
    }

    /// A dropped advert; drops are rare, so the handle is looked up each time.
    pub fn dropped(&self, reason: &'static str) {
        let mut labels = self.labels.to_vec();
        labels.push(("reason", reason.to_owned()));
        counter!("tandem_vrrp_packets_dropped_total", &labels).increment(1);
    }
}

/// Why an instance drops an advert (`vrrp::instance`): not from a unicast peer, or with the
/// wrong password.
pub const INSTANCE_DROP_REASONS: [&str; 2] = ["not_peer", "auth"];

/// Puts every drop reason of `interface` at 0, once VRRP listens on it.
pub fn vrrp_receiving_on(interface: &str, reasons: &[&'static str]) {
    for &reason in reasons {
        vrrp_interface_dropped(interface, reason).increment(0);
    }
}

/// A packet dropped before it reached an instance (malformed, or for a VRID not run here): a
/// family of its own, so that every series of the per-instance one carries an instance.
pub fn vrrp_dropped_on(interface: &str, reason: &'static str) {
    vrrp_interface_dropped(interface, reason).increment(1);
}

fn vrrp_interface_dropped(interface: &str, reason: &'static str) -> Counter {
    counter!(
        "tandem_vrrp_interface_packets_dropped_total",
        "interface" => interface.to_owned(),
        "reason" => reason
    )
}

/// The `# HELP` line of every family.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "tandem_frontend_current_sessions",
        "Client connections open now."
    );
    describe_counter!(
        "tandem_dns_lookups_total",
        "Lookups of the name of a server named by DNS, by result (answered, failed); a failed \
         one keeps the addresses last known."
    );
    describe_counter!(
        "tandem_frontend_sessions_total",
        "Client connections accepted."
    );
    describe_gauge!(
        "tandem_frontend_tunnels_current",
        "Upgraded connections (WebSocket) open now."
    );
    describe_counter!(
        "tandem_frontend_tunnels_total",
        "Upgraded connections (WebSocket) established."
    );
    describe_counter!(
        "tandem_frontend_http_requests_total",
        "HTTP requests received."
    );
    describe_counter!(
        "tandem_frontend_denied_total",
        "HTTP requests a rule denied."
    );
    describe_counter!(
        "tandem_frontend_rate_limited_total",
        "HTTP requests answered 429 by a rule's rate limit."
    );
    describe_counter!(
        "tandem_rule_hits_total",
        "HTTP requests each rule matched, by rule name (or index)."
    );
    describe_counter!(
        "tandem_frontend_http_responses_total",
        "HTTP responses sent, by status class."
    );
    describe_counter!(
        "tandem_frontend_bytes_in_total",
        Unit::Bytes,
        "Bytes read from clients."
    );
    describe_counter!(
        "tandem_frontend_bytes_out_total",
        Unit::Bytes,
        "Bytes written to clients."
    );
    describe_counter!(
        "tandem_frontend_connection_errors_total",
        "Client connections closed before any request, by reason: proxy_header (missing or \
         malformed PROXY header), tls_handshake."
    );
    describe_counter!(
        "tandem_frontend_denied_connections_total",
        "Client connections closed at once because their address had \
         client_limits.connections open."
    );
    describe_gauge!(
        "tandem_tls_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "When each frontend certificate expires (its notAfter), as a Unix time."
    );
    describe_gauge!(
        "tandem_backend_active_servers",
        "Servers up (DRAIN included)."
    );
    describe_gauge!(
        "tandem_backend_current_sessions",
        "Requests or connections in flight."
    );
    describe_gauge!(
        "tandem_server_status",
        "1 for the server's state: UP, DOWN, DRAIN or MAINT."
    );
    describe_gauge!(
        "tandem_server_current_sessions",
        "Requests or connections in flight."
    );
    describe_counter!(
        "tandem_server_sessions_total",
        "Requests (http) or connections (tcp) sent to the server."
    );
    describe_counter!(
        "tandem_server_connection_errors_total",
        "Connections to the server that failed or timed out."
    );
    describe_counter!(
        "tandem_server_retries_total",
        "Requests that failed on the server and were tried again."
    );
    describe_counter!(
        "tandem_server_check_failures_total",
        "Failed health checks."
    );
    describe_counter!(
        "tandem_server_check_up_down_total",
        "Transitions from UP to DOWN."
    );
    describe_histogram!(
        RESPONSE_TIME,
        Unit::Seconds,
        "From sending a request to the server's response head."
    );
    describe_gauge!("tandem_vrrp_state", "1 for the instance's state.");
    describe_gauge!("tandem_vrrp_priority", "The configured priority.");
    describe_gauge!(
        "tandem_vrrp_effective_priority",
        "The priority advertised, after tracked items."
    );
    describe_counter!(
        "tandem_vrrp_transitions_total",
        "State changes, by the state entered."
    );
    describe_counter!("tandem_vrrp_adverts_sent_total", "Adverts sent.");
    describe_counter!(
        "tandem_vrrp_adverts_received_total",
        "Adverts received from peers."
    );
    describe_counter!(
        "tandem_vrrp_packets_dropped_total",
        "Adverts for an instance dropped, by reason."
    );
    describe_counter!(
        "tandem_vrrp_interface_packets_dropped_total",
        "VRRP packets dropped before reaching an instance (malformed, unknown VRID), by reason."
    );
    describe_gauge!(
        "tandem_vrrp_master_info",
        "1, labelled with the master this node sees."
    );
    describe_counter!("tandem_config_reloads_total", "Reloads, by result.");
    describe_counter!(
        "tandem_local_shortages_total",
        "Operations that failed for want of a local resource (file descriptors, socket buffers, \
         memory, local ports), by operation: accept, health_check, server_connect. Never counted \
         against a server."
    );
    describe_gauge!(
        "tandem_config_last_reload_success_timestamp_seconds",
        "When the running config was loaded, in Unix seconds."
    );
    describe_gauge!("tandem_build_info", "1, labelled with the version.");
    describe_counter!(
        "tandem_access_log_dropped_total",
        "Access log lines dropped because the writer fell behind."
    );
    describe_counter!(
        "tandem_access_log_syslog_dropped_total",
        "Access log lines not sent to syslog: its socket was full or refused them."
    );
    describe_gauge!(
        "tandem_server_admin_state",
        "1 for the state an operator set the server to: ready, drain or maint."
    );
    describe_gauge!(
        "tandem_frontend_status",
        "1 for the frontend's state: OPEN, or STOP while disabled by an operator."
    );
    describe_gauge!(
        "tandem_vrrp_mode",
        "1 for what an operator asked of the instance: normal, resigned or maintenance."
    );
}

/// What met a shortage of a local resource (file descriptors, socket buffers, memory, local
/// ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Accepting a client.
    Accept,
    /// Connecting to a server to check it.
    HealthCheck,
    /// Connecting to a server for a client.
    ServerConnect,
}

impl Shortage {
    pub const ALL: [Shortage; 3] = [
        Shortage::Accept,
        Shortage::HealthCheck,
        Shortage::ServerConnect,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Shortage::Accept => "accept",
            Shortage::HealthCheck => "health_check",
            Shortage::ServerConnect => "server_connect",
        }
    }
}

/// Shortages are rare, so the handle is looked up each time.
pub fn shortage(operation: Shortage) -> Counter {
    counter!("tandem_local_shortages_total", "operation" => operation.label())
}

/// Puts the process-wide counters at 0, so that they are scraped, and `rate()` and alerts see
/// them, before their first increment.
pub fn zero_process_counters() {
    for succeeded in [true, false] {
        reloads(succeeded).increment(0);
    }
    for operation in Shortage::ALL {
        shortage(operation).increment(0);
    }
}

pub fn reload(succeeded: bool) {
    reloads(succeeded).increment(1);
}

fn reloads(succeeded: bool) -> Counter {
    let result = if succeeded { "success" } else { "failure" };
    counter!("tandem_config_reloads_total", "result" => result)
}

/// Requests that `rule` of `frontend` matched, exported at 0 from the start.
pub fn rule_hits(frontend: &str, rule: &str) -> Counter {
    let counter = counter!(
        "tandem_rule_hits_total",
        &[("proxy", frontend.to_owned()), ("rule", rule.to_owned())]
    );
    counter.increment(0);
    counter
}

/// Lookups of the name of `server` (named by DNS) in `backend`, answered or failed; both
/// exported at 0 from the start.
pub fn dns_lookups(backend: &str, server: &str) -> [Counter; 2] {
    ["answered", "failed"].map(|result| {
        let labels = [
            ("proxy", backend.to_owned()),
            ("server", server.to_owned()),
            ("result", result.to_owned()),
        ];
        let counter = counter!("tandem_dns_lookups_total", &labels);
        counter.increment(0);
        counter
    })
}

pub fn access_log_dropped() -> Counter {
    counter!("tandem_access_log_dropped_total")
}

pub fn access_log_syslog_dropped() -> Counter {
    counter!("tandem_access_log_syslog_dropped_total")
}
