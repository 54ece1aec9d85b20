//! A backend at run time: the shared state of its servers and the selector that picks among them.
//!
//! Shared by every worker thread; the hot path touches only atomics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::balance::{self, Selector, ServerView};
use crate::config;
use crate::health::counter::{Counter, Health};

pub struct BackendState {
    pub config: config::Backend,
    pub servers: Vec<Arc<ServerState>>,
    pub selector: Box<dyn Selector>,
}

impl BackendState {
    /// Builds the backend for `config`, carrying over from `previous` (the same backend in the
    /// config being replaced) the run-time state of every server whose settings are unchanged:
    /// health and in-flight count survive a reload, so nothing flaps back to unchecked.
    pub fn new(config: config::Backend, previous: Option<&BackendState>) -> Self {
        let previous =
            previous.filter(|previous| previous.config.health_check == config.health_check);
        let servers = (config.servers.iter())
            .map(|server| {
                let same = previous.and_then(|previous| {
                    (previous.servers.iter())
                        .find(|state| state.name == server.name && state.address == server.address)
                });
                same.map_or_else(|| Arc::new(ServerState::new(&config, server)), Arc::clone)
            })
            .collect();
        let selector = balance::selector(config.balance, &config.servers);
        BackendState {
            config,
            servers,
            selector,
        }
    }

    /// Picks an eligible server not yet tried for this request.
    pub fn pick(&self, key: &balance::Key<'_>, tried: &[usize]) -> Option<usize> {
        self.selector.pick(self, key, tried)
    }

    pub fn servers_up(&self) -> usize {
        self.servers.iter().filter(|server| server.is_up()).count()
    }
}

impl ServerView for BackendState {
    fn is_up(&self, server: usize) -> bool {
        self.servers[server].is_up()
    }

    fn active(&self, server: usize) -> u64 {
        self.servers[server].active.load(Ordering::Relaxed)
    }
}

pub struct ServerState {
    pub backend: String,
    pub name: String,
    pub address: SocketAddr,
    up: AtomicBool,
    active: AtomicU64,
    /// `None` when the backend has no health check: the server is then always up, and passive
    /// failures cannot take it down since nothing would bring it back.
    health: Option<Mutex<Counter>>,
}

impl ServerState {
    fn new(backend: &config::Backend, server: &config::Server) -> Self {
        let health = (backend.health_check.as_ref())
            .map(|check| Mutex::new(Counter::new(check.rise, check.fall)));
        ServerState {
            backend: backend.name.clone(),
            name: server.name.clone(),
            address: server.address,
            up: AtomicBool::new(true),
            active: AtomicU64::new(0),
            health,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Feeds one check result (active, or a passive connect failure) to the rise/fall counter.
    pub fn record_check(&self, ok: bool, detail: &str) {
        let Some(health) = &self.health else { return };
        let mut counter = health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(changed) = counter.record(ok) else {
            return;
        };
        self.up.store(changed == Health::Up, Ordering::Relaxed);
        match changed {
            Health::Up => tracing::info!(
                backend = %self.backend, server = %self.name, address = %self.address,
                "server is up"
            ),
            Health::Down => tracing::warn!(
                backend = %self.backend, server = %self.name, address = %self.address, %detail,
                "server is down"
            ),
        }
    }

    /// Counts this server as busy until the guard drops (least_conn's load).
    pub fn track_active(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(Arc::clone(self))
    }
}

pub struct ActiveGuard(Arc<ServerState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
