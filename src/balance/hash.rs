//! Source and URI hashing by weighted rendezvous (highest random weight) hashing.
//!
//! Each server draws a pseudo-random score for the key from a hash of the key and the server's
//! name, and the best score wins. A server leaving (down, drained, excluded or removed) thus
//! moves only the keys it was winning, each to its runner-up, and they come back with it.
//! Seeding by name rather than list position or address keeps the mapping the same on both
//! nodes of a pair, across reloads and whatever the order of the server list.

use std::net::IpAddr;

use xxhash_rust::xxh3::xxh3_64;

use super::{Key, Selector, ServerView};
use crate::config::Server;

/// The part of a request that is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashOn {
    ClientIp,
    /// [`Key::uri`] as given.
    Uri,
}

pub struct Hash {
    on: HashOn,
    /// The servers not drained.
    members: Box<[Member]>,
    /// All weights equal: the raw draw then ranks servers exactly as the weighted score would,
    /// without a logarithm per server.
    uniform: bool,
}

struct Member {
    index: usize,
    name_hash: u64,
    weight: f64,
}

impl Hash {
    pub fn new(on: HashOn, servers: &[Server]) -> Self {
        let members: Box<[Member]> = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.weight > 0)
            .map(|(index, s)| Member {
                index,
                name_hash: xxh3_64(s.name.as_bytes()),
                weight: f64::from(s.weight),
            })
            .collect();
        let uniform = members
            .windows(2)
            .all(|pair| pair[0].weight == pair[1].weight);
        Self {
            on,
            members,
            uniform,
        }
    }

    /// The best-scoring available member. An exact tie goes to the higher name hash, never to
    /// list position, so that list order can't matter.
    fn best<S: PartialOrd + Copy>(
        &self,
        servers: &dyn ServerView,
        exclude: &[usize],
        score: impl Fn(&Member) -> S,
    ) -> Option<usize> {
        let mut best: Option<(S, u64, usize)> = None;
        for member in self
            .members
            .iter()
            // A full server is not skipped: its keys wait for it (in the backend's queue), as
            // HAProxy queues on the hashed server, so that they never move while it is up.
            .filter(|m| !exclude.contains(&m.index) && servers.is_up(m.index))
        {
            let candidate = (score(member), member.name_hash, member.index);
            if best.is_none_or(|best| (candidate.0, candidate.1) > (best.0, best.1)) {
                best = Some(candidate);
            }
        }
        best.map(|(_, _, index)| index)
    }
}

impl Selector for Hash {
    fn pick(&self, servers: &dyn ServerView, key: &Key<'_>, exclude: &[usize]) -> Option<usize> {
        let key_hash = match self.on {
            // A dual-stack listener reports IPv4 clients as mapped IPv6 addresses; hashing the
            // IPv4 form keeps such a client on the same server as through an IPv4 listener.
            HashOn::ClientIp => match key.client_ip.to_canonical() {
                IpAddr::V4(ip) => xxh3_64(&ip.octets()),
                IpAddr::V6(ip) => xxh3_64(&ip.octets()),
            },
            HashOn::Uri => xxh3_64(key.uri.as_bytes()),
        };
        let draw = |member: &Member| {
            let mut pair = [0; 16];
            pair[..8].copy_from_slice(&key_hash.to_le_bytes());
            pair[8..].copy_from_slice(&member.name_hash.to_le_bytes());
            xxh3_64(&pair)
        };
        if self.uniform {
            self.best(servers, exclude, draw)
        } else {
            // weight / -ln(u) for u uniform in (0, 1) wins with probability proportional to weight.
            self.best(servers, exclude, |member| {
                member.weight / -unit(draw(member)).ln()
            })
        }
    }
}

/// The top 53 bits of a hash as a float strictly inside (0, 1), increasing with the hash.
fn unit(hash: u64) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    ((hash >> 11) as f64 + 0.5) * SCALE
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::testing::{retry_order, servers, View, KEY};
    use super::*;

    const KEYS: u32 = 10_000;

    fn ip_key(i: u32) -> Key<'static> {
        Key {
            client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            ..KEY
        }
    }

    /// The server name each of the test keys maps to (`None`: no server).
    fn mapping(selector: &Hash, list: &[Server], view: &View) -> Vec<Option<String>> {
        (0..KEYS)
            .map(|i| {
                selector
                    .pick(view, &ip_key(i), &[])
                    .map(|s| list[s].name.clone())
            })
            .collect()
    }

    fn source_hash(list: &[Server]) -> Hash {
        Hash::new(HashOn::ClientIp, list)
    }

    fn count(map: &[Option<String>], name: &str) -> usize {
        map.iter().filter(|s| s.as_deref() == Some(name)).count()
    }

    /// Checks that going from `before` to `after` moved exactly the keys `gone` had, about
    /// `expected` of them, and spread them over all of the other `servers`.
    fn only_keys_of(
        gone: &str,
        expected: usize,
        servers: &[Server],
        before: &[Option<String>],
        after: &[Option<String>],
    ) {
        let mut moved = 0;
        for (was, is) in before.iter().zip(after) {
            if was.as_deref() == Some(gone) {
                assert_ne!(is, was);
                moved += 1;
            } else {
                assert_eq!(is, was, "a key moved off a server that stayed");
            }
        }
        assert!(
            moved * 5 > expected * 4 && moved * 5 < expected * 6,
            "{moved} keys moved, ~{expected} expected"
        );
        for receiver in servers.iter().map(|s| &s.name).filter(|&name| name != gone) {
            assert!(
                count(after, receiver) > count(before, receiver),
                "{receiver} took none"
            );
        }
    }

    #[test]
    fn the_same_key_always_gets_the_same_server() {
        let list = servers(&[1; 5]);
        let view = View::all_up(5);
        let selector = source_hash(&list);
        let first = mapping(&selector, &list, &view);
        assert_eq!(mapping(&selector, &list, &view), first);
        assert_eq!(
            mapping(&source_hash(&list), &list, &view),
            first,
            "changed on rebuild"
        );
        let by_uri = Hash::new(HashOn::Uri, &list);
        let uri = Key {
            uri: "/cart?id=7",
            ..KEY
        };
        let server = by_uri.pick(&view, &uri, &[]);
        for i in 0..100 {
            assert_eq!(
                by_uri.pick(
                    &view,
                    &Key {
                        uri: uri.uri,
                        ..ip_key(i)
                    },
                    &[]
                ),
                server
            );
        }
    }

    #[test]
    fn equal_weights_spread_keys_evenly() {
        for n in [4, 5, 10] {
            let list = servers(&vec![1; n]);
            let map = mapping(&source_hash(&list), &list, &View::all_up(n));
            let fair = KEYS as usize / n;
            for server in &list {
                let got = count(&map, &server.name);
                assert!(
                    got * 10 > fair * 9 && got * 10 < fair * 11,
                    "{}: {got}",
                    server.name
                );
            }
        }
        let list = servers(&[1; 4]);
        let by_uri = Hash::new(HashOn::Uri, &list);
        let mut counts = [0; 4];
        for i in 0..KEYS {
            let uri = format!("/static/{i}.png");
            counts[by_uri
                .pick(&View::all_up(4), &Key { uri: &uri, ..KEY }, &[])
                .unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 2250 && c < 2750), "{counts:?}");
    }

    #[test]
    fn weights_set_the_shares() {
        let weights = [1, 2, 3, 4];
        let list = servers(&weights);
        let map = mapping(&source_hash(&list), &list, &View::all_up(4));
        for (server, weight) in list.iter().zip(weights) {
            let fair = KEYS as usize * weight as usize / 10;
            let got = count(&map, &server.name);
            assert!(
                got * 10 > fair * 9 && got * 10 < fair * 11,
                "{}: {got}",
                server.name
            );
        }
    }

    #[test]
    fn downing_a_server_moves_only_its_keys_and_they_come_back() {
        for n in [4, 5, 10] {
            let uniform = vec![1; n];
            let weighted: Vec<u32> = (1..=n as u32).collect();
            for weights in [uniform, weighted] {
                let list = servers(&weights);
                let selector = source_hash(&list);
                let mut view = View::all_up(n);
                let before = mapping(&selector, &list, &view);
                for down in 0..n {
                    view.up[down] = false;
                    let after = mapping(&selector, &list, &view);
                    let share = weights[down] as usize * KEYS as usize;
                    let expected = share / weights.iter().sum::<u32>() as usize;
                    only_keys_of(&list[down].name, expected, &list, &before, &after);
                    view.up[down] = true;
                    assert_eq!(
                        mapping(&selector, &list, &view),
                        before,
                        "keys didn't come back"
                    );
                }
            }
        }
    }

    #[test]
    fn removing_or_draining_a_server_moves_only_its_keys() {
        for n in [4, 5, 10] {
            let list = servers(&vec![1; n]);
            let view = View::all_up(n);
            let before = mapping(&source_hash(&list), &list, &view);
            for gone in 0..n {
                let mut removed = list.clone();
                removed.remove(gone);
                let after = mapping(&source_hash(&removed), &removed, &View::all_up(n - 1));
                only_keys_of(&list[gone].name, KEYS as usize / n, &list, &before, &after);

                let mut drained = list.clone();
                drained[gone].weight = 0;
                assert_eq!(mapping(&source_hash(&drained), &drained, &view), after);
            }
        }
    }

    #[test]
    fn the_list_order_does_not_matter() {
        for weights in [[1; 6], [3, 1, 4, 1, 5, 9]] {
            let list = servers(&weights);
            let view = View::all_up(6);
            let original = mapping(&source_hash(&list), &list, &view);
            let mut reversed = list.clone();
            reversed.reverse();
            assert_eq!(mapping(&source_hash(&reversed), &reversed, &view), original);
            let mut rotated = list.clone();
            rotated.rotate_left(2);
            assert_eq!(mapping(&source_hash(&rotated), &rotated, &view), original);
        }
    }

    #[test]
    fn the_mapping_is_pinned() {
        // Both nodes of a pair, and old and new versions during an upgrade, must agree: a change
        // here moves every client, so it has to be deliberate.
        let list = servers(&[1; 4]);
        let uniform = source_hash(&list);
        let view = View::all_up(4);
        let picks: Vec<usize> = (0..12)
            .map(|i| uniform.pick(&view, &ip_key(i), &[]).unwrap())
            .collect();
        assert_eq!(picks, [3, 0, 3, 3, 2, 1, 2, 1, 3, 3, 3, 3]);
        let list = servers(&[1, 2, 3, 4]);
        let weighted = Hash::new(HashOn::Uri, &list);
        let uris = [
            "/",
            "/a",
            "/b?x=1",
            "/index.html",
            "/api/v1/users",
            "/img/logo.png",
        ];
        let picks: Vec<usize> = uris
            .iter()
            .map(|&uri| weighted.pick(&view, &Key { uri, ..KEY }, &[]).unwrap())
            .collect();
        assert_eq!(picks, [2, 3, 2, 1, 2, 3]);
    }

    #[test]
    fn exact_ties_go_by_name_not_list_position() {
        let list = servers(&[1; 3]);
        let mut reversed = list.clone();
        reversed.reverse();
        let view = View::all_up(3);
        let winner = |list: &[Server]| {
            let tied = source_hash(list).best(&view, &[], |_| 0u64);
            list[tied.unwrap()].name.clone()
        };
        assert_eq!(winner(&list), winner(&reversed));
    }

    #[test]
    fn retries_follow_the_next_best_scores() {
        let list = servers(&[1; 6]);
        let mut view = View::all_up(6);
        let selector = source_hash(&list);
        for i in 0..100 {
            let key = ip_key(i);
            let order = retry_order(&selector, &view, &key);
            assert_eq!(order.len(), 6);
            assert_eq!(retry_order(&selector, &view, &key), order);
            // A retry goes where the key would go were the failed server down.
            view.up[order[0]] = false;
            assert_eq!(selector.pick(&view, &key, &[]), Some(order[1]));
            assert_eq!(retry_order(&selector, &view, &key), order[1..]);
            view.up[order[0]] = true;
        }
    }

    #[test]
    fn equal_weights_rank_as_the_weighted_score_would() {
        let list = servers(&[7; 5]);
        let shortcut = source_hash(&list);
        let scored = Hash {
            uniform: false,
            ..source_hash(&list)
        };
        assert!(shortcut.uniform);
        let view = View::all_up(5);
        for i in 0..1000 {
            let key = ip_key(i);
            assert_eq!(
                retry_order(&shortcut, &view, &key),
                retry_order(&scored, &view, &key)
            );
        }
    }

    #[test]
    fn an_ipv4_client_hashes_alike_over_ipv6() {
        let selector = source_hash(&servers(&[1; 8]));
        let view = View::all_up(8);
        for i in 0..100 {
            let v4 = Ipv4Addr::from(0xc000_0200 + i);
            let mapped = Key {
                client_ip: IpAddr::V6(v4.to_ipv6_mapped()),
                ..KEY
            };
            let native = Key {
                client_ip: IpAddr::V4(v4),
                ..KEY
            };
            assert_eq!(
                selector.pick(&view, &mapped, &[]),
                selector.pick(&view, &native, &[])
            );
        }
        let v6 = |i: u16| Key {
            client_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)),
            ..KEY
        };
        let mut seen: Vec<_> = (0..64).map(|i| selector.pick(&view, &v6(i), &[])).collect();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() > 4, "IPv6 clients all land on {seen:?}");
    }

    #[test]
    fn a_full_server_keeps_its_keys() {
        let list = servers(&[1; 4]);
        let selector = source_hash(&list);
        let mut view = View::all_up(4);
        let before = mapping(&selector, &list, &view);
        view.full = vec![true; 4];
        assert_eq!(mapping(&selector, &list, &view), before);
    }

    #[test]
    fn none_when_no_server_is_eligible() {
        let list = servers(&[1, 0, 2]);
        let view = View {
            up: vec![false, true, false],
            ..View::all_up(3)
        };
        assert_eq!(source_hash(&list).pick(&view, &KEY, &[]), None);
        assert_eq!(
            source_hash(&list).pick(&View::all_up(3), &KEY, &[0, 2]),
            None
        );
        assert_eq!(source_hash(&[]).pick(&View::all_up(0), &KEY, &[]), None);
    }
}
