//! Slow start: a server back up after being down takes a growing share of the traffic, so a
//! cold cache or JIT is not flooded at once. As HAProxy's `slowstart`, its effective weight
//! grows linearly from the smallest that still gets traffic (1) to its configured weight.
//!
//! Selectors that weigh turns (the round-robins) cannot change their precomputed cycle per
//! request, so a ramping server passes up turns instead: of `weight` turns it is offered, it
//! takes `effective` ones, evenly spread.

use std::time::Duration;

/// The weight to balance by `since_up` after the server came up, for a ramp of `slow_start`:
/// `weight` scaled by the elapsed share of the ramp, rounded up, and at least 1 (a weight of 0
/// stays 0: a drained server stays drained).
pub fn effective_weight(weight: u32, slow_start: Duration, since_up: Duration) -> u32 {
    if weight == 0 || since_up >= slow_start {
        return weight;
    }
    let ramp = slow_start.as_nanos();
    let scaled = (u128::from(weight) * since_up.as_nanos()).div_ceil(ramp);
    u32::try_from(scaled).map_or(weight, |scaled| scaled.clamp(1, weight))
}

/// Whether the `offered`-th turn (counting from 0) offered to a server of `weight` ramping at
/// `effective` is one it takes: `effective` of every `weight` consecutive offers are.
pub fn takes_turn(offered: u64, effective: u32, weight: u32) -> bool {
    if effective >= weight {
        return true;
    }
    let (effective, weight) = (u64::from(effective), u64::from(weight));
    let position = offered % weight;
    (position + 1) * effective / weight > position * effective / weight
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
                for step in 0..=ramp_ms.min(400) + 5 {
                    let since_up = slow_start * step / ramp_ms.min(400);
                    let effective = effective_weight(weight, slow_start, since_up);
                    assert!(effective <= weight, "{weight} {ramp_ms} {step}");
                    assert!(effective >= previous, "never goes back: {weight} {step}");
                    if weight > 0 {
                        assert!(effective >= 1, "a server up always gets some traffic");
                    }
                    // Within one of the exact linear share.
                    let exact =
                        f64::from(weight) * since_up.as_secs_f64() / slow_start.as_secs_f64();
                    assert!(
                        f64::from(effective) - exact.min(f64::from(weight)) < 1.0 + 1e-9
                            && (weight == 0
                                || f64::from(effective) + 1e-9 >= exact.min(f64::from(weight))),
                        "{weight} at {since_up:?} of {slow_start:?}: {effective}"
                    );
                    previous = effective;
                }
                assert_eq!(effective_weight(weight, slow_start, slow_start), weight);
                assert_eq!(effective_weight(weight, slow_start, slow_start * 9), weight);
            }
        }
    }

    #[test]
    fn the_start_of_a_ramp_is_the_least_share() {
        let slow_start = Duration::from_secs(30);
        assert_eq!(effective_weight(100, slow_start, Duration::ZERO), 1);
        assert_eq!(
            effective_weight(100, slow_start, Duration::from_secs(3)),
            10
        );
        assert_eq!(
            effective_weight(100, slow_start, Duration::from_secs(15)),
            50
        );
        assert_eq!(effective_weight(1, slow_start, Duration::from_secs(15)), 1);
        assert_eq!(
            effective_weight(256, Duration::MAX, Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn takes_exactly_effective_of_every_weight_offers_spread_evenly() {
        for weight in 1..=64u32 {
            for effective in 0..=weight + 1 {
                for start in [0, 5] {
                    let taken: Vec<bool> = (0..3 * u64::from(weight))
                        .map(|n| takes_turn(start + n, effective, weight))
                        .collect();
                    for window in taken.chunks(weight as usize) {
                        let count = window.iter().filter(|&&t| t).count() as u32;
                        // A window that is not aligned to a cycle may be off by one.
                        assert!(
                            count.abs_diff(effective.min(weight))
                                <= u32::from(start % u64::from(weight) != 0),
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
