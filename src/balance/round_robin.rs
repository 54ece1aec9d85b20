//! Round-robin, weighted as HAProxy's `roundrobin`: each server's turns are spaced evenly
//! through the cycle, one every `1/weight` of it, and taken in the order they fall due (list
//! order on a tie). Equal weights rotate strictly in list order; 0 drains a server.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::{available, slow_start, Key, Selector, ServerView};
use crate::config::Server;

pub struct RoundRobin {
    rotation: Rotation,
}

impl RoundRobin {
    pub fn new(servers: &[Server]) -> Self {
        Self {
            rotation: Rotation::new(spaced_schedule(servers), servers),
        }
    }
}

impl Selector for RoundRobin {
    fn pick(&self, servers: &dyn ServerView, _key: &Key<'_>, exclude: &[usize]) -> Option<usize> {
        self.rotation.pick(servers, exclude)
    }
}

/// One cycle: server `i`'s `k`-th turn falls due at `(k + 1/2) / weight_i` of the cycle (the
/// half keeps a light server's single turn mid-cycle rather than last). Weights are divided by
/// their common divisor first, which only shortens the cycle.
fn spaced_schedule(servers: &[Server]) -> Vec<usize> {
    let divisor = servers.iter().map(|s| s.weight).fold(0, super::gcd);
    let mut turns: Vec<(u64, u64, usize)> = (servers.iter().enumerate())
        .filter(|(_, s)| s.weight > 0)
        .flat_map(|(i, s)| {
            let weight = u64::from(s.weight / divisor);
            (0..weight).map(move |k| (2 * k + 1, 2 * weight, i))
        })
        .collect();
    // Due times compared as exact fractions; ties keep list order (the sort is stable).
    turns.sort_by(|a, b| {
        (u128::from(a.0) * u128::from(b.1)).cmp(&(u128::from(b.0) * u128::from(a.1)))
    });
    turns.into_iter().map(|(.., server)| server).collect()
}

/// A fixed cycle of server indices that every thread walks through one shared cursor.
///
/// The cursor moves to just past the entry actually picked rather than by one per pick: a
/// skipped server's turn then goes to nobody instead of doubling its successor's, so the servers
/// still up keep exact shares.
pub(super) struct Rotation {
    order: Box<[usize]>,
    /// Position in `order` where the next pick starts looking.
    next: AtomicUsize,
    /// Configured weights, by server index.
    weights: Box<[u32]>,
    /// Turns offered to each server while it ramps up (slow start), by server index.
    offered: Box<[AtomicU64]>,
    /// Whether any server has a slow start: without, effective weights are not asked for.
    ramps: bool,
}

impl Rotation {
    pub(super) fn new(order: Vec<usize>, servers: &[Server]) -> Self {
        Self {
            order: order.into(),
            next: AtomicUsize::new(0),
            weights: servers.iter().map(|s| s.weight).collect(),
            offered: servers.iter().map(|_| AtomicU64::new(0)).collect(),
            ramps: servers.iter().any(|s| s.slow_start.is_some()),
        }
    }

    pub(super) fn pick(&self, servers: &dyn ServerView, exclude: &[usize]) -> Option<usize> {
        let mut start = self.next.load(Relaxed);
        loop {
            let pos = self.next_turn(servers, exclude, start)?;
            // Take the turn only if no other thread took one meanwhile, else look again from
            // where the cursor went: two threads never get the same turn, none is lost.
            match (self.next).compare_exchange_weak(
                start,
                (pos + 1) % self.order.len(),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => return Some(self.order[pos]),
                Err(moved) => start = moved,
            }
        }
    }

    /// The position of the next turn from `start` that its server takes; a ramping server
    /// passes up some. When every available server passes, the first of them takes it anyway.
    fn next_turn(
        &self,
        servers: &dyn ServerView,
        exclude: &[usize],
        start: usize,
    ) -> Option<usize> {
        let len = self.order.len();
        let mut passed = None;
        for pos in (start..start + len).map(|p| p % len) {
            let server = self.order[pos];
            if !available(servers, server, exclude) {
                continue;
            }
            if !self.ramps {
                return Some(pos);
            }
            let weight = self.weights[server];
            let effective = servers.effective_weight(server, weight);
            let full = slow_start::full(weight);
            if effective >= full
                || slow_start::takes_turn(
                    self.offered[server].fetch_add(1, Relaxed),
                    effective,
                    full,
                )
            {
                return Some(pos);
            }
            passed.get_or_insert(pos);
        }
        passed
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{concurrent_tally, picks, retry_order, servers, tally, View, KEY};
    use super::*;

    #[test]
    fn rotates_in_list_order() {
        let selector = RoundRobin::new(&servers(&[1, 1, 1]));
        assert_eq!(picks(&selector, &View::all_up(3), 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn spaces_each_servers_turns_through_the_cycle() {
        let selector = RoundRobin::new(&servers(&[1, 3]));
        let cycle = [1, 0, 1, 1];
        assert_eq!(
            picks(&selector, &View::all_up(2), 8),
            [cycle, cycle].concat()
        );
        assert_eq!(spaced_schedule(&servers(&[5, 1, 1])), [0, 0, 0, 1, 2, 0, 0]);
        assert_eq!(spaced_schedule(&servers(&[2, 4, 0])), [1, 0, 1]);
    }

    #[test]
    fn shares_are_proportional_to_weights() {
        for weights in [vec![1, 3], vec![5, 1, 256], vec![1, 2, 3, 4], vec![7; 3]] {
            let selector = RoundRobin::new(&servers(&weights));
            let total: u32 = weights.iter().sum();
            let counts = tally(&selector, &View::all_up(weights.len()), total as usize * 10);
            let expected: Vec<usize> = weights.iter().map(|&w| w as usize * 10).collect();
            assert_eq!(counts, expected, "{weights:?}");
        }
    }

    #[test]
    fn skips_full_servers() {
        let selector = RoundRobin::new(&servers(&[1; 3]));
        let mut view = View::all_up(3);
        view.full[1] = true;
        assert_eq!(picks(&selector, &view, 4), [0, 2, 0, 2]);
        view.full = vec![true; 3];
        assert_eq!(selector.pick(&view, &KEY, &[]), None);
    }

    #[test]
    fn a_ramping_server_takes_its_effective_share_and_the_rest_go_to_the_others() {
        use super::super::slow_start::SCALE;
        let mut list = servers(&[4, 4]);
        list[1].slow_start = Some(std::time::Duration::from_secs(1));
        let selector = RoundRobin::new(&list);
        let mut view = View::all_up(2);
        // A quarter of its weight.
        view.ramped[1] = Some(SCALE);
        assert_eq!(tally(&selector, &view, 500), [400, 100]);
        view.ramped[1] = Some(4 * SCALE);
        assert_eq!(tally(&selector, &view, 800), [400, 400]);
        // Alone, a ramping server still takes every request.
        view.up[0] = false;
        view.ramped[1] = Some(1);
        assert_eq!(tally(&selector, &view, 10), [0, 10]);
    }

    #[test]
    fn never_picks_a_drained_server() {
        let selector = RoundRobin::new(&servers(&[1, 0, 1, 0]));
        assert_eq!(picks(&selector, &View::all_up(4), 4), [0, 2, 0, 2]);
    }

    #[test]
    fn skips_down_servers_and_the_rest_share_evenly() {
        let selector = RoundRobin::new(&servers(&[1; 5]));
        let view = View {
            up: vec![true, false, false, true, true],
            ..View::all_up(5)
        };
        assert_eq!(picks(&selector, &view, 6), [0, 3, 4, 0, 3, 4]);
        assert_eq!(tally(&selector, &view, 3000), [1000, 0, 0, 1000, 1000]);
    }

    #[test]
    fn a_server_coming_back_up_rejoins_the_rotation() {
        let selector = RoundRobin::new(&servers(&[1; 3]));
        let mut view = View {
            up: vec![true, false, true],
            ..View::all_up(3)
        };
        assert_eq!(picks(&selector, &view, 2), [0, 2]);
        view.up[1] = true;
        assert_eq!(picks(&selector, &view, 3), [0, 1, 2]);
    }

    #[test]
    fn none_when_no_server_is_eligible() {
        let down = View {
            up: vec![false; 3],
            ..View::all_up(3)
        };
        assert_eq!(
            RoundRobin::new(&servers(&[1; 3])).pick(&down, &KEY, &[]),
            None
        );
        let drained = RoundRobin::new(&servers(&[0; 3]));
        assert_eq!(drained.pick(&View::all_up(3), &KEY, &[]), None);
        let mixed = RoundRobin::new(&servers(&[0, 1, 0]));
        let view = View {
            up: vec![true, false, true],
            ..View::all_up(3)
        };
        assert_eq!(mixed.pick(&view, &KEY, &[]), None);
        assert_eq!(RoundRobin::new(&[]).pick(&View::all_up(0), &KEY, &[]), None);
    }

    #[test]
    fn retries_continue_the_rotation_past_excluded_servers() {
        let selector = RoundRobin::new(&servers(&[1; 4]));
        let view = View {
            up: vec![true, true, false, true],
            ..View::all_up(4)
        };
        assert_eq!(retry_order(&selector, &view, &KEY), [0, 1, 3]);
        assert_eq!(picks(&selector, &view, 1), [0]);
        assert_eq!(retry_order(&selector, &view, &KEY), [1, 3, 0]);
        assert_eq!(selector.pick(&view, &KEY, &[0, 1, 3]), None);
        // An excluded server's turn goes to the next one and the rotation carries on from there.
        assert_eq!(selector.pick(&view, &KEY, &[1]), Some(3));
        assert_eq!(picks(&selector, &view, 3), [0, 1, 3]);
    }

    #[test]
    fn concurrent_picks_keep_exact_counts() {
        const THREADS: usize = 4;
        const PICKS: usize = 30_000;
        let selector = RoundRobin::new(&servers(&[1; 4]));
        let view = View {
            up: vec![true, false, true, true],
            ..View::all_up(4)
        };
        let counts = concurrent_tally(&selector, &view, THREADS, PICKS);
        let share = THREADS * PICKS / 3;
        assert_eq!(counts, [share, 0, share, share]);
    }
}
