//! The admin endpoint: `GET /metrics` in the Prometheus text format, `GET /status` as JSON,
//! `/health`, `/ready` and the runtime API (`api`), served on the control thread, away from
//! the workers, over TCP and optionally a unix socket (`socket`).

pub mod api;
pub mod client;
pub mod socket;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};

use api::{Change, Endpoint, Refusal, Transport};
use client::Target;

use crate::backend::admin_state::AdminState;
use crate::limits::{AcceptBackoff, Thinned};
use crate::stats::{RESPONSE_TIME, RESPONSE_TIME_BUCKETS};
use crate::status::{check_states, Live, Status, SERVER_STATES};

/// How often histogram samples are folded in when nobody scrapes, so they don't pile up.
/// Often, so each fold is short: at 60k requests a second, 5 s of samples took milliseconds
/// to fold, and on a shared core requests waited for it.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Installs the process-wide recorder; until then every metric handle is a no-op.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RESPONSE_TIME.into()), &RESPONSE_TIME_BUCKETS)?
        // Gauges are set from live state before each render; one no longer set (a server a
        // reload removed, a master that moved) is gone from the next scrape.
        .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_millis(1)))
        .install_recorder()?;
    crate::stats::describe();
    crate::stats::zero_process_counters();
    process_collector().describe();
    Ok(handle)
}

/// What the admin endpoint serves from, shared by its connections.
pub struct Shared {
    pub live: Arc<ArcSwap<Live>>,
    pub metrics: PrometheusHandle,
    /// The bearer token writes over TCP need (`admin.token_file`, read again on each reload);
    /// `None`: writes over TCP are refused.
    pub token: ArcSwapOption<String>,
    /// Whether the config is loaded and the listeners bound, and the node is not stopping.
    pub ready: AtomicBool,
    /// Where runtime changes go to be applied, each with where its answer goes.
    pub changes: mpsc::UnboundedSender<Pending>,
}

/// A runtime change waiting to be applied, and where to send the line saying what changed
/// (or why not).
pub type Pending = (Change, oneshot::Sender<Result<String, Refusal>>);

/// A request body of the API is one word or number.
const BODY_LIMIT: usize = 1024;

/// Serves the admin endpoint on `listener` (and the unix `socket`, if any) until the task is
/// dropped.
pub async fn serve(listener: TcpListener, socket: Option<UnixListener>, shared: Arc<Shared>) {
    let upkeep = shared.metrics.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            ticker.tick().await;
            upkeep.run_upkeep();
        }
    });
    if let Some(socket) = socket {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            accept_forever(
                || async { socket.accept().await.map(|(stream, _)| stream) },
                Transport::Socket,
                shared,
            )
            .await
        });
    }
    accept_forever(
        || async { listener.accept().await.map(|(stream, _)| stream) },
        Transport::Tcp,
        shared,
    )
    .await
}

async fn accept_forever<S, A, F>(accept: A, transport: Transport, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    A: Fn() -> F,
    F: std::future::Future<Output = std::io::Result<S>>,
{
    let mut backoff = AcceptBackoff::default();
    let failures = Thinned::new();
    loop {
        let stream = match accept().await {
            Ok(stream) => {
                backoff.succeeded();
                stream
            }
            Err(error) => {
                if let Some(held_back) = failures.admit(Instant::now()) {
                    tracing::warn!(%error, held_back, "admin accept failed");
                }
                tokio::time::sleep(backoff.failed()).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(respond(request, transport, &shared).await) }
            });
            let served = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "admin connection ended");
            }
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    transport: Transport,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return refused(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a body of at most {BODY_LIMIT} bytes"),
            ))
        }
    };
    let endpoint = match api::route(&parts.method, parts.uri.path(), &body) {
        Ok(endpoint) => endpoint,
        Err(refusal) => return refused(refusal),
    };
    let token = shared.token.load();
    let token = token.as_deref().map(String::as_str);
    if let Err(refusal) = api::authorize(&endpoint, transport, token, &parts.headers) {
        return refused(refusal);
    }
    match endpoint {
        Endpoint::Health => reply(StatusCode::OK, "text/plain", "alive\n".into()),
        Endpoint::Ready => match shared.ready.load(Ordering::Relaxed) {
            true => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            false => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: starting or stopping\n".into(),
            ),
        },
        Endpoint::Metrics => {
            let status = shared.live.load().status();
            set_gauges(&status);
            set_parity_gauges(&status);
            process_collector().collect();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                shared.metrics.render().into(),
            )
        }
        Endpoint::Status => match serde_json::to_vec_pretty(&shared.live.load().status()) {
            Ok(json) => reply(StatusCode::OK, "application/json", json.into()),
            Err(error) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{error}\n").into(),
            ),
        },
        Endpoint::Change(change) => {
            let (answer, answered) = oneshot::channel();
            let applied = match shared.changes.send((change, answer)) {
                Ok(()) => answered.await.ok(),
                Err(_) => None,
            };
            match applied {
                Some(Ok(done)) => reply(StatusCode::OK, "text/plain", format!("{done}\n").into()),
                Some(Err(refusal)) => refused(refusal),
                None => refused(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "tandem is stopping: no more changes",
                )),
            }
        }
    }
}

/// An error answer: its line, and for a 401 the scheme to authenticate with.
fn refused(refusal: Refusal) -> Response<Full<Bytes>> {
    let mut response = reply(
        refusal.status,
        "text/plain",
        format!("{}\n", refusal.message).into(),
    );
    if refusal.status == StatusCode::UNAUTHORIZED {
        (response.headers_mut()).insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tandem\""),
        );
    }
    response
}

/// Asks a running tandem's admin endpoint at `target` for its status.
pub async fn fetch_status(target: &Target) -> anyhow::Result<Status> {
    let (status, body) = client::call(
        target,
        (Method::GET, "/status", ""),
        None,
        client::CALL_TIMEOUT,
    )
    .await?;
    if status != StatusCode::OK {
        bail!("{target} answered {status}");
    }
    serde_json::from_slice(body.as_bytes()).with_context(|| {
        format!("reading the status from {target}: is it a tandem of this version?")
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    (response.headers_mut()).insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

/// Every gauge, from the same snapshot `/status` shows.
fn set_gauges(status: &Status) {
    gauge!("tandem_build_info", "version" => status.version.clone()).set(1.0);
    gauge!("tandem_config_last_reload_success_timestamp_seconds")
        .set(status.reloads.last_success_unix);
    for frontend in &status.frontends {
        gauge!("tandem_frontend_current_sessions", "proxy" => frontend.name.clone())
            .set(frontend.current_sessions as f64);
        gauge!("tandem_frontend_tunnels_current", "proxy" => frontend.name.clone())
            .set(frontend.current_tunnels as f64);
        for (state, on) in [("OPEN", frontend.enabled), ("STOP", !frontend.enabled)] {
            let labels = [
                ("proxy", frontend.name.clone()),
                ("state", state.to_owned()),
            ];
            gauge!("tandem_frontend_status", &labels).set(flag(on));
        }
        for certificate in &frontend.certificates {
            let labels = [
                ("proxy", frontend.name.clone()),
                ("certificate", certificate.path.clone()),
            ];
            gauge!("tandem_tls_certificate_expiry_timestamp_seconds", &labels)
                .set(certificate.not_after_unix as f64);
        }
    }
    for backend in &status.backends {
        let proxy = || ("proxy", backend.name.clone());
        gauge!("tandem_backend_active_servers", &[proxy()]).set(backend.active_servers as f64);
        gauge!("tandem_backend_current_sessions", &[proxy()]).set(backend.current_sessions as f64);
        gauge!("tandem_backend_backup_servers", &[proxy()]).set(backend.backup_servers as f64);
        gauge!("tandem_backend_current_queue", &[proxy()]).set(backend.current_queue as f64);
        for server in &backend.servers {
            let labels = || [proxy(), ("server", server.name.clone())];
            gauge!("tandem_server_current_sessions", &labels()).set(server.current_sessions as f64);
            gauge!("tandem_server_current_queue", &labels()).set(server.current_queue as f64);
            // 0 for no limit, as HAProxy's exporter shows an unset maxconn.
            gauge!("tandem_server_max_connections", &labels())
                .set(f64::from(server.max_connections.unwrap_or(0)));
            for state in SERVER_STATES {
                let mut labels = labels().to_vec();
                labels.push(("state", state.to_owned()));
                gauge!("tandem_server_status", &labels).set(flag(server.state == state));
            }
            for state in AdminState::ALL.map(AdminState::label) {
                let mut labels = labels().to_vec();
                labels.push(("state", state.to_owned()));
                gauge!("tandem_server_admin_state", &labels).set(flag(server.admin_state == state));
            }
        }
    }
    for vrrp in &status.vrrp {
        let labels = || {
            vec![
                ("vrrp_instance", vrrp.name.clone()),
                ("vrid", vrrp.vrid.to_string()),
            ]
        };
        gauge!("tandem_vrrp_priority", &labels()).set(f64::from(vrrp.priority));
        gauge!("tandem_vrrp_effective_priority", &labels()).set(f64::from(vrrp.effective_priority));
        for state in crate::vrrp::machine::State::ALL.map(|state| state.label()) {
            let mut labels = labels();
            labels.push(("state", state.to_owned()));
            gauge!("tandem_vrrp_state", &labels).set(flag(vrrp.state == state));
        }
        if let Some(master) = vrrp.master {
            let mut labels = labels();
            labels.push(("address", master.to_string()));
            gauge!("tandem_vrrp_master_info", &labels).set(1.0);
        }
        for mode in crate::vrrp::machine::Mode::ALL.map(|mode| mode.label()) {
            let mut labels = labels();
            labels.push(("mode", mode.to_owned()));
            gauge!("tandem_vrrp_mode", &labels).set(flag(vrrp.mode == mode));
        }
    }
    if let Some(announce) = &status.announce {
        for state in crate::announce::state::State::ALL.map(|state| state.name()) {
            gauge!("tandem_announce_state", "state" => state).set(flag(announce.state == state));
        }
    }
}

/// Reads the process's CPU time, memory, open and maximum fds and start time (`process_*`,
/// as every Prometheus client library names them) when scraped.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The gauges that complete HAProxy's exporter's families (issue 20), from the same snapshot.
fn set_parity_gauges(status: &Status) {
    for frontend in &status.frontends {
        gauge!("tandem_frontend_limit_sessions", "proxy" => frontend.name.clone())
            .set(frontend.limit_sessions as f64);
    }
    for backend in &status.backends {
        for server in &backend.servers {
            let labels = || {
                vec![
                    ("proxy", backend.name.clone()),
                    ("server", server.name.clone()),
                ]
            };
            gauge!("tandem_server_weight", &labels()).set(f64::from(server.weight));
            gauge!("tandem_server_check_last_change_seconds", &labels())
                .set(server.last_change_seconds.floor());
            // A counter, as HAProxy's, in whole seconds; it only grows, so it is set.
            counter!("tandem_server_downtime_seconds_total", &labels())
                .absolute(server.downtime_seconds as u64);
            let Some(check) = &server.last_check else {
                continue;
            };
            gauge!("tandem_server_check_duration_seconds", &labels()).set(check.duration_seconds);
            for state in check_states() {
                let mut labels = labels();
                labels.push(("state", state.to_owned()));
                gauge!("tandem_server_check_status", &labels).set(flag(check.status == state));
            }
        }
    }
}
