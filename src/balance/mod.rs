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
    /// Up and below its `max_connections` (always, without one), in one call: what every
    /// selector but the hashes asks. They skip a full server as a down one; the hashes ask
    /// `is_up` only, since their key belongs to one server, which it waits for.
    fn is_up_with_room(&self, server: usize) -> bool;
    /// The weight to balance by now for a server configured with `weight`, in
    /// [`slow_start::SCALE`]ths: less than its full weight while slow start ramps it up.
    fn effective_weight(&self, server: usize, weight: u32) -> u64;
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

mod first_up;
mod hash;
mod least_conn;
mod round_robin;
pub mod slow_start;
mod weighted_round_robin;

pub use first_up::FirstUp;
pub use hash::{Hash, HashOn};
pub use least_conn::LeastConn;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

use crate::config::{Balance, Server};

/// The selector for a backend's balance setting. Built once per (re)load, off the hot path.
pub fn selector(balance: Balance, servers: &[Server]) -> Box<dyn Selector> {
    match balance {
        Balance::RoundRobin => Box::new(RoundRobin::new(servers)),
        Balance::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(servers)),
        Balance::LeastConn => Box::new(LeastConn::new(servers)),
        Balance::SourceHash => Box::new(Hash::new(HashOn::ClientIp, servers)),
        // The caller has already cut the query off the key or not.
        Balance::UriHash { .. } => Box::new(Hash::new(HashOn::Uri, servers)),
    }
}

/// Whether a server not drained may take this request. Selectors leave drained servers out when
/// they are built, so only what changes per request is checked here; the exclusion list comes
/// first as it is cheaper than asking the view.
fn available(servers: &dyn ServerView, server: usize, exclude: &[usize]) -> bool {
    !exclude.contains(&server) && servers.is_up_with_room(server)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod testing {
    use std::net::{IpAddr, Ipv4Addr};

    use super::{Key, Selector, ServerView};
    use crate::config::Server;

    /// Health and load as plain vectors indexed like the server list.
    pub struct View {
        pub up: Vec<bool>,
        pub active: Vec<u64>,
        /// Servers at their `max_connections`.
        pub full: Vec<bool>,
        /// Effective weights of ramping servers, in `slow_start::SCALE`ths; `None`: the
        /// configured one.
        pub ramped: Vec<Option<u64>>,
    }

    impl View {
        pub fn all_up(n: usize) -> Self {
            Self {
                up: vec![true; n],
                active: vec![0; n],
                full: vec![false; n],
                ramped: vec![None; n],
            }
        }
    }

    impl ServerView for View {
        fn is_up(&self, server: usize) -> bool {
            self.up[server]
        }

        fn active(&self, server: usize) -> u64 {
            self.active[server]
        }

        fn is_up_with_room(&self, server: usize) -> bool {
            self.up[server] && !self.full[server]
        }

        fn effective_weight(&self, server: usize, weight: u32) -> u64 {
            self.ramped[server].unwrap_or(super::slow_start::full(weight))
        }
    }

    /// Servers named `s0`, `s1`... with these weights.
    pub fn servers(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Server {
                name: format!("s{i}"),
                address: std::net::SocketAddr::from(([10, 0, 0, 1], 8000 + i as u16)).into(),
                weight,
                tls: None,
                backup: false,
                max_connections: None,
                slow_start: None,
            })
            .collect()
    }

    pub const KEY: Key<'static> = Key {
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        uri: "/",
    };

    /// `count` fresh picks in a row.
    pub fn picks(selector: &dyn Selector, view: &View, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| selector.pick(view, &KEY, &[]).expect("a server"))
            .collect()
    }

    /// How often each of the view's servers is picked over `count` fresh picks.
    pub fn tally(selector: &dyn Selector, view: &View, count: usize) -> Vec<usize> {
        let mut counts = vec![0; view.up.len()];
        for server in picks(selector, view, count) {
            counts[server] += 1;
        }
        counts
    }

    /// `tally` run by several threads at once on the same selector, summed.
    pub fn concurrent_tally(
        selector: &dyn Selector,
        view: &View,
        threads: usize,
        count: usize,
    ) -> Vec<usize> {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| tally(selector, view, count)))
                .collect();
            workers
                .into_iter()
                .fold(vec![0; view.up.len()], |mut sum, worker| {
                    for (sum, count) in sum.iter_mut().zip(worker.join().unwrap()) {
                        *sum += count;
                    }
                    sum
                })
        })
    }

    /// The servers one request would try: each pick excludes the previous ones, until none is left.
    pub fn retry_order(selector: &dyn Selector, view: &View, key: &Key<'_>) -> Vec<usize> {
        let mut tried = Vec::new();
        while let Some(server) = selector.pick(view, key, &tried) {
            assert!(
                !tried.contains(&server),
                "{server} picked again in {tried:?}"
            );
            tried.push(server);
        }
        tried
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::testing::{picks, servers, View, KEY};
    use super::*;

    #[test]
    fn each_balance_setting_gets_its_algorithm() {
        let list = servers(&[3, 1]);
        let five_one_one = servers(&[5, 1, 1]);
        let rotation = |balance| picks(&*selector(balance, &five_one_one), &View::all_up(3), 7);
        assert_eq!(rotation(Balance::RoundRobin), [0, 0, 0, 1, 2, 0, 0]);
        assert_eq!(rotation(Balance::WeightedRoundRobin), [0, 0, 1, 0, 2, 0, 0]);

        let loaded = View {
            active: vec![9, 1],
            ..View::all_up(2)
        };
        let least = selector(Balance::LeastConn, &list);
        assert_eq!(least.pick(&loaded, &KEY, &[]), Some(1));

        // Source hashing follows the client and ignores the path; URI hashing does the opposite.
        let list = servers(&[1; 8]);
        let view = View::all_up(8);
        let spread = |balance, key: &dyn Fn(u32) -> Key<'static>| {
            let selector = selector(balance, &list);
            let mut seen: Vec<usize> = (0..64)
                .map(|i| selector.pick(&view, &key(i), &[]).unwrap())
                .collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        const URIS: [&str; 4] = ["/a", "/b", "/c", "/d"];
        let by_ip = |i: u32| Key {
            client_ip: IpAddr::V4(Ipv4Addr::from(i)),
            uri: "/",
        };
        let by_uri = |i: u32| Key {
            uri: URIS[i as usize % 4],
            ..KEY
        };
        assert!(spread(Balance::SourceHash, &by_ip) > 1);
        assert_eq!(spread(Balance::SourceHash, &by_uri), 1);
        assert!(spread(Balance::UriHash { hash_query: true }, &by_uri) > 1);
        assert_eq!(spread(Balance::UriHash { hash_query: false }, &by_ip), 1);
    }
}
