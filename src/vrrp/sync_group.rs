//! Sync groups (keepalived's `vrrp_sync_group`): instances that change state together, so one
//! node is Master of all of them or of none.
//!
//! The rule is pure: each member reports whether its own trackers hold it in Fault and
//! whether it follows a live Master on its link; from the reports, each member gets a
//! [`Directive`]:
//! - Fault spreads: while any member is in Fault by its own trackers, the others are held in
//!   Fault too (no VIPs, no adverts), so the peer takes all of them.
//! - Master needs the whole group: while any member follows a peer's live Master, the others
//!   are held back from Master. A held Master resigns (priority-0 advert), so the peer takes
//!   over after Skew_Time; a held Backup follows any Master, even one it could preempt, and
//!   one whose Master_Down_Timer fires waits, taking over as soon as no member follows a
//!   Master any more (keepalived's "can go to master").
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
    /// It is a Backup following a live Master.
    pub following: bool,
}

impl Report {
    pub fn of(own_fault: bool, machine: &Machine) -> Report {
        Report {
            fault: own_fault,
            following: machine.follows_a_master(),
        }
    }
}

/// What a group asks of one member.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Directive {
    /// Another member is in Fault by its own trackers: be in Fault too.
    pub fault: bool,
    /// Another member follows a peer's Master: do not be Master.
    pub hold: bool,
}

/// The members' latest reports. A member that has not reported, or has left, holds nobody.
#[derive(Debug, Default)]
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
            hold: others().any(|(_, report)| report.following),
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
    use crate::vrrp::machine::{self, Action, Preempt, ReceivedAdvert, State, Timer, Timestamp};

    /// What happens to one member, from outside the group.
    #[derive(Debug, Clone, Copy)]
    enum Happening {
        OwnFault,
        OwnFaultCleared,
        /// The peer's advert for this member's VRID, with its priority (0: it resigns).
        PeerAdvert(u8),
        MasterDownTimer,
    }

    const HAPPENINGS: [Happening; 6] = [
        Happening::OwnFault,
        Happening::OwnFaultCleared,
        Happening::PeerAdvert(200),
        Happening::PeerAdvert(50),
        Happening::PeerAdvert(0),
        Happening::MasterDownTimer,
    ];

    struct Member {
        name: String,
        machine: Machine,
        own_fault: bool,
        membership: Membership,
        master_down_at: Option<Timestamp>,
    }

    /// Members of one group on one node, glued as the instance shell glues them.
    struct Node {
        now: Timestamp,
        members: Vec<Member>,
        group: Members,
    }

    impl Node {
        fn start(count: usize) -> Node {
            let members = (0..count)
                .map(|i| Member {
                    name: format!("VI_{i}"),
                    machine: Machine::new(machine::Config {
                        version: Version::V2,
                        priority: 100,
                        advert_interval: AdvertInterval::from_secs(1),
                        preempt: Preempt::After(Duration::ZERO),
                        primary_address: "198.51.100.10".parse().unwrap(),
                    }),
                    own_fault: false,
                    membership: Membership::default(),
                    master_down_at: None,
                })
                .collect();
            let mut node = Node {
                now: Timestamp::from_since_epoch(Duration::ZERO),
                members,
                group: Members::default(),
            };
            for i in 0..count {
                node.step(i, Event::Startup);
            }
            node
        }

        fn step(&mut self, i: usize, event: Event) {
            let member = &mut self.members[i];
            for action in member.machine.handle(self.now, event) {
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
            self.now = self.now + Duration::from_millis(10);
            match happening {
                Happening::OwnFault => {
                    self.members[i].own_fault = true;
                    self.step(i, Event::Fault);
                }
                Happening::OwnFaultCleared => {
                    self.members[i].own_fault = false;
                    // As the shell's `follow`: a group Fault stays.
                    self.step(i, Event::PriorityChanged(100));
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
            let following = self.members.iter().any(|m| m.machine.follows_a_master());
            if following {
                assert!(
                    !states.contains(&State::Master),
                    "Master while another member follows the peer: {states:?} after {history:?}"
                );
            }
        }

        /// With every fault cleared and the peer silent, the whole group ends up Master here.
        fn check_takes_over_when_the_peer_is_gone(&mut self, history: &[(usize, Happening)]) {
            for i in 0..self.members.len() {
                self.happen(i, Happening::OwnFaultCleared);
            }
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
    }

    /// Every sequence of `length` happenings spread over `count` members.
    fn every_sequence(count: usize, length: u32) {
        let choices = count * HAPPENINGS.len();
        for mut code in 0..choices.pow(length) {
            let mut node = Node::start(count);
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
            node.check_takes_over_when_the_peer_is_gone(&history);
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

    #[test]
    fn a_fault_moves_the_group_and_its_end_restarts_it() {
        let mut node = Node::start(2);
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
        let mut node = Node::start(2);
        node.happen(0, Happening::MasterDownTimer);
        node.happen(1, Happening::MasterDownTimer);
        node.happen(0, Happening::PeerAdvert(200));
        assert_eq!(node.states(), [State::Backup, State::Backup]);
        // The held member would preempt a lower-priority peer on its own; in the group it
        // follows, since its partner follows the peer.
        node.happen(1, Happening::PeerAdvert(50));
        assert_eq!(node.states(), [State::Backup, State::Backup]);
    }

    #[test]
    fn a_member_whose_timer_fires_first_waits_for_the_others() {
        let mut node = Node::start(2);
        node.happen(0, Happening::PeerAdvert(200));
        node.happen(1, Happening::PeerAdvert(200));
        // The peer is gone: member 1's timer fires first, but member 0 still follows it.
        node.happen(1, Happening::MasterDownTimer);
        assert_eq!(node.states(), [State::Backup, State::Backup]);
        node.happen(0, Happening::MasterDownTimer);
        assert_eq!(node.states(), [State::Master, State::Master]);
    }
}
