//! Slow start: a server back up after being down takes a growing share of the traffic, so a
//! cold cache or JIT is not flooded at once. As HAProxy's `slowstart`, its effective weight
//! grows linearly from almost nothing to its configured weight.
//!
//! Effective weights count in 1/[`SCALE`]ths of a configured weight, so that the default
//! weight of 1 ramps smoothly too. Selectors that weigh turns (the round-robins) cannot change
//! their precomputed cycle per request, so a ramping server passes up turns instead: of `full`
//! turns it is offered, it takes `effective` ones, evenly spread.

use std::time::Duration;

/// Effective weights are in units of 1/SCALE of a configured weight.
pub const SCALE: u64 = 1024;

/// `weight` in effective-weight units: what a server not ramping balances by.
pub fn full(weight: u32) -> u64 {
    u64::from(weight) * SCALE
}

/// The weight to balance by, in 1/[`SCALE`]ths, `since_up` after the server came up for a ramp
/// of `slow_start`: the full weight scaled by the elapsed share of the ramp, rounded up, and at
/// least 1 (a weight of 0 stays 0: a drained server stays drained).
pub fn effective_weight(weight: u32, slow_start: Duration, since_up: Duration) -> u64 {
    let full = full(weight);
    if weight == 0 || since_up >= slow_start {
        return full;
    }
    let scaled = (u128::from(full) * since_up.as_nanos()).div_ceil(slow_start.as_nanos());
    u64::try_from(scaled).map_or(full, |scaled| scaled.clamp(1, full))
}

/// Whether the `offered`-th turn (counting from 0) offered to a server ramping at `effective`
/// of `full` is one it takes: `effective` of every `full` consecutive offers are.
pub fn takes_turn(offered: u64, effective: u64, full: u64) -> bool {
    if effective >= full {
        return true;
    }
    let position = u128::from(offered % full);
    let (effective, full) = (u128::from(effective), u128::from(full));
    (position + 1) * effective / full > position * effective / full
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ramps_linearly_from_1_to_the_weight_and_stays_there() {
        for weight in 0..=256 {
            for ramp_ms in [1, 7, 1000, 30_000] {
                let slow_start = MS * ramp_ms;
                let mut previous = 0;
                let full = full(weight);
                for step in 0..=ramp_ms.min(400) + 5 {
                    let since_up = slow_start * step / ramp_ms.min(400);
                    let effective = effective_weight(weight, slow_start, since_up);
                    assert!(effective <= full, "{weight} {ramp_ms} {step}");
                    assert!(effective >= previous, "never goes back: {weight} {step}");
                    if weight > 0 {
                        assert!(effective >= 1, "a server up always gets some traffic");
                    }
                    // Within one unit of the exact linear share.
                    let exact = (full as f64 * since_up.as_secs_f64() / slow_start.as_secs_f64())
                        .min(full as f64);
                    assert!(
                        effective as f64 - exact < 1.0 + 1e-6
                            && (weight == 0 || effective as f64 + 1e-6 >= exact),
                        "{weight} at {since_up:?} of {slow_start:?}: {effective}"
                    );
                    previous = effective;
                }
                assert_eq!(effective_weight(weight, slow_start, slow_start), full);
                assert_eq!(effective_weight(weight, slow_start, slow_start * 9), full);
            }
        }
    }

    #[test]
    fn the_start_of_a_ramp_is_the_least_share() {
        let slow_start = Duration::from_secs(30);
        assert_eq!(effective_weight(100, slow_start, Duration::ZERO), 1);
        let at = |seconds| effective_weight(100, slow_start, Duration::from_secs(seconds));
        assert_eq!(at(3), full(10));
        assert_eq!(at(15), full(50));
        // The default weight ramps too.
        assert_eq!(
            effective_weight(1, slow_start, Duration::from_secs(15)),
            SCALE / 2
        );
        assert_eq!(
            effective_weight(256, Duration::MAX, Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn takes_exactly_effective_of_every_weight_offers_spread_evenly() {
        for weight in 1..=64u64 {
            for effective in 0..=weight + 1 {
                for start in [0, 5] {
                    let taken: Vec<bool> = (0..3 * weight)
                        .map(|n| takes_turn(start + n, effective, weight))
                        .collect();
                    for window in taken.chunks(weight as usize) {
                        let count = window.iter().filter(|&&t| t).count() as u64;
                        // A window that is not aligned to a cycle may be off by one.
                        assert!(
                            count.abs_diff(effective.min(weight)) <= u64::from(start % weight != 0),
                            "{effective}/{weight} from {start}: {count}"
                        );
                    }
                    if effective > 0 && effective < weight {
                        // No two taken turns closer than the even spacing allows.
                        let gap = (weight / effective) as usize;
                        let taken_at: Vec<usize> = (0..taken.len()).filter(|&i| taken[i]).collect();
                        assert!(
                            taken_at.windows(2).all(|pair| pair[1] - pair[0] >= gap),
                            "{effective}/{weight}: {taken_at:?}"
                        );
                    }
                }
            }
        }
    }
}
