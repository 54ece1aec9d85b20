//! The VRRP state machine of RFC 3768 (v2) and RFC 9568 (v3) as plain data.
//!
//! The shell feeds [`Event`]s with the current [`Timestamp`] to [`Machine::handle`] and performs
//! the returned [`Action`]s in order: send adverts, move the virtual addresses, arm timers, log.
//! Beyond the RFCs it follows keepalived where operators rely on it: `nopreempt` and
//! `preempt_delay`, a Fault state, and a Master that re-asserts itself when it hears a
//! lower-priority Master (split brain healing) instead of silently discarding the advert. A
//! Backup that may preempt takes over as soon as it hears a lower-priority Master, not when its
//! Master_Down_Timer fires, so a VIP follows a tracked priority change within one advert.

mod action;
mod event;
mod timing;

pub use action::{Action, Anomaly, Cause, Peer, State, Timer};
pub use event::{Event, ReceivedAdvert};
pub use timing::Timestamp;

use std::cmp::Ordering;
use std::net::IpAddr;
use std::time::Duration;

use crate::codec::vrrp::{AdvertInterval, Version};
use timing::{master_down_interval, skew_time};

/// The priority of the router that owns the virtual addresses: it takes them without waiting.
const OWNER_PRIORITY: u8 = 255;
/// The priority a resigning Master advertises.
const RESIGN_PRIORITY: u8 = 0;

/// One virtual router's settings, as far as the protocol needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub version: Version,
    /// 1..=254, or 255 for the address owner (0 is taken as 1).
    pub priority: u8,
    /// Our Advertisement_Interval. v2 routers must all share it; v3 Backups follow the Master's.
    pub advert_interval: AdvertInterval,
    pub preempt: Preempt,
    /// The source address of our adverts: the tie-break between equal priorities.
    pub primary_address: IpAddr,
}

/// Whether a Backup takes over from a live Master of lower priority. The address owner always
/// does, immediately, whatever this says (RFC 9568 §6.1, Preempt_Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preempt {
    /// keepalived `nopreempt`: follow whichever Master is advertising.
    Never,
    /// Preemption is on but not allowed yet (the instance's tracked backends have had no
    /// health results): it follows as with `Never`, but such a Master does not hold its sync
    /// group back, so the group can fail back once it is allowed.
    NotYet,
    /// RFC Preempt_Mode True, once `delay` has passed since we first heard the lower-priority
    /// Master (keepalived `preempt_delay`; zero is the RFC behaviour).
    After(Duration),
}

/// What an operator asked of the router (the runtime API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// Handed over: it preempts nobody, not even as the address owner, and takes over again
    /// only when no Master is heard (the peer failed) or the Master resigns; then it is
    /// Normal again, as after `Maintenance(false)`.
    Resigned,
    /// Stays Backup (or Initialize, or Fault) whatever happens, until Normal again.
    Maintenance,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Normal, Mode::Resigned, Mode::Maintenance];

    /// A bounded label for status and logs.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Resigned => "resigned",
            Mode::Maintenance => "maintenance",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Machine {
    config: Config,
    /// The effective priority: configured, then moved by `PriorityChanged`.
    priority: u8,
    phase: Phase,
    /// Held by its sync group (`SyncHold`): it may not become Master.
    held: bool,
    mode: Mode,
}

/// A state with the data that only exists in it.
#[derive(Debug, Clone)]
enum Phase {
    Initialize,
    Backup(Backup),
    Master { next_advert_at: Timestamp },
    Fault,
}

#[derive(Debug, Clone)]
struct Backup {
    /// v3 learns it from the Master's adverts; v2 keeps the configured interval.
    master_adver_interval: AdvertInterval,
    master_down_at: Timestamp,
    watching: Watch,
    /// With a preempt delay: lower-priority adverts are still accepted until then.
    preempt_at: Option<Timestamp>,
}

/// What the Master_Down_Timer is waiting on, which names the cause if it fires.
#[derive(Debug, Clone, Copy)]
enum Watch {
    NoMasterYet,
    Master(Peer),
    Resigned(Peer),
    /// The timer fired while it could not take over (held by its sync group, or in
    /// maintenance): no Master is heard. The cause it takes over with once it may, unless a
    /// Master is heard first.
    TimedOut(Cause),
}

impl Watch {
    fn cause(self) -> Cause {
        match self {
            Watch::TimedOut(cause) => cause,
            Watch::NoMasterYet => Cause::MasterDown { last_master: None },
            Watch::Master(peer) => Cause::MasterDown {
                last_master: Some(peer),
            },
            Watch::Resigned(peer) => Cause::MasterResigned(peer),
        }
    }
}

impl Machine {
    /// A machine in Initialize, waiting for [`Event::Startup`].
    pub fn new(config: Config) -> Machine {
        Machine {
            priority: config.priority.max(1),
            config,
            phase: Phase::Initialize,
            held: false,
            mode: Mode::Normal,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn state(&self) -> State {
        match self.phase {
            Phase::Initialize => State::Initialize,
            Phase::Backup(_) => State::Backup,
            Phase::Master { .. } => State::Master,
            Phase::Fault => State::Fault,
        }
    }

    /// The effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The Master as this router sees it: itself, the Master it follows, or none known (a
    /// Backup that has heard no Master, or whose Master resigned or went silent).
    pub fn master(&self) -> Option<IpAddr> {
        match &self.phase {
            Phase::Master { .. } => Some(self.config.primary_address),
            Phase::Backup(Backup {
                watching: Watch::Master(peer),
                ..
            }) => Some(peer.address),
            Phase::Backup(_) | Phase::Initialize | Phase::Fault => None,
        }
    }

    /// Applies `event`, which happened at `now`, and returns what the shell must do. Events that
    /// mean nothing in the current state (a stale timer, an advert while in Fault) return nothing.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Startup => {
                if let Phase::Initialize = self.phase {
                    self.start(now, Cause::Startup, Cause::AddressOwner, &mut actions);
                }
            }
            Event::Shutdown => {
                if !matches!(self.phase, Phase::Initialize) {
                    self.leave_current_state(&mut actions);
                    self.change_state(Phase::Initialize, Cause::Shutdown, &mut actions);
                }
            }
            Event::Fault => {
                if !matches!(self.phase, Phase::Fault) {
                    self.leave_current_state(&mut actions);
                    self.change_state(Phase::Fault, Cause::Fault, &mut actions);
                }
            }
            Event::FaultCleared => {
                if let Phase::Fault = self.phase {
                    self.start(now, Cause::FaultCleared, Cause::FaultCleared, &mut actions);
                }
            }
            Event::AdvertReceived(advert) => self.receive(now, advert, &mut actions),
            Event::MasterDownTimerFired => {
                if let Phase::Backup(backup) = &mut self.phase {
                    if now >= backup.master_down_at {
                        let cause = backup.watching.cause();
                        if self.held || self.mode == Mode::Maintenance {
                            backup.watching = Watch::TimedOut(cause);
                        } else {
                            self.become_master(now, cause, &mut actions);
                        }
                    }
                }
            }
            Event::SyncHold(held) => self.hold(now, held, &mut actions),
            Event::AdverTimerFired => {
                if let Phase::Master { next_advert_at } = self.phase {
                    if now >= next_advert_at {
                        self.advertise_now(now, &mut actions);
                    }
                }
            }
            Event::Resign => {
                self.mode = Mode::Resigned;
                self.step_down(now, Cause::Resigned, &mut actions);
            }
            Event::Maintenance(true) => {
                self.mode = Mode::Maintenance;
                self.step_down(now, Cause::Maintenance, &mut actions);
            }
            // Off also ends a resign: the router preempts as configured again.
            Event::Maintenance(false) => {
                if self.mode != Mode::Normal {
                    self.mode = Mode::Normal;
                    // A Master_Down_Timer that fired meanwhile found no Master: wait afresh
                    // before taking over.
                    if let Phase::Backup(backup) = &mut self.phase {
                        backup.master_down_at = now
                            + master_down_interval(
                                self.config.version,
                                self.priority,
                                backup.master_adver_interval,
                            );
                        actions.push(Action::SetTimer {
                            timer: Timer::MasterDown,
                            at: backup.master_down_at,
                        });
                    }
                }
            }
            Event::PriorityChanged(priority) => {
                let priority = priority.max(1);
                if priority != self.priority {
                    self.priority = priority;
                    // A Master tells the link at once, so a better Backup starts preempting
                    // now rather than at the next scheduled advert.
                    if let Phase::Master { .. } = self.phase {
                        self.advertise_now(now, &mut actions);
                    }
                }
            }
        }
        actions
    }

    /// Applies reloaded settings in place, with no state change. A Master advertises at once
    /// when its advert changed (version, interval, source), so peers follow now; a Backup's
    /// pending preempt delay restarts under the new preemption rule. The effective priority
    /// stays with `PriorityChanged`.
    pub fn reconfigure(&mut self, now: Timestamp, config: Config) -> Vec<Action> {
        let mut actions = Vec::new();
        let advert_changed = (
            config.version,
            config.advert_interval,
            config.primary_address,
        ) != (
            self.config.version,
            self.config.advert_interval,
            self.config.primary_address,
        );
        let preempt_changed = config.preempt != self.config.preempt;
        self.config = config;
        match &mut self.phase {
            Phase::Master { .. } if advert_changed => self.advertise_now(now, &mut actions),
            Phase::Backup(backup) => {
                if preempt_changed {
                    backup.preempt_at = None;
                }
                if self.config.version == Version::V2 {
                    backup.master_adver_interval = self.config.advert_interval;
                }
            }
            Phase::Master { .. } | Phase::Initialize | Phase::Fault => {}
        }
        actions
    }

    /// Whether this router is a Backup following a live Master that it would not preempt on
    /// its own: what holds the other members of its sync group back from becoming Master. A
    /// Master followed only because the group holds this router, or until preemption is
    /// allowed or its delay has passed, holds nobody: else, once every member follows the
    /// peer, the group would never fail back to this node.
    ///
    /// A Backup an operator resigned or put in maintenance holds the others too, Master heard
    /// or not, until its timer has fired with no Master to follow: its group goes with it to
    /// the peer, as keepalived's does, rather than leave its VRID to nobody.
    pub fn yields_to_a_master(&self) -> bool {
        match &self.phase {
            Phase::Backup(Backup {
                watching: Watch::TimedOut(_),
                ..
            }) => false,
            Phase::Backup(_) if self.mode != Mode::Normal => true,
            Phase::Backup(Backup {
                watching: Watch::Master(peer),
                ..
            }) => !self.would_preempt(peer.priority),
            Phase::Backup(_) | Phase::Master { .. } | Phase::Initialize | Phase::Fault => false,
        }
    }

    /// Whether, unheld, it takes over from a live Master of `priority`, now or once its delay
    /// has passed. Equal priorities are followed (see [`backup_receive`]). Not while
    /// preemption waits for the first health results (`NotYet`): until then its group stays
    /// with the peer too, and it reports again once preemption is allowed.
    fn would_preempt(&self, priority: u8) -> bool {
        self.mode == Mode::Normal
            && priority < self.priority
            && (self.priority == OWNER_PRIORITY || matches!(self.config.preempt, Preempt::After(_)))
    }

    /// Its sync group holds it (no Master while another member yields to a peer's Master) or
    /// lets it go. A held Master resigns, so the peer takes over after Skew_Time; a released
    /// Backup whose Master_Down_Timer fired while held takes over now, unless in maintenance.
    fn hold(&mut self, now: Timestamp, held: bool, out: &mut Vec<Action>) {
        self.held = held;
        match &self.phase {
            Phase::Master { .. } if held => {
                self.leave_current_state(out);
                self.become_backup(
                    now,
                    self.config.advert_interval,
                    Watch::NoMasterYet,
                    Cause::SyncGroup,
                    out,
                );
            }
            Phase::Backup(Backup {
                watching: Watch::TimedOut(cause),
                ..
            }) if !held && self.mode != Mode::Maintenance => {
                let cause = *cause;
                self.become_master(now, cause, out);
            }
            Phase::Master { .. } | Phase::Backup(_) | Phase::Initialize | Phase::Fault => {}
        }
    }

    /// A Master resigns (priority-0 advert, VIPs removed) and goes Backup, as if it had
    /// just started; in any other state nothing changes but the mode.
    fn step_down(&mut self, now: Timestamp, cause: Cause, out: &mut Vec<Action>) {
        if let Phase::Master { .. } = self.phase {
            self.leave_current_state(out);
            let interval = self.config.advert_interval;
            self.become_backup(now, interval, Watch::NoMasterYet, cause, out);
        }
    }

    /// Initialize (or Fault) → Master for the address owner, Backup for everyone else and for
    /// an owner in maintenance or held by its sync group.
    fn start(
        &mut self,
        now: Timestamp,
        backup_cause: Cause,
        owner_cause: Cause,
        out: &mut Vec<Action>,
    ) {
        if self.priority == OWNER_PRIORITY && self.mode != Mode::Maintenance && !self.held {
            self.become_master(now, owner_cause, out);
        } else {
            self.become_backup(
                now,
                self.config.advert_interval,
                Watch::NoMasterYet,
                backup_cause,
                out,
            );
        }
    }

    fn become_master(&mut self, now: Timestamp, cause: Cause, out: &mut Vec<Action>) {
        if self.mode == Mode::Resigned {
            self.mode = Mode::Normal;
        }
        out.push(Action::AddVips);
        out.push(Action::SendAdvert {
            priority: self.priority,
        });
        out.push(Action::SendGratuitous);
        let next_advert_at = self.schedule_advert(now, out);
        self.change_state(Phase::Master { next_advert_at }, cause, out);
    }

    fn become_backup(
        &mut self,
        now: Timestamp,
        master_adver_interval: AdvertInterval,
        watching: Watch,
        cause: Cause,
        out: &mut Vec<Action>,
    ) {
        let master_down_at =
            now + master_down_interval(self.config.version, self.priority, master_adver_interval);
        out.push(Action::SetTimer {
            timer: Timer::MasterDown,
            at: master_down_at,
        });
        self.change_state(
            Phase::Backup(Backup {
                master_adver_interval,
                master_down_at,
                watching,
                preempt_at: None,
            }),
            cause,
            out,
        );
    }

    /// What every exit from the current state undoes: a Master resigns so a Backup takes over
    /// after Skew_Time instead of Master_Down_Interval.
    fn leave_current_state(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Initialize | Phase::Fault => {}
            Phase::Backup(_) => out.push(Action::CancelTimer(Timer::MasterDown)),
            Phase::Master { .. } => {
                out.push(Action::CancelTimer(Timer::Adver));
                out.push(Action::SendAdvert {
                    priority: RESIGN_PRIORITY,
                });
                out.push(Action::RemoveVips);
            }
        }
    }

    fn change_state(&mut self, phase: Phase, cause: Cause, out: &mut Vec<Action>) {
        let from = self.state();
        self.phase = phase;
        out.push(Action::StateChanged {
            from,
            to: self.state(),
            cause,
        });
    }

    fn receive(&mut self, now: Timestamp, advert: ReceivedAdvert, out: &mut Vec<Action>) {
        match &mut self.phase {
            Phase::Initialize | Phase::Fault => {}
            Phase::Backup(backup) => {
                let Some(peer) = screen(&self.config, &advert, out) else {
                    return;
                };
                let may_preempt = self.mode == Mode::Normal && !self.held;
                let heard = backup_receive(
                    backup,
                    &self.config,
                    (self.priority, may_preempt),
                    now,
                    &advert,
                    peer,
                    out,
                );
                if heard == Heard::LowerPriorityToPreempt {
                    out.push(Action::CancelTimer(Timer::MasterDown));
                    self.become_master(now, Cause::PreemptedLowerPriority(peer), out);
                }
            }
            Phase::Master { .. } => {
                if let Some(peer) = screen(&self.config, &advert, out) {
                    self.master_receive(now, &advert, peer, out);
                }
            }
        }
    }

    /// RFC 3768 §6.4.3, RFC 9568 §6.4.3 (Active), with split brain healing.
    fn master_receive(
        &mut self,
        now: Timestamp,
        advert: &ReceivedAdvert,
        peer: Peer,
        out: &mut Vec<Action>,
    ) {
        if advert.priority == RESIGN_PRIORITY {
            // Answer at once, so the Backups do not take over after Skew_Time.
            self.advertise_now(now, out);
            return;
        }
        // Unsigned comparison of the addresses in network byte order is what IpAddr's Ord does.
        let theirs = (advert.priority, advert.from);
        let ours = (self.priority, self.config.primary_address);
        match theirs.cmp(&ours) {
            Ordering::Greater => {
                let master_adver_interval =
                    follow_interval(&self.config, self.config.advert_interval, advert, out);
                out.push(Action::CancelTimer(Timer::Adver));
                out.push(Action::RemoveVips);
                self.become_backup(
                    now,
                    master_adver_interval,
                    Watch::Master(peer),
                    Cause::HigherPriorityAdvert(peer),
                    out,
                );
            }
            Ordering::Less => {
                out.push(Action::Report(Anomaly::LowerPriorityMaster(peer)));
                self.advertise_now(now, out);
                out.push(Action::SendGratuitous);
            }
            // Our own priority from our own address: an echo of our advert, nothing to decide.
            Ordering::Equal => {}
        }
    }

    /// Arms the Adver_Timer for one interval from now and returns when it fires.
    fn schedule_advert(&self, now: Timestamp, out: &mut Vec<Action>) -> Timestamp {
        let at = now + self.config.advert_interval.as_duration();
        out.push(Action::SetTimer {
            timer: Timer::Adver,
            at,
        });
        at
    }

    /// A Master's advert outside the regular schedule; the schedule restarts from it.
    fn advertise_now(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.priority,
        });
        let next_advert_at = self.schedule_advert(now, out);
        self.phase = Phase::Master { next_advert_at };
    }
}

/// The receive checks that need our configuration and concern every state (RFC 3768 §7.1,
/// RFC 9568 §7.1): `None` when the advert must be discarded, which is reported.
fn screen(config: &Config, advert: &ReceivedAdvert, out: &mut Vec<Action>) -> Option<Peer> {
    if advert.version != config.version {
        out.push(Action::Report(Anomaly::VersionMismatch {
            from: advert.from,
            received: advert.version,
        }));
        return None;
    }
    // A v2 advert with another interval MUST be discarded; v3 Backups adapt instead.
    if advert.version == Version::V2 && advert.interval != config.advert_interval {
        out.push(Action::Report(Anomaly::IntervalMismatch {
            from: advert.from,
            received: advert.interval,
            configured: config.advert_interval,
        }));
        return None;
    }
    Some(Peer {
        address: advert.from,
        priority: advert.priority,
    })
}

/// What a Backup made of an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// Followed as the Master, or a resignation: the Master_Down_Timer was rearmed.
    Followed,
    /// A live Master of lower priority that we may preempt now.
    LowerPriorityToPreempt,
}

/// RFC 3768 §6.4.2, RFC 9568 §6.4.2, with keepalived's preempt delay.
///
/// With Preempt_Mode True, RFC 9568 §6.4.2 only says to discard a lower-priority advert, and
/// keepalived does so and preempts when its Master_Down_Timer fires, three intervals or more
/// later. We take over on that advert instead: a Master whose trackers just lowered its
/// priority tells the link at once, and the VIP should follow within an advert. This is safe
/// with any RFC peer: a Master hearing a higher priority steps down (§6.4.3), the same meeting
/// of two Masters that RFC preemption ends with, only sooner. Equal priorities are followed, so
/// two routers degraded alike never flap. A Backup held by its sync group follows any Master.
fn backup_receive(
    backup: &mut Backup,
    config: &Config,
    (priority, may_preempt): (u8, bool),
    now: Timestamp,
    advert: &ReceivedAdvert,
    peer: Peer,
    out: &mut Vec<Action>,
) -> Heard {
    if advert.priority == RESIGN_PRIORITY {
        backup.master_down_at =
            now + skew_time(config.version, priority, backup.master_adver_interval);
        backup.watching = Watch::Resigned(peer);
        out.push(Action::SetTimer {
            timer: Timer::MasterDown,
            at: backup.master_down_at,
        });
        return Heard::Followed;
    }
    let accepted = if advert.priority >= priority {
        backup.preempt_at = None;
        true
    } else {
        match config.preempt {
            _ if !may_preempt => true,
            _ if priority == OWNER_PRIORITY => false,
            Preempt::Never | Preempt::NotYet => true,
            Preempt::After(delay) if delay.is_zero() => false,
            Preempt::After(delay) => now < *backup.preempt_at.get_or_insert(now + delay),
        }
    };
    if !accepted {
        return Heard::LowerPriorityToPreempt;
    }
    backup.master_adver_interval =
        follow_interval(config, backup.master_adver_interval, advert, out);
    backup.master_down_at =
        now + master_down_interval(config.version, priority, backup.master_adver_interval);
    backup.watching = Watch::Master(peer);
    out.push(Action::SetTimer {
        timer: Timer::MasterDown,
        at: backup.master_down_at,
    });
    Heard::Followed
}

/// The Master_Adver_Interval after accepting `advert` (RFC 9568: "Set Master_Adver_Interval to
/// Adver Interval contained in the ADVERTISEMENT"; v2 intervals already equal ours). Reported
/// when it changes to a value other than ours, not on every advert.
fn follow_interval(
    config: &Config,
    current: AdvertInterval,
    advert: &ReceivedAdvert,
    out: &mut Vec<Action>,
) -> AdvertInterval {
    if advert.interval != current && advert.interval != config.advert_interval {
        out.push(Action::Report(Anomaly::IntervalMismatch {
            from: advert.from,
            received: advert.interval,
            configured: config.advert_interval,
        }));
    }
    advert.interval
}

#[cfg(test)]
mod tests;
