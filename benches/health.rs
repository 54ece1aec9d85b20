//! The rise/fall counter's `record`, fed a precomputed stream of results: steady passes (the
//! common case: nothing changes), steady failures on a down server, and a flapping server whose
//! results change its state every few calls.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tandem::backend::rise_fall::Counter;

/// A cycle of results long enough that the branch predictor cannot learn the flapping pattern
/// from a short period.
fn flapping() -> Vec<bool> {
    let mut state = 0x9e37_79b9_u32;
    (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state % 3 != 0
        })
        .collect()
}

fn bench_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("counter_record");
    group.bench_function("steady_pass", |b| {
        let mut counter = Counter::new(2, 3);
        b.iter(|| black_box(counter.record(black_box(true))))
    });
    group.bench_function("steady_fail", |b| {
        let mut counter = Counter::new(2, 3);
        counter.record(false);
        b.iter(|| black_box(counter.record(black_box(false))))
    });
    let results = flapping();
    group.bench_function("flapping", |b| {
        let mut counter = Counter::new(2, 2);
        let mut next = results.iter().cycle();
        b.iter(|| black_box(counter.record(black_box(*next.next().unwrap()))))
    });
    group.finish();
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
