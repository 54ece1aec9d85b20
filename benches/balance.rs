//! Each selector's `pick`, as the proxy calls it: through `BackendState`, whose servers' health
//! and load are the same atomics the data plane reads.
//!
//! Cases: 8 and 64 servers, all up or every fourth one down; weights 1..=4, and the hashing
//! selectors again with equal weights (their faster path); least_conn sees uneven loads. The
//! hashing selectors get a different client address and path on each call, cycling through 1024
//! keys, so they are not measuring one cached answer; the others ignore the key.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tandem::backend::{ActiveGuard, BackendState};
use tandem::balance::Key;

const SIZES: [usize; 2] = [8, 64];
const KEYS: usize = 1024;

const ALGORITHMS: [&str; 5] = [
    "round_robin",
    "weighted_round_robin",
    "least_conn",
    "source_hash",
    "uri_hash",
];

/// A backend of `count` servers with a check that takes one result to fall, so a server can be
/// taken down by hand; no checker runs. Built from YAML rather than a struct literal, so a field
/// added to the config model does not break the benches.
fn backend(balance: &str, count: usize, weighted: bool) -> BackendState {
    let mut yaml = format!(
        "node: {{ name: bench }}
frontends:
  - {{ name: web, listen: 127.0.0.1:1, mode: http, backend: pool }}
backends:
  - name: pool
    balance: {balance}
    health_check: {{ type: tcp, rise: 1, fall: 1 }}
    servers:
"
    );
    for i in 0..count {
        let (high, low) = (i / 256, i % 256);
        let weight = if weighted { i % 4 + 1 } else { 1 };
        yaml += &format!(
            "      - {{ name: s{i}, address: 10.0.{high}.{low}:8080, weight: {weight} }}\n"
        );
    }
    let config = tandem::config::parse(&yaml, Path::new("bench.yaml"))
        .unwrap_or_else(|errors| panic!("{errors}\n{yaml}"));
    let backend = config.backends.into_iter().next().expect("one backend");
    BackendState::new(backend, &tandem::dns::Resolved::default(), None)
}

/// Takes every fourth server down, starting with the second (so server 0 stays up).
fn take_some_down(backend: &BackendState) {
    for server in backend.servers.iter().skip(1).step_by(4) {
        server.record_check(false, "bench");
    }
}

/// In-flight requests per server (0 to 6), held until the guards drop.
fn load(backend: &BackendState) -> Vec<ActiveGuard> {
    (backend.servers.iter().enumerate())
        .flat_map(|(i, server)| (0..(i * 5 + 3) % 7).filter_map(move |_| server.try_track_active()))
        .collect()
}

/// One key per path, each with its own client address.
fn keys(uris: &[String]) -> Vec<Key<'_>> {
    (uris.iter().enumerate())
        .map(|(i, uri)| Key {
            client_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32 * 7919)),
            uri,
        })
        .collect()
}

fn bench_pick(c: &mut Criterion) {
    let uris: Vec<String> = (0..KEYS).map(|i| format!("/static/{i}/app.js")).collect();
    let keys = keys(&uris);
    for name in ALGORITHMS {
        let mut group = c.benchmark_group(format!("pick/{name}"));
        for count in SIZES {
            for some_down in [false, true] {
                let backend = backend(name, count, true);
                if some_down {
                    take_some_down(&backend);
                }
                let _load = load(&backend);
                let state = if some_down { "quarter_down" } else { "all_up" };
                let id = BenchmarkId::new(state, count);
                group.bench_function(id, |b| {
                    let mut next = keys.iter().cycle();
                    b.iter(|| {
                        let key = next.next().unwrap();
                        black_box(backend.pick(black_box(key), &[]))
                    })
                });
            }
        }
        group.finish();
    }
}

/// The hashing selectors with equal weights, which skip the logarithm per server that weighted
/// rendezvous hashing needs.
fn bench_uniform(c: &mut Criterion) {
    let uris: Vec<String> = (0..KEYS).map(|i| format!("/static/{i}/app.js")).collect();
    let keys = keys(&uris);
    let mut group = c.benchmark_group("pick_equal_weights");
    for name in ["source_hash", "uri_hash"] {
        for count in SIZES {
            let backend = backend(name, count, false);
            group.bench_function(BenchmarkId::new(name, count), |b| {
                let mut next = keys.iter().cycle();
                b.iter(|| black_box(backend.pick(black_box(next.next().unwrap()), &[])))
            });
        }
    }
    group.finish();
}

/// A retry: the same request's second pick, with the first server excluded.
fn bench_retry(c: &mut Criterion) {
    let key = Key {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        uri: "/",
    };
    let mut group = c.benchmark_group("pick_retry");
    for name in ALGORITHMS {
        let backend = backend(name, 8, true);
        let first = backend.pick(&key, &[]).unwrap();
        group.bench_function(BenchmarkId::new(name, 8), |b| {
            b.iter(|| black_box(backend.pick(black_box(&key), &[first])))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pick, bench_uniform, bench_retry);
criterion_main!(benches);
