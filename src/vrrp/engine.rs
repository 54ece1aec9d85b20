//! The VRRP engine: its own thread and runtime (so a saturated data plane never delays an
//! advert), one receive loop per interface and address family, and one task per instance.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::instance::{envelope, Announcer, Inbound, Instance, Link, Phase, Update};
use super::net::announce::{ArpAnnouncer, NeighborAnnouncer};
use super::net::interface::Interface;
use super::net::link::{watch_links, LinkStates};
use super::net::netlink::Netlink;
use super::net::socket::{VrrpReceiver, VrrpSender};
use super::packet;
use super::status::VrrpStatus;
use super::tally::Tally;
use super::tracking::Trackers;
use crate::config::{TrackTarget, VrrpInstance};
use crate::stats;
use crate::track::data_plane::DataPlane;

/// How long start-up waits for an interface's IPv6 link-local address to finish duplicate
/// address detection.
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

/// Where one interface's adverts of one family go: the instances there, by VRID.
struct Route {
    interface: Interface,
    instances: HashMap<u8, mpsc::Sender<Inbound>>,
}

pub struct Engine {
    phase: watch::Sender<Phase>,
    /// One message per instance once its peer holds its VIPs (or it had none).
    handed_over: std::sync::mpsc::Receiver<()>,
    /// The running instances' configs, and where to send each a reloaded one.
    running: Vec<(VrrpInstance, mpsc::UnboundedSender<Update>)>,
    links: LinkStates,
    status: Vec<Arc<Mutex<VrrpStatus>>>,
    thread: thread::JoinHandle<()>,
}

/// What start-up hands back from the engine thread.
struct Opened {
    instances: JoinSet<()>,
    serving: JoinSet<()>,
    updates: Vec<mpsc::UnboundedSender<Update>>,
    links: LinkStates,
}

impl Engine {
    /// Opens every instance's sockets and starts the protocol; fails, naming the instance, when
    /// an interface or address is missing. `data_plane` feeds the instances' backend and
    /// frontend trackers.
    pub fn start(instances: Vec<VrrpInstance>, data_plane: DataPlane) -> anyhow::Result<Engine> {
        let (phase, phases) = watch::channel(Phase::Running);
        let (report, handed_over) = std::sync::mpsc::channel();
        let (ready, started) = std::sync::mpsc::channel();
        let configs = instances.clone();
        let status: Vec<_> = (instances.iter())
            .map(|config| Arc::new(Mutex::new(VrrpStatus::new(config))))
            .collect();
        let published = status.clone();
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
                runtime.block_on(async move {
                    match open(instances, published, &data_plane, phases, report).await {
                        Ok(Opened {
                            mut instances,
                            serving,
                            updates,
                            links,
                        }) => {
                            let _ = ready.send(Ok((updates, links)));
                            // Receivers run until the last instance has handed over.
                            while instances.join_next().await.is_some() {}
                            drop(serving);
                        }
                        Err(error) => drop(ready.send(Err(error))),
                    }
                });
            })
            .context("starting the VRRP thread")?;
        let (updates, links) = started
            .recv()
            .context("the VRRP thread ended during start-up")??;
        Ok(Engine {
            phase,
            handed_over,
            running: configs.into_iter().zip(updates).collect(),
            links,
            status,
            thread,
        })
    }

    /// Each instance's state as it publishes it, in config order.
    pub fn status(&self) -> Vec<Arc<Mutex<VrrpStatus>>> {
        self.status.clone()
    }

    /// Applies reloaded instances: priority, VIPs and tracked items change in place, with no
    /// state change. Anything else (instances added, removed or renamed; interface, VRID,
    /// version, interval, preemption, authentication, source, peers; a newly tracked interface)
    /// needs a restart: then nothing changes and the error says what differs.
    pub fn reconfigure(
        &mut self,
        instances: &[VrrpInstance],
        data_plane: &DataPlane,
    ) -> Result<(), String> {
        let running = self.running.iter().map(|(config, _)| &config.name);
        if !running.eq(instances.iter().map(|instance| &instance.name)) {
            return Err("the set or order of VRRP instances changed".into());
        }
        for ((old, _), new) in self.running.iter().zip(instances) {
            if !same_router(old, new) {
                return Err(format!(
                    "instance {} changed more than priority, virtual_ips and track",
                    new.name
                ));
            }
            let unwatched = (new.track.iter()).find_map(|item| match &item.target {
                TrackTarget::Interface(name) if !self.links.contains_key(name) => Some(name),
                _ => None,
            });
            if let Some(interface) = unwatched {
                return Err(format!(
                    "instance {} newly tracks interface {interface}",
                    new.name
                ));
            }
        }
        for ((old, updates), new) in self.running.iter_mut().zip(instances) {
            let trackers = Trackers::new(&new.track, data_plane, &self.links);
            let _ = updates.send(Update {
                config: new.clone(),
                trackers,
            });
            *old = new.clone();
        }
        Ok(())
    }

    /// Resigns every instance (priority-0 advert) and returns once each peer holds the VIPs,
    /// or a bounded time has passed. This node keeps the VIPs until [`Engine::release`], so
    /// connections on them can finish.
    pub fn hand_over(&self) {
        self.phase.send_replace(Phase::Resigning);
        for _ in 0..self.running.len() {
            if self.handed_over.recv().is_err() {
                break;
            }
        }
    }

    /// Removes the VIPs and stops the engine.
    pub fn release(self) {
        self.phase.send_replace(Phase::Releasing);
        let _ = self.thread.join();
    }
}

/// Whether two configs describe the same running router, apart from what a reload may change.
fn same_router(old: &VrrpInstance, new: &VrrpInstance) -> bool {
    let reloadable = |config: &VrrpInstance| VrrpInstance {
        priority: 0,
        virtual_ips: Vec::new(),
        track: Vec::new(),
        ..config.clone()
    };
    reloadable(old) == reloadable(new)
        && old.virtual_ips[0].address.is_ipv6() == new.virtual_ips[0].address.is_ipv6()
}

/// Starts the instance tasks, and in a second set what serves them (receivers, link monitors).
async fn open(
    instances: Vec<VrrpInstance>,
    status: Vec<Arc<Mutex<VrrpStatus>>>,
    data_plane: &DataPlane,
    phase: watch::Receiver<Phase>,
    handed_over: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<Opened> {
    let netlink = Netlink::connect().context("opening netlink for VRRP")?;
    let mut tasks = JoinSet::new();
    let mut updates = Vec::with_capacity(instances.len());
    // Receivers and link monitors: they serve the instances and end with them.
    let mut receivers = JoinSet::new();
    let tracked_interfaces: BTreeSet<String> = (instances.iter())
        .flat_map(|instance| &instance.track)
        .filter_map(|item| match &item.target {
            TrackTarget::Interface(name) => Some(name.clone()),
            TrackTarget::Backend { .. } | TrackTarget::Frontend(_) => None,
        })
        .collect();
    let links = if tracked_interfaces.is_empty() {
        HashMap::new()
    } else {
        let (links, monitor) = watch_links(tracked_interfaces)
            .await
            .context("watching the links of tracked interfaces over netlink")?;
        receivers.spawn(monitor);
        links
    };
    // One receiver per interface and family, routing adverts to instances by VRID.
    let mut routes: HashMap<(String, bool), Route> = HashMap::new();
    for (config, status) in instances.into_iter().zip(status) {
        let name = config.name.clone();
        let is_v6 = config.virtual_ips[0].address.is_ipv6();
        let link = open_link(&netlink, &config, is_v6)
            .await
            .with_context(|| format!("VRRP instance {name} on {}", config.interface))?;
        let (inbound, queue) = mpsc::channel(INBOUND_QUEUE);
        let route = routes
            .entry((config.interface.clone(), is_v6))
            .or_insert_with(|| Route {
                interface: link.interface.clone(),
                instances: HashMap::new(),
            });
        route.instances.insert(config.virtual_router_id, inbound);
        let trackers = Trackers::new(&config.track, data_plane, &links);
        let instance = Instance::new(config, link, status);
        let (update, reloads) = mpsc::unbounded_channel();
        updates.push(update);
        tasks.spawn(instance.run(queue, trackers, phase.clone(), handed_over.clone(), reloads));
    }
    for (
        (name, is_v6),
        Route {
            interface,
            instances,
        },
    ) in routes
    {
        let receiver = if is_v6 {
            VrrpReceiver::open_v6(&interface)
        } else {
            VrrpReceiver::open_v4(&interface)
        }
        .with_context(|| format!("VRRP on {name}"))?;
        receivers.spawn(receive(receiver, name, instances));
    }
    Ok(Opened {
        instances: tasks,
        serving: receivers,
        updates,
        links,
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
async fn receive(
    mut receiver: VrrpReceiver,
    interface: String,
    instances: HashMap<u8, mpsc::Sender<Inbound>>,
) {
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
    use crate::vrrp::packet::DecodeError;

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
