//! The data plane: listeners, the accept loop, and the http and tcp frontends.

pub mod activity;
pub mod headers;
pub mod http;
pub mod listener;
pub mod tcp;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::backend::BackendState;
use crate::config::{self, Mode};
use upstream::UpstreamPool;

/// Everything a connection needs from the config, swapped as one piece so that no request sees
/// half of a reload.
pub struct FrontendRuntime {
    pub config: config::Frontend,
    pub backend: Arc<BackendState>,
}

pub type FrontendCell = Arc<ArcSwap<FrontendRuntime>>;

/// Pause after a failed accept (out of file descriptors, usually) so the loop doesn't spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts clients while fewer than `max_connections` are open on the frontend (over all
/// workers); the rest wait in the kernel backlog.
pub async fn accept_loop(
    listener: TcpListener,
    frontend: FrontendCell,
    connections: Arc<Semaphore>,
    pool: Arc<UpstreamPool>,
) {
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(frontend = %frontend.load().config.name, %error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        // Small requests and responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let frontend = Arc::clone(&frontend);
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            let current = frontend.load_full();
            match current.config.mode {
                Mode::Http => http::serve(stream, client, frontend, pool).await,
                Mode::Tcp => tcp::relay(stream, client, &current).await,
            }
            drop(permit);
        });
    }
}
