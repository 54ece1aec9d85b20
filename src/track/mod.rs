//! Tracking: how the state of what a VRRP instance depends on (a backend's servers, a link)
//! sets its effective priority, with keepalived's `track_script`/`track_interface` weights.
//!
//! This file is pure: the VRRP engine hands in each tracked item's weight and whether it is
//! failing; the announcer only asks whether any item fails (`live::Trackers::failing`).
//!
//! - A negative weight is subtracted while its item fails; a positive one is added while its
//!   item is fine.
//! - An item without a weight puts the instance in Fault (no VIP, no adverts) while it fails.
//! - The result is clamped to 1..=254: trackers never make a router the address owner, and
//!   never produce 0, which on the wire means resignation.
//! - An address owner (255) keeps 255 while no weight applies, and drops to 255 + weights
//!   (clamped) as soon as one does, so a degraded owner can be preempted. Validation refuses
//!   positive weights on an owner: they could only take it down to 254.

pub mod data_plane;
pub mod links;
pub mod live;

use crate::config::TrackWeight;

/// What the instance should run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hold no VIP and send no adverts until this clears.
    Fault,
    /// The effective priority, 1..=255.
    Priority(u8),
}

/// For logs: `fault`, `priority 150`.
impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Fault => f.write_str("fault"),
            Verdict::Priority(priority) => write!(f, "priority {priority}"),
        }
    }
}

/// One tracked item as the engine sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemState {
    pub weight: TrackWeight,
    pub failing: bool,
}

const LOWEST: i32 = 1;
const HIGHEST_TRACKED: i32 = 254;

/// The verdict for an instance of `configured` priority whose tracked items are in `items`.
pub fn verdict(configured: u8, items: impl IntoIterator<Item = ItemState>) -> Verdict {
    let mut applied: Option<i32> = None;
    for item in items {
        let points = match (item.weight, item.failing) {
            (TrackWeight::Fault, true) => return Verdict::Fault,
            (TrackWeight::Points(points), true) if points < 0 => points,
            (TrackWeight::Points(points), false) if points > 0 => points,
            _ => continue,
        };
        *applied.get_or_insert(0) += i32::from(points);
    }
    match applied {
        None => Verdict::Priority(configured),
        Some(sum) => {
            let priority = (i32::from(configured) + sum).clamp(LOWEST, HIGHEST_TRACKED);
            Verdict::Priority(u8::try_from(priority).expect("clamped to 1..=254"))
        }
    }
}

/// Whether a backend tracker fails: fewer than `min_healthy` servers up.
pub fn backend_failing(servers_up: usize, min_healthy: usize) -> bool {
    servers_up < min_healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(weight: TrackWeight, failing: bool) -> ItemState {
        ItemState { weight, failing }
    }

    const FAULT: TrackWeight = TrackWeight::Fault;

    fn points(points: i16) -> TrackWeight {
        TrackWeight::Points(points)
    }

    #[test]
    fn nothing_tracked_keeps_the_configured_priority() {
        assert_eq!(verdict(100, []), Verdict::Priority(100));
        assert_eq!(verdict(255, []), Verdict::Priority(255));
        assert_eq!(verdict(1, []), Verdict::Priority(1));
    }

    #[test]
    fn a_negative_weight_applies_only_while_failing() {
        assert_eq!(
            verdict(150, [item(points(-50), false)]),
            Verdict::Priority(150)
        );
        assert_eq!(
            verdict(150, [item(points(-50), true)]),
            Verdict::Priority(100)
        );
    }

    #[test]
    fn a_positive_weight_applies_only_while_fine() {
        assert_eq!(
            verdict(100, [item(points(20), false)]),
            Verdict::Priority(120)
        );
        assert_eq!(
            verdict(100, [item(points(20), true)]),
            Verdict::Priority(100)
        );
    }

    #[test]
    fn weights_add_up() {
        let items = [
            item(points(-30), true),
            item(points(-20), true),
            item(points(-40), false),
            item(points(10), false),
            item(points(5), true),
        ];
        assert_eq!(verdict(150, items), Verdict::Priority(110));
    }

    #[test]
    fn an_item_without_weight_faults_while_failing_whatever_else_applies() {
        assert_eq!(verdict(100, [item(FAULT, false)]), Verdict::Priority(100));
        assert_eq!(verdict(100, [item(FAULT, true)]), Verdict::Fault);
        let items = [
            item(points(50), false),
            item(FAULT, true),
            item(points(-10), true),
        ];
        assert_eq!(verdict(100, items), Verdict::Fault);
        assert_eq!(verdict(255, [item(FAULT, true)]), Verdict::Fault);
    }

    #[test]
    fn the_result_stays_within_1_and_254() {
        assert_eq!(
            verdict(100, [item(points(-254), true)]),
            Verdict::Priority(1)
        );
        assert_eq!(verdict(1, [item(points(-1), true)]), Verdict::Priority(1));
        assert_eq!(
            verdict(200, [item(points(254), false)]),
            Verdict::Priority(254)
        );
        assert_eq!(
            verdict(254, [item(points(1), false)]),
            Verdict::Priority(254)
        );
        let many = [item(points(-254), true); 10];
        assert_eq!(verdict(254, many), Verdict::Priority(1));
    }

    #[test]
    fn an_owner_keeps_255_only_while_no_weight_applies() {
        assert_eq!(
            verdict(255, [item(points(-50), false)]),
            Verdict::Priority(255)
        );
        assert_eq!(
            verdict(255, [item(points(-50), true)]),
            Verdict::Priority(205)
        );
        assert_eq!(
            verdict(255, [item(points(-1), true)]),
            Verdict::Priority(254)
        );
    }

    #[test]
    fn weights_that_cancel_out_still_take_an_owner_below_255() {
        let items = [item(points(-10), true), item(points(10), false)];
        assert_eq!(verdict(255, items), Verdict::Priority(254));
        assert_eq!(verdict(100, items), Verdict::Priority(100));
    }

    #[test]
    fn a_backend_fails_below_min_healthy() {
        assert!(backend_failing(0, 1));
        assert!(!backend_failing(1, 1));
        assert!(backend_failing(1, 2));
        assert!(!backend_failing(3, 2));
    }
}
