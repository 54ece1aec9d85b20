//! The live side of `track:`: reads each tracked item's current state and wakes an instance
//! when one may have changed. The rule that turns states into a priority is [`crate::track`].

use std::sync::Arc;

use futures_util::future::{select_all, BoxFuture, FutureExt as _};
use tokio::sync::watch;

use crate::backend::BackendState;
use crate::config::{Track, TrackTarget, TrackWeight};
use crate::track::{self, ItemState, Verdict};

use super::net::link::LinkStates;

/// One instance's tracked items.
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
    Interface {
        name: String,
        running: watch::Receiver<bool>,
    },
}

impl Trackers {
    /// `backends` are indexed as in the config; `links` holds every tracked interface.
    pub fn new(track: &[Track], backends: &[Arc<BackendState>], links: &LinkStates) -> Trackers {
        let items = (track.iter())
            .map(|item| Item {
                weight: item.weight,
                source: match &item.target {
                    TrackTarget::Backend {
                        backend,
                        min_healthy,
                    } => {
                        let state = Arc::clone(&backends[*backend]);
                        Source::Backend {
                            changes: state.health_changes(),
                            state,
                            min_healthy: *min_healthy,
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
        track::verdict(
            configured,
            self.items.iter().map(|item| ItemState {
                weight: item.weight,
                failing: item.source.failing(),
            }),
        )
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
            } => track::backend_failing(state.servers_up(), *min_healthy),
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
                state.servers.len()
            ),
            Source::Interface { name, .. } => format!("interface {name} (down)"),
        }
    }

    async fn changed(&mut self) {
        let result = match self {
            Source::Backend { changes, .. } => changes.changed().await,
            Source::Interface { running, .. } => running.changed().await,
        };
        // The sender is gone only while the engine shuts down: nothing will change any more.
        if result.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
