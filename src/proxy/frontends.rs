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

use super::client_limit::ClientConnections;
use super::connection_limit::ConnectionLimit;
use super::drain::Drain;
use super::upstream::UpstreamPool;
use super::{accept_loop, listener, FrontendCell, FrontendRuntime};
use crate::access_log::AccessLog;
use crate::backend::BackendState;
use crate::config;
use crate::limits::{self, Demand};
use crate::rules::rate_limit::SharedRateLimit;
use crate::stats::{self, FrontendStats};
use crate::tls;
use crate::track::data_plane::FrontendAccepting;

/// One listening address, shared by every worker.
struct Listening {
    frontend: FrontendCell,
    connections: Arc<ConnectionLimit>,
    close: watch::Sender<bool>,
    /// False while accepting fails (out of file descriptors, say): what `track: frontend` sees.
    accepting: watch::Sender<bool>,
    /// False while disabled by the runtime API: its listeners are closed.
    enabled: bool,
}

/// A listener handed to one worker.
struct Listen {
    socket: StdTcpListener,
    frontend: FrontendCell,
    connections: Arc<ConnectionLimit>,
    close: watch::Receiver<bool>,
    accepting: watch::Sender<bool>,
}

/// A frontend as it runs, and whether its listeners accept.
pub struct LiveFrontend {
    pub cell: FrontendCell,
    pub accepting: watch::Receiver<bool>,
    /// False while disabled by the runtime API.
    pub enabled: bool,
    /// Its `max_connections`, as configured or derived.
    pub connections: Arc<ConnectionLimit>,
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

    /// Serves `frontends` from now on; see [`Frontends::prepare`] for what can fail.
    pub fn apply(
        &mut self,
        frontends: &[config::Frontend],
        backends: &[Arc<BackendState>],
        access_log: Option<&Arc<AccessLog>>,
    ) -> anyhow::Result<()> {
        let prepared = self.prepare(frontends, backends, access_log)?;
        self.commit(prepared);
        Ok(())
    }

    /// Does everything serving `frontends` needs that can fail, and changes nothing that runs:
    /// reads the certificates and binds every new address. Dropping the result closes what it
    /// bound; the error says which frontend and address failed.
    pub fn prepare(
        &self,
        frontends: &[config::Frontend],
        backends: &[Arc<BackendState>],
        access_log: Option<&Arc<AccessLog>>,
    ) -> anyhow::Result<PreparedFrontends> {
        // Certificates are read afresh on every apply, so a SIGHUP picks up renewed files; any
        // that fails to load fails the whole apply, and the running ones stay.
        let mut terminations = Vec::with_capacity(frontends.len());
        for frontend in frontends {
            let termination = (frontend.tls.as_ref())
                .map(|tls| tls::termination(&frontend.name, tls).map(Arc::new))
                .transpose()
                .with_context(|| format!("frontend {}: TLS", frontend.name))?;
            terminations.push(termination);
        }
        let derived = self.max_connections(frontends, backends);
        let mut runtimes = Vec::with_capacity(frontends.len());
        let mut new = HashMap::new();
        for (frontend, tls) in frontends.iter().zip(terminations) {
            // By name, wherever it listened: its sessions, counters and clients' connections
            // go on.
            let running = (self.listening.values())
                .map(|listening| listening.frontend.load_full())
                .find(|running| running.config.name == frontend.name);
            let stats = running.as_ref().map_or_else(
                || Arc::new(FrontendStats::new(&frontend.name)),
                |running| Arc::clone(&running.stats),
            );
            let client_connections = running
                .as_ref()
                .map_or_else(ClientConnections::new, |running| {
                    Arc::clone(&running.client_connections)
                });
            let runtime = Arc::new(FrontendRuntime {
                config: frontend.clone(),
                backend: frontend.backend.map(|index| Arc::clone(&backends[index])),
                rule_backends: (frontend.rules.backends.iter())
                    .map(|&index| Arc::clone(&backends[index]))
                    .collect(),
                rule_hits: (frontend.rules.rules.iter())
                    .map(|rule| stats::rule_hits(&frontend.name, &rule.name))
                    .collect(),
                rate_limits: rate_limits(&frontend.rules, running.as_deref()),
                tls,
                stats,
                client_connections,
                access_log: access_log.cloned(),
            });
            let max_connections = frontend.max_connections.unwrap_or(derived);
            if !self.listening.contains_key(&frontend.listen) {
                let sockets =
                    listener::bind(frontend.listen, self.workers.len()).with_context(|| {
                        format!(
                            "frontend {}: cannot listen on {}",
                            frontend.name, frontend.listen
                        )
                    })?;
                let limit = ConnectionLimit::new(max_connections);
                new.insert(frontend.listen, (Listening::new(&runtime, limit), sockets));
            }
            runtimes.push((runtime, max_connections));
        }
        Ok(PreparedFrontends { runtimes, new })
    }

    /// Serves what `prepared` holds from now on: new addresses start accepting, kept ones take
    /// their new settings, and removed ones stop accepting while their connections finish.
    pub fn commit(&mut self, prepared: PreparedFrontends) {
        let PreparedFrontends { runtimes, mut new } = prepared;
        for (runtime, max_connections) in &runtimes {
            let config = &runtime.config;
            match self.listening.get_mut(&config.listen) {
                Some(listening) => {
                    listening.frontend.store(Arc::clone(runtime));
                    // Lowered, it takes effect as connections close.
                    listening.connections.set(*max_connections);
                }
                None => {
                    let (listening, sockets) = new.remove(&config.listen).expect("prepared");
                    self.listen(listening, sockets);
                }
            }
        }
        self.listening.retain(|address, listening| {
            let kept = runtimes
                .iter()
                .any(|(runtime, _)| runtime.config.listen == *address);
            if !kept {
                tracing::info!(listen = %address, "frontend removed: no longer accepting");
                listening.close.send_replace(true);
            }
            kept
        });
    }

    /// Sends the running frontends' requests to `backends` from now on (the same config's,
    /// rebuilt because a name resolved to new addresses); nothing else changes.
    pub fn replace_backends(&self, backends: &[Arc<BackendState>]) {
        for listening in self.listening.values() {
            let running = listening.frontend.load_full();
            let config = &running.config;
            listening.frontend.store(Arc::new(FrontendRuntime {
                backend: config.backend.map(|index| Arc::clone(&backends[index])),
                rule_backends: (config.rules.backends.iter())
                    .map(|&index| Arc::clone(&backends[index]))
                    .collect(),
                ..FrontendRuntime::clone(&running)
            }));
        }
    }

    /// Whether each of `frontends` (as in the config, and applied) can accept, for VRRP
    /// trackers.
    pub fn accepting(&self, frontends: &[config::Frontend]) -> Vec<FrontendAccepting> {
        self.accepting_once(frontends, None)
    }

    /// [`Frontends::accepting`] for `frontends` as they will be once `prepared` is committed.
    pub fn accepting_once(
        &self,
        frontends: &[config::Frontend],
        prepared: Option<&PreparedFrontends>,
    ) -> Vec<FrontendAccepting> {
        (frontends.iter())
            .map(|frontend| {
                let new = prepared.and_then(|prepared| prepared.new.get(&frontend.listen));
                let listening = match new {
                    Some((listening, _)) => listening,
                    None => &self.listening[&frontend.listen],
                };
                FrontendAccepting {
                    name: frontend.name.clone(),
                    accepting: listening.accepting.subscribe(),
                }
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
                    enabled: listening.enabled,
                    connections: Arc::clone(&listening.connections),
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
                frontends = demand.frontends,
                threads = demand.threads,
                checked_servers = demand.checked_servers,
                max_connections = derived,
                "default max_connections per frontend"
            );
        }
        derived
    }

    fn listen(&mut self, listening: Listening, sockets: Vec<StdTcpListener>) {
        let runtime = listening.frontend.load();
        let config = &runtime.config;
        tracing::info!(frontend = %config.name, listen = %config.listen, mode = %config.mode, "listening");
        hand_out(&self.workers, &listening, sockets);
        self.listening.insert(config.listen, listening);
    }

    /// Enables or disables the frontend called `name` (the runtime API): `Ok(None)` when
    /// there is none, `Ok(Some(false))` when it already was. Disabled, its listeners close, so new clients are refused at once (as
    /// when it is removed) while its open connections finish; enabled, it binds its address
    /// again. It stays disabled across reloads while it listens on the same address.
    /// Returns once the listeners are closed.
    pub async fn set_enabled(&mut self, name: &str, enabled: bool) -> anyhow::Result<Option<bool>> {
        let Some(listening) = (self.listening.values_mut())
            .find(|listening| listening.frontend.load().config.name == name)
        else {
            return Ok(None);
        };
        if listening.enabled == enabled {
            return Ok(Some(false));
        }
        let listen = listening.frontend.load().config.listen;
        match enabled {
            false => {
                listening.close.send_replace(true);
                // Each accept loop lets its receiver go after closing its listener.
                listening.close.closed().await;
            }
            true => {
                let sockets = listener::bind(listen, self.workers.len())
                    .with_context(|| format!("frontend {name}: cannot listen on {listen}"))?;
                listening.close = watch::channel(false).0;
                hand_out(&self.workers, listening, sockets);
            }
        }
        listening.enabled = enabled;
        Ok(Some(true))
    }
}

/// Gives each worker its listener of `listening`.
fn hand_out(
    workers: &[mpsc::UnboundedSender<Listen>],
    listening: &Listening,
    sockets: Vec<StdTcpListener>,
) {
    for (worker, socket) in workers.iter().zip(sockets) {
        let _ = worker.send(Listen {
            socket,
            frontend: Arc::clone(&listening.frontend),
            connections: Arc::clone(&listening.connections),
            close: listening.close.subscribe(),
            accepting: listening.accepting.clone(),
        });
    }
}

/// What a reload has bound and built for its frontends, not serving yet.
pub struct PreparedFrontends {
    /// One per frontend, in config order, with the number of clients it serves at once.
    runtimes: Vec<(Arc<FrontendRuntime>, usize)>,
    /// Addresses not listened on before, with their sockets (one per worker).
    new: HashMap<SocketAddr, (Listening, Vec<StdTcpListener>)>,
}

impl Listening {
    fn new(runtime: &Arc<FrontendRuntime>, connections: Arc<ConnectionLimit>) -> Listening {
        Listening {
            connections,
            close: watch::channel(false).0,
            accepting: watch::channel(true).0,
            frontend: Arc::new(ArcSwap::new(Arc::clone(runtime))),
            enabled: true,
        }
    }
}

/// A limiter for each rule of `rules` with a rate limit: the running frontend's for a named
/// rule of the same name and limit, so that a reload gives no client its burst again; else a
/// new one (an unnamed rule's index may belong to another rule after a reload).
fn rate_limits(
    rules: &config::RuleSet,
    running: Option<&FrontendRuntime>,
) -> Vec<Option<Arc<SharedRateLimit>>> {
    let kept = |rule: &config::rules::Rule, limit: &config::RateLimit| {
        let running = running.filter(|_| !rule.name.bytes().all(|byte| byte.is_ascii_digit()))?;
        let index = (running.config.rules.rules.iter())
            .position(|old| old.name == rule.name && old.rate_limit.as_ref() == Some(limit))?;
        running.rate_limits.get(index).cloned().flatten()
    };
    (rules.rules.iter())
        .map(|rule| {
            let limit = rule.rate_limit.as_ref()?;
            Some(kept(rule, limit).unwrap_or_else(|| Arc::new(SharedRateLimit::new(limit))))
        })
        .collect()
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
