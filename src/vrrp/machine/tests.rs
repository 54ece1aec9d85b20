//! The state tables of RFC 3768 §6.4 and RFC 9568 §6.4 clause by clause, then keepalived's
//! additions (preempt delay, Fault, split brain healing) and a two-router run.

use std::collections::HashMap;

use super::*;
use Action::*;

const OURS: &str = "198.51.100.10";
const HIGHER_ADDRESS: &str = "198.51.100.20";
const LOWER_ADDRESS: &str = "198.51.100.5";

fn t(millis: u64) -> Timestamp {
    Timestamp::from_since_epoch(Duration::from_millis(millis))
}

fn address(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn peer(from: &str, priority: u8) -> Peer {
    Peer {
        address: address(from),
        priority,
    }
}

fn config(version: Version, priority: u8) -> Config {
    Config {
        version,
        priority,
        advert_interval: AdvertInterval::from_secs(1),
        preempt: Preempt::After(Duration::ZERO),
        primary_address: address(OURS),
    }
}

fn advert(version: Version, from: &str, priority: u8, interval: AdvertInterval) -> Event {
    Event::AdvertReceived(ReceivedAdvert {
        from: address(from),
        version,
        priority,
        interval,
    })
}

/// A v2 advert with the 1 s interval every test config uses.
fn v2_advert(from: &str, priority: u8) -> Event {
    advert(Version::V2, from, priority, AdvertInterval::from_secs(1))
}

fn state_changed(from: State, to: State, cause: Cause) -> Action {
    StateChanged { from, to, cause }
}

/// Master_Down_Interval for priority 100 and 1 s: 3 s + 156/256 s.
const MASTER_DOWN_100: Duration = Duration::from_micros(3_609_375);
/// Skew_Time for priority 100 and 1 s: 156/256 s.
const SKEW_100: Duration = Duration::from_micros(609_375);

fn backup_at_zero(config: Config) -> Machine {
    let mut machine = Machine::new(config);
    machine.handle(t(0), Event::Startup);
    assert_eq!(machine.state(), State::Backup);
    machine
}

/// A non-owner that became Master when its Master_Down_Timer fired; returns when that was.
fn master_after_timeout(config: Config) -> (Machine, Timestamp) {
    let mut machine = backup_at_zero(config);
    let at = t(0)
        + master_down_interval(
            machine.config.version,
            machine.priority,
            AdvertInterval::from_secs(1),
        );
    machine.handle(at, Event::MasterDownTimerFired);
    assert_eq!(machine.state(), State::Master);
    (machine, at)
}

// RFC 3768 §6.4.1 / RFC 9568 §6.4.1: Initialize.

#[test]
fn initialize_startup_as_owner_advertises_announces_arms_adver_timer_and_becomes_master() {
    for version in [Version::V2, Version::V3] {
        let mut machine = Machine::new(config(version, 255));
        assert_eq!(
            machine.handle(t(0), Event::Startup),
            [
                AddVips,
                SendAdvert { priority: 255 },
                SendGratuitous,
                SetTimer {
                    timer: Timer::Adver,
                    at: t(1000)
                },
                state_changed(State::Initialize, State::Master, Cause::AddressOwner),
            ]
        );
        assert_eq!(machine.state(), State::Master);
    }
}

#[test]
fn initialize_startup_as_non_owner_arms_master_down_timer_and_becomes_backup() {
    let mut machine = Machine::new(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(0), Event::Startup),
        [
            SetTimer {
                timer: Timer::MasterDown,
                at: t(0) + MASTER_DOWN_100
            },
            state_changed(State::Initialize, State::Backup, Cause::Startup),
        ]
    );
}

#[test]
fn initialize_startup_v3_takes_own_interval_as_master_adver_interval() {
    let mut machine = Machine::new(Config {
        advert_interval: AdvertInterval::from_centis(50),
        ..config(Version::V3, 100)
    });
    // 3 * 0.5 s + 156 * 0.5 s / 256
    assert_eq!(
        machine.handle(t(0), Event::Startup)[0],
        SetTimer {
            timer: Timer::MasterDown,
            at: Timestamp::from_since_epoch(Duration::from_nanos(1_804_687_500))
        }
    );
}

#[test]
fn initialize_ignores_adverts_timers_and_shutdown() {
    let mut machine = Machine::new(config(Version::V2, 100));
    for event in [
        v2_advert(HIGHER_ADDRESS, 150),
        v2_advert(HIGHER_ADDRESS, 0),
        Event::MasterDownTimerFired,
        Event::AdverTimerFired,
        Event::Shutdown,
        Event::FaultCleared,
    ] {
        assert_eq!(machine.handle(t(0), event), []);
        assert_eq!(machine.state(), State::Initialize);
    }
}

// RFC 3768 §6.4.2 / RFC 9568 §6.4.2: Backup.

#[test]
fn backup_shutdown_cancels_master_down_timer_and_initializes() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(500), Event::Shutdown),
        [
            CancelTimer(Timer::MasterDown),
            state_changed(State::Backup, State::Initialize, Cause::Shutdown),
        ]
    );
}

#[test]
fn backup_master_down_timer_advertises_announces_arms_adver_timer_and_becomes_master() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    let at = t(0) + MASTER_DOWN_100;
    assert_eq!(
        machine.handle(at, Event::MasterDownTimerFired),
        [
            AddVips,
            SendAdvert { priority: 100 },
            SendGratuitous,
            SetTimer {
                timer: Timer::Adver,
                at: at + Duration::from_secs(1)
            },
            state_changed(
                State::Backup,
                State::Master,
                Cause::MasterDown { last_master: None }
            ),
        ]
    );
}

#[test]
fn backup_takeover_names_the_last_master_heard() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(500), v2_advert(HIGHER_ADDRESS, 150));
    let actions = machine.handle(t(500) + MASTER_DOWN_100, Event::MasterDownTimerFired);
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::MasterDown {
                last_master: Some(peer(HIGHER_ADDRESS, 150))
            }
        ))
    );
}

#[test]
fn backup_priority_zero_sets_master_down_timer_to_skew_time() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(200), v2_advert(HIGHER_ADDRESS, 150));
    assert_eq!(
        machine.handle(t(500), v2_advert(HIGHER_ADDRESS, 0)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(500) + SKEW_100
        }]
    );
    let actions = machine.handle(t(500) + SKEW_100, Event::MasterDownTimerFired);
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::MasterResigned(peer(HIGHER_ADDRESS, 0))
        ))
    );
}

#[test]
fn backup_v3_priority_zero_skew_time_scales_with_the_learned_interval() {
    let mut machine = backup_at_zero(config(Version::V3, 100));
    machine.handle(
        t(0),
        advert(
            Version::V3,
            HIGHER_ADDRESS,
            150,
            AdvertInterval::from_centis(200),
        ),
    );
    assert_eq!(
        machine.handle(
            t(1000),
            advert(
                Version::V3,
                HIGHER_ADDRESS,
                0,
                AdvertInterval::from_centis(200)
            )
        ),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(1000) + SKEW_100 * 2
        }]
    );
}

#[test]
fn backup_without_preemption_follows_a_lower_priority_master() {
    let mut machine = backup_at_zero(Config {
        preempt: Preempt::Never,
        ..config(Version::V2, 100)
    });
    assert_eq!(
        machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 50)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(1000) + MASTER_DOWN_100
        }]
    );
}

#[test]
fn backup_higher_priority_advert_resets_master_down_timer() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(1000), v2_advert(LOWER_ADDRESS, 101)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(1000) + MASTER_DOWN_100
        }]
    );
}

#[test]
fn backup_equal_priority_advert_resets_master_down_timer_whatever_the_address() {
    // The address tie-break is the Master's business; a Backup never preempts an equal.
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(1000), v2_advert(LOWER_ADDRESS, 100)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(1000) + MASTER_DOWN_100
        }]
    );
}

#[test]
fn backup_with_preemption_takes_over_from_a_lower_priority_master_at_once() {
    // The RFC discards the advert and waits for the Master_Down_Timer; we need not wait.
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 99)),
        [
            CancelTimer(Timer::MasterDown),
            AddVips,
            SendAdvert { priority: 100 },
            SendGratuitous,
            SetTimer {
                timer: Timer::Adver,
                at: t(2000)
            },
            state_changed(
                State::Backup,
                State::Master,
                Cause::PreemptedLowerPriority(peer(HIGHER_ADDRESS, 99))
            ),
        ]
    );
}

#[test]
fn backup_v3_learns_master_adver_interval_and_recomputes_master_down_interval() {
    let mut machine = backup_at_zero(config(Version::V3, 100));
    let slow = AdvertInterval::from_centis(300);
    // 3 * 3 s + 156 * 3 s / 256
    let slow_master_down = Duration::from_micros(10_828_125);
    assert_eq!(
        machine.handle(t(1000), advert(Version::V3, HIGHER_ADDRESS, 150, slow)),
        [
            Report(Anomaly::IntervalMismatch {
                from: address(HIGHER_ADDRESS),
                received: slow,
                configured: AdvertInterval::from_secs(1),
            }),
            SetTimer {
                timer: Timer::MasterDown,
                at: t(1000) + slow_master_down
            },
        ]
    );
    // Reported once, when the interval changes, not on every advert.
    assert_eq!(
        machine.handle(t(4000), advert(Version::V3, HIGHER_ADDRESS, 150, slow)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(4000) + slow_master_down
        }]
    );
    // Back to our own interval: nothing to report.
    assert_eq!(
        machine.handle(
            t(7000),
            advert(
                Version::V3,
                HIGHER_ADDRESS,
                150,
                AdvertInterval::from_secs(1)
            )
        ),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(7000) + MASTER_DOWN_100
        }]
    );
}

#[test]
fn backup_priority_change_applies_from_the_next_master_down_interval() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(machine.handle(t(500), Event::PriorityChanged(200)), []);
    assert_eq!(machine.priority(), 200);
    assert_eq!(
        machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 250)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(1000) + Duration::from_micros(3_218_750)
        }]
    );
}

#[test]
fn backup_whose_priority_rises_above_the_master_preempts_it() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 150));
    machine.handle(t(1500), Event::PriorityChanged(200));
    // The Master's next advert is enough.
    let actions = machine.handle(t(2000), v2_advert(HIGHER_ADDRESS, 150));
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::PreemptedLowerPriority(peer(HIGHER_ADDRESS, 150))
        ))
    );
}

// RFC 3768 §6.4.3 / RFC 9568 §6.4.3: Master (Active).

#[test]
fn master_shutdown_cancels_adver_timer_resigns_and_initializes() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(10_000), Event::Shutdown),
        [
            CancelTimer(Timer::Adver),
            SendAdvert { priority: 0 },
            RemoveVips,
            state_changed(State::Master, State::Initialize, Cause::Shutdown),
        ]
    );
}

#[test]
fn master_adver_timer_advertises_and_rearms() {
    let (mut machine, since) = master_after_timeout(config(Version::V2, 100));
    let due = since + Duration::from_secs(1);
    assert_eq!(
        machine.handle(due, Event::AdverTimerFired),
        [
            SendAdvert { priority: 100 },
            SetTimer {
                timer: Timer::Adver,
                at: due + Duration::from_secs(1)
            },
        ]
    );
}

#[test]
fn master_priority_zero_advert_is_answered_at_once() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(5000), v2_advert(HIGHER_ADDRESS, 0)),
        [
            SendAdvert { priority: 100 },
            SetTimer {
                timer: Timer::Adver,
                at: t(6000)
            },
        ]
    );
    assert_eq!(machine.state(), State::Master);
}

#[test]
fn master_higher_priority_advert_steps_down_to_backup() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(5000), v2_advert(LOWER_ADDRESS, 101)),
        [
            CancelTimer(Timer::Adver),
            RemoveVips,
            SetTimer {
                timer: Timer::MasterDown,
                at: t(5000) + MASTER_DOWN_100
            },
            state_changed(
                State::Master,
                State::Backup,
                Cause::HigherPriorityAdvert(peer(LOWER_ADDRESS, 101))
            ),
        ]
    );
}

#[test]
fn master_v3_steps_down_with_the_new_masters_interval() {
    let (mut machine, _) = master_after_timeout(config(Version::V3, 100));
    let slow = AdvertInterval::from_centis(200);
    assert_eq!(
        machine.handle(t(5000), advert(Version::V3, HIGHER_ADDRESS, 150, slow)),
        [
            Report(Anomaly::IntervalMismatch {
                from: address(HIGHER_ADDRESS),
                received: slow,
                configured: AdvertInterval::from_secs(1),
            }),
            CancelTimer(Timer::Adver),
            RemoveVips,
            SetTimer {
                timer: Timer::MasterDown,
                at: t(5000) + MASTER_DOWN_100 * 2
            },
            state_changed(
                State::Master,
                State::Backup,
                Cause::HigherPriorityAdvert(peer(HIGHER_ADDRESS, 150))
            ),
        ]
    );
}

#[test]
fn master_equal_priority_from_a_higher_address_steps_down() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    let actions = machine.handle(t(5000), v2_advert(HIGHER_ADDRESS, 100));
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Master,
            State::Backup,
            Cause::HigherPriorityAdvert(peer(HIGHER_ADDRESS, 100))
        ))
    );
}

#[test]
fn master_compares_ipv6_addresses_as_unsigned_integers() {
    let (mut machine, _) = master_after_timeout(Config {
        primary_address: address("fe80::9"),
        ..config(Version::V3, 100)
    });
    // fe80::10 > fe80::9 numerically, though not as text.
    let actions = machine.handle(
        t(5000),
        advert(Version::V3, "fe80::10", 100, AdvertInterval::from_secs(1)),
    );
    assert_eq!(machine.state(), State::Backup, "{actions:?}");
}

#[test]
fn master_lower_priority_master_is_answered_with_advert_and_announcement() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(5000), v2_advert(HIGHER_ADDRESS, 99)),
        [
            Report(Anomaly::LowerPriorityMaster(peer(HIGHER_ADDRESS, 99))),
            SendAdvert { priority: 100 },
            SetTimer {
                timer: Timer::Adver,
                at: t(6000)
            },
            SendGratuitous,
        ]
    );
    assert_eq!(machine.state(), State::Master);
}

#[test]
fn master_equal_priority_from_a_lower_address_is_answered_too() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    let actions = machine.handle(t(5000), v2_advert(LOWER_ADDRESS, 100));
    assert_eq!(
        actions[0],
        Report(Anomaly::LowerPriorityMaster(peer(LOWER_ADDRESS, 100)))
    );
    assert_eq!(machine.state(), State::Master);
}

#[test]
fn master_ignores_an_echo_of_its_own_advert() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(machine.handle(t(5000), v2_advert(OURS, 100)), []);
}

#[test]
fn master_priority_change_is_advertised_at_once() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(5000), Event::PriorityChanged(80)),
        [
            SendAdvert { priority: 80 },
            SetTimer {
                timer: Timer::Adver,
                at: t(6000)
            },
        ]
    );
    assert_eq!(machine.handle(t(5100), Event::PriorityChanged(80)), []);
}

// RFC 3768 §7.1 / RFC 9568 §7.1 checks that need the configuration.

#[test]
fn v2_advert_with_another_interval_is_discarded_and_reported() {
    let other = AdvertInterval::from_secs(2);
    let mismatch = Report(Anomaly::IntervalMismatch {
        from: address(HIGHER_ADDRESS),
        received: other,
        configured: AdvertInterval::from_secs(1),
    });
    let mut backup = backup_at_zero(config(Version::V2, 100));
    assert_eq!(
        backup.handle(t(1000), advert(Version::V2, HIGHER_ADDRESS, 150, other)),
        [mismatch]
    );
    // Not even a higher priority makes a Master step down for it.
    let (mut master, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        master.handle(t(5000), advert(Version::V2, HIGHER_ADDRESS, 150, other)),
        [mismatch]
    );
    assert_eq!(master.state(), State::Master);
}

#[test]
fn advert_of_the_other_version_is_discarded_and_reported() {
    let mut machine = backup_at_zero(config(Version::V3, 100));
    assert_eq!(
        machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 150)),
        [Report(Anomaly::VersionMismatch {
            from: address(HIGHER_ADDRESS),
            received: Version::V2
        })]
    );
}

// Preemption as keepalived does it.

#[test]
fn preempt_delay_follows_a_lower_priority_master_until_the_delay_has_passed() {
    let mut machine = backup_at_zero(Config {
        preempt: Preempt::After(Duration::from_secs(10)),
        ..config(Version::V2, 100)
    });
    // The delay starts at the first lower-priority advert, at 1 s, so it ends at 11 s.
    for second in 1..=10 {
        let now = t(second * 1000);
        assert_eq!(
            machine.handle(now, v2_advert(HIGHER_ADDRESS, 50)),
            [SetTimer {
                timer: Timer::MasterDown,
                at: now + MASTER_DOWN_100
            }],
            "at {second} s"
        );
    }
    let actions = machine.handle(t(11_000), v2_advert(HIGHER_ADDRESS, 50));
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::PreemptedLowerPriority(peer(HIGHER_ADDRESS, 50))
        ))
    );
}

#[test]
fn preempt_delay_restarts_after_a_higher_priority_master() {
    let mut machine = backup_at_zero(Config {
        preempt: Preempt::After(Duration::from_secs(10)),
        ..config(Version::V2, 100)
    });
    machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 50));
    machine.handle(t(2000), v2_advert(LOWER_ADDRESS, 150));
    // Without the restart the delay would have ended at 11 s.
    assert_ne!(machine.handle(t(12_000), v2_advert(HIGHER_ADDRESS, 50)), []);
    assert_ne!(machine.handle(t(21_000), v2_advert(HIGHER_ADDRESS, 50)), []);
    assert_eq!(machine.state(), State::Backup);
    machine.handle(t(22_000), v2_advert(HIGHER_ADDRESS, 50));
    assert_eq!(machine.state(), State::Master);
}

#[test]
fn address_owner_preempts_whatever_the_preempt_setting() {
    let mut machine = Machine::new(Config {
        preempt: Preempt::Never,
        ..config(Version::V2, 255)
    });
    machine.handle(t(0), Event::Startup);
    // Another owner with a higher address: a misconfiguration, which the RFC settles by address.
    machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 255));
    assert_eq!(machine.state(), State::Backup);
    machine.handle(t(2000), v2_advert(LOWER_ADDRESS, 254));
    assert_eq!(machine.state(), State::Master);
}

// Timers: a fire the shell had already queued when the timer was moved is stale.

#[test]
fn stale_timer_events_are_ignored() {
    let mut backup = backup_at_zero(config(Version::V2, 100));
    assert_eq!(backup.handle(t(1000), Event::MasterDownTimerFired), []);
    assert_eq!(backup.handle(t(1000), Event::AdverTimerFired), []);
    backup.handle(t(2000), v2_advert(HIGHER_ADDRESS, 150));
    assert_eq!(
        backup.handle(t(0) + MASTER_DOWN_100, Event::MasterDownTimerFired),
        []
    );
    assert_eq!(backup.state(), State::Backup);

    let (mut master, since) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(master.handle(since, Event::AdverTimerFired), []);
    assert_eq!(
        master.handle(since + Duration::from_secs(5), Event::MasterDownTimerFired),
        []
    );
}

// Fault: no addresses and no adverts until cleared.

#[test]
fn fault_in_master_resigns_and_removes_the_addresses() {
    let (mut machine, _) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(5000), Event::Fault),
        [
            CancelTimer(Timer::Adver),
            SendAdvert { priority: 0 },
            RemoveVips,
            state_changed(State::Master, State::Fault, Cause::Fault),
        ]
    );
}

#[test]
fn fault_in_backup_cancels_master_down_timer() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(500), Event::Fault),
        [
            CancelTimer(Timer::MasterDown),
            state_changed(State::Backup, State::Fault, Cause::Fault),
        ]
    );
}

#[test]
fn fault_ignores_adverts_timers_startup_and_a_repeated_fault() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(500), Event::Fault);
    for event in [
        v2_advert(HIGHER_ADDRESS, 0),
        v2_advert(HIGHER_ADDRESS, 50),
        Event::MasterDownTimerFired,
        Event::AdverTimerFired,
        Event::Startup,
        Event::Fault,
        Event::PriorityChanged(120),
    ] {
        assert_eq!(machine.handle(t(10_000), event), []);
        assert_eq!(machine.state(), State::Fault);
    }
}

#[test]
fn fault_cleared_starts_over_as_backup() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(500), Event::Fault);
    assert_eq!(
        machine.handle(t(8000), Event::FaultCleared),
        [
            SetTimer {
                timer: Timer::MasterDown,
                at: t(8000) + MASTER_DOWN_100
            },
            state_changed(State::Fault, State::Backup, Cause::FaultCleared),
        ]
    );
}

#[test]
fn fault_cleared_owner_takes_the_addresses_at_once() {
    let mut machine = Machine::new(config(Version::V2, 255));
    machine.handle(t(0), Event::Startup);
    machine.handle(t(500), Event::Fault);
    let actions = machine.handle(t(8000), Event::FaultCleared);
    assert_eq!(actions[0], AddVips);
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Fault,
            State::Master,
            Cause::FaultCleared
        ))
    );
}

#[test]
fn fault_before_startup_holds_the_instance_until_cleared() {
    let mut machine = Machine::new(config(Version::V2, 100));
    assert_eq!(
        machine.handle(t(0), Event::Fault),
        [state_changed(State::Initialize, State::Fault, Cause::Fault)]
    );
    assert_eq!(machine.handle(t(0), Event::Startup), []);
    machine.handle(t(1000), Event::FaultCleared);
    assert_eq!(machine.state(), State::Backup);
}

#[test]
fn shutdown_in_fault_initializes() {
    let mut machine = Machine::new(config(Version::V2, 100));
    machine.handle(t(0), Event::Fault);
    assert_eq!(
        machine.handle(t(1000), Event::Shutdown),
        [state_changed(
            State::Fault,
            State::Initialize,
            Cause::Shutdown
        )]
    );
}

#[test]
fn priority_zero_is_taken_as_one() {
    let mut machine = Machine::new(config(Version::V2, 0));
    assert_eq!(machine.priority(), 1);
    machine.handle(t(0), Event::PriorityChanged(50));
    machine.handle(t(0), Event::PriorityChanged(0));
    assert_eq!(machine.priority(), 1);
}

#[test]
fn states_have_distinct_labels_in_discriminant_order() {
    let labels = State::ALL.map(State::label);
    assert_eq!(labels, ["INIT", "BACKUP", "MASTER", "FAULT"]);
    assert!((State::ALL.iter().enumerate()).all(|(index, state)| *state as usize == index));
}

#[test]
fn knows_which_master_it_sees() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(machine.master(), None);
    machine.handle(t(100), v2_advert(HIGHER_ADDRESS, 200));
    assert_eq!(machine.master(), Some(address(HIGHER_ADDRESS)));
    machine.handle(t(200), v2_advert(HIGHER_ADDRESS, 0));
    assert_eq!(
        machine.master(),
        None,
        "a resigned Master is no longer seen"
    );
    let (mut master, at) = master_after_timeout(config(Version::V2, 100));
    assert_eq!(master.master(), Some(address(OURS)));
    master.handle(at, Event::Fault);
    assert_eq!(master.master(), None);
}

// Two routers on one link, driven only through the action contract.

/// Routers whose adverts reach each other at once (while `linked`) and whose timers fire on time.
struct Link {
    routers: Vec<Machine>,
    timers: Vec<HashMap<Timer, Timestamp>>,
    linked: bool,
    now: Timestamp,
}

impl Link {
    fn new(routers: Vec<Machine>) -> Link {
        let timers = vec![HashMap::new(); routers.len()];
        Link {
            routers,
            timers,
            linked: true,
            now: t(0),
        }
    }

    fn send(&mut self, router: usize, event: Event) {
        let actions = self.routers[router].handle(self.now, event);
        for action in actions {
            match action {
                SetTimer { timer, at } => {
                    self.timers[router].insert(timer, at);
                }
                CancelTimer(timer) => {
                    self.timers[router].remove(&timer);
                }
                SendAdvert { priority } if self.linked => {
                    let from = self.routers[router].config.primary_address;
                    for other in (0..self.routers.len()).filter(|&other| other != router) {
                        let version = self.routers[router].config.version;
                        let interval = self.routers[router].config.advert_interval;
                        self.send(
                            other,
                            Event::AdvertReceived(ReceivedAdvert {
                                from,
                                version,
                                priority,
                                interval,
                            }),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// Fires timers in time order until `until`.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            let next = (0..self.routers.len())
                .flat_map(|router| {
                    self.timers[router]
                        .iter()
                        .map(move |(&timer, &at)| (at, router, timer))
                })
                .min_by_key(|&(at, router, _)| (at, router));
            let Some((at, router, timer)) = next.filter(|&(at, ..)| at <= until) else {
                self.now = until;
                return;
            };
            self.now = at;
            self.timers[router].remove(&timer);
            let event = match timer {
                Timer::Adver => Event::AdverTimerFired,
                Timer::MasterDown => Event::MasterDownTimerFired,
            };
            self.send(router, event);
        }
    }

    fn states(&self) -> Vec<State> {
        self.routers.iter().map(Machine::state).collect()
    }
}

fn router(priority: u8, primary_address: &str) -> Machine {
    Machine::new(Config {
        primary_address: address(primary_address),
        ..config(Version::V3, priority)
    })
}

#[test]
fn two_routers_elect_the_higher_priority_and_fail_over_on_resignation() {
    let mut link = Link::new(vec![router(200, OURS), router(100, HIGHER_ADDRESS)]);
    link.send(0, Event::Startup);
    link.send(1, Event::Startup);
    link.run_until(t(10_000));
    assert_eq!(link.states(), [State::Master, State::Backup]);

    link.send(0, Event::Shutdown);
    // Router 1 takes over after its Skew_Time, not a full Master_Down_Interval.
    link.run_until(t(10_000) + (SKEW_100 - Duration::from_millis(1)));
    assert_eq!(link.states(), [State::Initialize, State::Backup]);
    link.run_until(t(10_000) + SKEW_100);
    assert_eq!(link.states(), [State::Initialize, State::Master]);
}

#[test]
fn split_brain_heals_when_the_link_returns() {
    let mut link = Link::new(vec![router(200, OURS), router(100, HIGHER_ADDRESS)]);
    link.linked = false;
    link.send(0, Event::Startup);
    link.send(1, Event::Startup);
    link.run_until(t(10_000));
    assert_eq!(link.states(), [State::Master, State::Master]);

    link.linked = true;
    link.run_until(t(12_000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
}

/// Tracking lowers the Master below the Backup: the Master says so at once and the Backup takes
/// over on that advert, with no timer in between.
#[test]
fn a_master_degraded_below_its_backup_hands_over_on_its_next_advert() {
    let mut link = Link::new(vec![router(150, OURS), router(100, HIGHER_ADDRESS)]);
    link.send(0, Event::Startup);
    link.send(1, Event::Startup);
    link.run_until(t(10_000));
    assert_eq!(link.states(), [State::Master, State::Backup]);

    link.send(0, Event::PriorityChanged(50));
    assert_eq!(link.states(), [State::Backup, State::Master]);

    // Healthy again: the Backup at 150 preempts on the new Master's next advert.
    link.send(0, Event::PriorityChanged(150));
    assert_eq!(link.states(), [State::Backup, State::Master]);
    link.run_until(t(11_000));
    assert_eq!(link.states(), [State::Master, State::Backup]);
}

/// Both degraded alike: equal priorities, and the Backup follows the Master, so nothing moves.
#[test]
fn routers_degraded_alike_do_not_flap() {
    let mut link = Link::new(vec![router(150, OURS), router(150, HIGHER_ADDRESS)]);
    link.send(0, Event::Startup);
    link.send(1, Event::Startup);
    link.run_until(t(10_000));
    let settled = link.states();
    assert!(settled.contains(&State::Master) && settled.contains(&State::Backup));
    let master = settled.iter().position(|&state| state == State::Master);
    let backup = 1 - master.unwrap();
    // The Backup degrades first: at 100 it keeps following the Master at 150, then at 100.
    link.send(backup, Event::PriorityChanged(100));
    link.send(1 - backup, Event::PriorityChanged(100));
    for second in 11..=30 {
        link.run_until(t(second * 1000));
        assert_eq!(link.states(), settled, "at {second} s");
    }
}

// Reload: `reconfigure` applies new settings without a state change.

#[test]
fn reconfigure_turning_preemption_on_lets_a_backup_take_over_on_the_next_lower_advert() {
    let never = Config {
        preempt: Preempt::Never,
        ..config(Version::V2, 100)
    };
    let mut machine = backup_at_zero(never.clone());
    machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 50));
    assert_eq!(machine.reconfigure(t(1100), config(Version::V2, 100)), []);
    assert_eq!(machine.state(), State::Backup);
    let actions = machine.handle(t(2000), v2_advert(HIGHER_ADDRESS, 50));
    assert!(actions.contains(&state_changed(
        State::Backup,
        State::Master,
        Cause::PreemptedLowerPriority(peer(HIGHER_ADDRESS, 50))
    )));

    // And off again: a Backup with preemption off follows the lower Master.
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert_eq!(machine.reconfigure(t(500), never), []);
    assert_eq!(
        machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 50)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: t(1000) + MASTER_DOWN_100
        }]
    );
}

#[test]
fn reconfigure_a_master_advertises_at_once_only_when_its_advert_changes() {
    let (mut machine, at) = master_after_timeout(config(Version::V3, 100));
    let no_preempt = Config {
        preempt: Preempt::Never,
        ..config(Version::V3, 100)
    };
    assert_eq!(machine.reconfigure(at, no_preempt.clone()), []);
    let faster = Config {
        advert_interval: AdvertInterval::from_centis(50),
        ..no_preempt
    };
    assert_eq!(
        machine.reconfigure(at + Duration::from_millis(100), faster),
        [
            SendAdvert { priority: 100 },
            SetTimer {
                timer: Timer::Adver,
                at: at + Duration::from_millis(600)
            },
        ]
    );
    assert_eq!(machine.state(), State::Master);
}

// Every way into Master announces, and none is taken in maintenance: a seeded walk through
// every event in every state.

/// A small deterministic generator (xorshift), so a failing walk can be replayed by its seed.
struct Walk(u64);

impl Walk {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn any_event(walk: &mut Walk) -> Event {
    const FROM: [&str; 3] = [LOWER_ADDRESS, OURS, HIGHER_ADDRESS];
    const PRIORITIES: [u8; 6] = [0, 1, 99, 100, 101, 255];
    match walk.next(12) {
        9 => Event::SyncHold(walk.next(2) == 0),
        10 => Event::Resign,
        11 => Event::Maintenance(walk.next(2) == 0),
        0 => Event::Startup,
        1 => Event::Shutdown,
        2 => Event::Fault,
        3 => Event::FaultCleared,
        4 => Event::MasterDownTimerFired,
        5 => Event::AdverTimerFired,
        6 => Event::PriorityChanged(PRIORITIES[walk.next(6) as usize]),
        _ => advert(
            if walk.next(8) == 0 {
                Version::V2
            } else {
                Version::V3
            },
            FROM[walk.next(3) as usize],
            PRIORITIES[walk.next(6) as usize],
            AdvertInterval::from_secs(1),
        ),
    }
}

/// Which way into Master a transition took, to show the walk went every way.
fn way_in(cause: Cause) -> &'static str {
    match cause {
        Cause::AddressOwner => "address owner",
        Cause::MasterDown { last_master: None } => "no master heard",
        Cause::MasterDown {
            last_master: Some(_),
        } => "master went silent",
        Cause::MasterResigned(_) => "master resigned",
        Cause::PreemptedLowerPriority(_) => "preempted",
        Cause::FaultCleared => "fault cleared as owner",
        other => panic!("entered Master for {other:?}"),
    }
}

#[test]
fn every_way_into_master_adds_the_vips_then_announces_them() {
    let mut ways_in = std::collections::BTreeSet::new();
    let mut split_brains_answered = 0;
    for seed in 1..=200u64 {
        let mut walk = Walk(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let priority = [100, 255][walk.next(2) as usize];
        let preempt = [
            Preempt::After(Duration::ZERO),
            Preempt::Never,
            Preempt::NotYet,
        ][walk.next(3) as usize];
        let mut machine = Machine::new(Config {
            preempt,
            ..config(Version::V3, priority)
        });
        let mut now = t(0);
        for step in 0..500 {
            now = now + Duration::from_millis(walk.next(5000));
            let event = any_event(&mut walk);
            let before = machine.state();
            let actions = machine.handle(now, event.clone());
            let context =
                || format!("seed {seed}, step {step}: {before:?} + {event:?} -> {actions:?}");
            assert!(
                machine.mode() != Mode::Maintenance || machine.state() != State::Master,
                "Master in maintenance: {}",
                context()
            );
            assert!(
                !machine.held || machine.state() != State::Master,
                "Master while held by its sync group: {}",
                context()
            );
            if machine.state() == State::Master && before != State::Master {
                let at = |wanted: Action| actions.iter().position(|&action| action == wanted);
                let (Some(add), Some(announce)) = (at(AddVips), at(SendGratuitous)) else {
                    panic!(
                        "entered Master without adding and announcing the VIPs: {}",
                        context()
                    );
                };
                assert!(add < announce, "announced before adding: {}", context());
                let Some(&StateChanged { cause, .. }) = actions.last() else {
                    panic!("no state change last: {}", context());
                };
                ways_in.insert(way_in(cause));
            }
            if (actions.iter())
                .any(|action| matches!(action, Report(Anomaly::LowerPriorityMaster(_))))
            {
                assert!(actions.contains(&SendGratuitous), "{}", context());
                split_brains_answered += 1;
            }
        }
    }
    assert_eq!(
        ways_in.into_iter().collect::<Vec<_>>(),
        [
            "address owner",
            "fault cleared as owner",
            "master resigned",
            "master went silent",
            "no master heard",
            "preempted",
        ]
    );
    assert!(split_brains_answered > 0);
}

/// A healed split brain, in both orders: whichever Master's advert crosses first, the winner
/// ends as the only Master. When the loser hears first it steps down silently and the winner
/// never hears it, so nothing tells the winner to announce again: with `virtual_mac` the link
/// needs nothing more, since the winner's own adverts come from the MAC clients already use.
#[test]
fn a_healed_split_brain_leaves_the_higher_priority_master_whoever_speaks_first() {
    for loser_speaks_first in [false, true] {
        let mut link = Link::new(vec![router(150, OURS), router(100, HIGHER_ADDRESS)]);
        link.linked = false;
        link.send(0, Event::Startup);
        link.send(1, Event::Startup);
        link.run_until(t(10_000));
        assert_eq!(link.states(), [State::Master, State::Master]);

        link.linked = true;
        // A new priority is advertised at once: that Master speaks first.
        let (first, priority) = if loser_speaks_first {
            (1, 101)
        } else {
            (0, 151)
        };
        link.send(first, Event::PriorityChanged(priority));
        link.run_until(t(12_000));
        assert_eq!(link.states(), [State::Master, State::Backup]);
    }
}

// Sync groups: a held machine is never Master.

#[test]
fn a_held_master_resigns_and_becomes_a_backup() {
    let (mut machine, at) = master_after_timeout(config(Version::V2, 100));
    let now = at + Duration::from_millis(10);
    assert_eq!(
        machine.handle(now, Event::SyncHold(true)),
        [
            CancelTimer(Timer::Adver),
            SendAdvert { priority: 0 },
            RemoveVips,
            SetTimer {
                timer: Timer::MasterDown,
                at: now + MASTER_DOWN_100,
            },
            state_changed(State::Master, State::Backup, Cause::SyncGroup),
        ]
    );
    // Held, it follows even a Master it would preempt.
    let actions = machine.handle(now, v2_advert(LOWER_ADDRESS, 50));
    assert_eq!(machine.state(), State::Backup, "{actions:?}");
    assert_eq!(machine.master(), Some(address(LOWER_ADDRESS)));
    assert!(
        !machine.yields_to_a_master(),
        "followed only because it is held: it holds nobody"
    );
}

#[test]
fn a_held_backup_waits_when_its_timer_fires_and_takes_over_once_released() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    assert!(machine.handle(t(1), Event::SyncHold(true)).is_empty());
    let fired = t(0) + MASTER_DOWN_100;
    assert!(machine
        .handle(fired, Event::MasterDownTimerFired)
        .is_empty());
    assert_eq!(machine.state(), State::Backup);
    assert!(
        !machine.yields_to_a_master(),
        "a silent master is not followed"
    );
    let released = fired + Duration::from_secs(5);
    let actions = machine.handle(released, Event::SyncHold(false));
    assert_eq!(machine.state(), State::Master);
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::MasterDown { last_master: None }
        ))
    );
}

#[test]
fn a_held_backup_that_hears_a_master_while_waiting_follows_it_again() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(1), Event::SyncHold(true));
    let fired = t(0) + MASTER_DOWN_100;
    machine.handle(fired, Event::MasterDownTimerFired);
    let heard = fired + Duration::from_millis(100);
    assert_eq!(
        machine.handle(heard, v2_advert(HIGHER_ADDRESS, 200)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: heard + MASTER_DOWN_100,
        }]
    );
    assert!(machine.yields_to_a_master());
    // Released, it keeps following: only a fired timer makes it take over.
    assert!(machine.handle(heard, Event::SyncHold(false)).is_empty());
    assert_eq!(machine.state(), State::Backup);
}

#[test]
fn a_resigned_master_hands_over_and_does_not_preempt_back_until_the_peer_fails() {
    let (mut machine, at) = master_after_timeout(config(Version::V2, 200));
    let actions = machine.handle(at, Event::Resign);
    assert_eq!(
        actions,
        [
            CancelTimer(Timer::Adver),
            SendAdvert { priority: 0 },
            RemoveVips,
            SetTimer {
                timer: Timer::MasterDown,
                at: at + master_down_interval(Version::V2, 200, AdvertInterval::from_secs(1))
            },
            state_changed(State::Master, State::Backup, Cause::Resigned),
        ]
    );
    assert_eq!(machine.mode(), Mode::Resigned);
    let later = at + Duration::from_secs(1);
    let followed = machine.handle(later, v2_advert(LOWER_ADDRESS, 100));
    assert_eq!(
        machine.state(),
        State::Backup,
        "the peer of lower priority is followed"
    );
    assert!(matches!(followed[..], [SetTimer { .. }]), "{followed:?}");
    let silent = later + MASTER_DOWN_100 + Duration::from_secs(1);
    machine.handle(silent, Event::MasterDownTimerFired);
    assert_eq!(
        machine.state(),
        State::Master,
        "the peer went silent: taken over"
    );
    assert_eq!(
        machine.mode(),
        Mode::Normal,
        "and preempting as configured again"
    );

    let mut resigned = backup_at_zero(config(Version::V2, 200));
    resigned.handle(t(0), Event::Resign);
    resigned.handle(t(10), v2_advert(LOWER_ADDRESS, 100));
    assert_eq!(resigned.state(), State::Backup);
    resigned.handle(t(20), Event::Maintenance(false));
    assert_eq!(
        resigned.mode(),
        Mode::Normal,
        "maintenance off ends a resign"
    );
    resigned.handle(t(30), v2_advert(LOWER_ADDRESS, 100));
    assert_eq!(resigned.state(), State::Master, "and it preempts again");
}

#[test]
fn maintenance_keeps_a_router_backup_whatever_happens_until_off() {
    let (mut machine, at) = master_after_timeout(config(Version::V2, 200));
    machine.handle(at, Event::Maintenance(true));
    assert_eq!(
        (machine.state(), machine.mode()),
        (State::Backup, Mode::Maintenance)
    );
    let later = at + Duration::from_secs(10);
    assert_eq!(machine.handle(later, Event::MasterDownTimerFired), []);
    machine.handle(later, v2_advert(LOWER_ADDRESS, 100));
    assert_eq!(machine.state(), State::Backup, "no preemption either");

    let mut owner = Machine::new(config(Version::V2, 255));
    owner.handle(t(0), Event::Maintenance(true));
    owner.handle(t(0), Event::Startup);
    assert_eq!(owner.state(), State::Backup, "even the address owner");

    let off = later + Duration::from_secs(1);
    let actions = machine.handle(off, Event::Maintenance(false));
    assert_eq!(machine.mode(), Mode::Normal);
    assert!(
        matches!(
            actions[..],
            [SetTimer {
                timer: Timer::MasterDown,
                ..
            }]
        ),
        "{actions:?}"
    );
    machine.handle(off, v2_advert(LOWER_ADDRESS, 100));
    assert_eq!(machine.state(), State::Master, "preempts again");
}

#[test]
fn maintenance_never_ends_in_master_even_when_its_group_lets_it_go() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(1), Event::SyncHold(true));
    let fired = t(0) + MASTER_DOWN_100;
    machine.handle(fired, Event::MasterDownTimerFired);
    machine.handle(fired, Event::Maintenance(true));
    let released = fired + Duration::from_secs(1);
    assert_eq!(machine.handle(released, Event::SyncHold(false)), []);
    assert_eq!(machine.state(), State::Backup);

    // Off: it waits a Master_Down_Interval afresh for a Master, then takes over.
    let off = released + Duration::from_secs(1);
    assert_eq!(
        machine.handle(off, Event::Maintenance(false)),
        [SetTimer {
            timer: Timer::MasterDown,
            at: off + MASTER_DOWN_100
        }]
    );
    let actions = machine.handle(off + MASTER_DOWN_100, Event::MasterDownTimerFired);
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::MasterDown { last_master: None }
        ))
    );
}

#[test]
fn in_maintenance_a_master_that_went_silent_is_no_longer_seen() {
    let mut machine = backup_at_zero(config(Version::V2, 100));
    machine.handle(t(0), Event::Maintenance(true));
    machine.handle(t(1000), v2_advert(HIGHER_ADDRESS, 200));
    assert_eq!(machine.master(), Some(address(HIGHER_ADDRESS)));
    assert!(machine.yields_to_a_master());

    let silent = t(1000) + MASTER_DOWN_100;
    assert_eq!(machine.handle(silent, Event::MasterDownTimerFired), []);
    assert_eq!((machine.state(), machine.master()), (State::Backup, None));
    assert!(
        !machine.yields_to_a_master(),
        "a dead peer holds the sync group back no more"
    );

    let off = silent + Duration::from_secs(1);
    machine.handle(off, Event::Maintenance(false));
    let actions = machine.handle(off + MASTER_DOWN_100, Event::MasterDownTimerFired);
    assert_eq!(
        actions.last(),
        Some(&state_changed(
            State::Backup,
            State::Master,
            Cause::MasterDown {
                last_master: Some(peer(HIGHER_ADDRESS, 200))
            }
        ))
    );
}

/// A Backup yields to (holds its sync group back for) exactly the Masters it would still
/// follow once nothing but its own settings decide: unheld, any delay passed. Every preemption setting, mode, hold, own and advertised priority and address.
#[test]
fn a_backup_yields_only_to_a_master_it_would_not_preempt_on_its_own() {
    let delay = Duration::from_secs(10);
    let mut yielded = 0;
    let mut preempted = 0;
    for preempt in [
        Preempt::Never,
        Preempt::NotYet,
        Preempt::After(Duration::ZERO),
        Preempt::After(delay),
    ] {
        for (mode, held, own, theirs, from) in every_case() {
            let mut machine = Machine::new(Config {
                preempt,
                ..config(Version::V2, own)
            });
            machine.handle(t(0), Event::SyncHold(true));
            machine.handle(t(0), Event::Startup);
            machine.handle(t(0), Event::SyncHold(held));
            match mode {
                Mode::Normal => {}
                Mode::Resigned => drop(machine.handle(t(0), Event::Resign)),
                Mode::Maintenance => drop(machine.handle(t(0), Event::Maintenance(true))),
            }
            machine.handle(t(1000), v2_advert(from, theirs));
            let case =
                format!("{preempt:?} {mode:?} held {held}, {own} hears {theirs} from {from}");
            if machine.master() != Some(address(from)) {
                assert!(!machine.yields_to_a_master(), "{case}");
                continue;
            }
            // On its own: released, and any delay passed; preemption still as configured (a
            // NotYet machine preempts nobody yet, and its group waits with it).
            let mut alone = machine.clone();
            alone.handle(t(1000), Event::SyncHold(false));
            alone.handle(t(2000), v2_advert(from, theirs));
            alone.handle(t(2000) + delay, v2_advert(from, theirs));
            let follows = alone.state() == State::Backup;
            assert_eq!(machine.yields_to_a_master(), follows, "{case}");
            if follows {
                yielded += 1;
            } else {
                preempted += 1;
            }
        }
    }
    assert!(yielded > 0 && preempted > 0);
}

/// Modes, holds, own priorities, advertised priorities and sources for the test above.
fn every_case() -> Vec<(Mode, bool, u8, u8, &'static str)> {
    let mut cases = Vec::new();
    for mode in Mode::ALL {
        for held in [false, true] {
            for own in [100, 255] {
                for theirs in [1, 99, 100, 101, 255] {
                    for from in [LOWER_ADDRESS, HIGHER_ADDRESS] {
                        cases.push((mode, held, own, theirs, from));
                    }
                }
            }
        }
    }
    cases
}

/// An operator's maintenance or resign on a Master that had heard no peer yet still holds its
/// sync group: the other members follow it to the peer instead of leaving its VRID to nobody.
#[test]
fn a_member_put_aside_by_an_operator_holds_its_group_until_its_timer_fires() {
    for command in [Event::Maintenance(true), Event::Resign] {
        let (mut machine, at) = master_after_timeout(config(Version::V2, 150));
        machine.handle(at, command.clone());
        assert_eq!(machine.state(), State::Backup);
        assert_eq!(machine.master(), None, "no peer heard yet");
        assert!(
            machine.yields_to_a_master(),
            "{command:?}: the group follows"
        );
        let fired = at + Duration::from_secs(10);
        machine.handle(fired, Event::MasterDownTimerFired);
        if command == Event::Resign {
            assert_eq!(
                machine.state(),
                State::Master,
                "nobody took over: it takes back"
            );
        } else {
            assert_eq!(machine.state(), State::Backup);
            assert!(
                !machine.yields_to_a_master(),
                "its peer is silent: the others may take over"
            );
        }
    }
}
