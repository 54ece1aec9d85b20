//! Smooth weighted round-robin (nginx's): each server gets turns in proportion to its weight,
//! spread through the cycle rather than in bursts.

use super::round_robin::Rotation;
use super::{Key, Selector, ServerView};
use crate::config::Server;

/// The smooth cycle is computed once at build time and walked like a plain rotation, which keeps
/// picking lock-free and the shares of the servers still up exact when others are down.
pub struct WeightedRoundRobin {
    rotation: Rotation,
}

impl WeightedRoundRobin {
    pub fn new(servers: &[Server]) -> Self {
        Self {
            rotation: Rotation::new(smooth_schedule(servers), servers),
        }
    }
}

impl Selector for WeightedRoundRobin {
    fn pick(&self, servers: &dyn ServerView, _key: &Key<'_>, exclude: &[usize]) -> Option<usize> {
        self.rotation.pick(servers, exclude)
    }
}

/// One cycle of nginx's smooth weighted round-robin: every step adds each server's weight to its
/// running score, the highest score (first in list order on ties) takes the turn and gives back
/// the total weight.
///
/// Weights are divided by their common divisor first: the cycle for k times the weights is the
/// same cycle k times over, so this only shortens it.
fn smooth_schedule(servers: &[Server]) -> Vec<usize> {
    let divisor = servers.iter().map(|s| s.weight).fold(0, super::gcd);
    let weighted: Vec<(usize, i64)> = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.weight > 0)
        .map(|(i, s)| (i, i64::from(s.weight / divisor)))
        .collect();
    let total: i64 = weighted.iter().map(|&(_, w)| w).sum();
    let mut score = vec![0; weighted.len()];
    (0..total)
        .map(|_| {
            for (score, &(_, weight)) in score.iter_mut().zip(&weighted) {
                *score += weight;
            }
            let best =
                (1..score.len()).fold(0, |best, i| if score[i] > score[best] { i } else { best });
            score[best] -= total;
            weighted[best].0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{concurrent_tally, picks, retry_order, servers, tally, View, KEY};
    use super::*;

    #[test]
    fn interleaves_three_to_one() {
        let selector = WeightedRoundRobin::new(&servers(&[3, 1]));
        assert_eq!(
            picks(&selector, &View::all_up(2), 8),
            [0, 0, 1, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn interleaves_five_one_one_like_nginx() {
        let selector = WeightedRoundRobin::new(&servers(&[5, 1, 1]));
        let cycle = [0, 0, 1, 0, 2, 0, 0];
        assert_eq!(
            picks(&selector, &View::all_up(3), 14),
            [cycle, cycle].concat()
        );
    }

    #[test]
    fn shares_are_proportional_to_weights() {
        let selector = WeightedRoundRobin::new(&servers(&[1, 2, 3, 4]));
        assert_eq!(
            tally(&selector, &View::all_up(4), 1000),
            [100, 200, 300, 400]
        );
    }

    #[test]
    fn common_factors_only_shorten_the_cycle() {
        assert_eq!(smooth_schedule(&servers(&[240, 80])), [0, 0, 1, 0]);
        assert_eq!(
            smooth_schedule(&servers(&[10, 2, 2, 0])),
            [0, 0, 1, 0, 2, 0, 0]
        );
        assert_eq!(smooth_schedule(&servers(&[256, 256, 256])), [0, 1, 2]);
    }

    #[test]
    fn never_picks_a_drained_server() {
        let selector = WeightedRoundRobin::new(&servers(&[3, 0, 1]));
        assert_eq!(
            picks(&selector, &View::all_up(3), 8),
            [0, 0, 2, 0, 0, 0, 2, 0]
        );
    }

    #[test]
    fn skips_down_servers_and_keeps_the_others_proportions() {
        let selector = WeightedRoundRobin::new(&servers(&[5, 1, 1]));
        let view = View {
            up: vec![true, false, true],
            ..View::all_up(3)
        };
        assert_eq!(
            picks(&selector, &view, 12),
            [0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 0, 0]
        );

        let selector = WeightedRoundRobin::new(&servers(&[1, 2, 3, 4]));
        let view = View {
            up: vec![false, true, true, true],
            ..View::all_up(4)
        };
        assert_eq!(tally(&selector, &view, 900), [0, 200, 300, 400]);
    }

    #[test]
    fn none_when_no_server_is_eligible() {
        let down = View {
            up: vec![false; 2],
            ..View::all_up(2)
        };
        assert_eq!(
            WeightedRoundRobin::new(&servers(&[3, 1])).pick(&down, &KEY, &[]),
            None
        );
        let drained = WeightedRoundRobin::new(&servers(&[0, 0]));
        assert_eq!(drained.pick(&View::all_up(2), &KEY, &[]), None);
        assert_eq!(
            WeightedRoundRobin::new(&[]).pick(&View::all_up(0), &KEY, &[]),
            None
        );
    }

    #[test]
    fn retries_take_the_next_other_server_in_the_cycle() {
        let selector = WeightedRoundRobin::new(&servers(&[5, 1, 1]));
        let view = View::all_up(3);
        // Cycle a a b a c a a: a retry from a's first turn finds b next, then c.
        assert_eq!(retry_order(&selector, &view, &KEY), [0, 1, 2]);
        assert_eq!(picks(&selector, &view, 4), [0, 0, 0, 0]);
        assert_eq!(retry_order(&selector, &view, &KEY), [1, 0, 2]);
        assert_eq!(selector.pick(&view, &KEY, &[0, 1, 2]), None);
    }

    #[test]
    fn concurrent_picks_keep_exact_counts() {
        const THREADS: usize = 4;
        const PICKS: usize = 20_000;
        let selector = WeightedRoundRobin::new(&servers(&[3, 1]));
        let view = View::all_up(2);
        let counts = concurrent_tally(&selector, &view, THREADS, PICKS);
        assert_eq!(counts, [THREADS * PICKS * 3 / 4, THREADS * PICKS / 4]);
    }
}
