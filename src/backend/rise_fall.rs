//! The rise/fall counter: pure data, fed one check result at a time.

/// Whether a server takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
}

/// Consecutive results needed to change state, and how many of them have been seen.
///
/// A new counter is Up but fragile, as HAProxy's servers are at start-up: traffic flows at once,
/// and the first failure before any pass takes the server down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    rise: u32,
    fall: u32,
    health: Health,
    /// Consecutive results that argue against `health`.
    streak: u32,
}

impl Counter {
    /// `rise` and `fall` are at least 1 (validated config).
    pub fn new(rise: u32, fall: u32) -> Self {
        Counter {
            rise,
            fall,
            health: Health::Up,
            streak: fall.saturating_sub(1),
        }
    }

    /// The counter of a server just added, with the same `rise` and `fall`.
    pub fn restarted(&self) -> Counter {
        Counter::new(self.rise, self.fall)
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Records one result; returns the new health when this result changed it.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        let (against, needed, next) = match self.health {
            Health::Up => (!ok, self.fall, Health::Down),
            Health::Down => (ok, self.rise, Health::Up),
        };
        if !against {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < needed {
            return None;
        }
        self.health = next;
        self.streak = 0;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(counter: &mut Counter, results: &[bool]) -> Vec<Option<Health>> {
        results.iter().map(|&ok| counter.record(ok)).collect()
    }

    #[test]
    fn starts_up_and_the_first_failure_takes_it_down() {
        for fall in 1..=5 {
            let mut counter = Counter::new(2, fall);
            assert_eq!(counter.health(), Health::Up);
            assert_eq!(counter.record(false), Some(Health::Down));
        }
    }

    #[test]
    fn a_pass_at_start_makes_later_falls_need_the_full_count() {
        let mut counter = Counter::new(2, 3);
        assert_eq!(
            run(&mut counter, &[true, false, false, false]),
            [None, None, None, Some(Health::Down)]
        );
    }

    #[test]
    fn rise_needs_consecutive_passes() {
        let mut counter = Counter::new(3, 1);
        counter.record(false);
        assert_eq!(
            run(&mut counter, &[true, true, false, true, true, true]),
            [None, None, None, None, None, Some(Health::Up)]
        );
        assert_eq!(counter.health(), Health::Up);
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut counter = Counter::new(1, 2);
        counter.record(true);
        assert_eq!(
            run(&mut counter, &[false, true, false, false]),
            [None, None, None, Some(Health::Down)]
        );
    }

    #[test]
    fn steady_results_never_transition() {
        let mut counter = Counter::new(2, 2);
        assert!(run(&mut counter, &[true; 10]).iter().all(Option::is_none));
        counter.record(false);
        counter.record(false);
        assert_eq!(counter.health(), Health::Down);
        assert!(run(&mut counter, &[false; 10]).iter().all(Option::is_none));
    }

    #[test]
    fn every_rise_and_fall_take_exactly_their_count() {
        for rise in 1..=6 {
            for fall in 1..=6 {
                let mut counter = Counter::new(rise, fall);
                counter.record(true);
                for i in 1..=fall {
                    let expect = (i == fall).then_some(Health::Down);
                    assert_eq!(
                        counter.record(false),
                        expect,
                        "rise {rise} fall {fall} i {i}"
                    );
                }
                for i in 1..=rise {
                    let expect = (i == rise).then_some(Health::Up);
                    assert_eq!(
                        counter.record(true),
                        expect,
                        "rise {rise} fall {fall} i {i}"
                    );
                }
            }
        }
    }
}
