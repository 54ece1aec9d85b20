//! The data plane: listeners, the accept loop, and the http and tcp frontends.

pub mod activity;
pub mod drain;
pub mod frontends;
pub mod headers;
pub mod http;
pub mod listener;
pub mod persistence;
pub mod proxy_protocol;
pub mod routing;
pub mod rules;
pub mod socket;
pub mod tcp;
pub mod upstream;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::access_log::AccessLog;
use crate::backend::BackendState;
use crate::config::{self, Mode};
use crate::stats::FrontendStats;
use drain::Drain;
use upstream::UpstreamPool;

/// Everything a connection needs from the config, swapped as one piece so that no request sees
/// half of a reload.
pub struct FrontendRuntime {
    pub config: config::Frontend,
    /// Where requests no route matches go; `None` when every request is redirected.
    pub backend: Option<Arc<BackendState>>,
    /// The backend of each of `config.routes`, in order.
    pub routes: Vec<Arc<BackendState>>,
    /// Kept across reloads while the frontend keeps its name and address.
    pub stats: Arc<FrontendStats>,
    pub access_log: Option<Arc<AccessLog>>,
}

pub type FrontendCell = Arc<ArcSwap<FrontendRuntime>>;

/// Pause after a failed accept (out of file descriptors, usually) so the loop doesn't spin.
pub(crate) const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts clients while fewer than `max_connections` are open on the frontend (over all
/// workers); the rest wait in the kernel backlog. When draining starts or the frontend is
/// removed (`close`), takes what is already queued (closing a listener resets queued clients)
/// and closes the listener.
pub async fn accept_loop(
    listener: TcpListener,
    frontend: FrontendCell,
    connections: Arc<Semaphore>,
    pool: Arc<UpstreamPool>,
    drain: Arc<Drain>,
    mut close: watch::Receiver<bool>,
    accepting: watch::Sender<bool>,
) {
    let mut draining = drain.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &connections, &accepting) => accepted,
            () = drain::until_true(&mut draining) => break,
            () = drain::until_true(&mut close) => break,
        };
        serve(accepted, &frontend, &pool, &drain);
    }
    while let Ok(accepted) =
        tokio::time::timeout(Duration::ZERO, accept(&listener, &connections, &accepting)).await
    {
        serve(accepted, &frontend, &pool, &drain);
    }
}

type Accepted = (TcpStream, SocketAddr, OwnedSemaphorePermit);

/// The next client; `accepting` tells VRRP trackers whether the listener works.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
    accepting: &watch::Sender<bool>,
) -> Accepted {
    loop {
        let permit = Arc::clone(connections)
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        match listener.accept().await {
            Ok((stream, client)) => {
                accepting.send_if_modified(|works| !std::mem::replace(works, true));
                return (stream, client, permit);
            }
            Err(error) => {
                accepting.send_if_modified(|works| std::mem::replace(works, false));
                tracing::warn!(listen = ?listener.local_addr().ok(), %error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

fn serve(
    (stream, client, permit): Accepted,
    frontend: &FrontendCell,
    pool: &Arc<UpstreamPool>,
    drain: &Arc<Drain>,
) {
    // Small requests and responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let frontend = Arc::clone(frontend);
    let pool = Arc::clone(pool);
    let open = drain.track();
    let draining = drain.subscribe();
    tokio::spawn(async move {
        let current = frontend.load_full();
        let session = Session::open(&current.stats);
        // Boxed, so that until then the task is small: an idle client costs its socket and
        // little more (the mode's state, hyper's buffers among it, comes once it is used).
        match current.config.mode {
            Mode::Http => {
                let limit = current.config.timeouts.request_header;
                let mut draining = draining;
                if let Some(waited) = first_bytes(&stream, limit, &mut draining).await {
                    let serve = http::serve(stream, client, frontend, pool, draining, waited);
                    Box::pin(serve).await;
                }
            }
            Mode::Tcp => Box::pin(tcp::relay(stream, client, current)).await,
        }
        drop((permit, open, session));
    });
}

/// Waits for a new http client's first byte and says how long that took; `None` if none
/// comes within `limit` (hyper's header timer would have closed it too), the client closes,
/// or draining starts first.
async fn first_bytes(
    stream: &TcpStream,
    limit: Duration,
    draining: &mut watch::Receiver<bool>,
) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    // Peeked, not `readable()`: tokio reports a fresh socket readable before any byte arrives.
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(limit, stream.peek(&mut first)) => {
            matches!(peeked, Ok(Ok(1))).then(|| started.elapsed())
        }
        () = drain::until_true(draining) => None,
    }
}

/// Counts a client connection as open on its frontend until dropped.
struct Session(Arc<FrontendStats>);

impl Session {
    fn open(stats: &Arc<FrontendStats>) -> Session {
        stats.sessions.increment(1);
        stats.current_sessions.fetch_add(1, Ordering::Relaxed);
        Session(Arc::clone(stats))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.0.current_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}
