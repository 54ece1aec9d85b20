//! What the machine asks the shell to do, and what it reports.

use std::net::IpAddr;

use super::timing::Timestamp;
use crate::codec::vrrp::{AdvertInterval, Version};

/// One step for the shell, performed in the order returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (0: resignation) and the configured interval.
    SendAdvert {
        priority: u8,
    },
    /// Configure the virtual addresses on the interface.
    AddVips,
    /// Remove the virtual addresses from the interface.
    RemoveVips,
    /// Announce the virtual addresses: gratuitous ARP (IPv4) or unsolicited Neighbor
    /// Advertisements (IPv6), so the link learns who holds them now.
    SendGratuitous,
    /// Arm `timer` to fire at `at`, replacing any earlier setting of it.
    SetTimer {
        timer: Timer,
        at: Timestamp,
    },
    CancelTimer(Timer),
    /// The state changed; comes after the actions that carried out the transition.
    StateChanged {
        from: State,
        to: State,
        cause: Cause,
    },
    /// Something on the link that an operator should hear about loudly.
    Report(Anomaly),
}

/// The protocol states (RFC 3768 §6.4, RFC 9568 §6.4, where Master is called Active), plus Fault:
/// running but unable to serve, as keepalived has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    /// In the order of their discriminants, which index per-state tables.
    pub const ALL: [State; 4] = [
        State::Initialize,
        State::Backup,
        State::Master,
        State::Fault,
    ];

    /// A bounded label for metrics, status and logs, in keepalived's words.
    pub fn label(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Master: when to send the next advert.
    Adver,
    /// Backup: when to declare the Master gone and take over.
    MasterDown,
}

/// Another router, as its advert described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub address: IpAddr,
    pub priority: u8,
}

/// Why a state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Initialize → Backup.
    Startup,
    /// Initialize → Master: priority 255 owns the addresses and takes them at once.
    AddressOwner,
    /// Backup → Master: no advert arrived within Master_Down_Interval. `last_master` is the last
    /// Master heard since this Backup period began, if any.
    MasterDown { last_master: Option<Peer> },
    /// Backup → Master: the Master resigned (priority 0) and nobody better spoke within Skew_Time.
    MasterResigned(Peer),
    /// Backup → Master: we preempted this lower-priority Master on hearing its advert.
    PreemptedLowerPriority(Peer),
    /// Master → Backup: this peer has a higher priority, or an equal one and a higher address.
    HigherPriorityAdvert(Peer),
    /// → Initialize.
    Shutdown,
    /// → Fault.
    Fault,
    /// Fault → Backup, or Master for the address owner.
    FaultCleared,
    /// Master → Backup: an operator resigned the instance (a planned handover).
    Resigned,
    /// Master → Backup: an operator put the instance in maintenance.
    Maintenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// An advert of the other VRRP version: discarded (there is no mixed v2/v3 mode).
    VersionMismatch { from: IpAddr, received: Version },
    /// v2: the advert was discarded, as RFC 3768 requires. v3: the Backup follows the Master's
    /// interval (RFC 9568), reported when it starts following one that differs from ours.
    IntervalMismatch {
        from: IpAddr,
        received: AdvertInterval,
        configured: AdvertInterval,
    },
    /// As Master we heard a lower-ranked Master, so the two were split: we re-asserted at once
    /// (advert and gratuitous announcement) so it steps down and the link relearns our MAC.
    LowerPriorityMaster(Peer),
}
