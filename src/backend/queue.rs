//! The queue before a backend's servers that have `max_connections`: requests (http) or
//! connections (tcp) that found every eligible server full wait here, first come first served,
//! for a slot, up to the backend's `queue_timeout` and `queue_size`.
//!
//! A slot is handed over, not freed: a request finishing on a full server gives its slot
//! straight to the first waiter that can use that server, so newcomers cannot overtake the
//! queue (as in HAProxy). Admission and release both take the queue's lock, so a slot never
//! frees unseen between a failed admission and the wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{ActiveGuard, ServerState};

#[derive(Default)]
pub struct Queue {
    waiting: Mutex<Waiting>,
    /// How many wait now, read without the lock (metrics, status).
    len: AtomicUsize,
}

#[derive(Default)]
pub struct Waiting {
    next_id: u64,
    waiters: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    /// The one server this waiter can use (hashing), by address of its state; `None`: any.
    target: Option<usize>,
    /// Whether it waits for a backup server (no primary was in service when it came).
    backup: bool,
    slot: oneshot::Sender<Slot>,
}

/// A slot on a server, in flight from the request that gave it up to one that waited.
pub struct Slot(Arc<ServerState>);

/// The queue is at its `queue_size`.
#[derive(Debug)]
pub struct Full;

/// A place in the queue; leaving it (dropped) gives back a slot it was handed meanwhile.
pub struct Ticket<'a> {
    queue: &'a Queue,
    id: u64,
    slot: oneshot::Receiver<Slot>,
    done: bool,
}

fn identity(server: &Arc<ServerState>) -> usize {
    Arc::as_ptr(server) as usize
}

impl Queue {
    pub fn waiting(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Waiters for `server` alone (the hashes'), for metrics.
    pub fn waiting_for(&self, server: &Arc<ServerState>) -> usize {
        let target = Some(identity(server));
        (self.lock().waiters.iter())
            .filter(|waiter| waiter.target == target)
            .count()
    }

    /// Held while deciding to wait, so that no slot frees unseen meanwhile.
    pub fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the end of the queue (`waiting` is this queue's, locked), for a slot on `target`
    /// or on any server of its role (`backup` or primary), unless `capacity` (the backend's
    /// `queue_size`, which a reload may change while the queue goes on) already wait.
    pub fn enqueue<'a>(
        &'a self,
        waiting: &mut Waiting,
        target: Option<&Arc<ServerState>>,
        backup: bool,
        capacity: usize,
    ) -> Result<Ticket<'a>, Full> {
        if waiting.waiters.len() >= capacity {
            return Err(Full);
        }
        let (sender, receiver) = oneshot::channel();
        let id = waiting.next_id;
        waiting.next_id += 1;
        waiting.waiters.push_back(Waiter {
            id,
            target: target.map(identity),
            backup,
            slot: sender,
        });
        self.len.store(waiting.waiters.len(), Relaxed);
        Ok(Ticket {
            queue: self,
            id,
            slot: receiver,
            done: false,
        })
    }

    /// A request on `server` ended: its slot goes to the first waiter that can use the server
    /// (of its role, and its key's server for the hashes) while it is up, not drained and
    /// still one of the backend's, or is freed. A server a reload or a DNS change replaced
    /// hands on nothing: waiters of the new backend could not use its slot.
    pub(super) fn release(&self, server: &Arc<ServerState>) {
        let mut waiting = self.lock();
        let usable = !server.retired.load(Relaxed) && !server.drained.load(Relaxed);
        if server.is_up() && usable {
            let id = identity(server);
            while let Some(at) = (waiting.waiters.iter()).position(|waiter| {
                waiter.backup == server.backup && waiter.target.is_none_or(|target| target == id)
            }) {
                let waiter = waiting.waiters.remove(at).expect("found just above");
                self.len.store(waiting.waiters.len(), Relaxed);
                // Fails only if the waiter went away, which takes this lock first: then the
                // next one gets the slot.
                if waiter.slot.send(Slot(Arc::clone(server))).is_ok() {
                    return;
                }
            }
        }
        server.active.fetch_sub(1, Relaxed);
    }

    /// Takes waiter `id` out; false if it was handed a slot already.
    fn leave(&self, id: u64) -> bool {
        let mut waiting = self.lock();
        let Some(at) = waiting.waiters.iter().position(|waiter| waiter.id == id) else {
            return false;
        };
        waiting.waiters.remove(at);
        self.len.store(waiting.waiters.len(), Relaxed);
        true
    }
}

impl Ticket<'_> {
    /// A slot on a server within `timeout`; `None` when none came.
    pub async fn wait(mut self, timeout: Duration) -> Option<ActiveGuard> {
        let handed = tokio::time::timeout(timeout, &mut self.slot).await;
        self.done = true;
        match handed {
            Ok(Ok(Slot(server))) => Some(ActiveGuard(server)),
            // Timed out; unless a slot came as it did.
            _ => match self.queue.leave(self.id) {
                true => None,
                false => self
                    .slot
                    .try_recv()
                    .ok()
                    .map(|Slot(server)| ActiveGuard(server)),
            },
        }
    }
}

impl Drop for Ticket<'_> {
    /// The request went away while waiting (its client closed): its place is given up, and a
    /// slot it was handed as it did is passed on.
    fn drop(&mut self) {
        if !self.done && !self.queue.leave(self.id) {
            if let Ok(Slot(server)) = self.slot.try_recv() {
                drop(ActiveGuard(server));
            }
        }
    }
}
