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
    /// By status class.
    responses: ByClass,
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
            responses: ByClass::new("tandem_frontend_http_responses_total", &[proxy()]),
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
        self.responses.count(status);
    }
}

/// HTTP responses by status class, as HAProxy's `code` label has them: 1xx to 5xx, and
/// `other` for the rest (600 to 999).
#[derive(Clone)]
struct ByClass([Counter; 6]);

impl ByClass {
    const CODES: [&'static str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

    fn new(name: &'static str, labels: &[(&'static str, String)]) -> ByClass {
        ByClass(Self::CODES.map(|code| {
            let mut labels = labels.to_vec();
            labels.push(("code", code.to_owned()));
            counter!(name, &labels)
        }))
    }

    fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 6) - 1;
        self.0[class].increment(1);
    }
}

/// What a backend counts as a whole: every response it gave (its servers', and tandem's own
/// 5xx when none could answer), and the transfers of all its servers.
#[derive(Clone)]
pub struct BackendStats {
    responses: ByClass,
    /// Request body bytes sent to servers (http: as the request declared them, by
    /// Content-Length; tcp: every byte).
    pub bytes_in: Counter,
    /// Response bytes sent to clients (http: the body, as sent; tcp: every byte).
    pub bytes_out: Counter,
    /// Transfers the client ended before the response had been sent (http).
    pub client_aborts: Counter,
    /// Transfers the server ended in the middle of its response body (http).
    pub server_aborts: Counter,
}

impl BackendStats {
    pub fn new(backend: &str) -> BackendStats {
        let labels = [("proxy", backend.to_owned())];
        BackendStats {
            responses: ByClass::new("tandem_backend_http_responses_total", &labels),
            bytes_in: counter!("tandem_backend_bytes_in_total", &labels),
            bytes_out: counter!("tandem_backend_bytes_out_total", &labels),
            client_aborts: counter!("tandem_backend_client_aborts_total", &labels),
            server_aborts: counter!("tandem_backend_server_aborts_total", &labels),
        }
    }

    pub fn response(&self, status: StatusCode) {
        self.responses.count(status);
    }
}

/// Who cut a transfer short, in HAProxy's terms (`cli_aborts`, `srv_aborts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Client,
    Server,
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
    /// The server's own responses, by status class.
    responses: ByClass,
    /// As the backend's, for this server alone.
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    client_aborts: Counter,
    server_aborts: Counter,
    /// New connections opened (or tried) to the server; a pooled one reused is none.
    pub connection_attempts: Counter,
    /// The backend's counters, which every server's transfers add to as well.
    pub backend: BackendStats,
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
            responses: ByClass::new("tandem_server_http_responses_total", &labels()),
            bytes_in: counter!("tandem_server_bytes_in_total", &labels()),
            bytes_out: counter!("tandem_server_bytes_out_total", &labels()),
            client_aborts: counter!("tandem_server_client_aborts_total", &labels()),
            server_aborts: counter!("tandem_server_server_aborts_total", &labels()),
            connection_attempts: counter!("tandem_server_connection_attempts_total", &labels()),
            backend: BackendStats::new(backend),
        }
    }

    /// A response head from the server.
    pub fn response(&self, status: StatusCode) {
        self.responses.count(status);
    }

    /// One http exchange with the server is over: `request_bytes` went up, `response_bytes`
    /// down to the client, and `abort` says who, if anyone, cut it short. Counted on the
    /// server and its backend, once per request.
    pub fn exchanged(&self, request_bytes: u64, response_bytes: u64, abort: Option<Abort>) {
        if request_bytes > 0 {
            self.bytes_in.increment(request_bytes);
            self.backend.bytes_in.increment(request_bytes);
        }
        if response_bytes > 0 {
            self.bytes_out.increment(response_bytes);
            self.backend.bytes_out.increment(response_bytes);
        }
        match abort {
            None => {}
            Some(Abort::Client) => self.client_aborted(),
            Some(Abort::Server) => {
                self.server_aborts.increment(1);
                self.backend.server_aborts.increment(1);
            }
        }
    }

    /// The client went away before the server's response had been sent whole.
    pub fn client_aborted(&self) {
        self.client_aborts.increment(1);
        self.backend.client_aborts.increment(1);
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
    describe_gauge!(
        "tandem_announce_state",
        "1 for whether the node announces its addresses to its routers: announced, withdrawn (a tracked item fails) or drained (an operator, or shutting down)."
    );
    describe_parity();
}

/// The `# HELP` lines of the families that complete HAProxy's exporter's set (issue 20).
fn describe_parity() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        "tandem_server_check_status",
        "1 for the result of the server's last health check, by HAProxy's names: L4OK, L4TOUT, \
         L4CON, SOCKERR, L6OK, L6TOUT, L6RSP, L7OK, L7TOUT, L7RSP, L7STS. Absent before the \
         first check and without health checks."
    );
    describe_gauge!(
        "tandem_server_check_duration_seconds",
        Unit::Seconds,
        "How long the server's last health check took."
    );
    describe_gauge!(
        "tandem_server_check_last_change_seconds",
        Unit::Seconds,
        "Seconds since the server last went up or down (or was added)."
    );
    describe_counter!(
        "tandem_server_downtime_seconds_total",
        Unit::Seconds,
        "Whole seconds the server has been down in all."
    );
    describe_gauge!(
        "tandem_server_weight",
        "The weight the server takes new traffic by: an operator's runtime weight, else the \
         file's (0: drained or in maintenance)."
    );
    describe_gauge!(
        "tandem_server_current_queue",
        "Requests or connections waiting for this server alone (hashing balances)."
    );
    describe_gauge!(
        "tandem_backend_current_queue",
        "Requests or connections waiting for a server with max_connections to have room."
    );
    describe_gauge!(
        "tandem_server_max_connections",
        "The server's max_connections (0: no limit)."
    );
    describe_gauge!("tandem_backend_backup_servers", "Backup servers up.");
    describe_counter!(
        "tandem_server_http_responses_total",
        "HTTP responses from the server, by status class (1xx..5xx, other)."
    );
    describe_counter!(
        "tandem_backend_http_responses_total",
        "HTTP responses of requests sent to the backend, by status class (1xx..5xx, other): \
         its servers' and tandem's own 502, 503 and 504."
    );
    for level in ["server", "backend"] {
        let name = |family: &str| format!("tandem_{level}_{family}");
        describe_counter!(
            name("bytes_in_total"),
            Unit::Bytes,
            "Request bytes sent to servers: http, the request bodies as their Content-Length \
             declares them; tcp, every byte."
        );
        describe_counter!(
            name("bytes_out_total"),
            Unit::Bytes,
            "Response bytes sent to clients: http, the response bodies as sent; tcp, every byte."
        );
        describe_counter!(
            name("client_aborts_total"),
            "HTTP transfers the client ended before the whole response was sent."
        );
        describe_counter!(
            name("server_aborts_total"),
            "HTTP transfers the server ended in the middle of its response body."
        );
    }
    describe_counter!(
        "tandem_server_connection_attempts_total",
        "New connections opened or tried to the server (a pooled connection reused is none)."
    );
    describe_gauge!(
        "tandem_frontend_limit_sessions",
        "The frontend's max_connections: as configured, or what the open-file limit leaves."
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
