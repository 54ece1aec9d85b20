//! The live side of `track:`: reads each tracked item's current state and wakes its owner (a
//! VRRP instance, the announcer) when one may have changed. The rule that turns states into a
//! priority is [`crate::track`].
//!
//! Trackers are built from the data plane a config runs with, and rebuilt from the new one at
//! every reload: a backend or server is followed by its name, whatever state object carries it.

use std::sync::Arc;

use futures_util::future::{select_all, BoxFuture, FutureExt as _};
use tokio::sync::watch;

use super::data_plane::DataPlane;
use super::{ItemState, Verdict};
use crate::backend::BackendState;
use crate::config::{Track, TrackTarget, TrackWeight};

use super::links::LinkStates;

/// One owner's tracked items.
pub struct Trackers {
    items: Vec<Item>,
}

struct Item {
    weight: TrackWeight,
    source: Source,
}

enum Source {
    Backend {
        state: Arc<BackendState>,
        min_healthy: usize,
        changes: watch::Receiver<()>,
    },
    Frontend {
        name: String,
        accepting: watch::Receiver<bool>,
    },
    Interface {
        name: String,
        running: watch::Receiver<bool>,
    },
}

impl Trackers {
    /// `links` holds every tracked interface.
    pub fn new(track: &[Track], data_plane: &DataPlane, links: &LinkStates) -> Trackers {
        let items = (track.iter())
            .map(|item| Item {
                weight: item.weight,
                source: match &item.target {
                    TrackTarget::Backend {
                        backend,
                        min_healthy,
                    } => {
                        let state = Arc::clone(&data_plane.backends[*backend]);
                        Source::Backend {
                            changes: state.health_changes(),
                            state,
                            min_healthy: *min_healthy,
                        }
                    }
                    TrackTarget::Frontend(frontend) => {
                        let frontend = &data_plane.frontends[*frontend];
                        Source::Frontend {
                            name: frontend.name.clone(),
                            accepting: frontend.accepting.clone(),
                        }
                    }
                    TrackTarget::Interface(name) => Source::Interface {
                        name: name.clone(),
                        running: links[name].clone(),
                    },
                },
            })
            .collect();
        Trackers { items }
    }

    /// The verdict for an instance of `configured` priority, from the items' current states.
    pub fn verdict(&self, configured: u8) -> Verdict {
        super::verdict(
            configured,
            self.items.iter().map(|item| ItemState {
                weight: item.weight,
                failing: item.source.failing(),
            }),
        )
    }

    /// Whether every tracked backend's servers have each had a health verdict since they were
    /// added: until then `up` is a start-up guess.
    pub fn verdicts_in(&self) -> bool {
        (self.items.iter()).all(|item| match &item.source {
            Source::Backend { state, .. } => state.checked(),
            Source::Frontend { .. } | Source::Interface { .. } => true,
        })
    }

    /// What fails now, for logs: `backend web_pool (0 of 2 up, min_healthy 1)`.
    pub fn failing(&self) -> Vec<String> {
        (self.items.iter())
            .filter(|item| item.source.failing())
            .map(|item| item.source.describe())
            .collect()
    }

    /// Resolves when an item may have changed; never, when nothing is tracked.
    pub async fn changed(&mut self) {
        if self.items.is_empty() {
            return std::future::pending().await;
        }
        let changes: Vec<BoxFuture<'_, ()>> = (self.items.iter_mut())
            .map(|item| item.source.changed().boxed())
            .collect();
        select_all(changes).await;
    }
}

impl Source {
    fn failing(&self) -> bool {
        match self {
            Source::Backend {
                state, min_healthy, ..
            } => super::backend_failing(state.servers_up(), *min_healthy),
            Source::Frontend { accepting, .. } => !*accepting.borrow(),
            Source::Interface { running, .. } => !*running.borrow(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Backend {
                state, min_healthy, ..
            } => format!(
                "backend {} ({} of {} up, min_healthy {min_healthy})",
                state.config.name,
                state.servers_up(),
                state.primaries()
            ),
            Source::Frontend { name, .. } => format!("frontend {name} (cannot accept)"),
            Source::Interface { name, .. } => format!("interface {name} (down)"),
        }
    }

    async fn changed(&mut self) {
        let result = match self {
            Source::Backend { changes, .. } => changes.changed().await,
            Source::Frontend { accepting, .. } => accepting.changed().await,
            Source::Interface { running, .. } => running.changed().await,
        };
        // The sender is gone only while the engine shuts down: nothing will change any more.
        if result.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::data_plane::FrontendAccepting;
    use std::collections::HashMap;
    use std::time::Duration;

    fn backend() -> Arc<BackendState> {
        Arc::new(crate::backend::checked_backend(&["s1"]))
    }

    #[tokio::test]
    async fn follows_backend_health_frontend_accepting_and_link_state_as_they_change() {
        let accepting = watch::Sender::new(true);
        let data_plane = DataPlane {
            backends: vec![backend()],
            frontends: vec![FrontendAccepting {
                name: "web".into(),
                accepting: accepting.subscribe(),
            }],
        };
        let link = watch::Sender::new(true);
        let links = HashMap::from([("eth1".to_string(), link.subscribe())]);
        let track = [
            Track {
                target: TrackTarget::Backend {
                    backend: 0,
                    min_healthy: 1,
                },
                weight: TrackWeight::Points(-50),
            },
            Track {
                target: TrackTarget::Frontend(0),
                weight: TrackWeight::Points(-30),
            },
            Track {
                target: TrackTarget::Interface("eth1".into()),
                weight: TrackWeight::Fault,
            },
        ];
        let mut trackers = Trackers::new(&track, &data_plane, &links);
        assert_eq!(trackers.verdict(150), Verdict::Priority(150));
        assert_eq!(trackers.failing(), Vec::<String>::new());

        data_plane.backends[0].servers[0].record_check(false, "refused");
        trackers.changed().await;
        assert_eq!(trackers.verdict(150), Verdict::Priority(100));
        assert_eq!(
            trackers.failing(),
            ["backend web (0 of 1 up, min_healthy 1)"]
        );

        accepting.send_replace(false);
        trackers.changed().await;
        assert_eq!(trackers.verdict(150), Verdict::Priority(70));
        assert!(trackers
            .failing()
            .contains(&"frontend web (cannot accept)".to_string()));

        link.send_replace(false);
        trackers.changed().await;
        assert_eq!(trackers.verdict(150), Verdict::Fault);
    }

    #[tokio::test]
    async fn verdicts_are_in_once_every_tracked_server_has_had_a_check_result() {
        let data_plane = DataPlane {
            backends: vec![Arc::new(crate::backend::checked_backend(&["s1", "s2"]))],
            frontends: Vec::new(),
        };
        let track = [Track {
            target: TrackTarget::Backend {
                backend: 0,
                min_healthy: 1,
            },
            weight: TrackWeight::Points(-50),
        }];
        let mut trackers = Trackers::new(&track, &data_plane, &HashMap::new());
        assert!(!trackers.verdicts_in());
        data_plane.backends[0].servers[0].record_check(true, "");
        trackers.changed().await;
        assert!(!trackers.verdicts_in(), "s2 has had no result yet");
        data_plane.backends[0].servers[1].record_check(true, "");
        trackers.changed().await;
        assert!(trackers.verdicts_in());
        assert_eq!(trackers.verdict(150), Verdict::Priority(150));
        assert!(Trackers::new(&[], &data_plane, &HashMap::new()).verdicts_in());
    }

    #[tokio::test]
    async fn a_backup_up_does_not_keep_a_tracked_backend_healthy() {
        let mut config = crate::backend::checked_backend(&["p1", "b1"]).config;
        config.servers[1].backup = true;
        let data_plane = DataPlane {
            backends: vec![Arc::new(crate::backend::built(config))],
            frontends: Vec::new(),
        };
        let track = [Track {
            target: TrackTarget::Backend {
                backend: 0,
                min_healthy: 1,
            },
            weight: TrackWeight::Points(-50),
        }];
        let mut trackers = Trackers::new(&track, &data_plane, &HashMap::new());
        data_plane.backends[0].servers[1].record_check(true, "");
        data_plane.backends[0].servers[0].record_check(false, "refused");
        trackers.changed().await;
        assert_eq!(trackers.verdict(150), Verdict::Priority(100));
        assert_eq!(
            trackers.failing(),
            ["backend web (0 of 1 up, min_healthy 1)"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_tracked_never_changes() {
        let data_plane = DataPlane {
            backends: Vec::new(),
            frontends: Vec::new(),
        };
        let mut trackers = Trackers::new(&[], &data_plane, &HashMap::new());
        let waited = tokio::time::timeout(Duration::from_secs(3600), trackers.changed()).await;
        assert!(waited.is_err());
    }
}
