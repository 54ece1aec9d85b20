//! A `track:` item's target, shared by `vrrp.instances[].track` and `announce.track`: what a
//! VIP or an announcement depends on. What a failure does is each section's own.

use super::super::model::*;
use super::super::schema::*;
use super::frontends::known_backends;
use super::Validator;

impl Validator {
    /// The target of the item at `at` (its `weight` is the caller's); `None` when it is invalid
    /// (reported). `example` is an item to show when it names nothing.
    pub(super) fn track_target(
        &mut self,
        at: String,
        spec: TrackSpec,
        example: &str,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> Option<TrackTarget> {
        if spec.min_healthy.is_some() && spec.backend.is_none() {
            self.error(
                format!("{at}.min_healthy"),
                "only applies to a backend; remove it",
            );
        }
        match (spec.backend, spec.frontend, spec.interface) {
            (Some(backend), None, None) => {
                self.tracked_backend(&at, &backend, spec.min_healthy.as_ref(), backends)
            }
            (None, Some(frontend), None) => {
                let index = frontends.iter().position(|known| known.name == frontend);
                if index.is_none() && !self.skipped_frontends.contains(&frontend) {
                    let known: Vec<&str> = frontends.iter().map(|f| f.name.as_str()).collect();
                    self.error(
                        format!("{at}.frontend"),
                        format!(
                            "unknown frontend \"{frontend}\"; defined frontends: {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                index.map(TrackTarget::Frontend)
            }
            (None, None, Some(interface)) => {
                self.non_empty(format!("{at}.interface"), &interface);
                Some(TrackTarget::Interface(interface))
            }
            (None, None, None) => {
                self.error(
                    at,
                    format!(
                        "names nothing to track; give one of backend, frontend or interface, \
                         e.g. {example}"
                    ),
                );
                None
            }
            _ => {
                self.error(
                    at,
                    "names more than one of backend, frontend and interface; give each its \
                     own item",
                );
                None
            }
        }
    }

    fn tracked_backend(
        &mut self,
        at: &str,
        name: &str,
        min_healthy: Option<&IntegerSpec>,
        backends: &[Backend],
    ) -> Option<TrackTarget> {
        let Some(index) = backends.iter().position(|backend| backend.name == name) else {
            if !self.skipped_backends.iter().any(|skipped| skipped == name) {
                self.error(
                    format!("{at}.backend"),
                    format!("unknown backend {name:?}; {}", known_backends(backends)),
                );
            }
            return None;
        };
        let backend = &backends[index];
        if backend.health_check.is_none() {
            self.error(
                format!("{at}.backend"),
                format!(
                    "backend {name:?} has no health_check, so its servers always count as up \
                     and this would never fail; add a health_check to it"
                ),
            );
            return None;
        }
        let servers = backend.servers.len();
        let min_healthy = match min_healthy {
            None => 1,
            Some(text) => match text.0.parse::<usize>() {
                Ok(count) if (1..=servers).contains(&count) => count,
                _ => {
                    self.error(
                        format!("{at}.min_healthy"),
                        format!(
                            "min_healthy {} is out of range 1..={servers} (backend {name:?} has \
                             {servers} servers): 0 would never fail and more would never pass",
                            text.0
                        ),
                    );
                    return None;
                }
            },
        };
        Some(TrackTarget::Backend {
            backend: index,
            min_healthy,
        })
    }
}
