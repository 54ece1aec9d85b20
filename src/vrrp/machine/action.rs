//! What the machine asks the shell to do, and what it reports.

use std::fmt;
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
    /// Master → Backup: another member of its sync group follows a peer's Master.
    SyncGroup,
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

/// For logs: `198.51.100.2 (priority 150)`.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (priority {})", self.address, self.priority)
    }
}

/// For logs, in plain words: `master down, last heard 198.51.100.2 (priority 150)`.
impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Startup => f.write_str("startup"),
            Cause::AddressOwner => f.write_str("address owner"),
            Cause::MasterDown { last_master: None } => f.write_str("master down, none heard"),
            Cause::MasterDown {
                last_master: Some(peer),
            } => write!(f, "master down, last heard {peer}"),
            Cause::MasterResigned(peer) => write!(f, "master {peer} resigned"),
            Cause::PreemptedLowerPriority(peer) => {
                write!(f, "preempted lower-priority master {peer}")
            }
            Cause::HigherPriorityAdvert(peer) => write!(f, "higher-priority advert from {peer}"),
            Cause::Shutdown => f.write_str("shutdown"),
            Cause::Fault => f.write_str("fault"),
            Cause::FaultCleared => f.write_str("fault cleared"),
            Cause::SyncGroup => f.write_str("a sync group member follows a peer's master"),
            Cause::Resigned => f.write_str("resigned by an operator"),
            Cause::Maintenance => f.write_str("maintenance set by an operator"),
        }
    }
}

/// For logs, in plain words: `VRRP v2 advert from 198.51.100.2: the other version`.
impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::VersionMismatch { from, received } => {
                write!(f, "VRRP {received} advert from {from}: the other version")
            }
            Anomaly::IntervalMismatch {
                from,
                received,
                configured,
            } => write!(
                f,
                "advert interval {received} from {from}, configured {configured}"
            ),
            Anomaly::LowerPriorityMaster(peer) => write!(f, "lower-priority master {peer}"),
        }
    }
}
