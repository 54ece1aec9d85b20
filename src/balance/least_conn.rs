//! Least connections: the server with the fewest active connections per unit of weight.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{available, Key, Selector, ServerView};
use crate::config::Server;

pub struct LeastConn {
    /// Config index and weight of each server not drained.
    servers: Box<[(usize, u32)]>,
    /// Where the next scan starts; the first of several equally loaded servers wins, so moving
    /// the start is what rotates ties.
    next: AtomicUsize,
    /// Whether any server has a slow start: without, effective weights are not asked for.
    ramps: bool,
}

impl LeastConn {
    pub fn new(servers: &[Server]) -> Self {
        let weighted = servers.iter().enumerate().filter(|(_, s)| s.weight > 0);
        Self {
            servers: weighted.map(|(i, s)| (i, s.weight)).collect(),
            next: AtomicUsize::new(0),
            ramps: servers.iter().any(|s| s.slow_start.is_some()),
        }
    }
}

impl Selector for LeastConn {
    fn pick(&self, servers: &dyn ServerView, _key: &Key<'_>, exclude: &[usize]) -> Option<usize> {
        let len = self.servers.len();
        if len == 0 {
            return None;
        }
        // Concurrent picks each take their own start, so a burst onto idle servers spreads out.
        let start = self.next.fetch_add(1, Relaxed);
        let mut best: Option<(usize, usize, u64, u64)> = None;
        for offset in 0..len {
            let (index, weight) = self.servers[(start % len + offset) % len];
            if !available(servers, index, exclude) {
                continue;
            }
            let active = servers.active(index);
            let weight = match self.ramps {
                true => servers.effective_weight(index, weight),
                false => super::slow_start::full(weight),
            };
            // active / weight < best_active / best_weight, cross-multiplied: exact, and widened
            // so no count can overflow.
            let fewer = |&(_, _, best_active, best_weight): &(usize, usize, u64, u64)| {
                u128::from(active) * u128::from(best_weight)
                    < u128::from(best_active) * u128::from(weight)
            };
            if best.as_ref().is_none_or(fewer) {
                best = Some((offset, index, active, weight));
            }
        }
        let (offset, index, ..) = best?;
        // Move the next start just past this pick (when no other pick intervened), so that tied
        // servers take turns evenly even with down or busier servers between them.
        let _ = self.next.compare_exchange(
            start.wrapping_add(1),
            start.wrapping_add(offset + 1),
            Relaxed,
            Relaxed,
        );
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{picks, retry_order, servers, View, KEY};
    use super::*;

    fn loaded(active: &[u64]) -> View {
        View {
            active: active.to_vec(),
            ..View::all_up(active.len())
        }
    }

    #[test]
    fn prefers_the_fewest_active() {
        let selector = LeastConn::new(&servers(&[1; 3]));
        let mut view = loaded(&[5, 2, 7]);
        assert_eq!(picks(&selector, &view, 3), [1, 1, 1]);
        view.active[1] = 9;
        assert_eq!(picks(&selector, &view, 3), [0, 0, 0]);
    }

    #[test]
    fn divides_active_by_weight() {
        let selector = LeastConn::new(&servers(&[1, 3]));
        // 5/3 < 2/1.
        assert_eq!(selector.pick(&loaded(&[2, 5]), &KEY, &[]), Some(1));
        // 7/3 > 2/1.
        assert_eq!(selector.pick(&loaded(&[2, 7]), &KEY, &[]), Some(0));
        // 1/1 = 3/3: a tie, so they alternate.
        let tied = picks(&selector, &loaded(&[1, 3]), 4);
        assert!(tied == [0, 1, 0, 1] || tied == [1, 0, 1, 0], "{tied:?}");
    }

    #[test]
    fn huge_counts_compare_exactly() {
        let selector = LeastConn::new(&servers(&[256, 255]));
        // u64::MAX / 256 is less than (u64::MAX - 1) / 255; the products overflow a u64.
        assert_eq!(
            selector.pick(&loaded(&[u64::MAX, u64::MAX - 1]), &KEY, &[]),
            Some(0)
        );
        let selector = LeastConn::new(&servers(&[256, 256]));
        assert_eq!(
            selector.pick(&loaded(&[u64::MAX, u64::MAX - 1]), &KEY, &[]),
            Some(1)
        );
    }

    #[test]
    fn rotates_ties() {
        let selector = LeastConn::new(&servers(&[1; 3]));
        assert_eq!(
            picks(&selector, &loaded(&[0, 0, 0]), 7),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }

    #[test]
    fn tied_servers_take_even_turns_around_down_and_busier_ones() {
        let selector = LeastConn::new(&servers(&[1; 5]));
        let view = View {
            up: vec![true, true, false, true, true],
            active: vec![0, 3, 0, 0, 3],
            ..View::all_up(5)
        };
        assert_eq!(picks(&selector, &view, 6), [0, 3, 0, 3, 0, 3]);
    }

    #[test]
    fn skips_full_servers_and_weighs_ramping_ones_by_their_effective_weight() {
        let mut list = servers(&[4, 4, 4]);
        list[1].slow_start = Some(std::time::Duration::from_secs(1));
        let selector = LeastConn::new(&list);
        let mut view = loaded(&[0, 2, 3]);
        view.full[0] = true;
        assert_eq!(selector.pick(&view, &KEY, &[]), Some(1));
        // 3/4 < 2/1: the ramping server counts as more loaded.
        view.ramped[1] = Some(super::super::slow_start::SCALE);
        assert_eq!(selector.pick(&view, &KEY, &[]), Some(2));
        view.full = vec![true; 3];
        assert_eq!(selector.pick(&view, &KEY, &[]), None);
    }

    #[test]
    fn never_picks_a_drained_server() {
        let selector = LeastConn::new(&servers(&[0, 1, 0]));
        assert_eq!(picks(&selector, &loaded(&[0, 9, 0]), 3), [1, 1, 1]);
    }

    #[test]
    fn none_when_no_server_is_eligible() {
        let down = View {
            up: vec![false; 2],
            ..View::all_up(2)
        };
        assert_eq!(
            LeastConn::new(&servers(&[1, 1])).pick(&down, &KEY, &[]),
            None
        );
        let drained = LeastConn::new(&servers(&[0, 0]));
        assert_eq!(drained.pick(&View::all_up(2), &KEY, &[]), None);
        assert_eq!(LeastConn::new(&[]).pick(&View::all_up(0), &KEY, &[]), None);
    }

    #[test]
    fn retries_go_up_the_load_order() {
        let selector = LeastConn::new(&servers(&[1, 1, 2, 1]));
        let view = View {
            up: vec![true, true, true, false],
            active: vec![4, 1, 6, 0],
            ..View::all_up(4)
        };
        assert_eq!(retry_order(&selector, &view, &KEY), [1, 2, 0]);
        assert_eq!(retry_order(&selector, &view, &KEY), [1, 2, 0]);
    }
}
