//! A frontend's `client_limits.connections`: connections open per client address, counted over
//! all workers. An address has an entry only while it has a connection open, so the counts
//! take no more memory than the connections themselves (bounded by `max_connections`). The
//! limit is not kept here but passed to each check, from the config the connection started
//! under: a reload changes it for new connections, and the counts carry on.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Independently locked parts, so that workers accepting at once rarely wait for one another:
/// a power of two.
const SHARDS: usize = 16;

/// Open connections per client address.
pub struct ClientConnections {
    shards: [Shard; SHARDS],
    /// Random per process (SipHash), so that no one can choose addresses that crowd one shard
    /// or one bucket.
    hasher: RandomState,
}

/// A shard on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<HashMap<IpAddr, u32>>);

/// One connection's place in its address's count, given back when dropped.
pub struct ClientPermit {
    connections: Arc<ClientConnections>,
    address: IpAddr,
}

impl ClientConnections {
    pub fn new() -> Arc<ClientConnections> {
        Arc::new(ClientConnections {
            shards: Default::default(),
            hasher: RandomState::new(),
        })
    }

    /// Counts a connection from `address` if it has fewer than `limit` open; `None` if not.
    /// An IPv4-mapped IPv6 address counts as the IPv4 one.
    pub fn try_open(self: &Arc<Self>, address: IpAddr, limit: u32) -> Option<ClientPermit> {
        let address = address.to_canonical();
        let mut counts = self.shard(address);
        let open = counts.entry(address).or_insert(0);
        if *open >= limit {
            // Never zero here: a limit is at least 1, so a refused address has connections.
            return None;
        }
        *open += 1;
        drop(counts);
        Some(ClientPermit {
            connections: Arc::clone(self),
            address,
        })
    }

    fn shard(&self, address: IpAddr) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        let index = self.hasher.hash_one(address) as usize & (SHARDS - 1);
        (self.shards[index].0.lock()).unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open from `address`.
    #[cfg(test)]
    fn open(&self, address: IpAddr) -> u32 {
        self.shard(address).get(&address).copied().unwrap_or(0)
    }

    /// Addresses with an entry.
    #[cfg(test)]
    fn entries(&self) -> usize {
        (self.shards.iter())
            .map(|shard| shard.0.lock().unwrap().len())
            .sum()
    }
}

impl Drop for ClientPermit {
    fn drop(&mut self) {
        let mut counts = self.connections.shard(self.address);
        if let Some(open) = counts.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_gets_the_limit_and_no_more() {
        let connections = ClientConnections::new();
        let client = address("192.0.2.1");
        let permits: Vec<_> = (0..3)
            .map(|_| connections.try_open(client, 3).expect("under the limit"))
            .collect();
        assert!(connections.try_open(client, 3).is_none());
        assert_eq!(connections.open(client), 3, "a refusal counts nothing");
        drop(permits);
        assert_eq!(connections.open(client), 0);
    }

    #[test]
    fn a_closed_connection_lets_the_next_one_in() {
        let connections = ClientConnections::new();
        let client = address("2001:db8::1");
        let first = connections.try_open(client, 2).unwrap();
        let _second = connections.try_open(client, 2).unwrap();
        assert!(connections.try_open(client, 2).is_none());
        drop(first);
        assert!(connections.try_open(client, 2).is_some());
    }

    #[test]
    fn addresses_are_counted_apart_and_mapped_ipv4_is_ipv4() {
        let connections = ClientConnections::new();
        let _a = connections.try_open(address("192.0.2.1"), 1).unwrap();
        let _b = connections.try_open(address("192.0.2.2"), 1).unwrap();
        assert!(connections
            .try_open(address("::ffff:192.0.2.1"), 1)
            .is_none());
        assert_eq!(connections.open(address("192.0.2.2")), 1);
    }

    #[test]
    fn each_check_uses_the_limit_it_is_given() {
        let connections = ClientConnections::new();
        let client = address("198.51.100.9");
        let open: Vec<_> = (0..3)
            .map(|_| connections.try_open(client, 3).unwrap())
            .collect();
        // Lowered to 1 by a reload: the three stay open, a new one is refused until one is
        // left.
        assert!(connections.try_open(client, 1).is_none());
        let mut open = open;
        open.truncate(1);
        assert!(connections.try_open(client, 1).is_none());
        open.clear();
        assert!(connections.try_open(client, 1).is_some());
    }

    #[test]
    fn an_address_has_an_entry_only_while_it_has_connections() {
        let connections = ClientConnections::new();
        let permits: Vec<_> = (0..1000u32)
            .map(|index| {
                let client = IpAddr::from((0xC000_0200 + index).to_be_bytes());
                connections.try_open(client, 1).unwrap()
            })
            .collect();
        assert_eq!(connections.entries(), 1000);
        drop(permits);
        assert_eq!(connections.entries(), 0);
    }

    #[test]
    fn counts_hold_over_threads() {
        let connections = ClientConnections::new();
        let client = address("203.0.113.5");
        let admitted: Vec<ClientPermit> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let connections = &connections;
                    scope.spawn(move || {
                        (0..50)
                            .filter_map(|_| connections.try_open(client, 20))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            (workers.into_iter())
                .flat_map(|worker| worker.join().unwrap())
                .collect()
        });
        assert_eq!(admitted.len(), 20);
        drop(admitted);
        assert_eq!(connections.entries(), 0);
    }
}
