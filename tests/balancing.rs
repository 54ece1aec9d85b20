//! Each balancing algorithm's property, seen through a real tandem in front of real servers.

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use support::*;

async fn start_servers(names: &[&str]) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for name in names {
        servers.push(TestServer::start(name).await);
    }
    servers
}

fn weighted<'a>(servers: &'a [TestServer], weights: &[u32]) -> Vec<(&'a str, SocketAddr, u32)> {
    servers
        .iter()
        .zip(weights)
        .map(|(s, &w)| (s.name.as_str(), s.address, w))
        .collect()
}

async fn sequence(address: SocketAddr, count: usize) -> Vec<String> {
    let mut answered = Vec::new();
    for _ in 0..count {
        let answer = get(address, "/").await.unwrap();
        assert_eq!(answer.status, 200);
        answered.push(answer.server.unwrap());
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_rotates_strictly_with_equal_weights() {
    let servers = start_servers(&["a", "b", "c"]).await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &weighted(&servers, &[2, 2, 2])).await;
    let answered = sequence(address, 9).await;
    let mut first = answered[..3].to_vec();
    first.sort();
    assert_eq!(first, ["a", "b", "c"], "{answered:?}");
    for (i, name) in answered.iter().enumerate().skip(3) {
        assert_eq!(name, &answered[i - 3], "not a rotation: {answered:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_interleaves_three_to_one() {
    let servers = start_servers(&["s1", "s2"]).await;
    let address = listen();
    let yaml = config(
        "http",
        address,
        "weighted_round_robin",
        "",
        &weighted(&servers, &[3, 1]),
    );
    let _tandem = Tandem::start(&yaml, &[address]).await;
    let answered = sequence(address, 12).await;
    let pattern = ["s1", "s1", "s2", "s1"];
    let aligned = (0..4).any(|shift| {
        answered
            .iter()
            .enumerate()
            .all(|(i, name)| name == pattern[(i + shift) % 4])
    });
    assert!(
        aligned,
        "not the smooth 3:1 interleave s1 s1 s2 s1: {answered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_favours_a_fast_server_over_a_slow_one() {
    let servers = start_servers(&["fast", "slow"]).await;
    servers[1]
        .control
        .delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    for (balance, expect_favoured) in [("least_conn", true), ("round_robin", false)] {
        let (_tandem, address) =
            start_proxy("http", balance, "", &weighted(&servers, &[1, 1])).await;
        let clients = (0..4).map(|_| {
            tokio::spawn(async move {
                let mut counts = HashMap::<String, usize>::new();
                for _ in 0..6 {
                    let answer = get(address, "/").await.unwrap();
                    *counts.entry(answer.server.unwrap()).or_default() += 1;
                }
                counts
            })
        });
        let mut totals = HashMap::<String, usize>::new();
        for client in clients.collect::<Vec<_>>() {
            for (name, count) in client.await.unwrap() {
                *totals.entry(name).or_default() += count;
            }
        }
        let fast = totals.get("fast").copied().unwrap_or(0);
        let slow = totals.get("slow").copied().unwrap_or(0);
        assert_eq!(fast + slow, 24);
        assert_eq!(
            fast >= 3 * slow,
            expect_favoured,
            "{balance}: fast {fast}, slow {slow}"
        );
    }
}

const CHECKED: &str = "    retries: 1\n    health_check: { type: http, path: /health, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }\n";

async fn map_keys(address: SocketAddr, keys: &[Key]) -> Vec<String> {
    let mut mapping = Vec::new();
    for key in keys {
        let answer = match key {
            Key::Source(ip) => request_from(*ip, address, get_request(address, "/")).await,
            Key::Uri(path) => get(address, path).await,
        };
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{key:?}");
        mapping.push(answer.server.unwrap());
    }
    mapping
}

#[derive(Debug)]
enum Key {
    Source(IpAddr),
    Uri(String),
}

/// Stickiness, remapping of only the downed server's keys, and their return.
async fn consistent_hashing(balance: &str, keys: Vec<Key>) {
    let mut servers = start_servers(&["h1", "h2", "h3", "h4"]).await;
    let (_tandem, address) =
        start_proxy("http", balance, CHECKED, &weighted(&servers, &[1, 1, 1, 1])).await;

    let original = map_keys(address, &keys).await;
    assert_eq!(map_keys(address, &keys).await, original, "not sticky");
    for server in &servers {
        let share = original.iter().filter(|name| **name == server.name).count();
        assert!(share > 0, "{} got no key: {original:?}", server.name);
    }

    servers[1].kill();
    let remapped = map_keys(address, &keys).await;
    let moved: Vec<usize> = (0..keys.len())
        .filter(|&i| remapped[i] != original[i])
        .collect();
    for &i in &moved {
        assert_eq!(
            original[i], "h2",
            "key {:?} moved off a live server",
            keys[i]
        );
    }
    assert!(remapped.iter().all(|name| name != "h2"));
    let share = moved.len() as f64 / keys.len() as f64;
    assert!(
        (0.08..=0.45).contains(&share),
        "{} of {} keys moved",
        moved.len(),
        keys.len()
    );

    servers[1].restart().await;
    let restored = async {
        wait_until(Duration::from_secs(5), "keys back on h2", || async {
            map_keys(address, &keys).await == original
        })
        .await
    };
    restored.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_hash_is_sticky_and_consistent() {
    let keys = (1..=64)
        .map(|host| Key::Source(IpAddr::V4(Ipv4Addr::new(127, 0, 3, host))))
        .collect();
    consistent_hashing("source_hash", keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_hash_is_sticky_and_consistent() {
    let keys = (0..64)
        .map(|n| Key::Uri(format!("/static/file-{n}.css")))
        .collect();
    consistent_hashing("uri_hash", keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_hash_ignores_the_query_unless_told_otherwise() {
    let servers = start_servers(&["h1", "h2", "h3", "h4"]).await;
    let keys: Vec<Key> = (0..32)
        .map(|n| Key::Uri(format!("/search?q={n}")))
        .collect();
    let mut distinct_servers = Vec::new();
    for extra in ["", "    hash_query: true\n"] {
        let (_tandem, address) = start_proxy(
            "http",
            "uri_hash",
            extra,
            &weighted(&servers, &[1, 1, 1, 1]),
        )
        .await;
        let mut mapping = map_keys(address, &keys).await;
        mapping.sort();
        mapping.dedup();
        distinct_servers.push(mapping.len());
    }
    assert_eq!(distinct_servers[0], 1, "the query changed the server");
    assert!(
        distinct_servers[1] >= 3,
        "hash_query: 32 queries reached only {} servers",
        distinct_servers[1]
    );
}
