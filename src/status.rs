//! What the node is doing now: served as JSON on `/status`, printed by `tandem status`, and the
//! source of every metrics gauge, so the three never disagree.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::announce;
use crate::backend::admin_state::AdminState;
use crate::backend::check_record::CheckStatus;
use crate::backend::BackendState;
use crate::config::{Balance, Mode};
use crate::proxy::frontends::LiveFrontend;
use crate::vrrp::status::{self as vrrp_status, VrrpStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub version: String,
    pub reloads: Reloads,
    pub vrrp: Vec<VrrpStatus>,
    pub frontends: Vec<FrontendStatus>,
    pub backends: Vec<BackendStatus>,
    /// `None` without `announce:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceStatus {
    /// The TUN device the addresses are announced from.
    pub interface: String,
    pub addresses: Vec<IpAddr>,
    /// `announced`, `withdrawn` (a tracked item fails, or awaits its first health check) or
    /// `drained` (by an operator, or shutting down).
    pub state: String,
    /// What fails now, as in the logs.
    pub failing: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reloads {
    pub succeeded: u64,
    pub failed: u64,
    /// When the running config was loaded (at start or by the last good reload), Unix seconds.
    pub last_success_unix: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendStatus {
    pub name: String,
    pub listen: SocketAddr,
    pub mode: String,
    /// `None` when every request is redirected to https.
    pub backend: Option<String>,
    pub current_sessions: u64,
    /// False while accepting fails (out of file descriptors, say).
    pub accepting: bool,
    /// TLS frontends only, in config order (the first is the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateStatus>,
    /// Upgraded connections (WebSocket) open now.
    #[serde(default)]
    pub current_tunnels: u64,
    /// False while an operator has disabled it (the runtime API): its listeners are closed.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Its `max_connections`: as configured, or what the open-file limit leaves it.
    #[serde(default)]
    pub limit_sessions: usize,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// The certificate file.
    pub path: String,
    /// The names SNI matches it by.
    pub names: Vec<String>,
    /// When it expires (notAfter), as a Unix time.
    pub not_after_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub name: String,
    pub balance: String,
    /// Primary servers up.
    pub active_servers: usize,
    pub current_sessions: u64,
    pub servers: Vec<ServerStatus>,
    /// Backup servers up.
    pub backup_servers: usize,
    /// Requests or connections waiting for a server with `max_connections` to have room.
    pub current_queue: usize,
}

const UP: &str = "UP";
const DOWN: &str = "DOWN";
const DRAIN: &str = "DRAIN";
const MAINT: &str = "MAINT";
/// Every state a server can be shown in, as HAProxy names them.
pub const SERVER_STATES: [&str; 4] = [UP, DOWN, DRAIN, MAINT];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub name: String,
    pub address: SocketAddr,
    /// UP, DOWN, DRAIN (up, and drained or at weight 0: no new traffic) or MAINT (in
    /// maintenance: no traffic, no checks), as HAProxy says.
    pub state: String,
    /// The weight it takes traffic by when ready: `runtime_weight`, else the file's.
    pub weight: u32,
    pub current_sessions: u64,
    pub backup: bool,
    /// `None`: no limit.
    pub max_connections: Option<u32>,
    /// Waiting for this server alone (hashing): the rest of the backend's queue waits for any.
    pub current_queue: usize,
    /// `name:port` for a server named by DNS (`address` is what the name resolved to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// What an operator set it to: `ready`, `drain` or `maint`.
    #[serde(default)]
    pub admin_state: String,
    /// A weight an operator set, over the file's; `None`: the file's.
    #[serde(default)]
    pub runtime_weight: Option<u32>,
    /// The last health check; `None` before the first, and without health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<LastCheck>,
    /// Seconds since the server last went up or down (or was added).
    #[serde(default)]
    pub last_change_seconds: f64,
    /// Seconds the server has been down in all.
    #[serde(default)]
    pub downtime_seconds: f64,
}

/// Every result a health check can have, by HAProxy's names.
pub fn check_states() -> impl Iterator<Item = &'static str> {
    CheckStatus::ALL.into_iter().map(CheckStatus::label)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastCheck {
    /// HAProxy's name for the result: L4OK, L7STS, L4CON... (`CheckStatus::label`).
    pub status: String,
    pub duration_seconds: f64,
}

/// Handles on everything that runs, replaced on each reload; read when `/status` or
/// `/metrics` is asked for.
pub struct Live {
    pub node: String,
    pub frontends: Vec<LiveFrontend>,
    pub backends: Vec<Arc<BackendState>>,
    pub vrrp: Vec<Arc<Mutex<VrrpStatus>>>,
    pub reloads: Reloads,
    pub announce: Option<watch::Receiver<announce::Status>>,
}

impl Live {
    pub fn status(&self) -> Status {
        Status {
            node: self.node.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            reloads: self.reloads,
            vrrp: (self.vrrp.iter())
                .map(|status| vrrp_status::lock(status).clone())
                .collect(),
            frontends: self.frontends.iter().map(frontend_status).collect(),
            backends: (self.backends.iter())
                .map(|backend| backend_status(backend))
                .collect(),
            announce: (self.announce.as_ref()).map(|status| {
                let status = status.borrow();
                AnnounceStatus {
                    interface: status.interface.clone(),
                    addresses: status.addresses.clone(),
                    state: status.state.name().to_owned(),
                    failing: status.failing.clone(),
                }
            }),
        }
    }
}

fn frontend_status(frontend: &LiveFrontend) -> FrontendStatus {
    let runtime = frontend.cell.load();
    let config = &runtime.config;
    FrontendStatus {
        name: config.name.clone(),
        listen: config.listen,
        mode: match config.mode {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        }
        .into(),
        backend: runtime
            .backend
            .as_ref()
            .map(|backend| backend.config.name.clone()),
        certificates: (runtime.tls.iter())
            .flat_map(|tls| &tls.certificates)
            .map(|certificate| CertificateStatus {
                path: certificate.files.cert.display().to_string(),
                names: certificate.names.clone(),
                not_after_unix: certificate.not_after_unix,
            })
            .collect(),
        current_sessions: runtime.stats.current_sessions.load(Ordering::Relaxed),
        accepting: *frontend.accepting.borrow(),
        current_tunnels: runtime.stats.current_tunnels.load(Ordering::Relaxed),
        enabled: frontend.enabled,
        limit_sessions: frontend.connections.max(),
    }
}

fn backend_status(backend: &BackendState) -> BackendStatus {
    let servers: Vec<ServerStatus> = (0..backend.servers.len())
        .map(|index| server_status(backend, index))
        .collect();
    BackendStatus {
        name: backend.config.name.clone(),
        balance: match backend.config.balance {
            Balance::RoundRobin => "round_robin",
            Balance::WeightedRoundRobin => "weighted_round_robin",
            Balance::LeastConn => "least_conn",
            Balance::SourceHash => "source_hash",
            Balance::UriHash { .. } => "uri_hash",
        }
        .into(),
        active_servers: backend.servers_up(),
        current_sessions: servers.iter().map(|server| server.current_sessions).sum(),
        servers,
        backup_servers: backend.backups_up(),
        current_queue: backend.queue.waiting(),
    }
}

fn server_status(backend: &BackendState, index: usize) -> ServerStatus {
    let server = &backend.servers[index];
    let config = &backend.server_configs[index];
    let (backup, queue) = (config.backup, &backend.queue);
    let change = backend.change(index);
    let admin_state = backend.admin_state(index);
    let state = match (admin_state, server.is_up(), config.weight) {
        (AdminState::Maint, ..) => MAINT,
        (_, false, _) => DOWN,
        (_, true, 0) => DRAIN,
        (_, true, _) => UP,
    };
    let (checks, now) = (server.check_record(), Instant::now());
    ServerStatus {
        name: server.name.clone(),
        address: server.address,
        state: state.into(),
        weight: change.map_or(config.weight, |change| change.ready_weight()),
        current_sessions: server.current_sessions(),
        backup,
        max_connections: server.max_connections(),
        // Only the hashes queue for one server, and only limited servers are waited for.
        current_queue: match server.max_connections() {
            Some(_) => queue.waiting_for(server),
            None => 0,
        },
        dns_name: (server.dns_name.as_ref()).map(ToString::to_string),
        admin_state: admin_state.label().into(),
        runtime_weight: change.and_then(|change| change.weight),
        last_check: (checks.last()).map(|(status, took)| LastCheck {
            status: status.label().to_owned(),
            duration_seconds: took.as_secs_f64(),
        }),
        last_change_seconds: checks.since_change(now).as_secs_f64(),
        downtime_seconds: checks.downtime(now).as_secs_f64(),
    }
}

impl fmt::Display for Status {
    /// Readable at a glance: one line per instance, frontend and server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "node {} (tandem {}): {} reloads, {} failed",
            self.node, self.version, self.reloads.succeeded, self.reloads.failed
        );
        if !self.vrrp.is_empty() {
            out.push_str("\nVRRP\n");
        }
        for vrrp in &self.vrrp {
            let master = vrrp.master.map_or("none".to_owned(), |ip| ip.to_string());
            let _ = writeln!(
                out,
                "  {:<16} vrid {:<3} on {:<8} {:<6} priority {} (effective {})  master {}  VIPs {}",
                vrrp.name,
                vrrp.vrid,
                vrrp.interface,
                vrrp.state,
                vrrp.priority,
                vrrp.effective_priority,
                master,
                vrrp.virtual_ips.join(" ")
            );
            if !vrrp.mode.is_empty() && vrrp.mode != "normal" {
                let _ = writeln!(out, "    mode {} (set by an operator)", vrrp.mode);
            }
        }
        if let Some(announce) = &self.announce {
            let addresses = (announce.addresses.iter()).map(IpAddr::to_string);
            let _ = writeln!(
                out,
                "\nANNOUNCE\n  {:<16} {}  {}",
                announce.interface,
                announce.state,
                addresses.collect::<Vec<_>>().join(" ")
            );
            for failing in &announce.failing {
                let _ = writeln!(out, "    failing: {failing}");
            }
        }
        if !self.frontends.is_empty() {
            out.push_str("\nFRONTENDS\n");
        }
        for frontend in &self.frontends {
            let _ = writeln!(
                out,
                "  {:<16} {:<22} {:<4} -> {:<16} {} sessions{}",
                frontend.name,
                frontend.listen.to_string(),
                frontend.mode,
                frontend.backend.as_deref().unwrap_or("(redirect)"),
                frontend.current_sessions,
                if frontend.accepting {
                    ""
                } else {
                    "  NOT ACCEPTING"
                }
            );
            if !frontend.enabled {
                out.push_str("    disabled by an operator\n");
            }
            for certificate in &frontend.certificates {
                let expiry = UNIX_EPOCH
                    + Duration::from_secs(certificate.not_after_unix.max(0).unsigned_abs());
                let mut expires = Vec::new();
                crate::access_log::rfc3339(expiry, &mut expires);
                let _ = writeln!(
                    out,
                    "    certificate {} ({}) expires {}",
                    certificate.path,
                    certificate.names.join(" "),
                    String::from_utf8_lossy(&expires)
                );
            }
        }
        if !self.backends.is_empty() {
            out.push_str("\nBACKENDS\n");
        }
        for backend in &self.backends {
            let _ = writeln!(
                out,
                "  {:<16} {:<20} {}/{} servers up, {} sessions{}",
                backend.name,
                backend.balance,
                backend.active_servers + backend.backup_servers,
                backend.servers.len(),
                backend.current_sessions,
                match backend.current_queue {
                    0 => String::new(),
                    queued => format!(", {queued} queued"),
                }
            );
            for server in &backend.servers {
                let _ = writeln!(
                    out,
                    "    {:<14} {:<22} {:<5} weight {:<3} {} sessions{}{}",
                    server.name,
                    server.address.to_string(),
                    server.state,
                    server.weight,
                    server.current_sessions,
                    server
                        .max_connections
                        .map_or(String::new(), |max| format!(" of {max}")),
                    if server.backup { "  backup" } else { "" }
                );
                if server.admin_state != "ready" || server.runtime_weight.is_some() {
                    out.truncate(out.len() - 1);
                    let _ = writeln!(
                        out,
                        "  (set by an operator: {}{})",
                        server.admin_state,
                        server
                            .runtime_weight
                            .map_or(String::new(), |weight| format!(", weight {weight}"))
                    );
                }
            }
        }
        f.write_str(&out)
    }
}
