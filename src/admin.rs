//! The admin endpoint: `GET /metrics` in the Prometheus text format and `GET /status` as JSON,
//! served on the control thread, away from the workers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tokio::net::{TcpListener, TcpStream};

use crate::limits::{AcceptBackoff, Thinned};
use crate::stats::{RESPONSE_TIME, RESPONSE_TIME_BUCKETS};
use crate::status::{check_states, Live, Status, SERVER_STATES};

/// How often histogram samples are folded in when nobody scrapes, so they don't pile up.
/// Often, so each fold is short: at 60k requests a second, 5 s of samples took milliseconds
/// to fold, and on a shared core requests waited for it.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(100);

/// How long `tandem status` waits for an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Serves the admin endpoint until the task is dropped.
pub async fn serve(listener: TcpListener, live: Arc<ArcSwap<Live>>, metrics: PrometheusHandle) {
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            ticker.tick().await;
            upkeep.run_upkeep();
        }
    });
    let mut backoff = AcceptBackoff::default();
    let failures = Thinned::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(error) => {
                if let Some(held_back) = failures.admit(Instant::now()) {
                    tracing::warn!(%error, held_back, "admin accept failed");
                }
                tokio::time::sleep(backoff.failed()).await;
                continue;
            }
        };
        let live = Arc::clone(&live);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &live.load(), &metrics);
                async move { Ok::<_, Infallible>(response) }
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

fn respond(
    request: &Request<Incoming>,
    live: &Live,
    metrics: &PrometheusHandle,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let status = live.status();
            set_gauges(&status);
            set_parity_gauges(&status);
            process_collector().collect();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics.render().into(),
            )
        }
        "/status" => match serde_json::to_vec_pretty(&live.status()) {
            Ok(json) => reply(StatusCode::OK, "application/json", json.into()),
            Err(error) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{error}\n").into(),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics or /status\n".into(),
        ),
    }
}

/// Asks a running tandem's admin endpoint at `address` for its status.
pub async fn fetch_status(address: SocketAddr) -> anyhow::Result<Status> {
    let stream = tokio::time::timeout(CLIENT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| anyhow!("no answer from {address} within {CLIENT_TIMEOUT:?}"))?
        .with_context(|| {
            format!(
                "connecting to the admin endpoint {address}: is tandem running with \
                 `admin: {{ listen: {address} }}`? (admin changes take a restart)"
            )
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("admin endpoint")?;
    tokio::spawn(connection);
    let request = Request::get("/status")
        .header(header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no answer from {address} within {CLIENT_TIMEOUT:?}"))??;
    if status != StatusCode::OK {
        bail!("{address} answered {status}");
    }
    serde_json::from_slice(&body).with_context(|| {
        format!("reading the status from {address}: is it a tandem of this version?")
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
