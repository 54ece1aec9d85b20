//! A backend at run time: the shared state of its servers and the selector that picks among them.
//!
//! Shared by every worker thread; the hot path touches only atomics.

pub mod rise_fall;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::balance::{self, Selector, ServerView};
use crate::config;
use crate::stats::ServerStats;
use rise_fall::{Counter, Health};

pub struct BackendState {
    pub config: config::Backend,
    pub servers: Vec<Arc<ServerState>>,
    pub selector: Box<dyn Selector>,
    /// Marked changed whenever a server goes up or down, so VRRP trackers (on another thread and
    /// runtime) recompute at once instead of polling.
    health_changes: watch::Sender<()>,
}

impl BackendState {
    /// Builds the backend for `config`, carrying over from `previous` (the same backend in the
    /// config being replaced) the run-time state of every server whose settings are unchanged:
    /// health and in-flight count survive a reload, so nothing flaps back to unchecked.
    pub fn new(config: config::Backend, previous: Option<&BackendState>) -> Self {
        // Trackers keep listening across reloads: the channel belongs to the backend's name.
        let health_changes = previous.map_or_else(
            || watch::Sender::new(()),
            |previous| previous.health_changes.clone(),
        );
        let previous =
            previous.filter(|previous| previous.config.health_check == config.health_check);
        let servers = (config.servers.iter())
            .map(|server| {
                let same = previous.and_then(|previous| {
                    (previous.servers.iter())
                        .find(|state| state.name == server.name && state.address == server.address)
                });
                same.map_or_else(
                    || Arc::new(ServerState::new(&config, server, health_changes.clone())),
                    Arc::clone,
                )
            })
            .collect();
        let selector = balance::selector(config.balance, &config.servers);
        BackendState {
            config,
            servers,
            selector,
            health_changes,
        }
    }

    /// Resolves `changed()` after any of the backend's servers has gone up or down, or had its
    /// first check result.
    pub fn health_changes(&self) -> watch::Receiver<()> {
        self.health_changes.subscribe()
    }

    /// Picks an eligible server not yet tried for this request.
    pub fn pick(&self, key: &balance::Key<'_>, tried: &[usize]) -> Option<usize> {
        self.selector.pick(self, key, tried)
    }

    /// `preferred` (a server the client is pinned to) while it is up and not yet tried, even at
    /// weight 0 (draining servers keep their pinned clients, as in HAProxy); otherwise a pick.
    pub fn pick_preferring(
        &self,
        preferred: Option<usize>,
        key: &balance::Key<'_>,
        tried: &[usize],
    ) -> Option<usize> {
        match preferred {
            Some(server) if self.servers[server].is_up() && !tried.contains(&server) => {
                Some(server)
            }
            _ => self.pick(key, tried),
        }
    }

    /// The index of the server called `name`.
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|server| server.name == name)
    }

    pub fn servers_up(&self) -> usize {
        self.servers.iter().filter(|server| server.is_up()).count()
    }

    /// Whether every server has had a health verdict since it was added: until then its health
    /// is only the optimistic start-up guess. Always, without a health check.
    pub fn checked(&self) -> bool {
        self.servers.iter().all(|server| server.checked())
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
    /// Set by the first check result: `up` is no longer a guess.
    checked: AtomicBool,
    active: AtomicU64,
    /// `None` when the backend has no health check: the server is then always up, and passive
    /// failures cannot take it down since nothing would bring it back.
    health: Option<Mutex<Counter>>,
    health_changes: watch::Sender<()>,
    pub stats: ServerStats,
}

impl ServerState {
    fn new(
        backend: &config::Backend,
        server: &config::Server,
        health_changes: watch::Sender<()>,
    ) -> Self {
        let health = (backend.health_check.as_ref())
            .map(|check| Mutex::new(Counter::new(check.rise, check.fall)));
        ServerState {
            backend: backend.name.clone(),
            name: server.name.clone(),
            address: server.address,
            up: AtomicBool::new(true),
            checked: AtomicBool::new(health.is_none()),
            active: AtomicU64::new(0),
            health,
            health_changes,
            stats: ServerStats::new(&backend.name, &server.name),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Requests (http) or connections (tcp) in flight to this server.
    pub fn current_sessions(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether the server has had a check result since it was added (always, without checks).
    pub fn checked(&self) -> bool {
        self.checked.load(Ordering::Relaxed)
    }

    /// Feeds one check result (active, or a passive connect failure) to the rise/fall counter.
    pub fn record_check(&self, ok: bool, detail: &str) {
        let Some(health) = &self.health else { return };
        let mut counter = health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = !self.checked.swap(true, Ordering::Relaxed);
        let Some(changed) = counter.record(ok) else {
            if first {
                // Trackers wait for the first verdict before letting VRRP preempt.
                self.health_changes.send_replace(());
            }
            return;
        };
        self.up.store(changed == Health::Up, Ordering::Relaxed);
        // Works without receivers too: it only marks the value as changed.
        self.health_changes.send_replace(());
        match changed {
            Health::Up => tracing::info!(
                backend = %self.backend, server = %self.name, address = %self.address,
                "server is up"
            ),
            Health::Down => {
                self.stats.check_up_down.increment(1);
                tracing::warn!(
                backend = %self.backend, server = %self.name, address = %self.address, %detail,
                "server is down"
                );
            }
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

/// A backend `web` of loopback servers (ports 81, 82...) with a tcp check that takes one result
/// to rise or fall: the fixture unit tests share.
#[cfg(test)]
pub(crate) fn checked_backend(servers: &[&str]) -> BackendState {
    use std::time::Duration;
    let config = config::Backend {
        name: "web".into(),
        balance: config::Balance::RoundRobin,
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
        retries: 0,
        health_check: Some(config::HealthCheck {
            kind: config::CheckKind::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
            port: None,
            address: None,
        }),
        servers: (servers.iter().zip(81u16..))
            .map(|(name, port)| config::Server {
                name: (*name).into(),
                address: SocketAddr::from(([127, 0, 0, 1], port)),
                weight: 1,
            })
            .collect(),
        persistence: None,
        send_proxy: None,
        protocol: config::UpstreamProtocol::Http11,
    };
    BackendState::new(config, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> BackendState {
        checked_backend(&["s1", "s2"])
    }

    #[test]
    fn a_rebuilt_backend_keeps_unchanged_servers_and_its_change_channel() {
        let old = backend();
        old.servers[0].record_check(false, "refused");
        let mut changes = old.health_changes();
        let mut config = old.config.clone();
        config.servers[1].address = SocketAddr::from(([127, 0, 0, 1], 83));
        let new = BackendState::new(config, Some(&old));
        assert!(
            Arc::ptr_eq(&new.servers[0], &old.servers[0]),
            "s1 is unchanged"
        );
        assert!(!new.servers[0].is_up(), "s1's health survives");
        assert!(new.servers[0].checked(), "and so does its first verdict");
        assert!(!new.servers[1].checked(), "the moved s2 waits for its own");
        assert!(
            !Arc::ptr_eq(&new.servers[1], &old.servers[1]),
            "s2 moved: a new server"
        );
        new.servers[1].record_check(false, "refused");
        assert!(
            changes.has_changed().unwrap(),
            "trackers of the old backend hear the new one"
        );
        changes.mark_unchanged();

        let mut checked_differently = new.config.clone();
        checked_differently.health_check.as_mut().unwrap().rise = 5;
        let rebuilt = BackendState::new(checked_differently, Some(&new));
        assert!(
            !Arc::ptr_eq(&rebuilt.servers[0], &new.servers[0]),
            "new check settings start afresh"
        );
    }

    #[test]
    fn a_pinned_server_is_preferred_while_up_and_untried_whatever_its_weight() {
        let mut config = backend().config;
        config.servers[1].weight = 0;
        let backend = BackendState::new(config, None);
        let key = balance::Key {
            client_ip: [192, 0, 2, 1].into(),
            uri: "",
        };
        assert_eq!(backend.server_index("s2"), Some(1));
        assert_eq!(backend.server_index("s3"), None);
        assert_eq!(backend.pick_preferring(Some(1), &key, &[]), Some(1));
        assert_eq!(backend.pick_preferring(Some(1), &key, &[1]), Some(0));
        assert_eq!(backend.pick_preferring(None, &key, &[]), Some(0));
        backend.servers[1].record_check(false, "refused");
        assert_eq!(backend.pick_preferring(Some(1), &key, &[]), Some(0));
    }

    #[test]
    fn health_changes_mark_first_verdicts_and_transitions_only() {
        let backend = backend();
        let mut changes = backend.health_changes();
        assert!(!backend.checked(), "no server has had a verdict yet");
        backend.servers[0].record_check(true, "");
        assert!(changes.has_changed().unwrap(), "s1's first verdict");
        changes.mark_unchanged();
        backend.servers[0].record_check(true, "");
        assert!(!changes.has_changed().unwrap(), "up and staying up");
        assert!(!backend.checked(), "s2 has had no verdict yet");
        backend.servers[0].record_check(false, "refused");
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(backend.servers_up(), 1);
        backend.servers[1].record_check(false, "refused");
        backend.servers[1].record_check(false, "refused");
        assert!(changes.has_changed().unwrap());
        assert!(backend.checked());
        changes.mark_unchanged();
        backend.servers[0].record_check(true, "");
        assert!(changes.has_changed().unwrap());
        assert_eq!(backend.servers_up(), 1);
    }
}
