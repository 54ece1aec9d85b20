//! A frontend's `max_connections`, over all workers, changed in place on reload. A semaphore
//! holds one permit per connection that may still open; lowering the limit forgets the free
//! permits, and what it cannot forget yet (connections hold them) is owed, paid by the next
//! connections to close instead of returning their permits. So a limit lowered under load
//! takes effect as connections close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub struct ConnectionLimit {
    free: Semaphore,
    /// Permits to forget as connections close.
    owed: AtomicUsize,
    /// The limit as last set; changed by the control thread only.
    max: AtomicUsize,
}

/// One open connection's place under the limit, given back (or forgotten, to pay what is
/// owed) when dropped.
pub struct Permit(Arc<ConnectionLimit>);

impl ConnectionLimit {
    pub fn new(max: usize) -> Arc<ConnectionLimit> {
        Arc::new(ConnectionLimit {
            free: Semaphore::new(max),
            owed: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        })
    }

    /// Waits until fewer connections than the limit are open.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        (self.free.acquire().await)
            .expect("the connection semaphore is never closed")
            .forget();
        Permit(Arc::clone(self))
    }

    /// Changes the limit to `max`. Raising it pays off what is owed first.
    pub fn set(&self, max: usize) {
        let before = self.max.swap(max, Ordering::Relaxed);
        if max >= before {
            let raise = max - before;
            let cancelled = self.take_owed(raise);
            self.free.add_permits(raise - cancelled);
        } else {
            self.owed.fetch_add(before - max, Ordering::Relaxed);
            // Free permits pay at once. Taken from what is owed before forgetting, so that a
            // connection closing meanwhile can't pay the same debt twice.
            let paying = self.take_owed(self.free.available_permits());
            let paid = self.free.forget_permits(paying);
            self.owed.fetch_add(paying - paid, Ordering::Relaxed);
        }
    }

    /// The limit as last set.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Takes up to `most` from what is owed; returns how much it took.
    fn take_owed(&self, most: usize) -> usize {
        let mut taken = 0;
        let _ = (self.owed).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
            taken = owed.min(most);
            Some(owed - taken)
        });
        taken
    }

    #[cfg(test)]
    fn open_slots(&self) -> usize {
        self.free.available_permits()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // One relaxed load when nothing is owed, which is nearly always.
        let limit = &self.0;
        if limit.owed.load(Ordering::Relaxed) == 0 || limit.take_owed(1) == 0 {
            limit.free.add_permits(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(limit: &Arc<ConnectionLimit>, count: usize) -> Vec<Permit> {
        (0..count)
            .map(|_| {
                let permit = limit.free.try_acquire().expect("a free slot");
                permit.forget();
                Permit(Arc::clone(limit))
            })
            .collect()
    }

    #[test]
    fn a_lowered_limit_forgets_free_slots_at_once() {
        let limit = ConnectionLimit::new(10);
        let _open = open(&limit, 3);
        limit.set(5);
        assert_eq!(limit.open_slots(), 2);
        assert_eq!(limit.owed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_limit_lowered_below_the_open_connections_takes_effect_as_they_close() {
        let limit = ConnectionLimit::new(10);
        let mut open = open(&limit, 8);
        limit.set(3);
        assert_eq!(limit.open_slots(), 0, "no new connection until 5 close");
        for closed in 1..=5 {
            open.pop();
            assert_eq!(limit.open_slots(), 0, "after {closed} closed");
        }
        open.pop();
        assert_eq!(limit.open_slots(), 1, "2 open under a limit of 3");
        drop(open);
        assert_eq!(limit.open_slots(), 3);
    }

    #[test]
    fn raising_the_limit_again_cancels_what_is_owed_first() {
        let limit = ConnectionLimit::new(10);
        let open = open(&limit, 10);
        limit.set(4);
        assert_eq!(limit.owed.load(Ordering::Relaxed), 6);
        limit.set(7);
        assert_eq!(limit.owed.load(Ordering::Relaxed), 3);
        assert_eq!(limit.open_slots(), 0);
        limit.set(12);
        assert_eq!(limit.owed.load(Ordering::Relaxed), 0);
        assert_eq!(limit.open_slots(), 2);
        drop(open);
        assert_eq!(limit.open_slots(), 12);
    }

    #[test]
    fn lowering_twice_owes_both_and_closing_all_leaves_the_last_limit() {
        let limit = ConnectionLimit::new(6);
        let open = open(&limit, 5);
        limit.set(4);
        assert_eq!(limit.open_slots(), 0);
        limit.set(2);
        drop(open);
        assert_eq!(limit.open_slots(), 2);
        assert_eq!(limit.owed.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn acquire_waits_for_a_slot_under_the_current_limit() {
        let limit = ConnectionLimit::new(2);
        let first = limit.acquire().await;
        let _second = limit.acquire().await;
        limit.set(1);
        let waiting = tokio::spawn({
            let limit = Arc::clone(&limit);
            async move { limit.acquire().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "one is still open under a limit of 1"
        );
        drop(_second);
        let _third = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a slot frees once none is open")
            .unwrap();
    }
}
