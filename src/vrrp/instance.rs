//! One VRRP instance: the IO shell around the pure state machine. It turns packets and timers
//! into events, and carries out the actions that come back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use super::machine::{
    self, Action, Anomaly, Event, Machine, Preempt, ReceivedAdvert, Timer, Timestamp,
};
use super::net::announce::{ArpAnnouncer, NeighborAnnouncer};
use super::net::interface::Interface;
use super::net::netlink::Netlink;
use super::net::socket::{VrrpSender, VRRP_GROUP_V4, VRRP_GROUP_V6};
use super::net::vip::Vip;
use super::notify::{Notifier, Transition};
use super::status::{self, VrrpStatus};
use super::sync_group::{GroupMember, Membership, Report};
use super::tally::Tally;
use crate::codec::vrrp::{
    self as packet, AdvertInterval, Advertisement, Authentication, ChecksumVariant, Envelope,
    SimpleTextPassword, Version,
};
use crate::config::{VrrpInstance, VrrpVersion};
use crate::stats::VrrpStats;
use crate::track::live::Trackers;
use crate::track::Verdict;

/// How long a VIP outlives its last refresh: after a crash (`kill -9`) the kernel drops it by
/// itself within this time, so no stale VIP keeps answering ARP.
pub const VIP_LIFETIME: Duration = Duration::from_secs(2);
/// How often a master refreshes its VIPs' lifetime: several chances before one runs out.
const VIP_REFRESH: Duration = Duration::from_millis(500);
/// Announcements after the first one on becoming master, in case one is lost.
const ANNOUNCE_REPEATS: u8 = 2;
const ANNOUNCE_SPACING: Duration = Duration::from_millis(500);
/// The longest a resigning master keeps its VIPs while waiting for a peer to take them, in
/// advert intervals: the peer needs Skew_Time (under one interval) and then advertises.
const HAND_OVER_INTERVALS: u32 = 4;
/// A timer that fires later than this is logged: adverts must leave on time.
const LATE_TIMER: Duration = Duration::from_millis(20);

/// An operator's change (the runtime API): `Event::Resign` or `Event::Maintenance`, and
/// where the line saying what became of the instance goes.
pub type Command = (Event, oneshot::Sender<String>);

/// A reloaded config for a running instance of the same name, interface, VRID and family:
/// anything else may change, and applies in place.
pub struct Update {
    pub config: VrrpInstance,
    pub trackers: Trackers,
    /// Sockets opened for a new `source_ip`; `None` keeps the running ones.
    pub link: Option<Link>,
}

/// A decoded advert for this instance's VRID.
pub struct Inbound {
    pub advertisement: Advertisement,
    pub source: IpAddr,
    pub checksum: ChecksumVariant,
}

pub enum Announcer {
    V4(ArpAnnouncer),
    V6(NeighborAnnouncer),
}

/// The sockets and addresses an instance runs with, opened by the engine.
pub struct Link {
    pub netlink: Netlink,
    pub interface: Interface,
    pub sender: VrrpSender,
    pub announcer: Announcer,
}

impl Link {
    /// Opens the virtual MAC's macvlan on this link's interface and sends, announces and holds
    /// the VIPs through it from now on; adverts keep their source address.
    async fn through_virtual_mac(&mut self, vrid: u8) -> anyhow::Result<Interface> {
        let source = self.sender.source();
        let macvlan = (self.netlink)
            .open_virtual_mac(&self.interface, vrid, source.is_ipv6())
            .await?;
        let opened = match source {
            IpAddr::V4(source) => VrrpSender::open_v4(&macvlan, source)
                .and_then(|sender| Ok((sender, Announcer::V4(ArpAnnouncer::open(&macvlan)?)))),
            IpAddr::V6(source) => VrrpSender::open_v6_through(&macvlan, source)
                .and_then(|sender| Ok((sender, Announcer::V6(NeighborAnnouncer::open(&macvlan)?)))),
        };
        match opened {
            Ok((sender, announcer)) => {
                self.sender = sender;
                self.announcer = announcer;
                self.interface = macvlan.clone();
                Ok(macvlan)
            }
            Err(error) => {
                let _ = self.netlink.remove_virtual_mac(&macvlan).await;
                Err(error.into())
            }
        }
    }
}

pub struct Instance {
    config: VrrpInstance,
    link: Link,
    machine: Machine,
    advert: Advertisement,
    vips: Vec<Vip>,
    epoch: Instant,
    adver_at: Option<Instant>,
    master_down_at: Option<Instant>,
    refresh_at: Option<Instant>,
    announce: Option<(Instant, u8)>,
    /// With `virtual_mac: true`, the macvlan that carries it: up only while holding the VIPs.
    virtual_mac: Option<Interface>,
    /// Set while resigning: VIP removal waits for a peer to take over.
    resigning: bool,
    vips_to_hand_over: bool,
    /// After an operator's resign or maintenance, the VIPs are kept until this time, and the
    /// peer's adverts heard since: once it has advertised as master twice, the time moves to
    /// after its last gratuitous ARP, since a client that refreshed its neighbour entry in
    /// the last second ignores one (Linux's `locktime`).
    handing_over: Option<(Instant, u8)>,
    /// The checksum variant each unicast peer uses, learned from its adverts (v3 over IPv4).
    peer_checksums: HashMap<IpAddr, ChecksumVariant>,
    tally: Tally,
    late_timers: u64,
    /// What the trackers last decided, as given to the machine.
    verdict: Verdict,
    /// Whether every tracked backend has had its first health verdict: until then this node
    /// does not preempt, since its own backends' health is only a guess.
    verdicts_in: bool,
    stats: VrrpStats,
    /// Published after every change, for `/status` and the metrics gauges.
    status: Arc<Mutex<VrrpStatus>>,
    /// Runs the `notify:` hook; started at the first state change that has one.
    notifier: Option<Notifier>,
    /// This instance's sync group, if it is in one, and what the group last asked of it.
    sync: Option<GroupMember>,
    membership: Membership,
}

impl Instance {
    pub fn new(config: VrrpInstance, link: Link, status: Arc<Mutex<VrrpStatus>>) -> Instance {
        // Preemption waits for the trackers' first look (see `run`).
        let machine = Machine::new(machine_config(&config, link.sender.source(), false));
        let vips = vips(&config);
        let advert = Advertisement {
            version: version(&config),
            vrid: config.virtual_router_id,
            priority: config.priority,
            interval: advert_interval(&config),
            addresses: vips.iter().map(|vip| vip.address).collect(),
            authentication: authentication(&config),
        };
        Instance {
            link,
            machine,
            advert,
            vips,
            epoch: Instant::now(),
            adver_at: None,
            master_down_at: None,
            refresh_at: None,
            announce: None,
            virtual_mac: None,
            resigning: false,
            vips_to_hand_over: false,
            handing_over: None,
            peer_checksums: HashMap::new(),
            tally: Tally::default(),
            late_timers: 0,
            verdict: Verdict::Priority(config.priority),
            verdicts_in: false,
            stats: VrrpStats::new(
                &config.name,
                config.virtual_router_id,
                &machine::State::ALL.map(machine::State::label),
            ),
            status,
            config,
            notifier: None,
            sync: None,
            membership: Membership::default(),
        }
    }

    /// Makes this instance a member of a sync group: it reports to the group and follows it.
    pub fn in_sync_group(mut self, member: GroupMember) -> Instance {
        self.sync = Some(member);
        self
    }

    /// Runs until the engine's phase is `Resigning`, then resigns (priority-0 advert), waits
    /// for a peer to take over, reports on `handed_over`, and keeps the VIPs until `Releasing`
    /// so connections already on them can finish. `trackers` move the effective priority, or
    /// hold the instance in Fault, from the start. When the engine drops `updates` (a reload
    /// removed the instance), it resigns and releases its VIPs at once.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut trackers: Trackers,
        mut phase: watch::Receiver<Phase>,
        handed_over: std::sync::mpsc::Sender<()>,
        mut updates: mpsc::UnboundedReceiver<Update>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        self.virtual_mac = self.open_virtual_mac().await;
        let mut group_changes = self.sync.as_ref().map(GroupMember::subscribe);
        // Still in Initialize: this only sets the priority, or enters Fault without starting.
        let verdict = trackers.verdict(self.config.priority);
        self.follow(verdict, &trackers).await;
        self.obey_group().await;
        self.verdicts_in = trackers.verdicts_in();
        self.set_machine_config().await;
        if self.config.preempt && !self.verdicts_in {
            tracing::info!(instance = %self.config.name, "no preemption until every tracked backend's servers have had a health check result");
        }
        if verdict != Verdict::Fault && !self.membership.holds_in_fault() {
            self.step(Event::Startup).await;
        }
        loop {
            tokio::select! {
                biased;
                () = reached(&mut phase, Phase::Resigning) => break,
                () = trackers.changed() => {
                    let verdict = trackers.verdict(self.config.priority);
                    self.follow(verdict, &trackers).await;
                    self.gate_preemption(&trackers).await;
                }
                Some(packet) = inbound.recv() => self.receive(packet).await,
                () = group_changed(&mut group_changes) => self.obey_group().await,
                update = updates.recv() => match update {
                    Some(update) => {
                        trackers = update.trackers;
                        self.reconfigure(update.config, update.link, &trackers).await;
                    }
                    None => return self.remove().await,
                },
                late = deadline(self.adver_at) => {
                    self.adver_at = None;
                    self.note_lateness("advert", late);
                    self.step(Event::AdverTimerFired).await;
                }
                late = deadline(self.master_down_at) => {
                    self.master_down_at = None;
                    self.note_lateness("master-down", late);
                    self.step(Event::MasterDownTimerFired).await;
                }
                _ = deadline(self.refresh_at) => self.add_or_refresh_vips().await,
                _ = deadline(self.announce.map(|(at, _)| at)) => self.announce_again(),
                _ = deadline(self.handing_over.map(|(at, _)| at)) => {
                    if self.handing_over.take().is_some_and(|(_, heard)| heard < 2) {
                        tracing::info!(instance = %self.config.name, "no peer took over in time");
                    }
                    self.remove_vips().await;
                }
                Some((event, done)) = commands.recv() => {
                    let before = self.machine.state();
                    // A Master stepping down keeps its VIPs until the peer has them, so no
                    // client is turned away in between.
                    self.resigning = true;
                    self.step(event).await;
                    self.resigning = false;
                    if std::mem::take(&mut self.vips_to_hand_over) {
                        let limit = Instant::now() + self.config.advert_interval * HAND_OVER_INTERVALS;
                        self.handing_over = Some((limit, 0));
                    }
                    let _ = done.send(format!(
                        "vrrp instance {} is {} (was {}), mode {}",
                        self.config.name,
                        self.machine.state().label(),
                        before.label(),
                        self.machine.mode().label()
                    ));
                }
            }
        }
        self.resigning = true;
        self.step(Event::Shutdown).await;
        // Still holding VIPs an operator's resign is handing over: wait for the peer as well.
        self.vips_to_hand_over |= self.handing_over.take().is_some();
        if self.vips_to_hand_over && self.wait_for_peer(&mut inbound).await {
            // Clients' frames for the virtual MAC go to the peer now, so VIPs kept here serve
            // nobody, and a macvlan kept up could answer ARP for them and draw the switch back.
            if self.virtual_mac.is_some() {
                self.remove_vips().await;
                self.vips_to_hand_over = false;
            }
        }
        let _ = handed_over.send(());
        if self.vips_to_hand_over {
            loop {
                tokio::select! {
                    () = reached(&mut phase, Phase::Releasing) => break,
                    _ = deadline(self.refresh_at) => self.add_or_refresh_vips().await,
                }
            }
            self.remove_vips().await;
        }
        self.release_virtual_mac().await;
        self.end_hooks_and_group().await;
    }

    /// At the end: leaves the sync group, so it holds no other member, and lets the hooks of
    /// the last transitions run (each bounded by its timeout).
    async fn end_hooks_and_group(&mut self) {
        if let Some(member) = &self.sync {
            member.leave();
        }
        if let Some(notifier) = self.notifier.take() {
            notifier.finish().await;
        }
    }

    /// Brings the machine in line with what its sync group asks, and says why in the log.
    async fn obey_group(&mut self) {
        let Some(member) = &self.sync else {
            return;
        };
        let group = member.group_name().to_owned();
        let directive = member.directive();
        let own_fault = self.verdict == Verdict::Fault;
        for event in self.membership.obey(directive, own_fault) {
            let what = match event {
                Event::Fault => "another member is in FAULT: following it",
                Event::FaultCleared => "no member is in FAULT any more: starting again",
                Event::SyncHold(true) => {
                    "another member yields to the peer's MASTER: not MASTER here"
                }
                Event::SyncHold(false) => {
                    "no member yields to the peer's MASTER any more: free to be MASTER"
                }
                _ => unreachable!("a sync group only faults, clears and holds"),
            };
            tracing::info!(instance = %self.config.name, sync_group = %group, "{what}");
            self.step(event).await;
        }
    }

    /// Removes the macvlan that carried the virtual MAC, if this instance made one.
    async fn release_virtual_mac(&mut self) {
        if let Some(macvlan) = self.virtual_mac.take() {
            if let Err(error) = self.link.netlink.remove_virtual_mac(&macvlan).await {
                tracing::warn!(instance = %self.config.name, %error, "removing the virtual MAC interface failed");
            }
        }
    }

    /// With `virtual_mac: true`, moves adverts, announcements and the VIPs onto the macvlan
    /// that carries the virtual MAC, and returns it. When that fails the instance runs with
    /// the interface's own MAC rather than not at all, and says so.
    async fn open_virtual_mac(&mut self) -> Option<Interface> {
        if !self.config.virtual_mac {
            return None;
        }
        match self
            .link
            .through_virtual_mac(self.config.virtual_router_id)
            .await
        {
            Ok(macvlan) => {
                tracing::info!(instance = %self.config.name, interface = %macvlan.name, mac = %macvlan.mac, "VRRP uses the virtual MAC");
                Some(macvlan)
            }
            Err(error) => {
                tracing::error!(instance = %self.config.name, error = format!("{error:#}"), "the virtual MAC is unavailable: running with the interface's own MAC");
                None
            }
        }
    }

    /// Keeps the VIPs (and serves on them) until a peer has advertised as master twice, so no
    /// client is turned away between our resignation and its takeover: its first advert may
    /// leave before its VIPs and gratuitous ARPs. Bounded, for a node with no peer: says
    /// whether a peer took over.
    async fn wait_for_peer(&mut self, inbound: &mut mpsc::Receiver<Inbound>) -> bool {
        let limit = Instant::now() + self.config.advert_interval * HAND_OVER_INTERVALS;
        let mut peer_adverts = 0;
        loop {
            tokio::select! {
                Some(packet) = inbound.recv() => {
                    let from_peer = packet.source != self.link.sender.source()
                        && packet.advertisement.priority > 0
                        && packet.advertisement.authentication == self.advert.authentication;
                    peer_adverts += usize::from(from_peer);
                    if peer_adverts == 2 {
                        tracing::info!(instance = %self.config.name, peer = %packet.source, "peer took over");
                        return true;
                    }
                }
                _ = sleep_until(limit) => {
                    tracing::info!(instance = %self.config.name, "no peer took over in time");
                    return false;
                }
                _ = deadline(self.refresh_at) => self.add_or_refresh_vips().await,
            }
        }
    }

    /// Taken out of the config by a reload: resign, so a peer takes over after Skew_Time, and
    /// give up the VIPs now (another instance may be about to claim them).
    async fn remove(&mut self) {
        self.step(Event::Shutdown).await;
        self.release_virtual_mac().await;
        self.end_hooks_and_group().await;
        tracing::info!(instance = %self.config.name, vrid = self.config.virtual_router_id, "VRRP instance removed");
    }

    /// Preemption follows the config once every tracked backend has had its first verdict;
    /// before, this node follows any Master it hears (it still takes over when it hears none).
    async fn gate_preemption(&mut self, trackers: &Trackers) {
        let verdicts_in = trackers.verdicts_in();
        if verdicts_in == self.verdicts_in {
            return;
        }
        self.verdicts_in = verdicts_in;
        if self.config.preempt && verdicts_in {
            tracing::info!(instance = %self.config.name, "tracked backends have had their first health check results: preemption allowed");
        }
        self.set_machine_config().await;
    }

    /// Hands the config the machine needs, with preemption gated, to the running machine.
    async fn set_machine_config(&mut self) {
        let config = machine_config(&self.config, self.link.sender.source(), self.verdicts_in);
        let actions = self.machine.reconfigure(self.now(), config);
        for action in actions {
            self.apply(action).await;
        }
        // Whether it yields to the Master it follows may have changed with preemption.
        self.report_to_group();
    }

    /// Applies a reloaded config without a state change: a master adds and announces new VIPs,
    /// removes dropped ones, and advertises new settings at once.
    async fn reconfigure(&mut self, config: VrrpInstance, link: Option<Link>, trackers: &Trackers) {
        if let Some(link) = link {
            self.link = link;
        }
        if config.unicast_peers != self.config.unicast_peers
            || config.v3_checksum_pseudo_header != self.config.v3_checksum_pseudo_header
        {
            self.peer_checksums.clear();
        }
        self.advert.version = version(&config);
        self.advert.interval = advert_interval(&config);
        self.advert.authentication = authentication(&config);
        let vips = vips(&config);
        if self.refresh_at.is_some() {
            for &gone in self.vips.iter().filter(|vip| !vips.contains(vip)) {
                if let Err(error) = self
                    .link
                    .netlink
                    .remove_vip(&self.link.interface, gone)
                    .await
                {
                    tracing::error!(instance = %config.name, %error, "removing a VIP failed");
                }
            }
        }
        let added = vips.iter().any(|vip| !self.vips.contains(vip));
        self.advert.addresses = vips.iter().map(|vip| vip.address).collect();
        self.vips = vips;
        self.config = config;
        if self.refresh_at.is_some() && added {
            self.add_or_refresh_vips().await;
            self.announce_all();
        }
        status::lock(&self.status).virtual_ips = status::virtual_ips(&self.config);
        self.verdicts_in = trackers.verdicts_in();
        self.set_machine_config().await;
        let verdict = trackers.verdict(self.config.priority);
        self.follow(verdict, trackers).await;
        self.publish();
        tracing::info!(instance = %self.config.name, "VRRP instance reconfigured");
    }

    /// Hands a new tracker verdict to the machine: a Master advertises a new priority at once.
    async fn follow(&mut self, verdict: Verdict, trackers: &Trackers) {
        if verdict == self.verdict {
            return;
        }
        tracing::info!(
            instance = %self.config.name,
            vrid = self.config.virtual_router_id,
            from = %self.verdict,
            to = %verdict,
            failing = %trackers.failing().join(", "),
            "tracked items changed the VRRP priority"
        );
        self.verdict = verdict;
        match verdict {
            Verdict::Fault => self.step(Event::Fault).await,
            Verdict::Priority(priority) => {
                self.step(Event::PriorityChanged(priority)).await;
                // Nothing unless in Fault; after the priority, so an owner restarts as Master.
                // A Fault its sync group holds it in stays.
                if !self.membership.holds_in_fault() {
                    self.step(Event::FaultCleared).await;
                }
            }
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_since_epoch(self.epoch.elapsed())
    }

    async fn step(&mut self, event: Event) {
        let actions = self.machine.handle(self.now(), event);
        for action in actions {
            self.apply(action).await;
        }
        self.publish();
        self.report_to_group();
    }

    fn report_to_group(&self) {
        if let Some(member) = &self.sync {
            member.report(Report::of(self.verdict == Verdict::Fault, &self.machine));
        }
    }

    fn publish(&self) {
        let mut status = status::lock(&self.status);
        let state = self.machine.state().label();
        if status.state != state {
            state.clone_into(&mut status.state);
        }
        status.priority = self.config.priority;
        status.effective_priority = self.machine.priority();
        status.master = self.machine.master();
        let mode = self.machine.mode().label();
        if status.mode != mode {
            mode.clone_into(&mut status.mode);
        }
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::SendAdvert { priority } => self.send_advert(priority),
            Action::AddVips => {
                // Master again while handing over (the peer failed): the VIPs stay.
                self.handing_over = None;
                self.add_or_refresh_vips().await
            }
            Action::RemoveVips if self.resigning => self.vips_to_hand_over = true,
            Action::RemoveVips => self.remove_vips().await,
            Action::SendGratuitous => {
                self.announce_all();
                self.announce = Some((Instant::now() + ANNOUNCE_SPACING, ANNOUNCE_REPEATS));
            }
            Action::SetTimer { timer, at } => {
                let at = Some(self.epoch + at.since_epoch());
                match timer {
                    Timer::Adver => self.adver_at = at,
                    Timer::MasterDown => self.master_down_at = at,
                }
            }
            Action::CancelTimer(Timer::Adver) => self.adver_at = None,
            Action::CancelTimer(Timer::MasterDown) => self.master_down_at = None,
            Action::StateChanged { from, to, cause } => {
                self.stats.entered(to as usize);
                tracing::info!(
                    instance = %self.config.name,
                    vrid = self.config.virtual_router_id,
                    from = from.label(),
                    to = to.label(),
                    cause = %cause,
                    "VRRP state changed"
                );
                self.queue_hook(from, to);
            }
            Action::Report(anomaly) => {
                let (kind, from) = match anomaly {
                    Anomaly::VersionMismatch { from, .. } => ("version", from),
                    Anomaly::IntervalMismatch { from, .. } => ("interval", from),
                    Anomaly::LowerPriorityMaster(peer) => ("lower_master", peer.address),
                };
                // Repeats every advert while it lasts: loud at first, then thinning out.
                if self.tally.record(kind, from) {
                    tracing::warn!(
                        instance = %self.config.name,
                        vrid = self.config.virtual_router_id,
                        anomaly = %anomaly,
                        "VRRP peers disagree"
                    );
                }
            }
        }
    }

    /// Queues the `notify:` hook, if there is one, for a state change; never waits for it.
    fn queue_hook(&mut self, from: machine::State, to: machine::State) {
        let Some(hook) = &self.config.notify else {
            return;
        };
        let transition = Transition {
            instance: self.config.name.clone(),
            vrid: self.config.virtual_router_id,
            from,
            to,
            priority: self.machine.priority(),
            sync_group: (self.sync.as_ref()).map(|member| member.group_name().to_owned()),
        };
        let instance = &self.config.name;
        (self
            .notifier
            .get_or_insert_with(|| Notifier::start(instance)))
        .notify(hook.clone(), transition);
    }

    async fn receive(&mut self, inbound: Inbound) {
        let source = inbound.source;
        if source == self.link.sender.source() {
            return;
        }
        self.stats.adverts_received.increment(1);
        if !self.config.unicast_peers.is_empty() && !self.config.unicast_peers.contains(&source) {
            return self.drop_packet(
                "not_peer",
                source,
                "advert from a host that is not a unicast peer",
            );
        }
        if inbound.advertisement.authentication != self.advert.authentication {
            return self.drop_packet(
                "auth",
                source,
                "authentication does not match ours: check the password on both nodes",
            );
        }
        self.peer_checksums.insert(source, inbound.checksum);
        let advert = ReceivedAdvert::new(&inbound.advertisement, source);
        self.step(Event::AdvertReceived(advert)).await;
        if let Some((until, heard)) = &mut self.handing_over {
            // Its first advert may leave before its VIPs and gratuitous ARPs.
            if *heard < 2 && advert.priority > 0 {
                *heard += 1;
                if *heard == 2 {
                    tracing::info!(instance = %self.config.name, peer = %source, "peer took over");
                    *until = Instant::now() + ANNOUNCE_SPACING * (u32::from(ANNOUNCE_REPEATS) + 1);
                    // With a virtual MAC, clients' frames go to the peer already.
                    if self.virtual_mac.is_some() {
                        self.handing_over = None;
                        self.remove_vips().await;
                    }
                }
            }
        }
    }

    fn drop_packet(&mut self, reason: &'static str, from: IpAddr, why: &str) {
        self.stats.dropped(reason);
        if self.tally.record(reason, from) {
            tracing::warn!(instance = %self.config.name, %from, reason, "VRRP advert ignored: {why}");
        }
    }

    fn note_lateness(&mut self, timer: &'static str, late: Duration) {
        if late > LATE_TIMER {
            self.late_timers += 1;
            tracing::warn!(instance = %self.config.name, timer, late = %crate::config::display_duration(late), late_timers = self.late_timers, "VRRP timer fired late");
        }
    }

    fn send_advert(&mut self, priority: u8) {
        self.advert.priority = priority;
        let source = self.link.sender.source();
        let mut destinations: Vec<(IpAddr, bool)> = (self.config.unicast_peers.iter())
            .map(|&peer| (peer, false))
            .collect();
        if destinations.is_empty() {
            let group = match source {
                IpAddr::V4(_) => IpAddr::V4(VRRP_GROUP_V4),
                IpAddr::V6(_) => IpAddr::V6(VRRP_GROUP_V6),
            };
            destinations.push((group, true));
        }
        for (destination, multicast) in destinations {
            let variant = (self.peer_checksums.get(&destination).copied()).unwrap_or(
                if self.config.v3_checksum_pseudo_header {
                    ChecksumVariant::PseudoHeader
                } else {
                    ChecksumVariant::MessageOnly
                },
            );
            let sent = envelope(source, destination)
                .ok_or_else(|| format!("{destination} is not of the family of {source}"))
                .and_then(|envelope| {
                    packet::encode(&self.advert, &envelope, variant)
                        .map_err(|error| error.to_string())
                })
                .and_then(|bytes| {
                    let result = if multicast {
                        self.link.sender.send_multicast(&bytes)
                    } else {
                        self.link.sender.send_to(destination, &bytes)
                    };
                    result.map_err(|error| error.to_string())
                });
            if sent.is_ok() {
                self.stats.adverts_sent.increment(1);
            }
            if let Err(error) = sent {
                if self.tally.record("send_failed", destination) {
                    tracing::warn!(instance = %self.config.name, %destination, %error, "sending a VRRP advert failed");
                }
            }
        }
    }

    async fn add_or_refresh_vips(&mut self) {
        if self.refresh_at.is_none() {
            self.set_virtual_mac_up(true).await;
        }
        for &vip in &self.vips {
            if let Err(error) = self
                .link
                .netlink
                .refresh_vip(&self.link.interface, vip, VIP_LIFETIME)
                .await
            {
                tracing::error!(instance = %self.config.name, %error, "holding a VIP failed");
            }
        }
        self.refresh_at = Some(Instant::now() + VIP_REFRESH);
    }

    async fn remove_vips(&mut self) {
        self.refresh_at = None;
        self.announce = None;
        // Down first: removing an IPv6 VIP from a macvlan that is up sends an MLD report from
        // the virtual MAC, which would draw the switch's entry to this node after the new
        // master has taken it.
        self.set_virtual_mac_up(false).await;
        for &vip in &self.vips {
            if let Err(error) = self
                .link
                .netlink
                .remove_vip(&self.link.interface, vip)
                .await
            {
                tracing::error!(instance = %self.config.name, %error, "removing a VIP failed");
            }
        }
    }

    /// The virtual MAC's macvlan is up only while this node holds the VIPs, as FRR keeps its
    /// own protodown: a Backup's then sends nothing from the virtual MAC, and takes nothing in.
    async fn set_virtual_mac_up(&self, up: bool) {
        let Some(macvlan) = &self.virtual_mac else {
            return;
        };
        if let Err(error) = self.link.netlink.set_virtual_mac_up(macvlan, up).await {
            tracing::error!(instance = %self.config.name, %error, up, "setting the virtual MAC interface up or down failed");
        }
    }

    fn announce_all(&mut self) {
        for vip in &self.vips {
            let announced = match (&self.link.announcer, vip.address) {
                (Announcer::V4(arp), IpAddr::V4(address)) => arp.announce(address),
                (Announcer::V6(nd), IpAddr::V6(address)) => nd.announce(address),
                _ => continue,
            };
            if let Err(error) = announced {
                tracing::warn!(instance = %self.config.name, vip = %vip, %error, "announcing a VIP failed");
            }
        }
    }

    fn announce_again(&mut self) {
        self.announce_all();
        self.announce = match self.announce {
            Some((at, left)) if left > 1 => Some((at + ANNOUNCE_SPACING, left - 1)),
            _ => None,
        };
    }
}

/// The machine's settings; preemption only once `verdicts_in` (see `gate_preemption`).
fn machine_config(config: &VrrpInstance, source: IpAddr, verdicts_in: bool) -> machine::Config {
    let preempt = if config.preempt && verdicts_in {
        Preempt::After(config.preempt_delay)
    } else if config.preempt {
        Preempt::NotYet
    } else {
        Preempt::Never
    };
    machine::Config {
        version: version(config),
        priority: config.priority,
        advert_interval: advert_interval(config),
        preempt,
        primary_address: source,
    }
}

fn version(config: &VrrpInstance) -> Version {
    match config.version {
        VrrpVersion::V2 => Version::V2,
        VrrpVersion::V3 => Version::V3,
    }
}

fn advert_interval(config: &VrrpInstance) -> AdvertInterval {
    AdvertInterval::from_centis((config.advert_interval.as_millis() / 10) as u16)
}

fn authentication(config: &VrrpInstance) -> Authentication {
    match config.password.as_deref() {
        Some(password) => Authentication::SimpleText(
            SimpleTextPassword::new(password.as_bytes()).expect("validated: at most 8 bytes"),
        ),
        None => Authentication::None,
    }
}

fn vips(config: &VrrpInstance) -> Vec<Vip> {
    (config.virtual_ips.iter())
        .map(|vip| Vip {
            address: vip.address,
            prefix_len: vip.prefix_len,
        })
        .collect()
}

/// How far the engine is in stopping; instances follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Resign and wait for a peer to take over, keeping the VIPs.
    Resigning,
    /// Remove the VIPs and end.
    Releasing,
}

/// Resolves once the engine has reached `target`.
async fn reached(phase: &mut watch::Receiver<Phase>, target: Phase) {
    // A closed channel means the engine is gone: go on as if told.
    let _ = phase.wait_for(|phase| *phase >= target).await;
}

/// Resolves when a member of the instance's sync group reports a change; never without one.
async fn group_changed(changes: &mut Option<watch::Receiver<()>>) {
    match changes {
        // The group outlives its members' tasks, so its sender never closes under one.
        Some(changes) => {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `at` (forever when unset) and says how late it woke.
async fn deadline(at: Option<Instant>) -> Duration {
    match at {
        Some(at) => {
            sleep_until(at).await;
            Instant::now().saturating_duration_since(at)
        }
        None => std::future::pending().await,
    }
}

pub fn envelope(source: IpAddr, destination: IpAddr) -> Option<Envelope> {
    match (source, destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => Some(Envelope::V4 {
            source,
            destination,
        }),
        (IpAddr::V6(source), IpAddr::V6(destination)) => Some(Envelope::V6 {
            source,
            destination,
        }),
        _ => None,
    }
}
