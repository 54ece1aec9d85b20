//! A backend at run time: the shared state of its servers and the selector that picks among them.
//!
//! Shared by every worker thread; the hot path touches only atomics.

pub mod admin_state;
pub mod check_record;
pub mod queue;
pub mod rise_fall;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::balance::{self, Selector, ServerView};
use crate::config::{self, DnsName, ServerAddress};
use crate::dns::Resolved;
use crate::stats::{BackendStats, ServerStats};
use crate::tls::{
    self,
    upstream::{Origination, ServerTls, UpstreamServer},
};
use admin_state::{AdminState, Override};
use check_record::{CheckRecord, CheckStatus};
use queue::Queue;
use rise_fall::{Counter, Health};

pub struct BackendState {
    pub config: config::Backend,
    pub servers: Vec<Arc<ServerState>>,
    /// The settings of each of `servers`, by index: `config.servers` with each named by DNS
    /// replaced by one per address.
    pub server_configs: Vec<config::Server>,
    /// Over the primary servers (every server, without backups).
    pub selector: Box<dyn Selector>,
    /// Marked changed whenever a server goes up or down, so VRRP trackers (on another thread and
    /// runtime) recompute at once instead of polling.
    health_changes: watch::Sender<()>,
    /// Over the backup servers, used while no primary is in service; `None` without backups.
    backup_selector: Option<Box<dyn Selector>>,
    /// Where requests wait for servers with `max_connections`; kept across reloads, as the
    /// servers that hand it slots are.
    pub queue: Arc<Queue>,
    /// TLS to each server, in server order (`with_tls`); empty: every server plain. Shared
    /// with the backend a runtime change rebuilds from this one.
    tls: Arc<Vec<ServerTls>>,
    /// Each server's runtime changes, by index; `server_configs` has their weight.
    overrides: Vec<Option<Override>>,
    /// The backend's own counters (the responses of every request sent to it).
    pub stats: BackendStats,
}

/// Why a request or connection got no server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// None eligible (down, drained, or every one tried).
    NoServer,
    /// Every eligible server was full and so was the queue.
    QueueFull,
    /// Every eligible server stayed full for `queue_timeout`.
    QueueTimeout,
}

/// Resolves when a session's server shuts its sessions down (`BackendState::shutdown_of`).
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What a request gets on arrival.
pub enum Admission {
    /// A server, counted busy until the guard drops.
    Go(usize, ActiveGuard),
    /// Eligible servers exist but are full: wait in the queue.
    Wait(Option<usize>),
    NoServer,
}

impl BackendState {
    /// Builds the backend for `config`, carrying over from `previous` (the same backend in the
    /// config being replaced) the run-time state of every server whose settings are unchanged:
    /// health and in-flight count survive a reload, so nothing flaps back to unchecked.
    pub fn new(
        config: config::Backend,
        resolved: &Resolved,
        previous: Option<&BackendState>,
    ) -> Self {
        // Trackers keep listening across reloads: the channel belongs to the backend's name.
        let health_changes = previous.map_or_else(
            || watch::Sender::new(()),
            |previous| previous.health_changes.clone(),
        );
        let queue = previous.map_or_else(Arc::default, |previous| Arc::clone(&previous.queue));
        // Runtime changes carry over whatever else changed, by the server's own entry.
        let carrier = previous;
        let previous =
            previous.filter(|previous| previous.config.health_check == config.health_check);
        let expanded = expand(&config, resolved);
        let servers = (expanded.iter())
            .map(|member| {
                let server = &member.server;
                let same = previous.and_then(|previous| {
                    (previous.servers.iter())
                        .find(|state| state.name == server.name && state.address == member.address)
                        .filter(|state| state.limits_are(server))
                });
                same.map_or_else(
                    || {
                        let state = ServerState::new(&config, member, health_changes.clone());
                        Arc::new(state.limited(server, &queue))
                    },
                    Arc::clone,
                )
            })
            .collect();
        let entries: Vec<config::Server> =
            (expanded.into_iter()).map(|member| member.server).collect();
        let overrides: Vec<Option<Override>> = (entries.iter())
            .map(|entry| carried_override(carrier, entry))
            .collect();
        let server_configs = overridden(entries, &overrides);
        let (selector, backup_selector) = selectors(&config, &server_configs);
        let stats = BackendStats::new(&config.name);
        BackendState {
            config,
            servers,
            server_configs,
            selector,
            health_changes,
            backup_selector,
            queue,
            tls: Arc::default(),
            overrides,
            stats,
        }
    }

    /// This backend with server `index`'s runtime changes replaced by `change` (`None`: back
    /// to the file's entry): the same servers, health and TLS, new selectors. What the
    /// runtime API applies; nothing is read from disk.
    pub fn changed(&self, index: usize, change: Option<Override>) -> BackendState {
        let mut entries = self.server_configs.clone();
        entries[index] = self.entry(index).clone();
        let mut overrides = self.overrides.clone();
        overrides[index] = change.filter(|change| !change.is_noop());
        let server_configs = overridden(entries, &overrides);
        let (selector, backup_selector) = selectors(&self.config, &server_configs);
        BackendState {
            config: self.config.clone(),
            servers: self.servers.clone(),
            server_configs,
            selector,
            health_changes: self.health_changes.clone(),
            backup_selector,
            queue: Arc::clone(&self.queue),
            tls: Arc::clone(&self.tls),
            overrides,
            stats: self.stats.clone(),
        }
    }

    /// Server `index`'s entry in the file (as expanded for a server named by DNS), without
    /// runtime changes.
    pub fn entry(&self, index: usize) -> &config::Server {
        match &self.overrides[index] {
            Some(change) => &change.entry,
            None => &self.server_configs[index],
        }
    }

    /// Server `index`'s runtime changes, if any.
    pub fn change(&self, index: usize) -> Option<&Override> {
        self.overrides[index].as_ref()
    }

    /// Server `index`'s administrative state.
    pub fn admin_state(&self, index: usize) -> AdminState {
        self.change(index)
            .map_or(AdminState::Ready, |change| change.state)
    }

    /// Adds the TLS to its servers that the config asks for, reading its files now: each apply
    /// (start-up or SIGHUP) reads them afresh, and a file that fails fails the apply.
    pub fn with_tls(mut self) -> Result<Self, tls::upstream::UpstreamTlsError> {
        let servers = (self.server_configs.iter().zip(&self.servers)).map(|(server, state)| {
            let named = |file: &config::Server| match &state.dns_name {
                Some(name) => file.address == ServerAddress::Name(name.clone()),
                None => file.name == server.name,
            };
            UpstreamServer {
                server,
                index: (self.config.servers.iter()).position(named).unwrap_or(0),
                address: state.address.ip(),
                dns_host: state.dns_name.as_ref().map(|name| name.host.as_str()),
            }
        });
        self.tls = Arc::new(tls::upstream::for_servers(&self.config, servers)?);
        Ok(self)
    }

    /// TLS for the traffic to server `index`; `None`: plain.
    pub fn tls(&self, index: usize) -> Option<&Origination> {
        self.tls.get(index)?.traffic.as_ref()
    }

    /// TLS for a connection to server `index` that will switch protocols (WebSocket): ALPN
    /// offers http/1.1 alone. `None`: plain.
    pub fn upgrade_tls(&self, index: usize) -> Option<&Origination> {
        let tls = self.tls.get(index)?;
        tls.upgrade.as_ref().or(tls.traffic.as_ref())
    }

    /// TLS for the health checks of server `index`; `None`: plain.
    pub fn check_tls(&self, index: usize) -> Option<&Origination> {
        self.tls.get(index)?.check.as_ref()
    }

    /// Once `current` serves in place of `previous` (start-up, a reload, a DNS change): what
    /// the queue must know of each server that the selectors know from the config. Servers
    /// of `previous` that `current` does not carry over are retired, and servers at weight 0
    /// drained, so that neither is handed a waiting request's slot.
    pub fn take_over(previous: &[Arc<BackendState>], current: &[Arc<BackendState>]) {
        let kept = |server: &Arc<ServerState>| {
            (current.iter().flat_map(|backend| &backend.servers))
                .any(|state| Arc::ptr_eq(state, server))
        };
        for server in previous.iter().flat_map(|backend| &backend.servers) {
            if !kept(server) {
                server.retired.store(true, Ordering::Relaxed);
            }
        }
        for backend in current {
            for (index, (server, config)) in
                (backend.servers.iter().zip(&backend.server_configs)).enumerate()
            {
                server.drained.store(config.weight == 0, Ordering::Relaxed);
                server.set_maint(backend.admin_state(index) == AdminState::Maint);
            }
        }
    }

    /// Resolves `changed()` after any of the backend's servers has gone up or down, or had its
    /// first check result.
    pub fn health_changes(&self) -> watch::Receiver<()> {
        self.health_changes.subscribe()
    }

    /// Picks an eligible server not yet tried for this request: a primary, or a backup while no
    /// primary is in service.
    pub fn pick(&self, key: &balance::Key<'_>, tried: &[usize]) -> Option<usize> {
        let picked = self.selector.pick(self, key, tried);
        match &self.backup_selector {
            Some(backups) if picked.is_none() && !self.primary_in_service() => {
                backups.pick(self, key, tried)
            }
            _ => picked,
        }
    }

    /// Whether a primary server is up and not drained: backups then take no new traffic.
    pub fn primary_in_service(&self) -> bool {
        (self.servers.iter().zip(&self.server_configs))
            .any(|(state, config)| !config.backup && config.weight > 0 && state.is_up())
    }

    /// A server for this request now, or whether it should wait for one to have room.
    pub fn admit(
        &self,
        preferred: Option<usize>,
        key: &balance::Key<'_>,
        tried: &[usize],
    ) -> Admission {
        // Another request may take the last slot between a pick and its count: pick again,
        // and the full server is skipped.
        for _ in 0..=self.servers.len() {
            let Some(index) = self.pick_preferring(preferred, key, tried) else {
                return match self.could_wait(tried) {
                    true => Admission::Wait(None),
                    false => Admission::NoServer,
                };
            };
            if let Some(active) = self.servers[index].try_track_active() {
                return Admission::Go(index, active);
            }
            if matches!(
                self.config.balance,
                config::Balance::SourceHash | config::Balance::UriHash { .. }
            ) {
                // The key's server, full: its keys wait for it rather than move.
                return Admission::Wait(Some(index));
            }
        }
        Admission::Wait(None)
    }

    /// Waits in the queue for a slot, first come first served, within the backend's
    /// `queue_timeout`; `Err` when the queue is full or the time runs out.
    pub async fn wait_for_room(
        &self,
        preferred: Option<usize>,
        key: &balance::Key<'_>,
        tried: &[usize],
    ) -> Result<(usize, ActiveGuard), Refused> {
        let ticket = {
            let mut waiting = self.queue.lock();
            // Again under the lock, which every slot freed takes: none is missed.
            match self.admit(preferred, key, tried) {
                Admission::Go(index, active) => return Ok((index, active)),
                Admission::NoServer => return Err(Refused::NoServer),
                Admission::Wait(target) => {
                    let target = target.map(|index| &self.servers[index]);
                    let backup = !self.primary_in_service();
                    (self
                        .queue
                        .enqueue(&mut waiting, target, backup, self.config.queue_size))
                    .map_err(|_| Refused::QueueFull)?
                }
            }
        };
        let active = (ticket.wait(self.config.queue_timeout).await).ok_or(Refused::QueueTimeout)?;
        // A reload may have replaced the server meanwhile; its slot is then given back.
        let index = (self.servers.iter())
            .position(|server| Arc::ptr_eq(server, &active.0))
            .ok_or(Refused::NoServer)?;
        Ok((index, active))
    }

    /// Whether an eligible server not yet tried is merely full: then waiting can help.
    fn could_wait(&self, tried: &[usize]) -> bool {
        let backups = !self.primary_in_service();
        (self.servers.iter().zip(&self.server_configs).enumerate()).any(
            |(index, (state, config))| {
                config.backup == backups
                    && config.weight > 0
                    && state.limit.is_some()
                    && state.is_up()
                    && !tried.contains(&index)
            },
        )
    }

    /// Resolves once the sessions on `server` are to be closed: it was marked down
    /// (`on_down: shutdown_sessions`), or it is a backup and a primary came up
    /// (`on_up: shutdown_backup_sessions`). `None` when the backend closes none of its sessions,
    /// so that only backends that do pay for the future.
    pub fn shutdown_of(self: &Arc<Self>, server: usize) -> Option<Shutdown> {
        let backup = self.server_configs[server].backup;
        let on_up = self.config.shutdown_backup_sessions_on_up && backup;
        if !self.config.shutdown_sessions_on_down && !on_up {
            return None;
        }
        let mut changes = self.health_changes();
        let backend = Arc::clone(self);
        Some(Box::pin(async move {
            loop {
                let down =
                    backend.config.shutdown_sessions_on_down && !backend.servers[server].is_up();
                if down || (on_up && backend.primary_in_service()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }))
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
            Some(server)
                if self.servers[server].is_up()
                    && !tried.contains(&server)
                    && self.servers[server].has_room()
                    && (!self.server_configs[server].backup || !self.primary_in_service()) =>
            {
                Some(server)
            }
            _ => self.pick(key, tried),
        }
    }

    /// The index of the server called `name`.
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|server| server.name == name)
    }

    /// Primary servers up: what VRRP tracking and `active_servers` count.
    pub fn servers_up(&self) -> usize {
        (self.servers.iter().zip(&self.server_configs))
            .filter(|(state, config)| !config.backup && state.is_up())
            .count()
    }

    /// Primary (non-backup) servers, up or not.
    pub fn primaries(&self) -> usize {
        (self.server_configs.iter())
            .filter(|server| !server.backup)
            .count()
    }

    /// Backup servers up.
    pub fn backups_up(&self) -> usize {
        (self.servers.iter().zip(&self.server_configs))
            .filter(|(state, config)| config.backup && state.is_up())
            .count()
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

    fn is_up_with_room(&self, server: usize) -> bool {
        let server = &self.servers[server];
        server.is_up() && server.has_room()
    }

    fn effective_weight(&self, server: usize, weight: u32) -> u64 {
        self.servers[server].effective_weight(weight)
    }
}

/// `servers` with those not of the role (backup or primary) drained, so that a selector built
/// from them never picks those.
fn in_role(servers: &[config::Server], backup: bool) -> Vec<config::Server> {
    let mut servers = servers.to_vec();
    for server in &mut servers {
        if server.backup != backup {
            server.weight = 0;
        }
    }
    servers
}

/// The selectors over the primaries and, if any, over the backups.
fn selectors(
    config: &config::Backend,
    servers: &[config::Server],
) -> (Box<dyn Selector>, Option<Box<dyn Selector>>) {
    let selector = balance::selector(config.balance, &in_role(servers, false));
    let backup_selector = (servers.iter().any(|server| server.backup)).then(|| {
        let backups = in_role(servers, true);
        if config.all_backups {
            balance::selector(config.balance, &backups)
        } else {
            Box::new(balance::FirstUp::new(&backups)) as Box<dyn Selector>
        }
    });
    (selector, backup_selector)
}

/// The file's `entries` with the weights runtime changes give them, so that selectors, the
/// queue and the backups' rule see a drained or maintained server as one at weight 0.
fn overridden(
    mut entries: Vec<config::Server>,
    overrides: &[Option<Override>],
) -> Vec<config::Server> {
    for (entry, change) in entries.iter_mut().zip(overrides) {
        if let Some(change) = change {
            entry.weight = change.weight();
        }
    }
    entries
}

/// The runtime change `previous` (the running backend of this name) had for the server the
/// file now gives `entry`, if the file left that server as it was.
fn carried_override(previous: Option<&BackendState>, entry: &config::Server) -> Option<Override> {
    let previous = previous?;
    let index = previous.server_index(&entry.name)?;
    previous.change(index)?.carried_to(entry)
}

/// `max_connections`, and the queue where requests wait when the server is full.
struct Limit {
    max: u64,
    queue: Arc<Queue>,
}

/// A monotonic clock in nanoseconds, never 0 (which stands for "not ramping").
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX) | 1
}

pub struct ServerState {
    pub backend: String,
    pub name: String,
    pub address: SocketAddr,
    /// The DNS name the address was found by, for a server named by one.
    pub dns_name: Option<DnsName>,
    up: AtomicBool,
    /// Set by the first check result: `up` is no longer a guess.
    checked: AtomicBool,
    active: AtomicU64,
    /// `None` when the backend has no health check: the server is then always up, and passive
    /// failures cannot take it down since nothing would bring it back.
    health: Option<Mutex<Counter>>,
    health_changes: watch::Sender<()>,
    pub stats: ServerStats,
    /// `None`: no `max_connections`.
    limit: Option<Limit>,
    slow_start: Option<Duration>,
    /// When (`clock()`) the server last came back up while it ramps; 0 once it does not.
    ramp_started: AtomicU64,
    /// A backup server: its slots go only to requests waiting for backups.
    backup: bool,
    /// No longer one of its backend's servers: a reload or a DNS change applied without it.
    retired: AtomicBool,
    /// At weight 0 in the config that serves (kept across reloads with the state).
    drained: AtomicBool,
    /// In maintenance (the runtime API): down, and its check results ignored.
    maint: AtomicBool,
    /// The last check, the last change and the time down, for `/status` and the metrics;
    /// touched by checks and transitions only.
    checks: Mutex<CheckRecord>,
}

impl ServerState {
    fn new(
        backend: &config::Backend,
        member: &Member<'_>,
        health_changes: watch::Sender<()>,
    ) -> Self {
        let server = &member.server;
        let health = (backend.health_check.as_ref())
            .map(|check| Mutex::new(Counter::new(check.rise, check.fall)));
        ServerState {
            backend: backend.name.clone(),
            name: server.name.clone(),
            address: member.address,
            dns_name: member.dns_name.cloned(),
            up: AtomicBool::new(true),
            checked: AtomicBool::new(health.is_none()),
            active: AtomicU64::new(0),
            health,
            health_changes,
            stats: ServerStats::new(&backend.name, &server.name),
            limit: None,
            slow_start: server.slow_start,
            ramp_started: AtomicU64::new(0),
            backup: server.backup,
            retired: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            maint: AtomicBool::new(false),
            checks: Mutex::new(CheckRecord::new(Instant::now())),
        }
    }

    /// With the server's `max_connections`, if it has one, and the queue before it.
    fn limited(mut self, server: &config::Server, queue: &Arc<Queue>) -> Self {
        self.limit = (server.max_connections).map(|max| Limit {
            max: u64::from(max),
            queue: Arc::clone(queue),
        });
        self
    }

    /// Whether this state was built for `server`'s limit, ramp and role, so a reload can keep it.
    fn limits_are(&self, server: &config::Server) -> bool {
        self.max_connections() == server.max_connections
            && self.slow_start == server.slow_start
            && self.backup == server.backup
    }

    pub fn max_connections(&self) -> Option<u32> {
        (self.limit.as_ref()).map(|limit| u32::try_from(limit.max).unwrap_or(u32::MAX))
    }

    /// Below its `max_connections` (always, without one).
    pub fn has_room(&self) -> bool {
        (self.limit.as_ref()).is_none_or(|limit| self.active.load(Ordering::Relaxed) < limit.max)
    }

    /// `weight` in `slow_start::SCALE`ths, or less while the server ramps up after coming back
    /// (slow start). The clock is read only during a ramp.
    pub fn effective_weight(&self, weight: u32) -> u64 {
        let full = balance::slow_start::full(weight);
        let Some(slow_start) = self.slow_start else {
            return full;
        };
        let started = self.ramp_started.load(Ordering::Relaxed);
        if started == 0 {
            return full;
        }
        let since_up = Duration::from_nanos(clock().saturating_sub(started));
        if since_up >= slow_start {
            let _ = (self.ramp_started).compare_exchange(
                started,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return full;
        }
        balance::slow_start::effective_weight(weight, slow_start, since_up)
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

    /// Whether it is in maintenance: no traffic, and its health checks pause.
    pub fn in_maint(&self) -> bool {
        self.maint.load(Ordering::Relaxed)
    }

    /// Puts the server in maintenance (down to everything that asks) or takes it out, as a
    /// new server: up, and down at its first failed check. Called once the backend that says
    /// so serves.
    fn set_maint(&self, on: bool) {
        let lock = self.health.as_ref().map(|health| {
            health
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        });
        if self.maint.swap(on, Ordering::Relaxed) == on {
            return;
        }
        if let Some(mut counter) = lock {
            *counter = counter.restarted();
            self.checked.store(false, Ordering::Relaxed);
        }
        if !on && self.slow_start.is_some() {
            self.ramp_started.store(clock(), Ordering::Relaxed);
        }
        // Maintenance is time down, as HAProxy counts MAINT; back, it is a fresh server, up.
        let health = if on { Health::Down } else { Health::Up };
        self.lock_checks().went(health, Instant::now());
        self.up.store(!on, Ordering::Relaxed);
        self.health_changes.send_replace(());
    }

    /// What the server's health has been, as of now.
    pub fn check_record(&self) -> CheckRecord {
        self.lock_checks().clone()
    }

    fn lock_checks(&self) -> std::sync::MutexGuard<'_, CheckRecord> {
        (self.checks.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An active health check's result, `took` long: recorded, then fed to the rise/fall
    /// counter.
    pub fn record_active_check(&self, status: CheckStatus, took: Duration, detail: &str) {
        self.lock_checks().checked(status, took);
        self.record_check(status.passed(), detail);
    }

    /// Feeds one check result (active, or a passive connect failure) to the rise/fall counter.
    pub fn record_check(&self, ok: bool, detail: &str) {
        let Some(health) = &self.health else { return };
        let mut counter = health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Under the lock `set_maint` takes: a result of a check begun before maintenance
        // does not bring the server back.
        if self.in_maint() {
            return;
        }
        let first = !self.checked.swap(true, Ordering::Relaxed);
        let Some(changed) = counter.record(ok) else {
            if first {
                // Trackers wait for the first verdict before letting VRRP preempt.
                self.health_changes.send_replace(());
            }
            return;
        };
        if changed == Health::Up && self.slow_start.is_some() {
            self.ramp_started.store(clock(), Ordering::Relaxed);
        }
        self.up.store(changed == Health::Up, Ordering::Relaxed);
        self.lock_checks().went(changed, Instant::now());
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

    /// Counts this server as busy until the guard drops (least_conn's load), unless it is at
    /// its `max_connections`.
    pub fn try_track_active(self: &Arc<Self>) -> Option<ActiveGuard> {
        match &self.limit {
            None => {
                self.active.fetch_add(1, Ordering::Relaxed);
            }
            Some(limit) => {
                (self.active)
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |active| {
                        (active < limit.max).then_some(active + 1)
                    })
                    .ok()?;
            }
        }
        Some(ActiveGuard(Arc::clone(self)))
    }
}

/// The servers of `backend`, each named by DNS replaced by one per address `resolved` knows
/// for it (`web-1`, `web-2`...: the slot numbers), in the config's order; none until it has
/// an answer.
fn expand<'a>(backend: &'a config::Backend, resolved: &Resolved) -> Vec<Member<'a>> {
    let mut members = Vec::with_capacity(backend.servers.len());
    for server in &backend.servers {
        match &server.address {
            &ServerAddress::Ip(address) => members.push(Member {
                server: server.clone(),
                address,
                dns_name: None,
            }),
            ServerAddress::Name(name) => {
                for slot in resolved.slots(&backend.name, &server.name, name) {
                    let numbered = config::Server {
                        name: format!("{}-{}", server.name, slot.number),
                        address: ServerAddress::Ip(slot.address),
                        ..server.clone()
                    };
                    members.push(Member {
                        server: numbered,
                        address: slot.address,
                        dns_name: Some(name),
                    });
                }
            }
        }
    }
    members
}

/// A server as it runs: one written with an address, or one address of a server named by DNS.
struct Member<'a> {
    server: config::Server,
    address: SocketAddr,
    dns_name: Option<&'a DnsName>,
}

pub struct ActiveGuard(Arc<ServerState>);

impl ActiveGuard {
    pub fn server(&self) -> &ServerState {
        &self.0
    }
}

impl Drop for ActiveGuard {
    /// A limited server's slot goes to the first request waiting for it, if any.
    fn drop(&mut self) {
        match &self.0.limit {
            None => {
                self.0.active.fetch_sub(1, Ordering::Relaxed);
            }
            Some(limit) => limit.queue.release(&self.0),
        }
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
            tls: None,
            sni: None,
            port: None,
            address: None,
        }),
        servers: (servers.iter().zip(81u16..))
            .map(|(name, port)| config::Server {
                name: (*name).into(),
                address: ServerAddress::Ip(SocketAddr::from(([127, 0, 0, 1], port))),
                weight: 1,
                tls: None,
                backup: false,
                max_connections: None,
                slow_start: None,
            })
            .collect(),
        persistence: None,
        send_proxy: None,
        protocol: config::UpstreamProtocol::Http11,
        resolve: config::Resolve::default(),
        tls: None,
        tcp_keepalive: None,
        all_backups: false,
        queue_timeout: Duration::from_secs(1),
        queue_size: 16,
        shutdown_sessions_on_down: false,
        shutdown_backup_sessions_on_up: false,
    };
    built(config)
}

/// The backend for `config`, with no previous state and no names resolved: for unit tests.
#[cfg(test)]
pub(crate) fn built(config: config::Backend) -> BackendState {
    BackendState::new(config, &Resolved::default(), None)
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
        config.servers[1].address = ServerAddress::Ip(SocketAddr::from(([127, 0, 0, 1], 83)));
        let new = BackendState::new(config, &Resolved::default(), Some(&old));
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
        let rebuilt = BackendState::new(checked_differently, &Resolved::default(), Some(&new));
        assert!(
            !Arc::ptr_eq(&rebuilt.servers[0], &new.servers[0]),
            "new check settings start afresh"
        );
    }

    #[test]
    fn a_reload_keeps_a_server_only_with_the_same_limit_and_ramp_and_keeps_the_queue() {
        let old = backend();
        let mut config = old.config.clone();
        config.servers[1].max_connections = Some(5);
        config.queue_size = 3;
        let new = BackendState::new(config.clone(), &Resolved::default(), Some(&old));
        assert!(Arc::ptr_eq(&new.servers[0], &old.servers[0]));
        assert!(
            !Arc::ptr_eq(&new.servers[1], &old.servers[1]),
            "a new limit"
        );
        assert_eq!(new.servers[1].max_connections(), Some(5));
        assert!(
            Arc::ptr_eq(&new.queue, &old.queue),
            "waiters keep their place"
        );
        config.servers[0].slow_start = Some(Duration::from_secs(9));
        let ramped = BackendState::new(config, &Resolved::default(), Some(&new));
        assert!(
            !Arc::ptr_eq(&ramped.servers[0], &new.servers[0]),
            "a new ramp"
        );
        assert!(Arc::ptr_eq(&ramped.servers[1], &new.servers[1]));
    }

    #[test]
    fn a_server_named_by_dns_is_one_server_per_address_keeping_state_across_answers() {
        use crate::dns::{NameKey, Slot};
        let mut config = backend().config;
        let name = DnsName {
            host: "app.internal".into(),
            port: 80,
        };
        config.servers[1].address = ServerAddress::Name(name.clone());
        let key = NameKey {
            backend: "web".into(),
            server: "s2".into(),
            name: name.clone(),
        };
        let slot = |number, last: u8| Slot {
            number,
            address: SocketAddr::from(([192, 0, 2, last], 80)),
        };
        let unresolved = built(config.clone());
        let names: Vec<&str> = unresolved.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1"], "no server until the name has an answer");
        assert_eq!(unresolved.pick(&key_for_tests(), &[]), Some(0));

        let mut resolved = Resolved::default();
        resolved.set(key.clone(), vec![slot(1, 1), slot(2, 2)]);
        let first = BackendState::new(config.clone(), &resolved, Some(&unresolved));
        let names: Vec<&str> = first.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1", "s2-1", "s2-2"]);
        assert_eq!(first.servers[2].address, slot(2, 2).address);
        assert_eq!(first.servers[2].dns_name.as_ref(), Some(&name));
        assert!(Arc::ptr_eq(&first.servers[0], &unresolved.servers[0]));
        first.servers[2].record_check(false, "refused");

        resolved.set(key, vec![slot(2, 2), slot(3, 3)]);
        let second = BackendState::new(config, &resolved, Some(&first));
        let names: Vec<&str> = second.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1", "s2-2", "s2-3"]);
        assert!(
            Arc::ptr_eq(&second.servers[1], &first.servers[2]),
            "an address still answered keeps its server"
        );
        assert!(!second.servers[1].is_up(), "and its health");
        let picks: Vec<Option<usize>> =
            (0..4).map(|_| second.pick(&key_for_tests(), &[])).collect();
        assert!(
            picks.iter().all(|pick| *pick != Some(1)),
            "the selector is built over the servers as they run: {picks:?}"
        );
    }

    fn key_for_tests() -> balance::Key<'static> {
        balance::Key {
            client_ip: [192, 0, 2, 1].into(),
            uri: "",
        }
    }

    #[test]
    fn a_pinned_server_is_preferred_while_up_and_untried_whatever_its_weight() {
        let mut config = backend().config;
        config.servers[1].weight = 0;
        let backend = built(config);
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

    fn with_backups(all_backups: bool) -> BackendState {
        let mut config = checked_backend(&["p1", "p2", "b1", "b2"]).config;
        config.all_backups = all_backups;
        config.servers[2].backup = true;
        config.servers[3].backup = true;
        built(config)
    }

    fn picks(backend: &BackendState, count: usize) -> Vec<usize> {
        let key = balance::Key {
            client_ip: [192, 0, 2, 1].into(),
            uri: "",
        };
        (0..count).filter_map(|_| backend.pick(&key, &[])).collect()
    }

    #[test]
    fn backups_serve_only_while_no_primary_is_up_the_first_one_up_unless_all_backups() {
        let backend = with_backups(false);
        assert_eq!(picks(&backend, 4), [0, 1, 0, 1], "primaries only");
        backend.servers[0].record_check(false, "refused");
        assert_eq!(picks(&backend, 2), [1, 1], "one primary is enough");
        assert_eq!(backend.servers_up(), 1, "backups are not counted");
        backend.servers[1].record_check(false, "refused");
        assert_eq!(picks(&backend, 3), [2, 2, 2], "the first backup up");
        assert_eq!((backend.servers_up(), backend.backups_up()), (0, 2));
        backend.servers[2].record_check(false, "refused");
        assert_eq!(picks(&backend, 2), [3, 3]);
        backend.servers[1].record_check(true, "");
        assert_eq!(
            picks(&backend, 2),
            [1, 1],
            "given back when a primary returns"
        );

        let balanced = with_backups(true);
        balanced.servers[0].record_check(false, "refused");
        balanced.servers[1].record_check(false, "refused");
        let mut backups = picks(&balanced, 4);
        backups.sort_unstable();
        assert_eq!(backups, [2, 2, 3, 3], "all_backups balances over them");
    }

    #[test]
    fn a_drained_primary_does_not_keep_the_backups_out() {
        let mut config = with_backups(false).config;
        config.servers[0].weight = 0;
        config.servers[1].weight = 0;
        let backend = built(config);
        assert_eq!(picks(&backend, 2), [2, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_of_a_replaced_server_is_freed_not_handed_to_the_new_backends_waiters() {
        let mut config = checked_backend(&["s1"]).config;
        config.servers[0].max_connections = Some(1);
        let old = built(config.clone());
        let key = key_for_tests();
        let Admission::Go(_, on_old) = old.admit(None, &key, &[]) else {
            panic!("room on the old s1");
        };
        config.servers[0].slow_start = Some(Duration::from_secs(9));
        let new = BackendState::new(config, &Resolved::default(), Some(&old));
        assert!(!Arc::ptr_eq(&new.servers[0], &old.servers[0]), "a new ramp");
        let Admission::Go(_, on_new) = new.admit(None, &key, &[]) else {
            panic!("room on the new s1");
        };
        let waiting = new.wait_for_room(None, &key, &[]);
        tokio::pin!(waiting);
        assert!(futures_util::poll!(&mut waiting).is_pending(), "s1 is full");
        BackendState::take_over(&[Arc::new(old)], &[]);
        drop(on_old);
        assert!(
            futures_util::poll!(&mut waiting).is_pending(),
            "the old s1's slot is not for the new backend's waiters"
        );
        drop(on_new);
        let (index, _active) = waiting.await.expect("the new s1's slot");
        assert_eq!(index, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_server_frees_its_slot_rather_than_take_a_waiting_request() {
        let mut config = checked_backend(&["s1", "s2"]).config;
        for server in &mut config.servers {
            server.max_connections = Some(1);
        }
        config.servers[0].weight = 0;
        let backend = Arc::new(built(config));
        BackendState::take_over(&[], std::slice::from_ref(&backend));
        let key = key_for_tests();
        let Admission::Go(0, pinned) = backend.admit(Some(0), &key, &[]) else {
            panic!("a client pinned to the drained s1 keeps it");
        };
        let Admission::Go(1, on_s2) = backend.admit(None, &key, &[]) else {
            panic!("a new request goes to s2");
        };
        let waiting = backend.wait_for_room(None, &key, &[]);
        tokio::pin!(waiting);
        assert!(futures_util::poll!(&mut waiting).is_pending(), "both full");
        drop(pinned);
        assert!(
            futures_util::poll!(&mut waiting).is_pending(),
            "the drained s1's slot is not for a new request"
        );
        drop(on_s2);
        let (index, _active) = waiting.await.expect("s2's slot");
        assert_eq!(index, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_shut_down_when_their_server_goes_down_or_a_primary_comes_back() {
        let backend = Arc::new(with_backups(false));
        assert!(
            backend.shutdown_of(0).is_none(),
            "neither on_down nor on_up"
        );
        let mut config = backend.config.clone();
        config.shutdown_sessions_on_down = true;
        let backend = Arc::new(BackendState::new(
            config,
            &Resolved::default(),
            Some(&backend),
        ));
        let mut shutdown = backend.shutdown_of(0).expect("on_down");
        assert!(futures_util::poll!(&mut shutdown).is_pending());
        backend.servers[1].record_check(false, "refused");
        assert!(
            futures_util::poll!(&mut shutdown).is_pending(),
            "another server"
        );
        backend.servers[0].record_check(false, "refused");
        shutdown.await;

        let mut config = backend.config.clone();
        config.shutdown_sessions_on_down = false;
        config.shutdown_backup_sessions_on_up = true;
        let backend = Arc::new(BackendState::new(
            config,
            &Resolved::default(),
            Some(&backend),
        ));
        assert!(
            backend.shutdown_of(0).is_none(),
            "on_up concerns backups only"
        );
        let mut shutdown = backend.shutdown_of(2).expect("a backup");
        assert!(futures_util::poll!(&mut shutdown).is_pending());
        backend.servers[1].record_check(true, "");
        shutdown.await;
    }

    #[test]
    fn a_server_back_up_ramps_its_weight_and_one_starting_up_does_not() {
        let mut config = backend().config;
        config.servers[0].slow_start = Some(Duration::from_secs(3600));
        let backend = built(config);
        let full = balance::slow_start::full(100);
        assert_eq!(
            backend.servers[0].effective_weight(100),
            full,
            "at start-up"
        );
        backend.servers[0].record_check(false, "refused");
        backend.servers[0].record_check(true, "");
        assert!(
            backend.servers[0].effective_weight(100) < full / 1000,
            "just back up"
        );
        assert_eq!(
            backend.servers[1].effective_weight(100),
            full,
            "no slow start"
        );
    }

    fn set(
        backend: &BackendState,
        index: usize,
        state: AdminState,
        weight: Option<u32>,
    ) -> Arc<BackendState> {
        let change = Override {
            state,
            weight,
            entry: backend.entry(index).clone(),
        };
        Arc::new(backend.changed(index, Some(change)))
    }

    #[test]
    fn a_drained_server_keeps_its_pinned_clients_and_one_in_maintenance_none() {
        let running = Arc::new(backend());
        let drained = set(&running, 0, AdminState::Drain, None);
        BackendState::take_over(
            std::slice::from_ref(&running),
            std::slice::from_ref(&drained),
        );
        assert!(
            Arc::ptr_eq(&drained.servers[0], &running.servers[0]),
            "the same server"
        );
        assert_eq!(picks(&drained, 3), [1, 1, 1], "no new sessions");
        let key = key_for_tests();
        assert_eq!(
            drained.pick_preferring(Some(0), &key, &[]),
            Some(0),
            "pinned stays"
        );
        assert_eq!(drained.servers_up(), 2, "drained, still up");

        let maint = set(&drained, 0, AdminState::Maint, None);
        BackendState::take_over(std::slice::from_ref(&drained), std::slice::from_ref(&maint));
        assert_eq!(
            maint.pick_preferring(Some(0), &key, &[]),
            Some(1),
            "pinned moves"
        );
        assert_eq!(maint.servers_up(), 1, "counted down");
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(
            maint.servers[0].check_record().downtime(far) > Duration::ZERO,
            "maintenance is time down"
        );
        maint.servers[0].record_check(true, "");
        assert!(
            !maint.servers[0].is_up(),
            "check results do not bring it back"
        );
        assert!(maint.servers[0].in_maint());

        let ready = set(&maint, 0, AdminState::Ready, Some(3));
        BackendState::take_over(std::slice::from_ref(&maint), std::slice::from_ref(&ready));
        assert!(ready.servers[0].is_up(), "back as a new server: up");
        let record = ready.servers[0].check_record();
        assert_eq!(
            record.downtime(far),
            record.downtime(far + Duration::from_secs(60)),
            "downtime stops growing once back"
        );
        assert!(!ready.servers[0].checked(), "waiting for its first check");
        let mut counts = [0; 2];
        for server in picks(&ready, 8) {
            counts[server] += 1;
        }
        assert_eq!(counts, [6, 2], "the runtime weight 3 against 1");
        assert_eq!(ready.server_configs[0].weight, 3);
        assert_eq!(ready.entry(0).weight, 1, "the file's entry is kept");
    }

    #[test]
    fn a_reload_keeps_a_runtime_change_until_the_file_changes_that_server() {
        let running = backend();
        let drained = set(&running, 0, AdminState::Drain, Some(5));
        let mut config = drained.config.clone();
        config.servers[1].weight = 4;
        let reloaded = BackendState::new(config.clone(), &Resolved::default(), Some(&drained));
        assert_eq!(
            reloaded.admin_state(0),
            AdminState::Drain,
            "s2 changed, not s1"
        );
        assert_eq!(reloaded.change(0).unwrap().weight, Some(5));
        assert_eq!(reloaded.server_configs[0].weight, 0);
        assert_eq!(reloaded.server_configs[1].weight, 4);

        config.servers[0].weight = 2;
        let rewritten = BackendState::new(config, &Resolved::default(), Some(&reloaded));
        assert_eq!(
            rewritten.admin_state(0),
            AdminState::Ready,
            "the file changed s1"
        );
        assert_eq!(rewritten.change(0), None);
        assert_eq!(rewritten.server_configs[0].weight, 2);
    }
}
