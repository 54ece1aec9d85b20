//! The appliance's life: start the data plane, the VRRP engine and the health checks; reload
//! on SIGHUP; and stop without turning a client away: hand the VIPs over, stop accepting, drain.

mod runtime_changes;

use std::net::TcpListener as StdTcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};

use anyhow::Context as _;
use tokio::runtime::Builder;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::access_log::AccessLog;
use crate::admin;
use crate::announce::{self, Announcer, Arrivals};
use crate::backend::BackendState;
use crate::config::{self, Config, ServerAddress, VrrpInstance};
use crate::dns::names::{self, Names, Report};
use crate::dns::Resolved;
use crate::health;
use crate::proxy::drain::Drain;
use crate::proxy::frontends::Frontends;
use crate::stats;
use crate::status::{Live, Reloads};
use crate::systemd;
use crate::track::data_plane::DataPlane;
use crate::vrrp::engine::{Engine, PreparedVrrp};

/// What runs now, and what a reload replaces.
struct Running {
    config: Config,
    backends: Vec<Arc<BackendState>>,
    /// The health-check tasks of each of `backends`, by index.
    checks: Vec<Vec<JoinHandle<()>>>,
    frontends: Frontends,
    engine: Option<Engine>,
    access_log: Option<Arc<AccessLog>>,
    reloads: Reloads,
    /// What `/status` and `/metrics` read.
    live: Arc<ArcSwap<Live>>,
    names: Names,
    /// What the names of `config` resolved to last.
    resolved: Resolved,
    /// What `backends` were built from: behind `resolved` while a change waits to be applied.
    applied: Resolved,
    reports: mpsc::UnboundedReceiver<Report>,
    /// What the admin endpoint serves from; `None` without `admin`.
    admin: Option<Arc<admin::Shared>>,
    /// `None` without `announce:`.
    announcer: Option<Announcer>,
    /// The announcer's netlink connection, opened with the first announcer.
    announce_netlink: Option<rtnetlink::Handle>,
    /// New client connections so far, for the announcer's drains.
    arrivals: Arrivals,
}

/// Runs `config` (read from `path`) until SIGTERM or SIGINT, then hands over and drains within
/// `node.shutdown_timeout`.
pub fn run(config: Config, path: &Path) -> anyhow::Result<()> {
    crate::limits::raise_open_files();
    // Before any metric handle is taken: handles taken earlier would record nothing.
    let admin = match &config.admin {
        Some(admin) => {
            let metrics = admin::install_recorder().context("installing the metrics recorder")?;
            let listener = StdTcpListener::bind(admin.listen)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .with_context(|| format!("admin.listen: cannot listen on {} (another process, or a frontend of another tandem, may hold it)", admin.listen))?;
            // First, while no other thread runs: its mode is set by the process's umask.
            let socket = (admin.socket.as_deref())
                .map(admin::socket::bind)
                .transpose()?;
            Some((listener, socket, metrics))
        }
        None => None,
    };
    let access_log = (config.access_log.as_ref())
        .map(AccessLog::start)
        .transpose()?;
    let drain = Drain::new();
    let control = Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    // Servers named by DNS are looked up before anything serves, so the first requests have
    // them; their tasks run on the control runtime from here on.
    let (mut names, mut reports) = Names::new();
    let mut resolved = Resolved::default();
    control.block_on(async {
        let started = names.follow(&config, &resolved);
        let wait = names::longest_timeout(&config);
        names::first_reports(&mut reports, started, &mut resolved, wait).await;
    });
    let backends = build_backends(&config, &resolved, &[])?;
    BackendState::take_over(&[], &backends);
    // Bind everything before serving anything, so a taken port fails start-up as a whole.
    let mut frontends = Frontends::start(config.node.threads, &drain)?;
    frontends.apply(&config.frontends, &backends, access_log.as_ref())?;

    // The proxy serves before this node may claim a VIP.
    let engine = match config.vrrp.is_empty() {
        true => None,
        false => {
            let data_plane = DataPlane {
                backends: backends.clone(),
                frontends: frontends.accepting(&config.frontends),
            };
            Some(Engine::start(config.vrrp.clone(), data_plane)?)
        }
    };

    let ran = control.block_on(async {
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let reloads = Reloads {
            succeeded: 0,
            failed: 0,
            last_success_unix: unix_now(),
        };
        let live = Arc::new(ArcSwap::from_pointee(live(
            &config, &backends, &frontends, engine.as_ref(), reloads, None,
        )));
        let (changes, mut changed) = mpsc::unbounded_channel();
        // `_socket_file` removes the socket file at exit, once dropped.
        let (shared, _socket_file) = match admin {
            Some((listener, socket, metrics)) => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .context("admin listener")?;
                let (socket, file) = match socket {
                    Some((socket, file)) => {
                        let socket = tokio::net::UnixListener::from_std(socket);
                        (Some(socket.context("admin socket")?), Some(file))
                    }
                    None => (None, None),
                };
                let shared = Arc::new(admin::Shared {
                    live: Arc::clone(&live),
                    metrics,
                    token: ArcSwapOption::from(token(&config)),
                    ready: AtomicBool::new(false),
                    changes,
                });
                tokio::spawn(admin::serve(listener, socket, Arc::clone(&shared)));
                (Some(shared), file)
            }
            None => (None, None),
        };
        let arrivals: Arrivals = {
            let drain = Arc::clone(&drain);
            Arc::new(move || drain.opened())
        };
        // After the proxy serves, as VRRP: routers send nothing before this node can answer.
        let (announcer, announce_netlink) = match &config.announce {
            Some(wanted) => {
                let netlink = announce::device::connect().context("announce: netlink")?;
                let data_plane = DataPlane {
                    backends: backends.clone(),
                    frontends: frontends.accepting(&config.frontends),
                };
                let prepared = announce::prepare(None, &netlink, wanted, &data_plane).await?;
                let announcer = Announcer::start(netlink.clone(), prepared, Arc::clone(&arrivals));
                (Some(announcer), Some(netlink))
            }
            None => (None, None),
        };
        let mut running = Running {
            checks: backends.iter().map(spawn_checks).collect(),
            config,
            backends,
            frontends,
            engine,
            access_log,
            reloads,
            live,
            names,
            applied: resolved.clone(),
            resolved,
            reports,
            admin: shared,
            announcer,
            announce_netlink,
            arrivals,
        };
        running.publish();
        running.set_ready(true);
        tracing::info!(node = %running.config.node.name, threads = running.config.node.threads, "tandem is running");
        systemd::notify("READY=1");
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    systemd::notify("RELOADING=1");
                    // First, and whatever the new file holds: logrotate's SIGHUP must move the
                    // log to the new file even when the config has a mistake in it.
                    if let Some(access_log) = &running.access_log {
                        access_log.reopen();
                    }
                    // Off the control runtime: a large or slow file must not stall health
                    // checks or the admin endpoint while it is read, nor a file that never
                    // ends (a hung network mount) keep SIGTERM waiting.
                    let owned = path.to_owned();
                    let loading = tokio::task::spawn_blocking(move || config::load(&owned));
                    tokio::select! {
                        loaded = loading => {
                            running.reload(path, loaded).await;
                            // A failed reload may have taken in name changes it did not apply.
                            running.apply_names().await;
                        }
                        _ = terminate.recv() => break tracing::info!("SIGTERM while the config was being read: the reload is dropped; handing over and draining"),
                        _ = interrupt.recv() => break tracing::info!("SIGINT while the config was being read: the reload is dropped; handing over and draining"),
                    }
                    systemd::notify("READY=1");
                }
                Some(report) = running.reports.recv() => running.names_resolved(report).await,
                Some((change, answer)) = changed.recv() => running.answer(change, answer).await,
                _ = terminate.recv() => break tracing::info!("SIGTERM: handing over and draining"),
                _ = interrupt.recv() => break tracing::info!("SIGINT: handing over and draining"),
            }
        }
        systemd::notify("STOPPING=1");
        running.set_ready(false);
        // Routers first: they move new flows to the other nodes while this one still takes
        // every connection that reaches it.
        if let Some(announcer) = &running.announcer {
            announcer.shut_down().await;
        }
        // Keep serving on the VIPs until the peer holds them, so no client is turned away; then
        // stop accepting, and keep the VIPs until the connections on them have finished.
        let engine = match running.engine.take() {
            Some(engine) => Some(
                tokio::task::spawn_blocking(move || {
                    engine.hand_over();
                    engine
                })
                .await
                .context("VRRP hand-over")?,
            ),
            None => None,
        };
        drain.start();
        let timeout = running.config.node.shutdown_timeout;
        if tokio::time::timeout(timeout, drain.until_idle()).await.is_err() {
            tracing::warn!(timeout = %crate::config::display_duration(timeout), "connections still open at shutdown_timeout: closing them");
        }
        if let Some(engine) = engine {
            tokio::task::spawn_blocking(move || engine.release())
                .await
                .context("releasing the VIPs")?;
        }
        if let Some(announcer) = running.announcer.take() {
            announcer.release().await;
        }
        if let Some(access_log) = running.access_log.take() {
            access_log.finish();
        }
        anyhow::Ok(())
    });
    // Without waiting for a blocking task: a config read that never ends must not hold the exit.
    control.shutdown_background();
    ran
}

/// Backends for `config`, carrying over the run-time state of unchanged servers by name, with
/// their TLS to servers built afresh (its files read now).
fn build_backends(
    config: &Config,
    resolved: &Resolved,
    previous: &[Arc<BackendState>],
) -> anyhow::Result<Vec<Arc<BackendState>>> {
    (config.backends.iter())
        .map(|backend| {
            let same = previous.iter().find(|old| old.config.name == backend.name);
            build_backend(backend, resolved, same.map(Arc::as_ref))
        })
        .collect()
}

/// One backend, carrying over from `previous` (the running one of its name) as
/// [`BackendState::new`] does, its TLS files read now.
fn build_backend(
    backend: &config::Backend,
    resolved: &Resolved,
    previous: Option<&BackendState>,
) -> anyhow::Result<Arc<BackendState>> {
    let state = BackendState::new(backend.clone(), resolved, previous).with_tls();
    let state = state.with_context(|| format!("backend {}: TLS", backend.name))?;
    Ok(Arc::new(state))
}

/// The health-check tasks of one backend.
fn spawn_checks(backend: &Arc<BackendState>) -> Vec<JoinHandle<()>> {
    health::checker::spawn(std::slice::from_ref(backend))
}

impl Running {
    /// Swaps in the config `path` gave (`loaded`), all or nothing: every part that can refuse
    /// (the file, the access log, certificates and new addresses, VRRP) is prepared before any
    /// part changes, and when one refuses, everything runs on as it was and the log says why.
    async fn reload(
        &mut self,
        path: &Path,
        loaded: Result<Result<Config, config::ConfigErrors>, tokio::task::JoinError>,
    ) {
        let mut config = match loaded {
            Ok(Ok(config)) => config,
            Ok(Err(errors)) => return self.reload_failed(&errors.to_string()),
            Err(error) => return self.reload_failed(&format!("loading the config: {error}")),
        };
        if config.node.threads != self.config.node.threads {
            tracing::warn!(
                threads = self.config.node.threads,
                "node.threads changes on restart only"
            );
            config.node.threads = self.config.node.threads;
        }
        if let (Some(admin), Some(running)) = (&mut config.admin, &self.config.admin) {
            // The token is read again on every reload; the addresses stay as they started.
            if (admin.listen, &admin.socket) != (running.listen, &running.socket) {
                tracing::warn!(listen = %running.listen, socket = %running.socket.as_deref().map_or("none".into(), |path| path.display().to_string()), "admin.listen and admin.socket change on restart only");
                (admin.listen, admin.socket) = (running.listen, running.socket.clone());
            }
        } else if config.admin.is_some() != self.config.admin.is_some() {
            tracing::warn!("admin is added or removed on restart only");
            config.admin = self.config.admin.clone();
        }
        let access_log = match self.reload_access_log(&config) {
            Ok(access_log) => access_log,
            Err(error) => return self.reload_failed(&format!("{error:#}")),
        };
        // A name the new file adds is looked up before its backend is built (reports of the
        // names already followed are taken in meanwhile too). A failed reload follows the
        // running file's names again.
        let started = self.names.follow(&config, &self.resolved);
        let wait = names::longest_timeout(&config);
        names::first_reports(&mut self.reports, started, &mut self.resolved, wait).await;
        let backends = match build_backends(&config, &self.resolved, &self.backends) {
            Ok(backends) => backends,
            Err(error) => return self.reload_failed(&format!("{error:#}")),
        };
        let prepared = (self.frontends).prepare(&config.frontends, &backends, access_log.as_ref());
        let frontends = match prepared {
            Ok(frontends) => frontends,
            Err(error) => return self.reload_failed(&format!("{error:#}")),
        };
        let data_plane = DataPlane {
            backends: backends.clone(),
            frontends: (self.frontends).accepting_once(&config.frontends, Some(&frontends)),
        };
        let announce = match self
            .prepare_announce(config.announce.as_ref(), &data_plane)
            .await
        {
            Ok(announce) => announce,
            Err(error) => return self.reload_failed(&format!("announce: {error:#}")),
        };
        // Last of the parts that may refuse: once VRRP has prepared its part, nothing can fail.
        let vrrp = match self.prepare_vrrp(&config.vrrp, data_plane).await {
            Ok(vrrp) => vrrp,
            Err(error) => return self.reload_failed(&format!("vrrp: {error:#}")),
        };
        self.frontends.commit(frontends);
        // A replaced log's writer ends once the last request still holding it has logged.
        self.access_log = access_log;
        for check in self.checks.drain(..).flatten() {
            check.abort();
        }
        self.checks = backends.iter().map(spawn_checks).collect();
        BackendState::take_over(&self.backends, &backends);
        runtime_changes::log_dropped(&self.backends, &backends);
        self.backends = backends;
        if let (Some(engine), Some(vrrp)) = (&mut self.engine, vrrp) {
            engine.commit(vrrp);
        }
        self.commit_announce(announce).await;
        self.config = config;
        if let Some(admin) = &self.admin {
            admin.token.store(token(&self.config));
        }
        let config = &self.config;
        self.resolved.retain(|key| {
            (config.backends.iter()).any(|backend| {
                backend.name == key.backend
                    && (backend.servers.iter()).any(|server| {
                        server.name == key.server
                            && server.address == ServerAddress::Name(key.name.clone())
                    })
            })
        });
        self.applied = self.resolved.clone();
        self.reloads.succeeded += 1;
        self.reloads.last_success_unix = unix_now();
        stats::reload(true);
        self.publish();
        tracing::info!(path = %path.display(), "config reloaded");
    }

    /// VRRP's part of a reload, prepared but not committed; `None` when the node runs no VRRP
    /// and the file adds none. A node that ran none gets an idle engine to add instances to,
    /// kept only if its part is prepared.
    async fn prepare_vrrp(
        &mut self,
        instances: &[VrrpInstance],
        data_plane: DataPlane,
    ) -> anyhow::Result<Option<PreparedVrrp>> {
        let running = self.engine.take();
        if running.is_none() && instances.is_empty() {
            return Ok(None);
        }
        let started_here = running.is_none();
        // Off the control runtime: opening a new interface may wait seconds for its IPv6
        // link-local address, and health checks must go on meanwhile.
        let instances = instances.to_vec();
        let (engine, prepared) = tokio::task::spawn_blocking(move || {
            let engine = match running {
                Some(engine) => engine,
                None => match Engine::start(Vec::new(), DataPlane::default()) {
                    Ok(engine) => engine,
                    Err(error) => return (None, Err(error)),
                },
            };
            let prepared = engine.prepare(&instances, &data_plane);
            (Some(engine), prepared)
        })
        .await
        .context("preparing VRRP")?;
        if prepared.is_ok() || !started_here {
            self.engine = engine;
        }
        prepared.map(Some)
    }

    /// The announcer's part of a reload, prepared but not committed; `None` when the file has no
    /// `announce:`.
    async fn prepare_announce(
        &mut self,
        wanted: Option<&config::Announce>,
        data_plane: &DataPlane,
    ) -> anyhow::Result<Option<announce::Prepared>> {
        let Some(wanted) = wanted else {
            return Ok(None);
        };
        let netlink = match &self.announce_netlink {
            Some(netlink) => netlink.clone(),
            None => {
                let netlink = announce::device::connect().context("netlink")?;
                self.announce_netlink = Some(netlink.clone());
                netlink
            }
        };
        let running = self.announcer.as_ref();
        announce::prepare(running, &netlink, wanted, data_plane)
            .await
            .map(Some)
    }

    /// Commits what [`Running::prepare_announce`] made: starts an announcer the file adds, and
    /// releases one it drops.
    async fn commit_announce(&mut self, prepared: Option<announce::Prepared>) {
        match (self.announcer.take(), prepared) {
            (Some(mut announcer), Some(prepared)) => {
                announcer.commit(prepared);
                self.announcer = Some(announcer);
            }
            (None, Some(prepared)) => {
                let netlink = (self.announce_netlink.clone()).expect("prepared with a connection");
                let arrivals = Arc::clone(&self.arrivals);
                self.announcer = Some(Announcer::start(netlink, prepared, arrivals));
            }
            // Off the control loop: a drain under way finishes first.
            (Some(announcer), None) => drop(tokio::spawn(announcer.release())),
            (None, None) => {}
        }
    }

    /// The access log for `config`: the running one (already reopened) when unchanged.
    fn reload_access_log(&self, config: &Config) -> anyhow::Result<Option<Arc<AccessLog>>> {
        match (&config.access_log, &self.access_log) {
            (None, _) => Ok(None),
            (Some(wanted), Some(running)) if running.config() == wanted => {
                Ok(Some(Arc::clone(running)))
            }
            (Some(wanted), _) => Ok(Some(AccessLog::start(wanted)?)),
        }
    }

    /// A name's addresses changed (with any other reports that arrived together).
    async fn names_resolved(&mut self, report: Report) {
        self.resolved.set(report.key, report.slots);
        while let Ok(report) = self.reports.try_recv() {
            self.resolved.set(report.key, report.slots);
        }
        self.apply_names().await;
    }

    /// Applies what the names resolved to, if the backends were built from something else:
    /// each backend whose names changed is rebuilt from the running file (unchanged servers
    /// keep their state, as on a reload; its files of TLS to servers are read again) and takes
    /// over from the old one, for the proxy, its health checks and VRRP's trackers alike. The
    /// other backends go on untouched.
    async fn apply_names(&mut self) {
        if self.resolved == self.applied {
            return;
        }
        let changed: Vec<bool> = (self.config.backends.iter())
            .map(|backend| self.resolved.differs_for(&self.applied, &backend.name))
            .collect();
        let rebuilt = (self
            .config
            .backends
            .iter()
            .zip(&self.backends)
            .zip(&changed))
        .map(|((config, running), &changed)| match changed {
            true => build_backend(config, &self.resolved, Some(running)),
            false => Ok(Arc::clone(running)),
        })
        .collect::<anyhow::Result<Vec<_>>>();
        let backends = match rebuilt {
            Ok(backends) => backends,
            // The files of TLS to servers are read again, and one fails: the servers stay as
            // they were until it is fixed and the next change or reload.
            Err(error) => {
                return tracing::error!(
                    "servers named by DNS stay as they were: rebuilding their backend failed: \
                     {error:#}"
                )
            }
        };
        self.frontends.replace_backends(&backends);
        let data_plane = DataPlane {
            backends: backends.clone(),
            frontends: self.frontends.accepting(&self.config.frontends),
        };
        let instances = self.config.vrrp.clone();
        match self.prepare_vrrp(&instances, data_plane).await {
            Ok(prepared) => {
                if let (Some(engine), Some(prepared)) = (&mut self.engine, prepared) {
                    engine.commit(prepared);
                }
            }
            Err(error) => tracing::error!(
                "VRRP trackers keep the servers as they were before the names changed: {error:#}"
            ),
        }
        let wanted = self.config.announce.clone();
        let data_plane = DataPlane {
            backends: backends.clone(),
            frontends: self.frontends.accepting(&self.config.frontends),
        };
        match self.prepare_announce(wanted.as_ref(), &data_plane).await {
            Ok(prepared) => self.commit_announce(prepared).await,
            Err(error) => tracing::error!(
                "announce trackers keep the servers as they were before the names changed: {error:#}"
            ),
        }
        for ((checks, backend), changed) in self.checks.iter_mut().zip(&backends).zip(changed) {
            if changed {
                checks.drain(..).for_each(|check| check.abort());
                *checks = spawn_checks(backend);
            }
        }
        BackendState::take_over(&self.backends, &backends);
        runtime_changes::log_dropped(&self.backends, &backends);
        self.backends = backends;
        self.applied = self.resolved.clone();
        self.publish();
    }

    /// Whether `/ready` says ready.
    fn set_ready(&self, ready: bool) {
        if let Some(admin) = &self.admin {
            admin.ready.store(ready, Ordering::Relaxed);
        }
    }

    fn reload_failed(&mut self, why: &str) {
        self.names.follow(&self.config, &self.resolved);
        self.reloads.failed += 1;
        stats::reload(false);
        self.publish();
        tracing::error!(
            failed_reloads = self.reloads.failed,
            "reload failed, the running config stays:\n{why}"
        );
    }

    fn publish(&self) {
        self.live.store(Arc::new(live(
            &self.config,
            &self.backends,
            &self.frontends,
            self.engine.as_ref(),
            self.reloads,
            self.announcer.as_ref(),
        )));
    }
}

fn live(
    config: &Config,
    backends: &[Arc<BackendState>],
    frontends: &Frontends,
    engine: Option<&Engine>,
    reloads: Reloads,
    announcer: Option<&Announcer>,
) -> Live {
    Live {
        node: config.node.name.clone(),
        frontends: frontends.live(&config.frontends),
        backends: backends.to_vec(),
        vrrp: engine.map_or_else(Vec::new, Engine::status),
        reloads,
        announce: announcer.map(Announcer::status),
    }
}

/// The runtime API's bearer token in `config`, if any.
fn token(config: &Config) -> Option<Arc<String>> {
    let token = config.admin.as_ref()?.token.as_ref()?;
    Some(Arc::new(token.secret.clone()))
}

fn unix_now() -> f64 {
    (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH))
        .map_or(0.0, |since| since.as_secs_f64())
}
