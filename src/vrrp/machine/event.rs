//! What the shell tells the machine.

use std::net::IpAddr;

use crate::codec::vrrp::{AdvertInterval, Advertisement, Version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the protocol (RFC "Startup event").
    Startup,
    /// Stop: a Master resigns with a priority-0 advert and gives up its addresses.
    Shutdown,
    /// A decoded advert for this VRID that passed the shell's checks (authentication, VRID).
    /// The shell must not feed back our own adverts.
    AdvertReceived(ReceivedAdvert),
    /// The timer last set by `SetTimer { timer: MasterDown, .. }` expired.
    MasterDownTimerFired,
    /// The timer last set by `SetTimer { timer: Adver, .. }` expired.
    AdverTimerFired,
    /// The effective priority computed by the trackers. 0 is taken as 1: on the wire 0 means
    /// resignation, which only `Shutdown` and `Fault` may send.
    PriorityChanged(u8),
    /// Something the instance depends on failed: hold no addresses, send no adverts.
    Fault,
    FaultCleared,
    /// Its sync group holds it back from Master (`true`: another member follows a peer's
    /// Master) or lets it go.
    SyncHold(bool),
    /// An operator's planned handover: a Master resigns and goes Backup; the router does not
    /// preempt back while a Master is heard (see [`super::Mode::Resigned`]).
    Resign,
    /// An operator's maintenance mode on or off (see [`super::Mode::Maintenance`]).
    Maintenance(bool),
}

/// The parts of a received advert the state machine decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// The IP source address: the sender's primary address.
    pub from: IpAddr,
    pub version: Version,
    pub priority: u8,
    pub interval: AdvertInterval,
}

impl ReceivedAdvert {
    pub fn new(advertisement: &Advertisement, from: IpAddr) -> Self {
        ReceivedAdvert {
            from,
            version: advertisement.version,
            priority: advertisement.priority,
            interval: advertisement.interval,
        }
    }
}
