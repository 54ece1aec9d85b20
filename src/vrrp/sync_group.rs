//! Sync groups (keepalived's `vrrp_sync_group`): instances that change state together, so one
//! node is Master of all of them or of none.
//!
//! The rule is pure: each member reports whether its own trackers hold it in Fault and
//! whether it yields to a live Master on its link; from the reports, each member gets a
//! [`Directive`]:
//! - Fault spreads: while any member is in Fault by its own trackers, the others are held in
//!   Fault too (no VIPs, no adverts), so the peer takes all of them.
//! - Master needs the whole group: while any member yields to a peer's live Master (one it
//!   would not preempt on its own: of higher or equal priority, with preemption off, or in an
//!   operator mode), the others are held back from Master. A held Master resigns (priority-0
//!   advert), so the peer takes over after Skew_Time; a held Backup follows any Master, even
//!   one it could preempt, and one whose Master_Down_Timer fires waits, taking over as soon
//!   as no member yields any more (keepalived's "can go to master").
//! - A Master a member follows only because it is held, or until its preemption is allowed
//!   or delayed, holds nobody: so once the peer's Masters are all of lower priority, the
//!   members preempt them one by one and the group fails back to this node, as keepalived's.
//!
//! [`Membership`] turns directives into machine events; the instance shell and the tests
//! share it, so what is tested here is what runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::machine::{Event, Machine};
use crate::config::SyncGroup;

/// What one member tells its group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Its own trackers hold it in Fault.
    pub fault: bool,
    /// It is a Backup yielding to a live Master (see [`Machine::yields_to_a_master`]).
    pub yielding: bool,
}

impl Report {
    pub fn of(own_fault: bool, machine: &Machine) -> Report {
        Report {
            fault: own_fault,
            yielding: machine.yields_to_a_master(),
        }
    }
}

/// What a group asks of one member.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Directive {
    /// Another member is in Fault by its own trackers: be in Fault too.
    pub fault: bool,
    /// Another member yields to a peer's Master: do not be Master.
    pub hold: bool,
}

/// The members' latest reports. A member that has not reported, or has left, holds nobody.
#[derive(Debug, Default, Clone)]
pub struct Members {
    reports: BTreeMap<String, Report>,
}

impl Members {
    /// Records `member`'s report; says whether it changed.
    pub fn report(&mut self, member: &str, report: Report) -> bool {
        match self.reports.get_mut(member) {
            Some(known) if *known == report => false,
            Some(known) => {
                *known = report;
                true
            }
            None => {
                self.reports.insert(member.to_owned(), report);
                true
            }
        }
    }

    pub fn directive(&self, member: &str) -> Directive {
        let others = || (self.reports.iter()).filter(|(name, _)| name.as_str() != member);
        Directive {
            fault: others().any(|(_, report)| report.fault),
            hold: others().any(|(_, report)| report.yielding),
        }
    }
}

/// One member's side of its group: the last directive it obeyed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Membership {
    obeyed: Directive,
}

impl Membership {
    /// The machine events that bring a member in line with `directive`. Leaving a group Fault
    /// restarts the machine only if its own trackers do not hold it there.
    pub fn obey(&mut self, directive: Directive, own_fault: bool) -> Vec<Event> {
        let mut events = Vec::new();
        if directive.fault != self.obeyed.fault {
            if directive.fault {
                events.push(Event::Fault);
            } else if !own_fault {
                events.push(Event::FaultCleared);
            }
        }
        if directive.hold != self.obeyed.hold {
            events.push(Event::SyncHold(directive.hold));
        }
        self.obeyed = directive;
        events
    }

    /// Whether the group holds this member in Fault: its own trackers may not clear it.
    pub fn holds_in_fault(&self) -> bool {
        self.obeyed.fault
    }
}

/// A group as its running members share it: their reports, and a signal each waits on.
pub struct Group {
    pub config: SyncGroup,
    members: Mutex<Members>,
    changed: watch::Sender<()>,
}

impl Group {
    pub fn new(config: SyncGroup) -> Arc<Group> {
        Arc::new(Group {
            config,
            members: Mutex::new(Members::default()),
            changed: watch::channel(()).0,
        })
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        (self.members.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running instance's handle on its group.
pub struct GroupMember {
    group: Arc<Group>,
    name: String,
}

impl GroupMember {
    pub fn new(group: Arc<Group>, name: &str) -> GroupMember {
        GroupMember {
            group,
            name: name.to_owned(),
        }
    }

    pub fn group_name(&self) -> &str {
        &self.group.config.name
    }

    /// Wakes when any member's report changes.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.group.changed.subscribe()
    }

    pub fn report(&self, report: Report) {
        if self.group.members().report(&self.name, report) {
            self.group.changed.send_replace(());
        }
    }

    pub fn directive(&self) -> Directive {
        self.group.members().directive(&self.name)
    }

    /// Stops holding the others: a member that ends reports nothing any more.
    pub fn leave(&self) {
        self.report(Report::default());
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;
    use crate::codec::vrrp::{AdvertInterval, Version};
    use crate::vrrp::machine::{
        self, Action, Mode, Preempt, ReceivedAdvert, State, Timer, Timestamp,
    };

    /// What happens to one member, from outside the group.
    #[derive(Debug, Clone, Copy)]
    enum Happening {
        OwnFault,
        OwnFaultCleared,
        /// The peer's advert for this member's VRID, with its priority (0: it resigns).
        PeerAdvert(u8),
        MasterDownTimer,
        /// Its tracked backends had their first health results: preemption as configured.
        PreemptionAllowed,
        Resign,
        Maintenance(bool),
    }

    const HAPPENINGS: [Happening; 10] = [
        Happening::OwnFault,
        Happening::OwnFaultCleared,
        Happening::PeerAdvert(200),
        Happening::PeerAdvert(50),
        Happening::PeerAdvert(0),
        Happening::MasterDownTimer,
        Happening::PreemptionAllowed,
        Happening::Resign,
        Happening::Maintenance(true),
        Happening::Maintenance(false),
    ];

    /// Each happening moves the clock on by this much.
    const TICK: Duration = Duration::from_millis(10);
    /// A preempt delay that a few happenings outlast.
    const DELAY: Duration = Duration::from_millis(25);
    /// Our members' priority: the peer's adverts above are of higher and lower priority.
    const PRIORITY: u8 = 100;

    /// How a node's members preempt: at start, and once their preemption is allowed.
    #[derive(Debug, Clone, Copy)]
    struct Preemption {
        start: Preempt,
        allowed: Preempt,
    }

    const PREEMPTIONS: [Preemption; 3] = [
        Preemption {
            start: Preempt::After(Duration::ZERO),
            allowed: Preempt::After(Duration::ZERO),
        },
        Preemption {
            start: Preempt::After(DELAY),
            allowed: Preempt::After(DELAY),
        },
        // A restart with tracked backends: no preemption until their first health results.
        Preemption {
            start: Preempt::NotYet,
            allowed: Preempt::After(Duration::ZERO),
        },
    ];

    #[derive(Clone)]
    struct Member {
        name: String,
        machine: Machine,
        own_fault: bool,
        membership: Membership,
        master_down_at: Option<Timestamp>,
    }

    /// Members of one group on one node, glued as the instance shell glues them.
    #[derive(Clone)]
    struct Node {
        now: Timestamp,
        preemption: Preemption,
        members: Vec<Member>,
        group: Members,
    }

    fn machine_config(preempt: Preempt) -> machine::Config {
        machine::Config {
            version: Version::V2,
            priority: PRIORITY,
            advert_interval: AdvertInterval::from_secs(1),
            preempt,
            primary_address: "198.51.100.10".parse().unwrap(),
        }
    }

    impl Node {
        fn start(count: usize, preemption: Preemption) -> Node {
            let members = (0..count)
                .map(|i| Member {
                    name: format!("VI_{i}"),
                    machine: Machine::new(machine_config(preemption.start)),
                    own_fault: false,
                    membership: Membership::default(),
                    master_down_at: None,
                })
                .collect();
            let mut node = Node {
                now: Timestamp::from_since_epoch(Duration::ZERO),
                preemption,
                members,
                group: Members::default(),
            };
            for i in 0..count {
                node.step(i, Event::Startup);
            }
            node
        }

        fn step(&mut self, i: usize, event: Event) {
            let actions = self.members[i].machine.handle(self.now, event);
            self.apply(i, actions);
        }

        /// Follows the machine's timers, then reports to the group as the shell does.
        fn apply(&mut self, i: usize, actions: Vec<Action>) {
            let member = &mut self.members[i];
            for action in actions {
                match action {
                    Action::SetTimer {
                        timer: Timer::MasterDown,
                        at,
                    } => member.master_down_at = Some(at),
                    Action::CancelTimer(Timer::MasterDown) => member.master_down_at = None,
                    _ => {}
                }
            }
            if member.machine.state() == State::Master {
                member.master_down_at = None;
            }
            let report = Report::of(member.own_fault, &member.machine);
            if self.group.report(&member.name, report) {
                self.settle();
            }
        }

        /// Hands every member its directive until none has anything left to do.
        fn settle(&mut self) {
            for _ in 0..10 {
                let mut quiet = true;
                for i in 0..self.members.len() {
                    let directive = self.group.directive(&self.members[i].name);
                    let own_fault = self.members[i].own_fault;
                    for event in self.members[i].membership.obey(directive, own_fault) {
                        quiet = false;
                        self.step(i, event);
                    }
                }
                if quiet {
                    return;
                }
            }
            panic!("the group does not settle");
        }

        fn happen(&mut self, i: usize, happening: Happening) {
            self.now = self.now + TICK;
            match happening {
                Happening::OwnFault => {
                    self.members[i].own_fault = true;
                    self.step(i, Event::Fault);
                }
                Happening::OwnFaultCleared => {
                    self.members[i].own_fault = false;
                    // As the shell's `follow`: a group Fault stays.
                    self.step(i, Event::PriorityChanged(PRIORITY));
                    if !self.members[i].membership.holds_in_fault() {
                        self.step(i, Event::FaultCleared);
                    }
                }
                Happening::PeerAdvert(priority) => {
                    let advert = ReceivedAdvert {
                        from: "198.51.100.20".parse::<IpAddr>().unwrap(),
                        version: Version::V2,
                        priority,
                        interval: AdvertInterval::from_secs(1),
                    };
                    self.step(i, Event::AdvertReceived(advert));
                }
                Happening::MasterDownTimer => {
                    if let Some(at) = self.members[i].master_down_at.take() {
                        self.now = self.now.max(at);
                        self.step(i, Event::MasterDownTimerFired);
                    }
                }
                Happening::PreemptionAllowed => {
                    let config = machine_config(self.preemption.allowed);
                    let actions = self.members[i].machine.reconfigure(self.now, config);
                    self.apply(i, actions);
                }
                Happening::Resign => self.step(i, Event::Resign),
                Happening::Maintenance(on) => self.step(i, Event::Maintenance(on)),
            }
        }

        fn states(&self) -> Vec<State> {
            self.members.iter().map(|m| m.machine.state()).collect()
        }

        /// What must hold whenever the group has settled.
        fn check(&self, history: &[(usize, Happening)]) {
            let states = self.states();
            let any_own_fault = self.members.iter().any(|m| m.own_fault);
            if any_own_fault {
                assert!(
                    states.iter().all(|&s| s == State::Fault),
                    "a member's Fault must hold all in Fault: {states:?} after {history:?}"
                );
            } else {
                assert!(
                    !states.contains(&State::Fault),
                    "no member's own Fault, yet {states:?} after {history:?}"
                );
            }
            let yielding = self.members.iter().any(|m| m.machine.yields_to_a_master());
            if yielding {
                assert!(
                    !states.contains(&State::Master),
                    "Master while another member yields to the peer: {states:?} after {history:?}"
                );
            }
            for member in &self.members {
                assert!(
                    member.machine.mode() != Mode::Maintenance
                        || member.machine.state() != State::Master,
                    "{} is Master in maintenance after {history:?}",
                    member.name
                );
            }
        }

        /// Every fault cleared, maintenance off and preemption allowed, as an operator would.
        fn back_to_normal(&mut self) {
            for i in 0..self.members.len() {
                self.happen(i, Happening::OwnFaultCleared);
                self.happen(i, Happening::Maintenance(false));
                self.happen(i, Happening::PreemptionAllowed);
            }
        }

        /// Back to normal with the peer silent, the whole group ends up Master here.
        fn check_takes_over_when_the_peer_is_gone(mut self, history: &[(usize, Happening)]) {
            self.back_to_normal();
            for _ in 0..self.members.len() + 1 {
                for i in 0..self.members.len() {
                    self.happen(i, Happening::MasterDownTimer);
                }
            }
            let states = self.states();
            assert!(
                states.iter().all(|&s| s == State::Master),
                "the peer is gone but {states:?} after {history:?}"
            );
        }

        /// Back to normal with the peer advertising a lower priority than ours, the whole
        /// group fails back here, whatever the members followed before.
        fn check_fails_back_to_the_higher_priority(mut self, history: &[(usize, Happening)]) {
            self.back_to_normal();
            for _ in 0..2 * self.members.len() + 2 {
                self.now = self.now + DELAY;
                for i in 0..self.members.len() {
                    self.happen(i, Happening::PeerAdvert(50));
                }
            }
            let states = self.states();
            assert!(
                states.iter().all(|&s| s == State::Master),
                "the peer's priority is lower but {states:?} after {history:?}"
            );
        }
    }

    /// Every sequence of `length` happenings spread over `count` members, with each way of
    /// preempting.
    fn every_sequence(count: usize, length: u32) {
        let choices = count * HAPPENINGS.len();
        for preemption in PREEMPTIONS {
            for mut code in 0..choices.pow(length) {
                let mut node = Node::start(count, preemption);
                let mut history = Vec::new();
                for _ in 0..length {
                    let choice = code % choices;
                    code /= choices;
                    let happening = (
                        choice / HAPPENINGS.len(),
                        HAPPENINGS[choice % HAPPENINGS.len()],
                    );
                    history.push(happening);
                    node.happen(happening.0, happening.1);
                    node.check(&history);
                }
                node.clone()
                    .check_takes_over_when_the_peer_is_gone(&history);
                node.check_fails_back_to_the_higher_priority(&history);
            }
        }
    }

    #[test]
    fn every_order_of_four_events_on_two_members_keeps_the_group_together() {
        every_sequence(2, 4);
    }

    #[test]
    fn every_order_of_three_events_on_three_members_keeps_the_group_together() {
        every_sequence(3, 3);
    }

    const NO_DELAY: Preemption = PREEMPTIONS[0];

    #[test]
    fn a_fault_moves_the_group_and_its_end_restarts_it() {
        let mut node = Node::start(2, NO_DELAY);
        node.happen(0, Happening::MasterDownTimer);
        node.happen(1, Happening::MasterDownTimer);
        assert_eq!(node.states(), [State::Master, State::Master]);
        node.happen(1, Happening::OwnFault);
        assert_eq!(node.states(), [State::Fault, State::Fault]);
        node.happen(1, Happening::OwnFaultCleared);
        assert_eq!(node.states(), [State::Backup, State::Backup]);
    }

    #[test]
    fn a_member_that_loses_to_the_peer_takes_the_group_with_it() {
        let mut node = Node::start(2, NO_DELAY);
        node.happen(0, Happening::MasterDownTimer);
        node.happen(1, Happening::MasterDownTimer);
        node.happen(0, Happening::PeerAdvert(200));
        assert_eq!(node.states(), [State::Backup, State::Backup]);
        // The held member would preempt a lower-priority peer on its own; in the group it
        // follows, since its partner yields to the peer.
        node.happen(1, Happening::PeerAdvert(50));
        assert_eq!(node.states(), [State::Backup, State::Backup]);
        // The peer's first member drops below ours: the group fails back.
        node.happen(0, Happening::PeerAdvert(50));
        node.happen(1, Happening::PeerAdvert(50));
        assert_eq!(node.states(), [State::Master, State::Master]);
    }

    #[test]
    fn a_member_whose_timer_fires_first_waits_for_the_others() {
        let mut node = Node::start(2, NO_DELAY);
        node.happen(0, Happening::PeerAdvert(200));
        node.happen(1, Happening::PeerAdvert(200));
        // The peer is gone: member 1's timer fires first, but member 0 still yields to it.
        node.happen(1, Happening::MasterDownTimer);
        assert_eq!(node.states(), [State::Backup, State::Backup]);
        node.happen(0, Happening::MasterDownTimer);
        assert_eq!(node.states(), [State::Master, State::Master]);
    }

    /// A restart with tracked backends: both members follow the peer's lower-priority Masters
    /// until their first health results, then take both back.
    #[test]
    fn after_a_restart_the_group_fails_back_once_preemption_is_allowed() {
        let mut node = Node::start(2, PREEMPTIONS[2]);
        node.happen(0, Happening::PeerAdvert(50));
        node.happen(1, Happening::PeerAdvert(50));
        assert_eq!(node.states(), [State::Backup, State::Backup]);
        node.happen(0, Happening::PreemptionAllowed);
        node.happen(1, Happening::PreemptionAllowed);
        node.happen(0, Happening::PeerAdvert(50));
        node.happen(1, Happening::PeerAdvert(50));
        assert_eq!(node.states(), [State::Master, State::Master]);
    }

    /// A member in maintenance whose peer died holds the others back no more.
    #[test]
    fn a_member_in_maintenance_lets_the_others_take_over_when_the_peer_dies() {
        let mut node = Node::start(2, NO_DELAY);
        node.happen(0, Happening::PeerAdvert(200));
        node.happen(1, Happening::PeerAdvert(200));
        node.happen(0, Happening::Maintenance(true));
        node.happen(0, Happening::MasterDownTimer);
        node.happen(1, Happening::MasterDownTimer);
        assert_eq!(node.states(), [State::Backup, State::Master]);
    }
}
