//! The one attempt loop of tcp and http frontends: which server a request or connection tries
//! next, how many tries it gets, and the accounting every try shares. Modelled on Pingora's
//! `BackendIter`: the caller connects its own way (a pooled HTTP connection, or a plain socket)
//! and reports back; the order, the retry budget and the counters live here, so both modes agree.
//!
//! A server counts as busy (least_conn's load) from the moment it is picked, not once connected,
//! so that requests picking at the same time see the connects already under way. When every
//! eligible server is at its `max_connections`, the try waits here in the backend's queue.

use std::io;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::backend::{ActiveGuard, Admission, BackendState, Refused, ServerState};
use crate::balance::Key;
use crate::limits;
use crate::stats::Shortage;

/// The servers to try for one request or connection, in order.
pub struct Attempts<'a> {
    backend: &'a BackendState,
    key: Key<'a>,
    /// A server the client is pinned to: tried first while it is up.
    preferred: Option<usize>,
    /// Inline: nearly everything is placed at the first try, and needs no allocation for it.
    tried: SmallVec<[usize; 4]>,
}

/// This host ran out of what a connection to a server needs.
#[derive(Debug)]
pub struct LocalShortage;

/// One try at one server; the server counts as busy until this (or its guard) drops.
pub struct Attempt<'a> {
    pub index: usize,
    pub server: &'a Arc<ServerState>,
    pub active: ActiveGuard,
}

impl<'a> Attempts<'a> {
    pub fn new(backend: &'a BackendState, key: Key<'a>, preferred: Option<usize>) -> Self {
        Attempts {
            backend,
            key,
            preferred,
            tried: SmallVec::new(),
        }
    }

    /// How many servers have been tried.
    pub fn tried(&self) -> usize {
        self.tried.len()
    }
}

impl<'a> Attempts<'a> {
    /// The next server to try, after waiting for one to have room if every eligible one is
    /// full. `Err` once the backend's `retries` are used up or no eligible server is left, or
    /// the queue refused. A retry is counted on the server it leaves.
    pub async fn next(&mut self) -> Result<Attempt<'a>, Refused> {
        if self.tried.len() > self.backend.config.retries as usize {
            return Err(Refused::NoServer);
        }
        let backend = self.backend;
        let (index, active) = match backend.admit(self.preferred, &self.key, &self.tried) {
            Admission::Go(index, active) => (index, active),
            Admission::NoServer => return Err(Refused::NoServer),
            // Boxed: only a try that waits carries the waiting future.
            Admission::Wait(_) => {
                Box::pin(backend.wait_for_room(self.preferred, &self.key, &self.tried)).await?
            }
        };
        if let Some(&previous) = self.tried.last() {
            backend.servers[previous].stats.retries.increment(1);
        }
        self.tried.push(index);
        Ok(Attempt {
            index,
            server: &backend.servers[index],
            active,
        })
    }
}

impl Attempt<'_> {
    /// Connected: one more session for the server, and one more connection attempt when
    /// the connection is `new` (not a pooled one reused).
    pub fn connected(&self, new: bool) {
        self.server.stats.sessions.increment(1);
        if new {
            self.server.stats.connection_attempts.increment(1);
        }
    }

    /// The connect failed with `error`: counted against the server, and fed to its health as a
    /// failed check. `Err` when this host is short of descriptors, ports or memory instead: no
    /// server is to blame and any other would fail alike, so the tries end (counted, and logged
    /// thinned).
    pub fn connect_failed(&self, error: &io::Error) -> Result<(), LocalShortage> {
        if limits::is_shortage(error) {
            limits::shortage(Shortage::ServerConnect, error);
            return Err(LocalShortage);
        }
        self.server.stats.connection_attempts.increment(1);
        self.server.stats.connection_errors.increment(1);
        self.server
            .record_check(false, &format!("connect: {error}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::backend::checked_backend;

    fn key() -> Key<'static> {
        Key {
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uri: "",
        }
    }

    fn with_retries(servers: &[&str], retries: u32) -> BackendState {
        let mut config = checked_backend(servers).config;
        config.retries = retries;
        crate::backend::built(config)
    }

    #[tokio::test]
    async fn a_try_and_then_one_per_retry_each_on_a_server_not_yet_tried() {
        let backend = with_retries(&["s1", "s2", "s3"], 1);
        let mut attempts = Attempts::new(&backend, key(), None);
        let first = attempts.next().await.expect("a first try").index;
        let second = attempts.next().await.expect("one retry").index;
        assert_ne!(first, second);
        assert!(attempts.next().await.is_err(), "retries are used up");
        assert_eq!(attempts.tried(), 2);
    }

    #[tokio::test]
    async fn tries_end_when_every_server_has_been_tried() {
        let backend = with_retries(&["s1", "s2"], 5);
        let mut attempts = Attempts::new(&backend, key(), None);
        assert!(attempts.next().await.is_ok());
        assert!(attempts.next().await.is_ok());
        assert!(attempts.next().await.is_err());
    }

    #[tokio::test]
    async fn the_pinned_server_is_tried_first() {
        let backend = with_retries(&["s1", "s2", "s3"], 0);
        let mut attempts = Attempts::new(&backend, key(), Some(2));
        assert_eq!(
            attempts.next().await.map(|attempt| attempt.index).ok(),
            Some(2)
        );
    }

    #[tokio::test]
    async fn a_server_is_busy_from_its_pick_until_the_try_is_dropped() {
        let backend = with_retries(&["s1"], 0);
        let mut attempts = Attempts::new(&backend, key(), None);
        let attempt = attempts.next().await.expect("a try");
        assert_eq!(
            backend.servers[0].current_sessions(),
            1,
            "busy before any connect"
        );
        drop(attempt);
        assert_eq!(backend.servers[0].current_sessions(), 0);
    }

    #[tokio::test]
    async fn a_failed_connect_takes_a_checked_server_down() {
        let backend = with_retries(&["s1"], 0);
        let mut attempts = Attempts::new(&backend, key(), None);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let failed = attempts
            .next()
            .await
            .expect("a try")
            .connect_failed(&refused);
        assert!(failed.is_ok(), "a refused connect is the server's");
        assert!(
            !backend.servers[0].is_up(),
            "one result makes the fixture fall"
        );
    }

    #[tokio::test]
    async fn running_out_of_descriptors_blames_no_server() {
        let backend = with_retries(&["s1", "s2"], 1);
        let mut attempts = Attempts::new(&backend, key(), None);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let failed = attempts
            .next()
            .await
            .expect("a try")
            .connect_failed(&emfile);
        assert!(failed.is_err(), "a local shortage ends the tries");
        assert!(backend.servers.iter().all(|server| server.is_up()));
    }

    /// Servers s1, s2... each taking one request at a time, round robin.
    fn limited(
        servers: &[&str],
        queue_size: usize,
        balance: crate::config::Balance,
    ) -> BackendState {
        let mut config = checked_backend(servers).config;
        config.queue_size = queue_size;
        config.balance = balance;
        for server in &mut config.servers {
            server.max_connections = Some(1);
        }
        crate::backend::built(config)
    }

    #[tokio::test(start_paused = true)]
    async fn full_servers_are_skipped_and_then_waited_for_first_come_first_served() {
        let backend = limited(&["s1", "s2"], 4, crate::config::Balance::RoundRobin);
        let first = Attempts::new(&backend, key(), None).next().await.unwrap();
        let second = Attempts::new(&backend, key(), None).next().await.unwrap();
        assert_ne!(first.index, second.index, "a full server is skipped");
        let (third, fourth) = {
            let mut third = Attempts::new(&backend, key(), None);
            let mut fourth = Attempts::new(&backend, key(), None);
            let third = third.next();
            let fourth = fourth.next();
            tokio::pin!(third, fourth);
            assert!(
                futures_util::poll!(&mut third).is_pending(),
                "every server is full: it waits"
            );
            assert!(futures_util::poll!(&mut fourth).is_pending());
            assert_eq!(backend.queue.waiting(), 2);
            let freed = second.index;
            drop(second);
            let third = third.await.expect("the first waiter gets the slot");
            assert_eq!(third.index, freed);
            assert!(
                futures_util::poll!(&mut fourth).is_pending(),
                "the second waits on"
            );
            drop(first);
            (third, fourth.await.expect("then the second"))
        };
        assert_eq!(backend.queue.waiting(), 0);
        assert!(backend
            .servers
            .iter()
            .all(|server| server.current_sessions() == 1));
        drop((third, fourth));
        assert!(backend
            .servers
            .iter()
            .all(|server| server.current_sessions() == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_at_once_and_a_long_wait_times_out() {
        let backend = limited(&["s1"], 1, crate::config::Balance::RoundRobin);
        let _busy = Attempts::new(&backend, key(), None).next().await.unwrap();
        let mut waiter = Attempts::new(&backend, key(), None);
        let waiting = waiter.next();
        tokio::pin!(waiting);
        assert!(futures_util::poll!(&mut waiting).is_pending());
        let refused = Attempts::new(&backend, key(), None).next().await;
        assert_eq!(refused.err(), Some(Refused::QueueFull));
        let started = tokio::time::Instant::now();
        assert_eq!(waiting.await.err(), Some(Refused::QueueTimeout));
        assert_eq!(started.elapsed(), backend.config.queue_timeout);
        assert_eq!(backend.queue.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_passes_its_place_and_any_slot_on() {
        let backend = limited(&["s1"], 4, crate::config::Balance::RoundRobin);
        let busy = Attempts::new(&backend, key(), None).next().await.unwrap();
        let mut gone = Attempts::new(&backend, key(), None);
        let mut stays = Attempts::new(&backend, key(), None);
        {
            let gone = gone.next();
            tokio::pin!(gone);
            assert!(futures_util::poll!(&mut gone).is_pending());
        }
        assert_eq!(backend.queue.waiting(), 0, "its place is given up");
        let stays = stays.next();
        tokio::pin!(stays);
        assert!(futures_util::poll!(&mut stays).is_pending());
        drop(busy);
        let got = stays.await.unwrap();
        drop(got);
        assert_eq!(backend.servers[0].current_sessions(), 0, "no slot is lost");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hashed_key_waits_for_its_own_server_while_another_has_room() {
        let backend = limited(&["s1", "s2"], 4, crate::config::Balance::SourceHash);
        let own = Attempts::new(&backend, key(), None).next().await.unwrap();
        let mut again = Attempts::new(&backend, key(), None);
        let waiting = again.next();
        tokio::pin!(waiting);
        assert!(futures_util::poll!(&mut waiting).is_pending());
        let other = 1 - own.index;
        assert_eq!(backend.servers[other].current_sessions(), 0);
        assert_eq!(backend.queue.waiting_for(&backend.servers[own.index]), 1);
        let index = own.index;
        drop(own);
        assert_eq!(waiting.await.unwrap().index, index);
    }

    #[tokio::test]
    async fn without_limits_nothing_waits() {
        let backend = with_retries(&["s1"], 0);
        let attempts: Vec<_> = futures_util::future::join_all(
            (0..50).map(|_| async { Attempts::new(&backend, key(), None).next().await.unwrap() }),
        )
        .await;
        assert_eq!(backend.servers[0].current_sessions(), 50);
        drop(attempts);
        assert_eq!(backend.servers[0].current_sessions(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backups_slot_never_goes_to_a_request_waiting_for_the_primaries() {
        let mut config = checked_backend(&["p1", "b1"]).config;
        for server in &mut config.servers {
            server.max_connections = Some(1);
        }
        config.servers[1].backup = true;
        let backend = crate::backend::built(config);
        backend.servers[0].record_check(false, "refused");
        let on_backup = Attempts::new(&backend, key(), None).next().await.unwrap();
        assert_eq!(on_backup.index, 1);
        backend.servers[0].record_check(true, "");
        let on_primary = Attempts::new(&backend, key(), None).next().await.unwrap();
        assert_eq!(on_primary.index, 0);
        let mut waiter = Attempts::new(&backend, key(), None);
        let waiting = waiter.next();
        tokio::pin!(waiting);
        assert!(futures_util::poll!(&mut waiting).is_pending());
        drop(on_backup);
        assert!(
            futures_util::poll!(&mut waiting).is_pending(),
            "the backup's slot is freed, not handed over"
        );
        assert_eq!(backend.servers[1].current_sessions(), 0);
        drop(on_primary);
        assert_eq!(waiting.await.unwrap().index, 0);
    }
}
