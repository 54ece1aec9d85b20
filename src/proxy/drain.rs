//! Graceful shutdown of the data plane: stop accepting, let open connections finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Shared by every worker thread.
pub struct Drain {
    draining: watch::Sender<bool>,
    open: AtomicUsize,
    closed: Notify,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain {
            draining: watch::channel(false).0,
            open: AtomicUsize::new(0),
            closed: Notify::new(),
        })
    }

    /// Listeners close and keep-alive connections end after their current request.
    pub fn start(&self) {
        self.draining.send_replace(true);
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Counts a client connection as open until the guard drops.
    pub fn track(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(Arc::clone(self))
    }

    /// Resolves once no client connection is open.
    pub async fn until_idle(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Resolves once the flag behind `receiver` (draining, or closing a listener) is set, or its
/// sender is gone.
pub async fn until_true(receiver: &mut watch::Receiver<bool>) {
    let _ = receiver.wait_for(|set| *set).await;
}

pub struct OpenConnection(Arc<Drain>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn until_idle_waits_for_the_last_connection() {
        let drain = Drain::new();
        let first = drain.track();
        let second = drain.track();
        let idle = tokio::spawn({
            let drain = Arc::clone(&drain);
            async move { drain.until_idle().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!idle.is_finished(), "idle with a connection still open");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(5), idle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn subscribers_see_the_start() {
        let drain = Drain::new();
        let mut receiver = drain.subscribe();
        drain.start();
        tokio::time::timeout(std::time::Duration::from_secs(5), until_true(&mut receiver))
            .await
            .unwrap();
    }
}
