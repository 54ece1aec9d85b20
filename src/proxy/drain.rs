//! Graceful shutdown of the data plane: stop accepting, let open connections finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::{watch, Notify};

/// Shared by every worker thread.
pub struct Drain {
    draining: watch::Sender<bool>,
    /// Client connections opened and finished since start; open ones are the difference. Two
    /// counts rather than one gauge, so the count of new connections can be read too.
    opened: AtomicU64,
    finished: AtomicU64,
    closed: Notify,
}

impl Drain {
    pub fn new() -> Arc<Drain> {
        Arc::new(Drain {
            draining: watch::channel(false).0,
            opened: AtomicU64::new(0),
            finished: AtomicU64::new(0),
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
        self.opened.fetch_add(1, Ordering::SeqCst);
        OpenConnection(Arc::clone(self))
    }

    /// How many client connections have been opened since start: what the announcer watches
    /// to see that routers have moved new flows away.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Resolves once no client connection is open.
    pub async fn until_idle(&self) {
        loop {
            let closed = self.closed.notified();
            // Finished first: opened only grows, so equal counts mean none was open then.
            let finished = self.finished.load(Ordering::SeqCst);
            if self.opened.load(Ordering::SeqCst) == finished {
                return;
            }
            closed.await;
        }
    }
}

/// Resolves once the flag behind `receiver` (draining, or closing a listener) is set, or its
/// sender is gone.
///
/// A served connection's task is polled on every read and write, and this with it. Polling a
/// registered watch waiter takes a lock each time, so once registered it is polled again only
/// when the channel has changed (an atomic read) or the task's waker has. Each costs an
/// allocation, and its registration that lock, so an http connection makes one and passes it
/// on. Once ready it stays ready.
pub fn until_true(mut receiver: watch::Receiver<bool>) -> UntilTrue {
    let changes = receiver.clone();
    UntilTrue {
        changes,
        // Outside tokio's budget: a waiter that returned Pending for want of budget would not be
        // registered, and its next polls are skipped.
        waiting: Box::pin(tokio::task::unconstrained(async move {
            let _ = receiver.wait_for(|set| *set).await;
        })),
        registered: None,
        done: false,
    }
}

pub struct UntilTrue {
    /// Never marked seen, so it tells whether the flag has moved since the start.
    changes: watch::Receiver<bool>,
    waiting: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The waker the waiter holds, once it holds one.
    registered: Option<Waker>,
    /// The waiter has finished, and must not be polled again.
    done: bool,
}

impl Future for UntilTrue {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let unchanged = matches!(self.changes.has_changed(), Ok(false));
        let same_waker =
            (self.registered.as_ref()).is_some_and(|waker| waker.will_wake(cx.waker()));
        if unchanged && same_waker {
            return Poll::Pending;
        }
        self.registered = Some(cx.waker().clone());
        let polled = self.waiting.as_mut().poll(cx);
        self.done = polled.is_ready();
        polled
    }
}

pub struct OpenConnection(Arc<Drain>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let finished = self.0.finished.fetch_add(1, Ordering::SeqCst) + 1;
        if self.0.opened.load(Ordering::SeqCst) == finished {
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
        assert_eq!(drain.opened(), 2, "closing a connection does not unopen it");
        tokio::time::timeout(std::time::Duration::from_secs(5), idle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_registered_wait_still_sees_the_start_and_a_gone_sender() {
        let drain = Drain::new();
        let mut waiting = std::pin::pin!(until_true(drain.subscribe()));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(
            waiting.as_mut().poll(&mut cx).is_pending(),
            "nothing changed"
        );
        drain.start();
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert!(
            waiting.as_mut().poll(&mut cx).is_ready(),
            "ready once, ready after"
        );

        let (sender, receiver) = watch::channel(false);
        let mut waiting = std::pin::pin!(until_true(receiver));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(sender);
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn subscribers_see_the_start() {
        let drain = Drain::new();
        let receiver = drain.subscribe();
        drain.start();
        tokio::time::timeout(std::time::Duration::from_secs(5), until_true(receiver))
            .await
            .unwrap();
    }
}
