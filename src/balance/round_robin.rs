//! Round-robin: every eligible server in turn; weights only matter in that 0 drains a server.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{available, Key, Selector, ServerView};
use crate::config::Server;

pub struct RoundRobin {
    rotation: Rotation,
}

impl RoundRobin {
    pub fn new(servers: &[Server]) -> Self {
        let order = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.weight > 0)
            .map(|(i, _)| i);
        Self {
            rotation: Rotation::new(order.collect()),
        }
    }
}

impl Selector for RoundRobin {
    fn pick(&self, servers: &dyn ServerView, _key: &Key<'_>, exclude: &[usize]) -> Option<usize> {
        self.rotation.pick(servers, exclude)
    }
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
}

impl Rotation {
    pub(super) fn new(order: Vec<usize>) -> Self {
        Self {
            order: order.into(),
            next: AtomicUsize::new(0),
        }
    }

    pub(super) fn pick(&self, servers: &dyn ServerView, exclude: &[usize]) -> Option<usize> {
        let len = self.order.len();
        let mut start = self.next.load(Relaxed);
        loop {
            let pos = (start..start + len)
                .map(|p| p % len)
                .find(|&p| available(servers, self.order[p], exclude))?;
            // Take the turn only if no other thread took one meanwhile, else look again from
            // where the cursor went: two threads never get the same turn, none is lost.
            match self
                .next
                .compare_exchange_weak(start, (pos + 1) % len, Relaxed, Relaxed)
            {
                Ok(_) => return Some(self.order[pos]),
                Err(moved) => start = moved,
            }
        }
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
    fn ignores_weights() {
        let selector = RoundRobin::new(&servers(&[5, 1, 256]));
        assert_eq!(picks(&selector, &View::all_up(3), 6), [0, 1, 2, 0, 1, 2]);
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
