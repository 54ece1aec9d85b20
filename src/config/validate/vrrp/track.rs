//! An instance's `track:` items: what their failure does to it (keepalived's weights); what
//! they depend on is read as `announce.track` reads it, in `validate/track.rs`.

use super::super::super::model::*;
use super::super::super::schema::*;
use super::super::Validator;
use crate::codec::vrrp as packet;

/// The item shown when one names nothing to track.
const EXAMPLE: &str = "{ backend: web_pool, weight: -50 }";

impl Validator {
    /// One `track:` item; `None` when it is invalid (reported).
    pub(super) fn track(
        &mut self,
        at: String,
        spec: TrackSpec,
        priority: u8,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> Option<Track> {
        let weight = self.track_weight(&at, spec.weight.as_ref(), priority);
        let target = self.track_target(at, spec, EXAMPLE, frontends, backends);
        Some(Track {
            target: target?,
            weight: weight?,
        })
    }

    /// keepalived's weight: none or 0 means Fault while failing.
    fn track_weight(
        &mut self,
        at: &str,
        weight: Option<&IntegerSpec>,
        priority: u8,
    ) -> Option<TrackWeight> {
        let Some(weight) = weight else {
            return Some(TrackWeight::Fault);
        };
        let field = format!("{at}.weight");
        // A weight moves a priority anywhere between the lowest and the highest a backup runs at.
        let max = i16::from(packet::OWNER_PRIORITY - 1);
        let Some(points) = (weight.0.parse::<i16>().ok()).filter(|w| (-max..=max).contains(w))
        else {
            self.error(
                field,
                format!(
                    "weight {} is out of range -{max}..={max} (negative: subtracted while failing; \
                     positive: added while fine; none: Fault while failing)",
                    weight.0
                ),
            );
            return None;
        };
        if points > 0 && priority == packet::OWNER_PRIORITY {
            self.error(
                field,
                format!(
                    "a positive weight cannot raise an address owner (priority {}) and would only \
                     take it down to {max}; use a negative weight, or none for Fault",
                    packet::OWNER_PRIORITY
                ),
            );
            return None;
        }
        Some(match points {
            0 => TrackWeight::Fault,
            points => TrackWeight::Points(points),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::*;

    /// [`TRACKABLE`] and one instance `VI_1` of `priority` with `track` as its track list.
    fn tracking(priority: u8, track: &str) -> String {
        format!(
            "{TRACKABLE}\
             vrrp:\n  instances:\n    - {{ name: VI_1, interface: eth0, virtual_router_id: 33, \
             priority: {priority}, virtual_ips: [198.51.100.10/24], track: [{track}] }}\n"
        )
    }

    #[test]
    fn tracks_frontends_by_name() {
        let config = valid(&tracking(150, "{ frontend: web, weight: -50 }"));
        assert_eq!(config.vrrp[0].track[0].target, TrackTarget::Frontend(0));
        assert_eq!(
            problems(&tracking(150, "{ frontend: api, min_healthy: 1 }")),
            [
                "vrrp.instances[0].track[0].min_healthy: only applies to a backend; remove it",
                "vrrp.instances[0].track[0].frontend: unknown frontend \"api\"; defined frontends: web",
            ]
        );
    }

    #[test]
    fn reads_track_items_with_keepalived_weights() {
        let config = valid(&tracking(
            150,
            "{ backend: web, min_healthy: 2, weight: -50 }, { backend: web }, \
             { interface: eth1, weight: 0 }, { interface: eth0, weight: 10 }",
        ));
        assert_eq!(
            config.vrrp[0].track,
            [
                Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 2
                    },
                    weight: TrackWeight::Points(-50),
                },
                Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 1
                    },
                    weight: TrackWeight::Fault,
                },
                Track {
                    target: TrackTarget::Interface("eth1".into()),
                    weight: TrackWeight::Fault,
                },
                Track {
                    target: TrackTarget::Interface("eth0".into()),
                    weight: TrackWeight::Points(10),
                },
            ]
        );
    }

    #[test]
    fn rejects_track_items_that_name_no_or_several_targets() {
        let at = "vrrp.instances[0].track";
        assert_eq!(
            problems(&tracking(
                100,
                "{ weight: -10 }, { backend: web, interface: eth0 }, { interface: '' }"
            )),
            [
                format!(
                    "{at}[0]: names nothing to track; give one of backend, frontend or interface, e.g. \
                     {{ backend: web_pool, weight: -50 }}"
                ),
                format!("{at}[1]: names more than one of backend, frontend and interface; give each its own item"),
                format!("{at}[2].interface: must not be empty"),
            ]
        );
    }

    #[test]
    fn rejects_track_backends_that_cannot_be_tracked() {
        let at = "vrrp.instances[0].track";
        assert_eq!(
            problems(&tracking(100, "{ backend: nope }, { backend: plain }")),
            [
                format!("{at}[0].backend: unknown backend \"nope\"; defined backends: web, plain"),
                format!(
                    "{at}[1].backend: backend \"plain\" has no health_check, so its servers \
                     always count as up and this would never fail; add a health_check to it"
                ),
            ]
        );
    }

    #[test]
    fn rejects_min_healthy_that_could_never_fail_or_never_pass() {
        let at = "vrrp.instances[0].track";
        let message = |index: usize, written: &str| {
            format!(
                "{at}[{index}].min_healthy: min_healthy {written} is out of range 1..=2 \
                 (backend \"web\" has 2 servers): 0 would never fail and more would never pass"
            )
        };
        assert_eq!(
            problems(&tracking(
                100,
                "{ backend: web, min_healthy: 0 }, { backend: web, min_healthy: 3 }, \
                 { interface: eth0, min_healthy: 1 }"
            )),
            [
                message(0, "0"),
                message(1, "3"),
                format!("{at}[2].min_healthy: only applies to a backend; remove it"),
            ]
        );
    }

    #[test]
    fn rejects_weights_out_of_range_and_positive_weights_on_an_owner() {
        let at = "vrrp.instances[0].track";
        let range = |index: usize, written: &str| {
            format!(
                "{at}[{index}].weight: weight {written} is out of range -254..=254 (negative: \
                 subtracted while failing; positive: added while fine; none: Fault while failing)"
            )
        };
        assert_eq!(
            problems(&tracking(
                100,
                "{ backend: web, weight: -255 }, { backend: web, weight: 255 }, \
                 { backend: web, weight: 99999999999 }"
            )),
            [range(0, "-255"), range(1, "255"), range(2, "99999999999")]
        );
        assert_eq!(
            problems(&tracking(255, "{ interface: eth0, weight: 5 }")),
            [format!(
                "{at}[0].weight: a positive weight cannot raise an address owner (priority \
                 255) and would only take it down to 254; use a negative weight, or none for \
                 Fault"
            )]
        );
        valid(&tracking(255, "{ interface: eth0, weight: -254 }"));
    }
}
