//! When a name is asked again: pure functions of the answer (or the failures so far) and the
//! backend's `resolve:` settings.

use std::time::Duration;

use crate::config::Resolve;

/// After an answer that stays valid for `ttl`: then, but within `min_interval..=interval`.
pub fn after_answer(ttl: Duration, resolve: &Resolve) -> Duration {
    ttl.clamp(resolve.min_interval, resolve.interval)
}

/// After the `failures`-th failed lookup in a row (from 1): `min_interval`, doubling, at most
/// `interval`.
pub fn after_failure(failures: u32, resolve: &Resolve) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    (resolve.min_interval.saturating_mul(1 << doublings)).min(resolve.interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Family;

    fn resolve(min_interval: u64, interval: u64) -> Resolve {
        Resolve {
            interval: Duration::from_secs(interval),
            min_interval: Duration::from_secs(min_interval),
            timeout: Duration::from_secs(2),
            nameservers: Vec::new(),
            prefer: Family::Ipv4,
            max_addresses: 16,
        }
    }

    #[test]
    fn an_answer_is_asked_again_when_its_ttl_runs_out_within_the_bounds() {
        let resolve = resolve(1, 30);
        let secs = Duration::from_secs;
        assert_eq!(after_answer(secs(10), &resolve), secs(10));
        assert_eq!(after_answer(Duration::ZERO, &resolve), secs(1), "floor");
        assert_eq!(after_answer(secs(86_400), &resolve), secs(30), "ceiling");
    }

    #[test]
    fn failures_back_off_from_the_floor_to_the_ceiling() {
        let resolve = resolve(1, 30);
        let delays: Vec<u64> = (1..=7)
            .map(|failures| after_failure(failures, &resolve).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(after_failure(u32::MAX, &resolve).as_secs(), 30);
        assert_eq!(after_failure(0, &resolve).as_secs(), 1);
    }
}
