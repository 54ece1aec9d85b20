//! `announce:`: the node asks its routers, through a local FRR, to send it traffic for its
//! addresses while every tracked item is healthy, so several nodes share one address by ECMP.
//!
//! tandem talks to FRR through the kernel only (see [`device`]): an address on the TUN device
//! it holds is announced (FRR redistributes the device's connected routes), an address taken
//! off it is withdrawn, and the device dies with the process. FRR may restart, and tandem may,
//! without either knowing the other's state.
//!
//! - [`state`]: the pure rules: when to announce, and when a drain's withdraw has settled.
//! - [`device`]: the TUN device, its addresses, and the `local` routes that keep the node
//!   accepting its addresses while withdrawn.
//! - this file: the task that follows the trackers and the operator, on the control runtime.

pub mod device;
pub mod state;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rtnetlink::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::config::{display_duration, Announce, TrackTarget};
use crate::track::data_plane::DataPlane;
use crate::track::links::watch_links;
use crate::track::live::Trackers;

use device::Device;
use state::{Settle, Settling, State};

/// How often a drain looks at the count of new connections.
const SETTLE_LOOK: Duration = Duration::from_millis(50);
/// How soon an address the kernel refused to add or remove is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The count of client connections opened since start, over every frontend.
pub type Arrivals = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What `/status` shows of the announcer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub interface: String,
    pub addresses: Vec<IpAddr>,
    pub state: State,
    /// Tracked items failing now, as in the logs.
    pub failing: Vec<String>,
}

/// The running announcer: its task, and what it publishes.
pub struct Announcer {
    control: Control,
    status: watch::Receiver<Status>,
    interface: String,
}

/// What the runtime API and shutdown ask of the announcer; cheap to clone.
#[derive(Clone)]
pub struct Control {
    commands: mpsc::UnboundedSender<Command>,
}

/// A config's announcing, made ready by a reload before anything changes: whatever can fail
/// (a new device, watching links) has been done.
pub struct Prepared {
    config: Announce,
    trackers: Trackers,
    links: Option<AbortOnDropHandle<()>>,
    /// A device of the new name, when the interface changed (or nothing announced before).
    device: Option<Device>,
}

enum Command {
    Commit(Prepared),
    /// Withdraw and stay withdrawn; answered once routers have moved new flows away.
    Drain(oneshot::Sender<String>),
    /// A drain that `Ready` cannot undo: the process is stopping.
    Shutdown(oneshot::Sender<String>),
    /// Announce again when the trackers allow.
    Ready(oneshot::Sender<String>),
    /// Withdraw, stop accepting the addresses, and delete the device.
    Release(oneshot::Sender<()>),
}

/// Prepares `config` for the running announcer, if any.
pub async fn prepare(
    running: Option<&Announcer>,
    handle: &Handle,
    config: &Announce,
    data_plane: &DataPlane,
) -> anyhow::Result<Prepared> {
    let interfaces: Vec<String> = (config.track.iter())
        .filter_map(|item| match &item.target {
            TrackTarget::Interface(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let (link_states, links) = if interfaces.is_empty() {
        (Default::default(), None)
    } else {
        let (states, monitor) = (watch_links(interfaces).await)
            .context("watching the links of tracked interfaces over netlink")?;
        (states, Some(AbortOnDropHandle::new(tokio::spawn(monitor))))
    };
    let device = match running {
        Some(running) if running.interface == config.interface => None,
        _ => Some(Device::open(handle, &config.interface).await?),
    };
    Ok(Prepared {
        config: config.clone(),
        trackers: Trackers::new(&config.track, data_plane, &link_states),
        links,
        device,
    })
}

impl Announcer {
    /// Starts announcing what `prepared` (made with no running announcer) says, on the current
    /// runtime. `arrivals` counts new client connections, for drains.
    pub fn start(handle: Handle, prepared: Prepared, arrivals: Arrivals) -> Announcer {
        let Prepared {
            config,
            trackers,
            links,
            device,
        } = prepared;
        let device = device.expect("a first announcer opens its device");
        let status = watch::Sender::new(Status {
            interface: config.interface.clone(),
            addresses: config.addresses.clone(),
            state: State::Withdrawn,
            failing: Vec::new(),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let announcer = Announcer {
            control: Control { commands },
            status: status.subscribe(),
            interface: config.interface.clone(),
        };
        let task = Task {
            handle,
            config,
            trackers,
            link_watch: links,
            device,
            announced: Vec::new(),
            accepting: Vec::new(),
            drained: false,
            stopping: false,
            logged: None,
            judged: false,
            status,
            arrivals,
        };
        tokio::spawn(task.run(receiver));
        announcer
    }

    /// Hands the announcer a reload's part. It cannot fail.
    pub fn commit(&mut self, prepared: Prepared) {
        self.interface = prepared.config.interface.clone();
        let _ = self.control.commands.send(Command::Commit(prepared));
    }

    /// Withdraws for good (a `ready` from the runtime API no longer undoes it) and answers as
    /// [`Control::drain`] does: the first step of shutting down.
    pub async fn shut_down(&self) -> String {
        self.control.ask(Command::Shutdown).await
    }

    /// Withdraws (at once), stops accepting the addresses and deletes the device: the last
    /// step of shutting down, or what a reload that drops `announce:` does.
    pub async fn release(self) {
        let (reply, answer) = oneshot::channel();
        if self.control.commands.send(Command::Release(reply)).is_ok() {
            let _ = answer.await;
        }
    }

    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl Control {
    /// Withdraws, and answers once no new connection has arrived for `withdraw.quiet` (or
    /// after `withdraw.max_wait`), with the line logged.
    pub async fn drain(&self) -> String {
        self.ask(Command::Drain).await
    }

    /// Announces again, once the trackers allow.
    pub async fn ready(&self) -> String {
        self.ask(Command::Ready).await
    }

    async fn ask(&self, command: fn(oneshot::Sender<String>) -> Command) -> String {
        let (reply, answer) = oneshot::channel();
        let _ = self.commands.send(command(reply));
        (answer.await).unwrap_or_else(|_| "the announcer has stopped".into())
    }
}

struct Task {
    handle: Handle,
    config: Announce,
    trackers: Trackers,
    /// Keeps the tracked links followed.
    link_watch: Option<AbortOnDropHandle<()>>,
    device: Device,
    /// Addresses on the device now.
    announced: Vec<IpAddr>,
    /// Addresses with tandem's `local` route now.
    accepting: Vec<IpAddr>,
    drained: bool,
    /// Shutting down: drained for good, whatever the runtime API asks.
    stopping: bool,
    /// The state last logged.
    logged: Option<State>,
    /// Whether every tracked server has had a health verdict once. Latched: a reload that adds
    /// a server must not withdraw a serving node (every node reloads at about the same time).
    judged: bool,
    status: watch::Sender<Status>,
    arrivals: Arrivals,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.accept_configured().await;
        loop {
            let settled = self.reconcile().await;
            let command = tokio::select! {
                () = self.trackers.changed() => continue,
                // What the kernel refused is asked again, while it is still wanted.
                () = tokio::time::sleep(RETRY), if !settled => continue,
                command = commands.recv() => command,
            };
            match command {
                Some(Command::Commit(prepared)) => self.commit(prepared).await,
                Some(Command::Drain(reply)) => {
                    self.drained = true;
                    self.reconcile().await;
                    let _ = reply.send(self.settle().await);
                }
                Some(Command::Shutdown(reply)) => {
                    self.stopping = true;
                    self.drained = true;
                    self.reconcile().await;
                    let _ = reply.send(self.settle().await);
                }
                Some(Command::Ready(reply)) => {
                    let line = match self.stopping {
                        true => "announce: stopping: the node stays withdrawn",
                        false => {
                            self.drained = false;
                            "announce: ready: announcing again once every tracked item is healthy"
                        }
                    };
                    let _ = reply.send(line.into());
                }
                Some(Command::Release(reply)) => {
                    self.release().await;
                    let _ = reply.send(());
                    return;
                }
                None => return self.release().await,
            }
        }
    }

    /// Makes the device hold exactly what the node's state says it should announce; false when
    /// the kernel refused part of it.
    async fn reconcile(&mut self) -> bool {
        let failing = self.trackers.failing();
        self.judged = self.judged || self.trackers.verdicts_in();
        let state = State::of(self.drained, failing.is_empty(), self.judged);
        let wanted: &[IpAddr] = match state {
            State::Announced => &self.config.addresses,
            State::Withdrawn | State::Drained => &[],
        };
        let (handle, device) = (&self.handle, &self.device);
        let mut kept = Vec::with_capacity(wanted.len());
        for &address in &self.announced {
            if wanted.contains(&address) {
                kept.push(address);
            } else if let Err(error) = device.remove(handle, address).await {
                tracing::error!(%address, interface = %device.name, %error, "announce: cannot withdraw the address: it stays announced");
                kept.push(address);
            }
        }
        for &address in wanted {
            if kept.contains(&address) {
                continue;
            }
            match device.add(handle, address).await {
                Ok(()) => kept.push(address),
                Err(error) => {
                    tracing::error!(%address, interface = %device.name, %error, "announce: cannot announce the address")
                }
            }
        }
        let changed = kept != self.announced;
        let settled = kept.len() == wanted.len();
        self.announced = kept;
        if changed || self.logged != Some(state) {
            log_change(state, &self.config.addresses, &failing, self.judged);
            self.logged = Some(state);
        }
        // What routers are told, not what is wanted: a node with no address on its device
        // announces nothing, whatever its tracks say.
        let shown = match (state, self.announced.is_empty()) {
            (State::Announced, true) => State::Withdrawn,
            _ => state,
        };
        self.status.send_if_modified(|status| {
            let now = Status {
                interface: self.config.interface.clone(),
                addresses: self.config.addresses.clone(),
                state: shown,
                failing,
            };
            *status != now && {
                *status = now;
                true
            }
        });
        settled
    }

    /// Waits until routers have moved new flows away (see [`Settling`]).
    async fn settle(&self) -> String {
        let (quiet, max_wait) = (self.config.withdraw_quiet, self.config.withdraw_max_wait);
        let start = Instant::now();
        let mut settling = Settling::new(start.into_std(), (self.arrivals)(), quiet, max_wait);
        loop {
            let now = Instant::now();
            match settling.observe(now.into_std(), (self.arrivals)()) {
                Settle::Wait(until) => {
                    tokio::time::sleep_until(Instant::from_std(until).min(now + SETTLE_LOOK)).await;
                }
                Settle::Quiet => {
                    let line = format!(
                        "announce: drained: withdrawn, and no new connection for {} (after {})",
                        display_duration(quiet),
                        display_duration(start.elapsed()),
                    );
                    tracing::info!("{line}");
                    return line;
                }
                Settle::TimedOut => {
                    let line = format!(
                        "announce: drained: withdrawn, but new connections still arrived after withdraw.max_wait {}",
                        display_duration(max_wait),
                    );
                    tracing::warn!("{line}");
                    return line;
                }
            }
        }
    }

    async fn commit(&mut self, prepared: Prepared) {
        let Prepared {
            config,
            trackers,
            links,
            device,
        } = prepared;
        if let Some(device) = device {
            // The old device goes with its addresses, which withdraws them.
            tracing::info!(from = %self.device.name, to = %device.name, "announce: interface changed");
            self.device = device;
            self.announced.clear();
        }
        self.config = config;
        self.trackers = trackers;
        self.link_watch = links;
        // Accept a new address before announcing it, and withdraw a dropped one before no
        // longer accepting it.
        self.accept_configured().await;
        self.reconcile().await;
        self.forget_unconfigured().await;
    }

    /// Adds the `local` route of every configured address that has none.
    async fn accept_configured(&mut self) {
        for &address in &self.config.addresses {
            if self.accepting.contains(&address) {
                continue;
            }
            match device::accept_locally(&self.handle, address).await {
                Ok(()) => self.accepting.push(address),
                Err(error) => {
                    tracing::error!(%address, %error, "announce: cannot add the local route that accepts the address; connections to it are refused unless it is on an interface")
                }
            }
        }
    }

    /// Removes the `local` route of every address no longer configured (once withdrawn).
    async fn forget_unconfigured(&mut self) {
        let mut accepting = Vec::with_capacity(self.accepting.len());
        for &address in &self.accepting {
            if self.config.addresses.contains(&address) {
                accepting.push(address);
            } else if let Err(error) = device::stop_accepting_locally(&self.handle, address).await {
                tracing::warn!(%address, %error, "announce: cannot remove the local route of an address no longer announced");
            }
        }
        self.accepting = accepting;
    }

    async fn release(mut self) {
        self.drained = true;
        self.reconcile().await;
        for &address in &self.accepting {
            if let Err(error) = device::stop_accepting_locally(&self.handle, address).await {
                tracing::warn!(%address, %error, "announce: cannot remove the local route of the address");
            }
        }
        tracing::info!(interface = %self.device.name, "announce: released");
    }
}

fn log_change(state: State, addresses: &[IpAddr], failing: &[String], judged: bool) {
    let addresses = (addresses.iter())
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match state {
        State::Announced => tracing::info!("announce: announcing {addresses}"),
        State::Drained => tracing::info!("announce: drained: withdrawing {addresses}"),
        State::Withdrawn if !failing.is_empty() => {
            tracing::warn!("announce: withdrawing {addresses}: {}", failing.join(", "));
        }
        State::Withdrawn if !judged => tracing::info!(
            "announce: not announcing {addresses} until tracked servers have had a health check"
        ),
        State::Withdrawn => tracing::warn!("announce: withdrawing {addresses}"),
    }
}
