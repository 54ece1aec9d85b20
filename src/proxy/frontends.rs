//! The worker threads and the listening frontends they serve, changed in place on reload:
//! an address that stays keeps its sockets (never closed and reopened), a new one is bound
//! before anything changes, a removed one stops accepting while its connections finish.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::runtime::Builder;
use tokio::sync::{mpsc, watch};

use super::connection_limit::ConnectionLimit;
use super::drain::Drain;
use super::upstream::UpstreamPool;
use super::{accept_loop, listener, FrontendCell, FrontendRuntime};
use crate::access_log::AccessLog;
use crate::backend::BackendState;
use crate::config;
use crate::limits::{self, Demand};
use crate::stats::FrontendStats;
use crate::status::LiveFrontend;
use crate::tls;
use crate::track::data_plane::FrontendAccepting;

/// One listening address, shared by every worker.
struct Listening {
    frontend: FrontendCell,
    connections: Arc<ConnectionLimit>,
    close: watch::Sender<bool>,
    /// False while accepting fails (out of file descriptors, say): what `track: frontend` sees.
    accepting: watch::Sender<bool>,
}

/// A listener handed to one worker.
struct Listen {
    socket: StdTcpListener,
    frontend: FrontendCell,
    connections: Arc<ConnectionLimit>,
    close: watch::Receiver<bool>,
    accepting: watch::Sender<bool>,
}

pub struct Frontends {
    workers: Vec<mpsc::UnboundedSender<Listen>>,
    listening: HashMap<SocketAddr, Listening>,
}

impl Frontends {
    /// Starts `threads` workers, each a single-threaded runtime with its own listener per
    /// frontend and its own upstream connections (no cross-thread handoff on the hot path).
    pub fn start(threads: usize, drain: &Arc<Drain>) -> anyhow::Result<Frontends> {
        let mut workers = Vec::with_capacity(threads);
        for id in 0..threads {
            let (sender, receiver) = mpsc::unbounded_channel();
            let drain = Arc::clone(drain);
            thread::Builder::new()
                .name(format!("tandem-worker-{id}"))
                .spawn(move || run_worker(receiver, drain))
                .context("starting a worker thread")?;
            workers.push(sender);
        }
        Ok(Frontends {
            workers,
            listening: HashMap::new(),
        })
    }

    /// Serves `frontends` from now on. Binds every new address first: if one fails, nothing
    /// changes and the error says which frontend and address.
    pub fn apply(
        &mut self,
        frontends: &[config::Frontend],
        backends: &[Arc<BackendState>],
        access_log: Option<&Arc<AccessLog>>,
    ) -> anyhow::Result<()> {
        // Certificates are read afresh on every apply, so a SIGHUP picks up renewed files; any
        // that fails to load fails the whole apply, and the running ones stay.
        let mut terminations = Vec::with_capacity(frontends.len());
        for frontend in frontends {
            let termination = (frontend.tls.as_ref())
                .map(|tls| tls::termination(tls).map(Arc::new))
                .transpose()
                .with_context(|| format!("frontend {}: TLS", frontend.name))?;
            terminations.push(termination);
        }
        let max_connections = self.max_connections(frontends, backends);
        let mut bound = HashMap::new();
        for frontend in frontends {
            if !self.listening.contains_key(&frontend.listen) {
                let sockets =
                    listener::bind(frontend.listen, self.workers.len()).with_context(|| {
                        format!(
                            "frontend {}: cannot listen on {}",
                            frontend.name, frontend.listen
                        )
                    })?;
                bound.insert(frontend.listen, sockets);
            }
        }
        for (frontend, tls) in frontends.iter().zip(terminations) {
            // By name, wherever it listened: its sessions and counters go on.
            let stats = (self.listening.values())
                .map(|listening| listening.frontend.load_full())
                .find(|running| running.config.name == frontend.name)
                .map_or_else(
                    || Arc::new(FrontendStats::new(&frontend.name)),
                    |running| Arc::clone(&running.stats),
                );
            let listening = self.listening.get_mut(&frontend.listen);
            let runtime = Arc::new(FrontendRuntime {
                config: frontend.clone(),
                backend: frontend.backend.map(|index| Arc::clone(&backends[index])),
                routes: (frontend.routes.iter())
                    .map(|route| Arc::clone(&backends[route.backend]))
                    .collect(),
                tls,
                stats,
                access_log: access_log.cloned(),
            });
            let max_connections = frontend.max_connections.unwrap_or(max_connections);
            match listening {
                Some(listening) => {
                    listening.frontend.store(runtime);
                    // Lowered, it takes effect as connections close.
                    listening.connections.set(max_connections);
                }
                None => {
                    let sockets = bound.remove(&frontend.listen).expect("bound above");
                    self.listen(runtime, sockets, max_connections);
                }
            }
        }
        self.listening.retain(|address, listening| {
            let kept = frontends.iter().any(|frontend| frontend.listen == *address);
            if !kept {
                tracing::info!(listen = %address, "frontend removed: no longer accepting");
                listening.close.send_replace(true);
            }
            kept
        });
        Ok(())
    }

    /// Whether each of `frontends` (as in the config, and applied) can accept, for VRRP
    /// trackers.
    pub fn accepting(&self, frontends: &[config::Frontend]) -> Vec<FrontendAccepting> {
        (frontends.iter())
            .map(|frontend| FrontendAccepting {
                name: frontend.name.clone(),
                accepting: self.listening[&frontend.listen].accepting.subscribe(),
            })
            .collect()
    }

    /// Each of `frontends` (as in the config, and applied) as it runs, for `/status`.
    pub fn live(&self, frontends: &[config::Frontend]) -> Vec<LiveFrontend> {
        (frontends.iter())
            .map(|frontend| {
                let listening = &self.listening[&frontend.listen];
                LiveFrontend {
                    cell: Arc::clone(&listening.frontend),
                    accepting: listening.accepting.subscribe(),
                }
            })
            .collect()
    }

    /// The `max_connections` of a frontend that sets none, from the open-file limit now. Warns
    /// when those set add up to more than the limit holds.
    fn max_connections(
        &self,
        frontends: &[config::Frontend],
        backends: &[Arc<BackendState>],
    ) -> usize {
        let checked_servers = (backends.iter())
            .filter(|backend| backend.config.health_check.is_some())
            .map(|backend| backend.servers.len())
            .sum();
        let demand = Demand {
            frontends: frontends.len(),
            threads: self.workers.len(),
            checked_servers,
        };
        let open_files = limits::open_files();
        let derived = limits::default_max_connections(open_files, demand);
        let budget = limits::connection_budget(open_files, demand);
        let total: usize = (frontends.iter())
            .map(|frontend| frontend.max_connections.unwrap_or(derived))
            .sum();
        if total > budget {
            tracing::warn!(
                max_connections = total,
                open_files,
                holds = budget,
                "max_connections over all frontends is more than the open-file limit holds: \
                 past it, health checks, connections to servers and the admin endpoint can \
                 run out of descriptors (tandem_local_shortages_total)"
            );
        }
        if frontends
            .iter()
            .any(|frontend| frontend.max_connections.is_none())
        {
            tracing::info!(
                open_files,
                ?demand,
                max_connections = derived,
                "default max_connections per frontend"
            );
        }
        derived
    }

    fn listen(
        &mut self,
        runtime: Arc<FrontendRuntime>,
        sockets: Vec<StdTcpListener>,
        max_connections: usize,
    ) {
        let config = &runtime.config;
        tracing::info!(frontend = %config.name, listen = %config.listen, mode = ?config.mode, max_connections, "listening");
        let listening = Listening {
            connections: ConnectionLimit::new(max_connections),
            close: watch::channel(false).0,
            accepting: watch::channel(true).0,
            frontend: Arc::new(ArcSwap::new(Arc::clone(&runtime))),
        };
        for (worker, socket) in self.workers.iter().zip(sockets) {
            let _ = worker.send(Listen {
                socket,
                frontend: Arc::clone(&listening.frontend),
                connections: Arc::clone(&listening.connections),
                close: listening.close.subscribe(),
                accepting: listening.accepting.clone(),
            });
        }
        self.listening.insert(config.listen, listening);
    }
}

fn run_worker(mut listens: mpsc::UnboundedReceiver<Listen>, drain: Arc<Drain>) {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a worker runtime needs only memory and an epoll fd");
    runtime.block_on(async move {
        let pool = Arc::new(UpstreamPool::shared());
        while let Some(listen) = listens.recv().await {
            match tokio::net::TcpListener::from_std(listen.socket) {
                Ok(socket) => {
                    tokio::spawn(accept_loop(
                        socket,
                        listen.frontend,
                        listen.connections,
                        Arc::clone(&pool),
                        Arc::clone(&drain),
                        listen.close,
                        listen.accepting,
                    ));
                }
                Err(error) => tracing::error!(%error, "a worker could not take its listener"),
            }
        }
        // Every frontend change has been handed over: keep serving until the process ends.
        std::future::pending::<()>().await
    });
}
