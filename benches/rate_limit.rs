//! A rule's rate limit as a worker calls it, `SharedRateLimit::check`: one client over and
//! over (its shard's lock and bucket stay in cache), 1,000 clients, and a million distinct
//! addresses (more than the table holds, so most checks replace a slot), plus a header value
//! as the key. 100/s with a burst of 50, so most checks are refused, as in a flood; a request
//! let through costs the same lookup and one store more.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tandem::config::{RateKey, RateLimit};
use tandem::rules::rate_limit::{RateKeyValue, SharedRateLimit};

fn limiter() -> SharedRateLimit {
    SharedRateLimit::new(&RateLimit {
        key: RateKey::Client,
        rate: 100,
        period: Duration::from_secs(1),
        burst: 50,
    })
}

fn addresses(count: u32) -> Vec<IpAddr> {
    (0..count)
        .map(|index| IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + index)))
        .collect()
}

fn bench_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit_check");
    let now = Instant::now();
    for (name, count) in [
        ("one_client", 1),
        ("1k_clients", 1_000),
        ("1m_clients", 1 << 20),
    ] {
        let limit = limiter();
        let clients = addresses(count);
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % clients.len();
                black_box(limit.check(RateKeyValue::Client(clients[next]), now))
            })
        });
    }
    let limit = limiter();
    let header = b"0123456789abcdef0123456789abcdef";
    group.bench_function("header_32_bytes", |b| {
        b.iter(|| black_box(limit.check(RateKeyValue::Header(Some(black_box(header))), now)))
    });
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
