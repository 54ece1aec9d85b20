//! Whether a node announces its addresses, and when a drain's withdraw has taken effect: pure,
//! with the time and the count of new connections passed in.

use std::time::{Duration, Instant};

/// What the node tells its routers, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Every tracked item is healthy: routers send traffic here.
    Announced,
    /// A tracked item fails, or a tracked backend's servers await their first health verdict.
    Withdrawn,
    /// An operator (the runtime API) or shutdown took the node out; tracks don't bring it back.
    Drained,
}

impl State {
    pub const ALL: [State; 3] = [State::Announced, State::Withdrawn, State::Drained];

    /// From the node's situation. A node that starts announces only once its tracked servers
    /// have been `judged` (each has had a health verdict): before that "up" is a guess, and a
    /// node that announces too early attracts connections it may have to refuse.
    pub fn of(drained: bool, tracks_fine: bool, judged: bool) -> State {
        match (drained, tracks_fine && judged) {
            (true, _) => State::Drained,
            (false, true) => State::Announced,
            (false, false) => State::Withdrawn,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Announced => "announced",
            State::Withdrawn => "withdrawn",
            State::Drained => "drained",
        }
    }
}

/// After a withdraw: routers have moved new flows away once no new client connection has
/// arrived for `quiet`. Routers withdraw in a fraction of a second, but how fast depends on
/// them, so this watches the traffic instead of guessing a delay.
#[derive(Debug)]
pub struct Settling {
    quiet: Duration,
    deadline: Instant,
    count: u64,
    last_arrival: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Look again at this time, or sooner.
    Wait(Instant),
    /// No new connection for `quiet`.
    Quiet,
    /// `max_wait` passed with connections still arriving.
    TimedOut,
}

impl Settling {
    /// Starts at the withdraw (`now`), with the count of connections opened so far.
    pub fn new(now: Instant, count: u64, quiet: Duration, max_wait: Duration) -> Settling {
        Settling {
            quiet,
            deadline: now + max_wait,
            count,
            last_arrival: now,
        }
    }

    /// Takes in the count at `now`; a change since the last look means connections arrived.
    pub fn observe(&mut self, now: Instant, count: u64) -> Settle {
        if count != self.count {
            self.count = count;
            self.last_arrival = now;
        }
        let quiet_at = self.last_arrival + self.quiet;
        if now >= quiet_at {
            Settle::Quiet
        } else if now >= self.deadline {
            Settle::TimedOut
        } else {
            Settle::Wait(quiet_at.min(self.deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_only_when_not_drained_and_every_track_is_fine_and_judged() {
        for drained in [false, true] {
            for tracks_fine in [false, true] {
                for judged in [false, true] {
                    let expected = if drained {
                        State::Drained
                    } else if tracks_fine && judged {
                        State::Announced
                    } else {
                        State::Withdrawn
                    };
                    assert_eq!(State::of(drained, tracks_fine, judged), expected);
                }
            }
        }
    }

    const QUIET: Duration = Duration::from_millis(1000);
    const MAX_WAIT: Duration = Duration::from_secs(10);

    fn ms(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn settles_after_quiet_without_arrivals_counted_from_the_withdraw() {
        let start = Instant::now();
        let mut settling = Settling::new(start, 7, QUIET, MAX_WAIT);
        assert_eq!(
            settling.observe(ms(start, 0), 7),
            Settle::Wait(ms(start, 1000))
        );
        assert_eq!(
            settling.observe(ms(start, 999), 7),
            Settle::Wait(ms(start, 1000))
        );
        assert_eq!(settling.observe(ms(start, 1000), 7), Settle::Quiet);
    }

    #[test]
    fn each_arrival_starts_the_quiet_time_again() {
        let start = Instant::now();
        let mut settling = Settling::new(start, 0, QUIET, MAX_WAIT);
        assert_eq!(
            settling.observe(ms(start, 150), 40),
            Settle::Wait(ms(start, 1150))
        );
        assert_eq!(
            settling.observe(ms(start, 1100), 40),
            Settle::Wait(ms(start, 1150))
        );
        assert_eq!(
            settling.observe(ms(start, 1149), 41),
            Settle::Wait(ms(start, 2149))
        );
        assert_eq!(settling.observe(ms(start, 2149), 41), Settle::Quiet);
    }

    #[test]
    fn gives_up_at_max_wait_while_connections_keep_arriving() {
        let start = Instant::now();
        let mut settling = Settling::new(start, 0, QUIET, Duration::from_millis(2500));
        assert_eq!(
            settling.observe(ms(start, 900), 1),
            Settle::Wait(ms(start, 1900))
        );
        assert_eq!(
            settling.observe(ms(start, 1800), 2),
            Settle::Wait(ms(start, 2500))
        );
        assert_eq!(settling.observe(ms(start, 2500), 3), Settle::TimedOut);
        // Quiet wins when both hold: the routers did move away.
        let mut settling = Settling::new(start, 0, QUIET, QUIET);
        assert_eq!(settling.observe(ms(start, 1000), 0), Settle::Quiet);
    }
}
