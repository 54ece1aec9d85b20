//! Starts the appliance from a validated config: worker threads for the data plane and a
//! control runtime for health checks and signals.

use std::net::TcpListener as StdTcpListener;
use std::sync::Arc;
use std::thread;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::runtime::Builder;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

use crate::backend::BackendState;
use crate::config::Config;
use crate::health;
use crate::proxy::upstream::UpstreamPool;
use crate::proxy::{self, listener, FrontendCell, FrontendRuntime};
use crate::vrrp::engine::Engine;

/// One frontend's listener as one worker sees it.
struct WorkerListener {
    socket: StdTcpListener,
    frontend: FrontendCell,
    connections: Arc<Semaphore>,
}

/// Runs until SIGTERM or SIGINT; then gives up mastership of every VRRP instance.
pub fn run(config: Config) -> anyhow::Result<()> {
    let backends: Vec<Arc<BackendState>> = (config.backends.iter().cloned())
        .map(|backend| Arc::new(BackendState::new(backend)))
        .collect();

    // Bind everything before serving anything, so a taken port fails start-up as a whole.
    let threads = config.node.threads;
    let mut workers: Vec<Vec<WorkerListener>> = (0..threads).map(|_| Vec::new()).collect();
    for frontend in &config.frontends {
        let sockets = listener::bind(frontend.listen, threads).with_context(|| {
            format!(
                "frontend {}: cannot listen on {}",
                frontend.name, frontend.listen
            )
        })?;
        let cell: FrontendCell = Arc::new(ArcSwap::from_pointee(FrontendRuntime {
            config: frontend.clone(),
            backend: Arc::clone(&backends[frontend.backend]),
        }));
        let connections = Arc::new(Semaphore::new(frontend.max_connections));
        for (worker, socket) in workers.iter_mut().zip(sockets) {
            worker.push(WorkerListener {
                socket,
                frontend: Arc::clone(&cell),
                connections: Arc::clone(&connections),
            });
        }
        tracing::info!(frontend = %frontend.name, listen = %frontend.listen, mode = ?frontend.mode, "listening");
    }

    for (id, listeners) in workers.into_iter().enumerate() {
        thread::Builder::new()
            .name(format!("tandem-worker-{id}"))
            .spawn(move || run_worker(listeners))
            .context("starting a worker thread")?;
    }

    // The proxy serves before this node may claim a VIP.
    let engine = match config.vrrp.is_empty() {
        true => None,
        false => Some(Engine::start(config.vrrp.clone(), &backends)?),
    };

    let control = Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    control.block_on(async {
        let _checks = health::checker::spawn(&backends);
        let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        tracing::info!(node = %config.node.name, threads, "tandem is running");
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
        anyhow::Ok(())
    })?;
    if let Some(engine) = engine {
        engine.stop();
    }
    Ok(())
}

/// A worker: one single-threaded runtime serving its own listener of every frontend, with its
/// own upstream connections (no cross-thread handoff on the hot path).
fn run_worker(listeners: Vec<WorkerListener>) {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a worker runtime needs only memory and an epoll fd");
    runtime.block_on(async move {
        let pool = Arc::new(UpstreamPool::default());
        for listener in listeners {
            let socket = tokio::net::TcpListener::from_std(listener.socket)
                .expect("the listener is non-blocking and runtime is running");
            tokio::spawn(proxy::accept_loop(
                socket,
                listener.frontend,
                listener.connections,
                Arc::clone(&pool),
            ));
        }
        std::future::pending::<()>().await
    });
}
