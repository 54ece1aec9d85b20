//! Server selection: one small trait, one file per algorithm.
//!
//! A selector is built from a backend's configured servers off the hot path. Picking is
//! lock-free and consults a [`ServerView`] for what changes at run time (health, load), so the
//! same selector serves every worker thread and is tested without sockets.

use std::net::IpAddr;

/// What a selector may ask about the servers it was built for, indexed as in the config.
pub trait ServerView {
    /// Up by health checks (a drained, weight-0 server is excluded by the selector itself).
    fn is_up(&self, server: usize) -> bool;
    /// Active connections (tcp) or in-flight requests (http).
    fn active(&self, server: usize) -> u64;
}

/// What a request offers to the hashing selectors.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub client_ip: IpAddr,
    /// The request path, with the query when the backend hashes it; empty in tcp mode.
    pub uri: &'a str,
}

pub trait Selector: Send + Sync {
    /// The server to use: eligible (up, weight > 0) and not in `exclude` (servers already tried
    /// for this request). Calling again with the previous picks excluded yields the retry order.
    fn pick(&self, servers: &dyn ServerView, key: &Key<'_>, exclude: &[usize]) -> Option<usize>;
}
