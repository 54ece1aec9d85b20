//! A rule's `rate_limit`: GCRA (the generic cell rate algorithm, a token bucket kept as one
//! time per key) over a table of fixed size.
//!
//! Each key has a theoretical arrival time (TAT): when it would have spent all its credit if
//! its requests had come at the steady rate. A request is let through while the TAT, pushed on
//! by one interval, runs at most `burst` intervals ahead of now; a key whose TAT is in the past
//! has full credit, which is the same as not being tracked at all. So a key needs 16 bytes and
//! no timer, and an idle key can be forgotten at no cost to anyone.
//!
//! The table is allocated once: hashed keys fall in buckets of [`WAYS`] slots, and a key not
//! tracked yet takes the slot of its bucket with the most credit (the smallest TAT: one that
//! has expired, or else the key nearest to full credit). An attacker with many addresses thus
//! costs no memory, and to make the table forget a client in debt it must put keys deeper in
//! debt into that client's bucket. [`Table`] is the pure core, with time passed in as
//! nanoseconds; [`SharedRateLimit`] shares it between worker threads and hashes the keys.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::config;

/// Slots per bucket: a key not tracked yet may take any of them. Eight 16-byte slots are 128
/// bytes, two or three cache lines.
pub const WAYS: usize = 8;
/// Keys one [`SharedRateLimit`] tracks at once (1 MiB): far more clients than are ever over
/// the limit together, so a client in debt is not forgotten for want of room.
pub const KEYS: usize = 1 << 16;
/// Independently locked parts of a [`SharedRateLimit`], so that workers rarely wait for one
/// another: a power of two.
const SHARDS: usize = 16;

/// One tracked key: its hash and its TAT in nanoseconds since the table's time base. An empty
/// slot has a TAT of 0, in the past like an expired one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    key: u64,
    tat: u64,
}

/// The pure limiter: TATs of a fixed number of keys.
#[derive(Debug)]
pub struct Table {
    slots: Box<[Slot]>,
    /// Buckets less one: their count is a power of two.
    bucket_mask: usize,
    /// Nanoseconds between requests at the steady rate.
    interval: u64,
    /// How far a TAT may run ahead of now after a request is let through: `burst` intervals.
    limit: u64,
}

impl Table {
    /// Room for at least `keys` keys (rounded up to whole buckets, a power of two of them).
    /// `interval` is at least a nanosecond, and `burst` at least 1 (as validation ensures).
    pub fn new(keys: usize, interval: Duration, burst: u32) -> Table {
        let buckets = keys.div_ceil(WAYS).next_power_of_two();
        let interval = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Table {
            slots: vec![Slot::default(); buckets * WAYS].into_boxed_slice(),
            bucket_mask: buckets - 1,
            interval,
            limit: interval.saturating_mul(u64::from(burst.max(1))),
        }
    }

    /// Lets a request of `key` through at `now` (nanoseconds since the time base), or says how
    /// long until one would be. A refused request costs the key nothing. `now` may be a little
    /// behind one given before (threads read the clock before their turn): that only makes the
    /// check a little stricter.
    pub fn check(&mut self, key: u64, now: u64) -> Result<(), Duration> {
        // The high half picks the bucket; a caller may use the low bits to pick a table.
        let bucket = (key >> 32) as usize & self.bucket_mask;
        let slots = &mut self.slots[bucket * WAYS..][..WAYS];
        let mut victim = 0;
        let mut tracked = None;
        for (index, slot) in slots.iter().enumerate() {
            if slot.key == key {
                tracked = Some(index);
                break;
            }
            if slot.tat < slots[victim].tat {
                victim = index;
            }
        }
        let (index, tat) = match tracked {
            Some(index) => (index, slots[index].tat.max(now)),
            // Not tracked: full credit, whatever the slot it takes held.
            None => (victim, now),
        };
        let next = tat.saturating_add(self.interval);
        let ahead = next - now;
        if ahead > self.limit {
            return Err(Duration::from_nanos(ahead - self.limit));
        }
        slots[index] = Slot { key, tat: next };
        Ok(())
    }

    /// How many keys it can track at once.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Keys with less than full credit at `now`: the ones it must remember.
    #[cfg(test)]
    fn tracked(&self, now: u64) -> usize {
        self.slots.iter().filter(|slot| slot.tat > now).count()
    }
}

/// A `Retry-After` value for a wait: whole seconds rounded up, and at least 1, since 0 would
/// tell a client to retry at once (RFC 9110 §10.2.3 has only whole seconds).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// What a request is counted by, as its rule's [`config::RateKey`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKeyValue<'a> {
    /// The client address (an IPv4-mapped IPv6 address counts as the IPv4 one).
    Client(IpAddr),
    /// The header's value; `None` when the request has no such header. Requests without it
    /// share one key, so leaving the header out does not escape the limit.
    Header(Option<&'a [u8]>),
}

/// One rule's limiter, shared by every worker thread of a frontend: [`SHARDS`] tables, each
/// behind its own lock (held for one table lookup), picked by the key's hash.
pub struct SharedRateLimit {
    shards: Box<[Shard]>,
    /// Where time starts for the tables, which count in nanoseconds from it.
    base: Instant,
    /// Random per limiter, so that which clients share a bucket cannot be worked out from
    /// outside.
    seed: u64,
}

/// A shard on a cache line of its own, so that workers using neighbouring shards do not
/// contend for the line.
#[repr(align(64))]
struct Shard(Mutex<Table>);

impl SharedRateLimit {
    pub fn new(limit: &config::RateLimit) -> SharedRateLimit {
        let interval = limit.emission_interval();
        let shards = (0..SHARDS)
            .map(|_| Shard(Mutex::new(Table::new(KEYS / SHARDS, interval, limit.burst))))
            .collect();
        SharedRateLimit {
            shards,
            base: Instant::now(),
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64),
        }
    }

    /// Lets a request with `key` through at `now`, or says how long until one would be (see
    /// [`retry_after_seconds`] for the header).
    pub fn check(&self, key: RateKeyValue<'_>, now: Instant) -> Result<(), Duration> {
        let hash = self.hash(key);
        // Nanoseconds fit a u64 for 584 years.
        let now = now.saturating_duration_since(self.base).as_nanos() as u64;
        let shard = &self.shards[hash as usize & (SHARDS - 1)];
        let mut table = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.check(hash, now)
    }

    fn hash(&self, key: RateKeyValue<'_>) -> u64 {
        match key {
            RateKeyValue::Client(address) => match address.to_canonical() {
                IpAddr::V4(v4) => xxh3_64_with_seed(&v4.octets(), self.seed),
                IpAddr::V6(v6) => xxh3_64_with_seed(&v6.octets(), self.seed),
            },
            RateKeyValue::Header(Some(value)) => xxh3_64_with_seed(value, self.seed),
            // Another seed, so that no value shares the missing header's key.
            RateKeyValue::Header(None) => xxh3_64_with_seed(b"", !self.seed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SECOND: u64 = 1_000 * MS;

    /// 10 per second (one every 100 ms), bursts of 5, room for `keys`.
    fn table(keys: usize) -> Table {
        Table::new(keys, Duration::from_millis(100), 5)
    }

    /// A key that falls in bucket `bucket`, told apart by `id`.
    fn key(bucket: u64, id: u64) -> u64 {
        bucket << 32 | id
    }

    fn passes(table: &mut Table, key: u64, now: u64) -> usize {
        (0..1000)
            .take_while(|_| table.check(key, now).is_ok())
            .count()
    }

    #[test]
    fn a_new_key_gets_its_burst_then_the_steady_rate() {
        let mut table = table(1024);
        let client = key(0, 1);
        assert_eq!(passes(&mut table, client, 10 * SECOND), 5);
        // One more every 100 ms, and never two.
        for step in 1..=20 {
            let now = 10 * SECOND + step * 100 * MS;
            assert_eq!(table.check(client, now), Ok(()), "step {step}");
            assert!(table.check(client, now).is_err(), "step {step}");
        }
        // 99 ms after the last is too early.
        assert!(table.check(client, 12 * SECOND + 99 * MS).is_err());
    }

    #[test]
    fn the_wait_is_until_the_next_request_would_pass() {
        let mut table = table(1024);
        let client = key(3, 1);
        passes(&mut table, client, SECOND);
        assert_eq!(table.check(client, SECOND), Err(Duration::from_millis(100)));
        assert_eq!(
            table.check(client, SECOND + 30 * MS),
            Err(Duration::from_millis(70))
        );
        assert_eq!(table.check(client, SECOND + 100 * MS), Ok(()));
        // A refused request costs nothing: the wait is the same after many.
        for _ in 0..100 {
            assert!(table.check(client, SECOND + 150 * MS).is_err());
        }
        assert_eq!(
            table.check(client, SECOND + 150 * MS),
            Err(Duration::from_millis(50))
        );
    }

    #[test]
    fn credit_comes_back_with_idle_time_up_to_the_burst() {
        let mut table = table(1024);
        let client = key(0, 7);
        passes(&mut table, client, SECOND);
        // 250 ms idle: two requests' worth.
        assert_eq!(passes(&mut table, client, SECOND + 250 * MS), 2);
        // An hour idle: the burst again, not more.
        assert_eq!(passes(&mut table, client, 3600 * SECOND), 5);
    }

    #[test]
    fn keys_are_independent() {
        let mut table = table(1024);
        let (first, second) = (key(0, 1), key(0, 2));
        assert_eq!(passes(&mut table, first, SECOND), 5);
        assert_eq!(passes(&mut table, second, SECOND), 5);
        let other_bucket = key(9, 1);
        assert_eq!(passes(&mut table, other_bucket, SECOND), 5);
        assert!(table.check(first, SECOND).is_err());
    }

    #[test]
    fn a_clock_read_a_little_earlier_only_makes_it_stricter() {
        let mut table = table(1024);
        let client = key(0, 1);
        table.check(client, SECOND).unwrap();
        // Four more would pass at SECOND; a thread that read the clock 50 ms before gets three.
        assert_eq!(passes(&mut table, client, SECOND - 50 * MS), 3);
    }

    #[test]
    fn a_burst_of_one_is_the_steady_rate() {
        let mut table = Table::new(8, Duration::from_secs(1), 1);
        assert_eq!(table.check(1, 5 * SECOND), Ok(()));
        assert_eq!(table.check(1, 5 * SECOND), Err(Duration::from_secs(1)));
        assert_eq!(table.check(1, 6 * SECOND), Ok(()));
    }

    #[test]
    fn a_new_key_takes_an_empty_or_expired_slot_first() {
        // One bucket of eight: every key competes for it.
        let mut table = table(WAYS);
        assert_eq!(table.capacity(), WAYS);
        for id in 0..7 {
            passes(&mut table, key(0, id), SECOND);
        }
        // Seven in debt and one empty slot: the newcomer takes the empty one.
        assert_eq!(table.check(key(0, 100), SECOND), Ok(()));
        for id in 0..7 {
            assert!(table.check(key(0, id), SECOND).is_err(), "{id} forgotten");
        }
        // Later, key 0's debt has expired (it spent 500 ms at SECOND) while the others renew
        // theirs: the next newcomer takes key 0's slot.
        let later = SECOND + 600 * MS;
        for id in 1..7 {
            passes(&mut table, key(0, id), later);
        }
        passes(&mut table, key(0, 100), later);
        assert_eq!(table.check(key(0, 200), later), Ok(()));
        for id in 1..7 {
            assert!(table.check(key(0, id), later).is_err(), "{id} forgotten");
        }
    }

    #[test]
    fn when_all_are_in_debt_the_key_with_most_credit_is_replaced() {
        let mut table = table(WAYS);
        let now = SECOND;
        // Key n spends n + 1 requests of its burst of 5 (keys 4 to 7 all of it).
        for id in 0..WAYS as u64 {
            for _ in 0..=id.min(4) {
                table.check(key(0, id), now).unwrap();
            }
        }
        // A newcomer replaces key 0, which spent least, and only it: an attacker with a new
        // address each time evicts the lightest user, not the heaviest.
        assert_eq!(table.check(key(0, 100), now), Ok(()));
        for (id, left) in [(1, 3), (2, 2), (3, 1), (4, 0), (5, 0), (6, 0), (7, 0)] {
            assert_eq!(passes(&mut table, key(0, id), now), left, "key {id}");
        }
        assert_eq!(passes(&mut table, key(0, 0), now), 5, "key 0 starts afresh");
    }

    #[test]
    fn a_flood_of_new_keys_never_flushes_a_client_in_debt() {
        let mut table = table(WAYS);
        let now = SECOND;
        let offender = key(0, 1);
        passes(&mut table, offender, now);
        for id in 1000..101_000 {
            let _ = table.check(key(0, id), now);
        }
        assert!(
            table.check(offender, now).is_err(),
            "forgotten by the flood"
        );
    }

    #[test]
    fn the_table_never_tracks_more_than_its_capacity() {
        let mut table = table(1000);
        assert_eq!(table.capacity(), 1024, "128 buckets of 8");
        let now = SECOND;
        for id in 0..100_000u64 {
            let hash = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let _ = table.check(hash, now);
        }
        assert_eq!(table.capacity(), 1024);
        assert_eq!(table.tracked(now), 1024);
        // And once their debt has expired, nothing is left to remember.
        assert_eq!(table.tracked(now + SECOND), 0);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(60)), 60);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    fn shared(rate: &str) -> SharedRateLimit {
        let (count, period) = rate.split_once('/').unwrap();
        SharedRateLimit::new(&config::RateLimit {
            key: config::RateKey::Client,
            rate: count.parse().unwrap(),
            period: Duration::from_secs(period.parse().unwrap()),
            burst: 2,
        })
    }

    #[test]
    fn the_shared_limiter_counts_each_client_and_header_value_apart() {
        let limit = shared("1/1");
        let now = Instant::now();
        let a = RateKeyValue::Client("192.0.2.1".parse().unwrap());
        let b = RateKeyValue::Client("192.0.2.2".parse().unwrap());
        for key in [a, b] {
            assert_eq!(limit.check(key, now), Ok(()));
            assert_eq!(limit.check(key, now), Ok(()));
            assert!(limit.check(key, now).is_err());
        }
        // The IPv4-mapped form is the same client.
        let mapped = RateKeyValue::Client("::ffff:192.0.2.1".parse().unwrap());
        assert!(limit.check(mapped, now).is_err());
        let (one, two) = (
            RateKeyValue::Header(Some(b"key-1")),
            RateKeyValue::Header(Some(b"key-2")),
        );
        assert_eq!(limit.check(one, now), Ok(()));
        assert_eq!(limit.check(one, now), Ok(()));
        assert!(limit.check(one, now).is_err());
        assert_eq!(limit.check(two, now), Ok(()));
        // Requests without the header share one key, apart from an empty value.
        let missing = RateKeyValue::Header(None);
        assert_eq!(limit.check(missing, now), Ok(()));
        assert_eq!(limit.check(missing, now), Ok(()));
        assert_eq!(
            limit.check(missing, now),
            Err(Duration::from_secs(1)),
            "a second's wait at 1/s"
        );
        assert_eq!(limit.check(RateKeyValue::Header(Some(b"")), now), Ok(()));
        // Time comes from the instants given.
        assert_eq!(limit.check(missing, now + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn the_shared_limiter_is_one_limit_over_threads() {
        let limit = std::sync::Arc::new(shared("10/1"));
        let now = Instant::now();
        let client = RateKeyValue::Client("198.51.100.7".parse().unwrap());
        let passed: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let limit = &limit;
                    scope.spawn(move || {
                        (0..100)
                            .filter(|_| limit.check(client, now).is_ok())
                            .count()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap())
                .sum()
        });
        assert_eq!(passed, 2, "the burst, over all threads");
    }
}
