//! The appliance's life: start the data plane, the VRRP engine and the health checks; reload
//! on SIGHUP; and stop without turning a client away: hand the VIPs over, stop accepting, drain.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::runtime::Builder;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::backend::BackendState;
use crate::config::{self, Config};
use crate::health;
use crate::proxy::drain::Drain;
use crate::proxy::frontends::Frontends;
use crate::systemd;
use crate::vrrp::engine::Engine;
use crate::vrrp::tracking::DataPlane;

/// What runs now, and what a reload replaces.
struct Running {
    config: Config,
    backends: Vec<Arc<BackendState>>,
    checks: Vec<JoinHandle<()>>,
    frontends: Frontends,
    engine: Option<Engine>,
    failed_reloads: u64,
}

/// Runs `config` (read from `path`) until SIGTERM or SIGINT, then hands over and drains within
/// `node.shutdown_timeout`.
pub fn run(config: Config, path: &Path) -> anyhow::Result<()> {
    let drain = Drain::new();
    let backends = build_backends(&config, &[]);
    // Bind everything before serving anything, so a taken port fails start-up as a whole.
    let mut frontends = Frontends::start(config.node.threads, &drain)?;
    frontends.apply(&config.frontends, &backends)?;

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

    let control = Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    control.block_on(async {
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut running = Running {
            checks: health::checker::spawn(&backends),
            config,
            backends,
            frontends,
            engine,
            failed_reloads: 0,
        };
        tracing::info!(node = %running.config.node.name, threads = running.config.node.threads, "tandem is running");
        systemd::notify("READY=1");
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    systemd::notify("RELOADING=1");
                    running.reload(path);
                    systemd::notify("READY=1");
                }
                _ = terminate.recv() => break tracing::info!("SIGTERM: handing over and draining"),
                _ = interrupt.recv() => break tracing::info!("SIGINT: handing over and draining"),
            }
        }
        systemd::notify("STOPPING=1");
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
            tracing::warn!(?timeout, "connections still open at shutdown_timeout: closing them");
        }
        if let Some(engine) = engine {
            tokio::task::spawn_blocking(move || engine.release())
                .await
                .context("releasing the VIPs")?;
        }
        anyhow::Ok(())
    })
}

/// Backends for `config`, carrying over the run-time state of unchanged servers by name.
fn build_backends(config: &Config, previous: &[Arc<BackendState>]) -> Vec<Arc<BackendState>> {
    (config.backends.iter())
        .map(|backend| {
            let same = previous.iter().find(|old| old.config.name == backend.name);
            Arc::new(BackendState::new(backend.clone(), same.map(Arc::as_ref)))
        })
        .collect()
}

impl Running {
    /// Loads `path` again and swaps it in; an invalid file or an address that can't be bound
    /// leaves everything as it was.
    fn reload(&mut self, path: &Path) {
        let mut config = match config::load(path) {
            Ok(config) => config,
            Err(errors) => return self.reload_failed(&errors.to_string()),
        };
        let backends = build_backends(&config, &self.backends);
        if let Err(error) = self.frontends.apply(&config.frontends, &backends) {
            return self.reload_failed(&format!("{error:#}"));
        }
        for check in self.checks.drain(..) {
            check.abort();
        }
        self.checks = health::checker::spawn(&backends);
        self.backends = backends;
        if config.node.threads != self.config.node.threads {
            tracing::warn!(
                threads = self.config.node.threads,
                "node.threads changes on restart only"
            );
            config.node.threads = self.config.node.threads;
        }
        if let Some(engine) = &mut self.engine {
            let data_plane = DataPlane {
                backends: self.backends.clone(),
                frontends: self.frontends.accepting(&config.frontends),
            };
            if let Err(why) = engine.reconfigure(&config.vrrp, &data_plane) {
                tracing::warn!("VRRP keeps its running config until a restart: {why}");
                config.vrrp = self.config.vrrp.clone();
            }
        } else if !config.vrrp.is_empty() {
            tracing::warn!("VRRP instances added to a node that ran none need a restart");
            config.vrrp.clear();
        }
        self.config = config;
        tracing::info!(path = %path.display(), "config reloaded");
    }

    fn reload_failed(&mut self, why: &str) {
        self.failed_reloads += 1;
        tracing::error!(
            failed_reloads = self.failed_reloads,
            "reload failed, the running config stays:\n{why}"
        );
    }
}
