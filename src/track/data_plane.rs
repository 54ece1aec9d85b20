//! What the proxy publishes for trackers to watch. It lives on the tracking side so that the
//! proxy hands it over without knowing who reads it, and VRRP reads it without importing the proxy.

use std::sync::Arc;

use tokio::sync::watch;

use crate::backend::BackendState;

/// What trackers watch in the proxy, indexed as in the config.
#[derive(Default)]
pub struct DataPlane {
    pub backends: Vec<Arc<BackendState>>,
    pub frontends: Vec<FrontendAccepting>,
}

/// Whether a frontend's listeners can accept.
pub struct FrontendAccepting {
    pub name: String,
    pub accepting: watch::Receiver<bool>,
}
