//! The one attempt loop of tcp and http frontends: which server a request or connection tries
//! next, how many tries it gets, and the accounting every try shares. Modelled on Pingora's
//! `BackendIter`: the caller connects its own way (a pooled HTTP connection, or a plain socket)
//! and reports back; the order, the retry budget and the counters live here, so both modes agree.
//!
//! A server counts as busy (least_conn's load) from the moment it is picked, not once connected,
//! so that requests picking at the same time see the connects already under way.

use std::io;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::backend::{ActiveGuard, BackendState, ServerState};
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

impl<'a> Iterator for Attempts<'a> {
    type Item = Attempt<'a>;

    /// The next server to try: none once the backend's `retries` are used up or no eligible
    /// server is left. A retry is counted on the server it leaves.
    fn next(&mut self) -> Option<Attempt<'a>> {
        if self.tried.len() > self.backend.config.retries as usize {
            return None;
        }
        let backend = self.backend;
        let index = backend.pick_preferring(self.preferred, &self.key, &self.tried)?;
        if let Some(&previous) = self.tried.last() {
            backend.servers[previous].stats.retries.increment(1);
        }
        self.tried.push(index);
        let server = &backend.servers[index];
        Some(Attempt {
            index,
            server,
            active: server.track_active(),
        })
    }
}

impl Attempt<'_> {
    /// Connected: one more session for the server.
    pub fn connected(&self) {
        self.server.stats.sessions.increment(1);
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

    #[test]
    fn a_try_and_then_one_per_retry_each_on_a_server_not_yet_tried() {
        let backend = with_retries(&["s1", "s2", "s3"], 1);
        let mut attempts = Attempts::new(&backend, key(), None);
        let first = attempts.next().expect("a first try").index;
        let second = attempts.next().expect("one retry").index;
        assert_ne!(first, second);
        assert!(attempts.next().is_none(), "retries are used up");
        assert_eq!(attempts.tried(), 2);
    }

    #[test]
    fn tries_end_when_every_server_has_been_tried() {
        let backend = with_retries(&["s1", "s2"], 5);
        let mut attempts = Attempts::new(&backend, key(), None);
        assert!(attempts.next().is_some());
        assert!(attempts.next().is_some());
        assert!(attempts.next().is_none());
    }

    #[test]
    fn the_pinned_server_is_tried_first() {
        let backend = with_retries(&["s1", "s2", "s3"], 0);
        let mut attempts = Attempts::new(&backend, key(), Some(2));
        assert_eq!(attempts.next().map(|attempt| attempt.index), Some(2));
    }

    #[test]
    fn a_server_is_busy_from_its_pick_until_the_try_is_dropped() {
        let backend = with_retries(&["s1"], 0);
        let mut attempts = Attempts::new(&backend, key(), None);
        let attempt = attempts.next().expect("a try");
        assert_eq!(
            backend.servers[0].current_sessions(),
            1,
            "busy before any connect"
        );
        drop(attempt);
        assert_eq!(backend.servers[0].current_sessions(), 0);
    }

    #[test]
    fn a_failed_connect_takes_a_checked_server_down() {
        let backend = with_retries(&["s1"], 0);
        let mut attempts = Attempts::new(&backend, key(), None);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let failed = attempts.next().expect("a try").connect_failed(&refused);
        assert!(failed.is_ok(), "a refused connect is the server's");
        assert!(
            !backend.servers[0].is_up(),
            "one result makes the fixture fall"
        );
    }

    #[test]
    fn running_out_of_descriptors_blames_no_server() {
        let backend = with_retries(&["s1", "s2"], 1);
        let mut attempts = Attempts::new(&backend, key(), None);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let failed = attempts.next().expect("a try").connect_failed(&emfile);
        assert!(failed.is_err(), "a local shortage ends the tries");
        assert!(backend.servers.iter().all(|server| server.is_up()));
    }
}
