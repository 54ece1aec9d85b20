//! The VRRP engine: its own thread and runtime (so a saturated data plane never delays an
//! advert), one receive loop per interface and address family, and one task per instance.
//!
//! A reload is two steps, so that it can be all-or-nothing with the rest of the appliance:
//! [`Engine::prepare`] does everything that can fail (look up interfaces, open sockets, watch
//! newly tracked links, build trackers) and changes nothing that runs; [`Engine::commit`]
//! applies the result and cannot fail. Instances are matched by name: one whose interface,
//! VRID and family are unchanged keeps running and takes every other setting in place; any
//! other is removed (it resigns and releases its VIPs) and started afresh.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::instance::{envelope, Announcer, Command, Inbound, Instance, Link, Phase, Update};
use super::machine::Event;
use super::net::announce::{ArpAnnouncer, NeighborAnnouncer};
use super::net::interface::Interface;
use super::net::netlink::Netlink;
use super::net::socket::{VrrpReceiver, VrrpSender};
use super::status::VrrpStatus;
use super::sync_group::{Group, GroupMember};
use super::tally::Tally;
use crate::codec::vrrp as packet;
use crate::config::{SyncGroup, TrackTarget, VrrpInstance};
use crate::stats;
use crate::track::data_plane::DataPlane;
use crate::track::links::{watch_links, LinkStates};
use crate::track::live::Trackers;

/// How long opening an instance waits for an interface's IPv6 link-local address to finish
/// duplicate address detection.
const SOURCE_ADDRESS_WAIT: Duration = Duration::from_secs(5);
const INBOUND_QUEUE: usize = 64;

/// Why a packet is dropped before it reaches an instance: each `packet::DecodeError`, a VRID
/// not run here, or an instance too far behind; all put at 0 once an interface is listened on.
const INTERFACE_DROP_REASONS: [&str; 10] = [
    "ttl",
    "version",
    "type",
    "too_short",
    "address_count",
    "checksum",
    "auth_type",
    "interval",
    "vrid",
    "queue_full",
];

/// One receive loop's interface and family (`true`: IPv6).
type RouteKey = (String, bool);
/// Where one receive loop sends adverts: the instances on its interface and family, by VRID.
type Routes = Arc<Mutex<HashMap<u8, mpsc::Sender<Inbound>>>>;
/// What keeps tracked links' states current, run on the engine's runtime.
type LinkMonitor = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Engine {
    runtime: Handle,
    netlink: Netlink,
    phase: watch::Sender<Phase>,
    /// Cloned into every instance: one message each once its peer holds its VIPs.
    report: std::sync::mpsc::Sender<()>,
    handed_over: std::sync::mpsc::Receiver<()>,
    /// In config order.
    instances: Vec<Running>,
    /// Removed instances still resigning; waited for on release.
    leaving: Vec<JoinHandle<()>>,
    receivers: HashMap<RouteKey, Receiving>,
    links: LinkStates,
    /// Hands the engine thread the tasks to wait for before it ends.
    stop: oneshot::Sender<Vec<JoinHandle<()>>>,
    thread: thread::JoinHandle<()>,
    /// The sync groups members have joined, by name.
    sync_groups: HashMap<String, Arc<Group>>,
}

struct Running {
    config: VrrpInstance,
    updates: mpsc::UnboundedSender<Update>,
    /// The runtime API's resign and maintenance.
    commands: mpsc::UnboundedSender<Command>,
    status: Arc<Mutex<VrrpStatus>>,
    task: JoinHandle<()>,
}

struct Receiving {
    routes: Routes,
    task: JoinHandle<()>,
}

/// A reload of the VRRP part, ready to commit. Dropping it changes nothing.
pub struct PreparedVrrp {
    /// In config order.
    instances: Vec<Planned>,
    receivers: Vec<(RouteKey, VrrpReceiver)>,
    links: LinkStates,
    monitor: Option<LinkMonitor>,
}

enum Planned {
    /// The running instance at `index`, reconfigured in place.
    Kept { index: usize, update: Update },
    Started {
        config: VrrpInstance,
        link: Link,
        trackers: Trackers,
    },
}

impl Engine {
    /// Starts the engine thread and the instances; fails, naming the instance, when an
    /// interface or address is missing. `data_plane` feeds the instances' backend and frontend
    /// trackers. With no instances it only starts an idle thread, so an appliance can always
    /// hold an engine and add instances by [`Engine::prepare`] and [`Engine::commit`].
    pub fn start(instances: Vec<VrrpInstance>, data_plane: DataPlane) -> anyhow::Result<Engine> {
        let (phase, _) = watch::channel(Phase::Running);
        let (report, handed_over) = std::sync::mpsc::channel();
        let (ready, started) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<Vec<JoinHandle<()>>>();
        let thread = thread::Builder::new()
            .name("tandem-vrrp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => return drop(ready.send(Err(anyhow!(error)))),
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                runtime.block_on(async move {
                    // An engine dropped without `release` ends its instances with the runtime.
                    if let Ok(tasks) = stopped.await {
                        for task in tasks {
                            let _ = task.await;
                        }
                    }
                });
            })
            .context("starting the VRRP thread")?;
        let runtime = started
            .recv()
            .context("the VRRP thread ended during start-up")??;
        let netlink = {
            let _inside = runtime.enter();
            Netlink::connect().context("opening netlink for VRRP")?
        };
        let mut engine = Engine {
            runtime,
            netlink,
            phase,
            report,
            handed_over,
            instances: Vec::new(),
            leaving: Vec::new(),
            receivers: HashMap::new(),
            links: HashMap::new(),
            stop,
            thread,
            sync_groups: HashMap::new(),
        };
        let prepared = engine.prepare(&instances, &data_plane)?;
        engine.commit(prepared);
        Ok(engine)
    }

    /// Each instance's state as it publishes it, in config order.
    pub fn status(&self) -> Vec<Arc<Mutex<VrrpStatus>>> {
        (self.instances.iter())
            .map(|running| Arc::clone(&running.status))
            .collect()
    }

    /// Opens what `instances` need beyond what runs (sockets for new instances, interfaces or
    /// source addresses; watches on newly tracked links) and builds their trackers from
    /// `data_plane`. Changes nothing that runs; fails, naming the instance, when an interface or
    /// address is missing.
    pub fn prepare(
        &self,
        instances: &[VrrpInstance],
        data_plane: &DataPlane,
    ) -> anyhow::Result<PreparedVrrp> {
        let kept: Vec<Option<usize>> = (instances.iter())
            .map(|config| {
                (self.instances.iter())
                    .position(|running| running.config.name == config.name)
                    .filter(|&index| same_router(&self.instances[index].config, config))
            })
            .collect();
        // Sockets are opened for new instances, and for kept ones whose source changed.
        let to_open: Vec<VrrpInstance> = (instances.iter().zip(&kept))
            .filter(|(config, kept)| match kept {
                Some(index) => !same_link(&self.instances[*index].config, config),
                None => true,
            })
            .map(|(config, _)| config.clone())
            .collect();
        let receive_on: BTreeSet<RouteKey> = (instances.iter().zip(&kept))
            .filter(|(_, kept)| kept.is_none())
            .map(|(config, _)| route_key(config))
            .filter(|key| !self.receivers.contains_key(key))
            .collect();
        let watch: BTreeSet<String> = (instances.iter())
            .flat_map(|instance| &instance.track)
            .filter_map(|item| match &item.target {
                TrackTarget::Interface(name) if !self.links.contains_key(name) => {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        let (done, opened) = std::sync::mpsc::channel();
        let netlink = self.netlink.clone();
        self.runtime.spawn(async move {
            let _ = done.send(open(netlink, to_open, receive_on, watch).await);
        });
        let Opened {
            links,
            receivers,
            link_states,
            monitor,
        } = opened.recv().context("the VRRP thread has ended")??;
        let mut links = links.into_iter();
        let mut all_links = self.links.clone();
        all_links.extend(link_states.clone());
        let planned = (instances.iter().zip(kept))
            .map(|(config, kept)| {
                let trackers = Trackers::new(&config.track, data_plane, &all_links);
                let opened = match kept {
                    Some(index) if same_link(&self.instances[index].config, config) => None,
                    _ => links.next(),
                };
                match (kept, opened) {
                    (Some(index), link) => Planned::Kept {
                        index,
                        update: Update {
                            config: config.clone(),
                            trackers,
                            link,
                        },
                    },
                    (None, Some(link)) => Planned::Started {
                        config: config.clone(),
                        link,
                        trackers,
                    },
                    (None, None) => unreachable!("every new instance has its sockets opened"),
                }
            })
            .collect();
        Ok(PreparedVrrp {
            instances: planned,
            receivers,
            links: link_states,
            monitor,
        })
    }

    /// Applies a prepared reload: kept instances take their new settings in place, removed ones
    /// resign and release their VIPs, new ones start as at start-up.
    pub fn commit(&mut self, prepared: PreparedVrrp) {
        let PreparedVrrp {
            instances,
            receivers,
            links,
            monitor,
        } = prepared;
        if let Some(monitor) = monitor {
            self.runtime.spawn(monitor);
        }
        self.links.extend(links);
        for (key, receiver) in receivers {
            let routes = Routes::default();
            let task = (self.runtime).spawn(receive(receiver, key.0.clone(), Arc::clone(&routes)));
            self.receivers.insert(key, Receiving { routes, task });
        }
        let mut previous: Vec<Option<Running>> = self.instances.drain(..).map(Some).collect();
        let kept: BTreeSet<usize> = (instances.iter())
            .filter_map(|planned| match planned {
                Planned::Kept { index, .. } => Some(*index),
                Planned::Started { .. } => None,
            })
            .collect();
        // Removed first: a new instance may take over a removed one's VRID or VIPs.
        self.leaving.retain(|task| !task.is_finished());
        for (index, slot) in previous.iter_mut().enumerate() {
            if kept.contains(&index) {
                continue;
            }
            let Some(Running { config, task, .. }) = slot.take() else {
                continue;
            };
            // Dropping its `updates` sender tells the instance to resign.
            if let Some(receiving) = self.receivers.get(&route_key(&config)) {
                lock(&receiving.routes).remove(&config.virtual_router_id);
            }
            self.leaving.push(task);
            tracing::info!(instance = %config.name, vrid = config.virtual_router_id, interface = %config.interface, "VRRP instance removed by the reload");
        }
        for planned in instances {
            let running = match planned {
                Planned::Kept { index, update } => {
                    let mut running = previous[index].take().expect("each instance kept once");
                    running.config = update.config.clone();
                    // Fails only if the instance has ended, which it does only at shut-down.
                    let _ = running.updates.send(update);
                    running
                }
                Planned::Started {
                    config,
                    link,
                    trackers,
                } => self.start_instance(config, link, trackers),
            };
            self.instances.push(running);
        }
        // Receive loops left with no instance stop, so their interface's adverts are not
        // logged as VRIDs nobody has.
        self.receivers.retain(|_, receiving| {
            let used = !lock(&receiving.routes).is_empty();
            if !used {
                receiving.task.abort();
            }
            used
        });
    }

    fn start_instance(&mut self, config: VrrpInstance, link: Link, trackers: Trackers) -> Running {
        let status = Arc::new(Mutex::new(VrrpStatus::new(&config)));
        let (inbound, queue) = mpsc::channel(INBOUND_QUEUE);
        let receiving = (self.receivers.get(&route_key(&config)))
            .expect("prepare opened a receive loop for every new instance's interface and family");
        lock(&receiving.routes).insert(config.virtual_router_id, inbound);
        let (updates, reloads) = mpsc::unbounded_channel();
        let (commands, commanded) = mpsc::unbounded_channel();
        let mut instance = Instance::new(config.clone(), link, Arc::clone(&status));
        if let Some(group) = &config.sync_group {
            instance = instance.in_sync_group(self.sync_group_member(group, &config.name));
        }
        let task = self.runtime.spawn(instance.run(
            queue,
            trackers,
            self.phase.subscribe(),
            self.report.clone(),
            reloads,
            commanded,
        ));
        tracing::info!(instance = %config.name, vrid = config.virtual_router_id, interface = %config.interface, "VRRP instance started");
        Running {
            config,
            updates,
            commands,
            status,
            task,
        }
    }

    /// `name`'s handle on `group`: the running group of that name, or a new one when none runs
    /// or its members changed (then every member of the old one has been restarted, since a
    /// changed group makes each member a different router).
    fn sync_group_member(&mut self, group: &SyncGroup, name: &str) -> GroupMember {
        let shared = (self.sync_groups.entry(group.name.clone()))
            .and_modify(|running| {
                if running.config != *group {
                    *running = Group::new(group.clone());
                }
            })
            .or_insert_with(|| Group::new(group.clone()));
        GroupMember::new(Arc::clone(shared), name)
    }

    /// Hands the instance called `name` an operator's `event` (`Event::Resign` or
    /// `Event::Maintenance`); `None` when there is none. The answer says what became of it.
    pub fn command(&self, name: &str, event: Event) -> Option<oneshot::Receiver<String>> {
        let running = (self.instances.iter()).find(|running| running.config.name == name)?;
        let (done, answer) = oneshot::channel();
        running.commands.send((event, done)).ok()?;
        Some(answer)
    }

    /// Resigns every instance (priority-0 advert) and returns once each peer holds the VIPs,
    /// or a bounded time has passed. This node keeps the VIPs until [`Engine::release`], so
    /// connections on them can finish.
    pub fn hand_over(&self) {
        self.phase.send_replace(Phase::Resigning);
        for _ in 0..self.instances.len() {
            if self.handed_over.recv().is_err() {
                break;
            }
        }
    }

    /// Removes the VIPs and stops the engine.
    pub fn release(self) {
        self.phase.send_replace(Phase::Releasing);
        let mut tasks: Vec<_> = self
            .instances
            .into_iter()
            .map(|running| running.task)
            .collect();
        tasks.extend(self.leaving);
        let _ = self.stop.send(tasks);
        let _ = self.thread.join();
    }
}

fn route_key(config: &VrrpInstance) -> RouteKey {
    (config.interface.clone(), is_v6(config))
}

fn is_v6(config: &VrrpInstance) -> bool {
    config.virtual_ips[0].address.is_ipv6()
}

fn lock(routes: &Routes) -> std::sync::MutexGuard<'_, HashMap<u8, mpsc::Sender<Inbound>>> {
    routes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a reloaded config is the same router as a running one: same interface, VRID,
/// family and virtual MAC (whose macvlan the instance makes at its start, and sends through
/// from the source address it started with), and same sync group (which it joins at its
/// start). Everything else applies in place.
fn same_router(old: &VrrpInstance, new: &VrrpInstance) -> bool {
    let identity = |config: &VrrpInstance| {
        let source = config.virtual_mac.then_some(config.source_ip).flatten();
        (
            config.interface.clone(),
            config.virtual_router_id,
            is_v6(config),
            config.virtual_mac,
            source,
            config.sync_group.clone(),
        )
    };
    identity(old) == identity(new)
}

/// Whether a kept instance can go on with its sockets: they depend on the source address.
fn same_link(old: &VrrpInstance, new: &VrrpInstance) -> bool {
    old.source_ip == new.source_ip
}

/// What [`open`] hands back to [`Engine::prepare`].
struct Opened {
    /// One per instance asked for, in order.
    links: Vec<Link>,
    receivers: Vec<(RouteKey, VrrpReceiver)>,
    link_states: LinkStates,
    monitor: Option<LinkMonitor>,
}

/// Opens, on the engine's runtime, the sockets of `instances`, a receive loop's socket for each
/// of `receive_on`, and a watch on each of `watch`.
async fn open(
    netlink: Netlink,
    instances: Vec<VrrpInstance>,
    receive_on: BTreeSet<RouteKey>,
    watch: BTreeSet<String>,
) -> anyhow::Result<Opened> {
    let mut links = Vec::with_capacity(instances.len());
    for config in &instances {
        let link = open_link(&netlink, config, is_v6(config))
            .await
            .with_context(|| format!("VRRP instance {} on {}", config.name, config.interface))?;
        links.push(link);
    }
    let mut receivers = Vec::with_capacity(receive_on.len());
    for key in receive_on {
        let interface = (instances.iter().zip(&links))
            .find(|(config, _)| route_key(config) == key)
            .map(|(_, link)| &link.interface)
            .expect("a receive loop is opened for an instance being opened");
        let receiver = if key.1 {
            VrrpReceiver::open_v6(interface)
        } else {
            VrrpReceiver::open_v4(interface)
        }
        .with_context(|| format!("VRRP on {}", key.0))?;
        receivers.push((key, receiver));
    }
    let (link_states, monitor) = if watch.is_empty() {
        (HashMap::new(), None)
    } else {
        let (states, monitor) = watch_links(watch)
            .await
            .context("watching the links of tracked interfaces over netlink")?;
        (states, Some(Box::pin(monitor) as LinkMonitor))
    };
    Ok(Opened {
        links,
        receivers,
        link_states,
        monitor,
    })
}

async fn open_link(netlink: &Netlink, config: &VrrpInstance, is_v6: bool) -> anyhow::Result<Link> {
    let interface = netlink.interface(&config.interface).await?;
    let source = match config.source_ip {
        Some(source) => source,
        None => default_source(netlink, &interface, is_v6).await?,
    };
    let (sender, announcer) = match source {
        IpAddr::V4(source) => (
            VrrpSender::open_v4(&interface, source)?,
            Announcer::V4(ArpAnnouncer::open(&interface)?),
        ),
        IpAddr::V6(source) => (
            VrrpSender::open_v6(&interface, source)?,
            Announcer::V6(NeighborAnnouncer::open(&interface)?),
        ),
    };
    Ok(Link {
        netlink: netlink.clone(),
        interface,
        sender,
        announcer,
    })
}

/// The interface's primary IPv4 address, or its link-local IPv6 address once usable.
async fn default_source(
    netlink: &Netlink,
    interface: &Interface,
    is_v6: bool,
) -> anyhow::Result<IpAddr> {
    let deadline = tokio::time::Instant::now() + SOURCE_ADDRESS_WAIT;
    loop {
        let sources = netlink.source_addresses(interface).await?;
        let source = if is_v6 {
            sources.ipv6_link_local.map(IpAddr::V6)
        } else {
            sources.ipv4.map(IpAddr::V4)
        };
        if let Some(source) = source {
            return Ok(source);
        }
        if tokio::time::Instant::now() >= deadline {
            let wanted = if is_v6 {
                "a usable IPv6 link-local"
            } else {
                "an IPv4"
            };
            return Err(anyhow!(
                "{} has no {wanted} address to send adverts from; add one or set source_ip",
                interface.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Decodes what arrives on one interface and hands each advert to the instance of its VRID;
/// malformed packets and unknown VRIDs are dropped, counted and logged.
async fn receive(mut receiver: VrrpReceiver, interface: String, routes: Routes) {
    stats::vrrp_receiving_on(&interface, &INTERFACE_DROP_REASONS);
    let mut tally = Tally::default();
    loop {
        let packet = match receiver.recv().await {
            Ok(packet) => packet,
            Err(error) => {
                tracing::warn!(%interface, %error, "VRRP receive failed");
                continue;
            }
        };
        let Some(envelope) = envelope(packet.source, packet.destination) else {
            continue;
        };
        let decoded = match packet::decode(&packet.payload, &envelope, packet.ttl) {
            Ok(decoded) => decoded,
            Err(error) => {
                stats::vrrp_dropped_on(&interface, error.as_str());
                if tally.record(error.as_str(), packet.source) {
                    tracing::warn!(%interface, from = %packet.source, reason = error.as_str(), %error, "malformed VRRP packet dropped");
                }
                continue;
            }
        };
        let vrid = decoded.advertisement.vrid;
        let instances = lock(&routes);
        let Some(instance) = instances.get(&vrid) else {
            stats::vrrp_dropped_on(&interface, "vrid");
            if tally.record("vrid", packet.source) {
                tracing::warn!(%interface, from = %packet.source, vrid, "VRRP advert for a VRID no instance here has: ignored");
            }
            continue;
        };
        let inbound = Inbound {
            advertisement: decoded.advertisement,
            source: packet.source,
            checksum: decoded.checksum,
        };
        if instance.try_send(inbound).is_err() {
            stats::vrrp_dropped_on(&interface, "queue_full");
            if tally.record("queue_full", packet.source) {
                tracing::warn!(%interface, from = %packet.source, vrid, "VRRP instance is behind: advert dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::vrrp::DecodeError;
    use crate::config::{VirtualIp, VrrpVersion};

    fn instance(name: &str, interface: &str) -> VrrpInstance {
        VrrpInstance {
            name: name.into(),
            interface: interface.into(),
            virtual_router_id: 33,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            version: VrrpVersion::V3,
            preempt: true,
            preempt_delay: Duration::ZERO,
            password: None,
            source_ip: None,
            unicast_peers: Vec::new(),
            virtual_ips: vec![VirtualIp {
                address: "198.51.100.10".parse().unwrap(),
                prefix_len: 24,
            }],
            v3_checksum_pseudo_header: true,
            virtual_mac: false,
            track: Vec::new(),
            notify: None,
            sync_group: None,
        }
    }

    fn no_data_plane() -> DataPlane {
        DataPlane {
            backends: Vec::new(),
            frontends: Vec::new(),
        }
    }

    /// An engine without instances needs no privilege, and a refused prepare opens nothing:
    /// this runs anywhere and touches no interface.
    #[test]
    fn a_refused_prepare_names_the_instance_and_changes_nothing() {
        let mut engine = Engine::start(Vec::new(), no_data_plane()).unwrap();
        assert!(engine.status().is_empty());
        let missing = engine
            .prepare(&[instance("VI_9", "tandem-none0")], &no_data_plane())
            .err()
            .expect("no such interface");
        let message = format!("{missing:#}");
        assert!(
            message.contains("VRRP instance VI_9 on tandem-none0"),
            "{message}"
        );
        assert!(message.contains("does not exist"), "{message}");
        assert!(engine.status().is_empty());
        assert!(engine.receivers.is_empty() && engine.links.is_empty());

        // What runs is untouched: an empty reload still prepares and commits.
        let prepared = engine.prepare(&[], &no_data_plane()).unwrap();
        engine.commit(prepared);
        assert!(engine.status().is_empty());
        engine.hand_over();
        engine.release();
    }

    #[test]
    fn a_config_is_the_same_router_while_interface_vrid_and_family_stay() {
        let running = instance("VI_1", "eth0");
        let mut reloaded = VrrpInstance {
            priority: 200,
            preempt: false,
            advert_interval: Duration::from_millis(200),
            password: None,
            source_ip: Some("198.51.100.11".parse().unwrap()),
            ..running.clone()
        };
        assert!(same_router(&running, &reloaded));
        reloaded.virtual_router_id = 34;
        assert!(!same_router(&running, &reloaded));
        let mut moved = running.clone();
        moved.interface = "eth1".into();
        assert!(!same_router(&running, &moved));
        let mut v6 = running.clone();
        v6.virtual_ips[0].address = "2001:db8::10".parse().unwrap();
        assert!(!same_router(&running, &v6));
    }

    #[test]
    fn every_decode_error_is_a_drop_reason_put_at_zero() {
        // Written as a match, so that a new variant fails to compile here until it is listed.
        let reason = |error: DecodeError| match error {
            DecodeError::HopLimit { .. }
            | DecodeError::Version { .. }
            | DecodeError::Type { .. }
            | DecodeError::TooShort { .. }
            | DecodeError::AddressCount { .. }
            | DecodeError::Checksum
            | DecodeError::AuthType { .. }
            | DecodeError::ZeroInterval => error.as_str(),
        };
        let errors = [
            DecodeError::HopLimit { received: 1 },
            DecodeError::Version { received: 9 },
            DecodeError::Type { received: 2 },
            DecodeError::TooShort { length: 1 },
            DecodeError::AddressCount {
                count: 9,
                length: 8,
            },
            DecodeError::Checksum,
            DecodeError::AuthType { received: 7 },
            DecodeError::ZeroInterval,
        ];
        for error in errors {
            assert!(INTERFACE_DROP_REASONS.contains(&reason(error)), "{error:?}");
        }
    }
}
