//! The process's share of the system: its open-file limit, the default `max_connections` that
//! keeps descriptors in reserve, and what happens when a local resource runs out anyway (a
//! shortage of ours is never blamed on a server, and is logged thinly).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::stats::{self, Shortage};

/// Descriptors the process holds whatever its load: stdio, the access log, the control and VRRP
/// runtimes' epoll and waker descriptors, VRRP and netlink sockets, the admin listener.
const PROCESS_RESERVE: usize = 64;
/// Per worker thread: its runtime's epoll and waker descriptors, with room to spare.
const THREAD_RESERVE: usize = 4;
/// Admin connections (scrapes, `tandem status`) that must find a descriptor when clients have
/// taken every one they may.
const ADMIN_RESERVE: usize = 32;
/// A proxied client connection usually holds a second descriptor, to its server.
const DESCRIPTORS_PER_CONNECTION: usize = 2;

/// The most connections a derived default allows: the kernel's default fs.nr_open, as
/// validation bounds a configured `max_connections`, and far below the semaphore's own limit.
const MOST_CONNECTIONS: usize = 1 << 20;
/// One log line per this long for each kind of shortage; the rest are counted into the next.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Raises the soft limit on open files to the hard one, as far as the kernel allows, and logs
/// both. Client connections are bounded by `max_connections`, not by a low default soft limit.
pub fn raise_open_files() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => return tracing::warn!(%error, "cannot read the open-file limit"),
    };
    // A hard limit of `infinity` (systemd's LimitNOFILE=infinity) is refused as a soft limit
    // above fs.nr_open, the most the kernel lets one process open.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map_or(hard, |nr_open: u64| hard.min(nr_open));
    if soft < ceiling {
        if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, ceiling, hard) {
            return tracing::warn!(soft, hard, %error, "cannot raise the open-file limit");
        }
    }
    tracing::info!(
        soft = open_files(),
        was = soft,
        hard,
        "open-file limit (soft raised to hard)"
    );
}

/// The soft limit on open files now.
pub fn open_files() -> usize {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| {
        usize::try_from(soft).unwrap_or(usize::MAX)
    })
}

/// What a config needs descriptors for, besides client connections and theirs to servers.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    pub frontends: usize,
    pub threads: usize,
    /// Servers with a health check: each check holds one connection at a time.
    pub checked_servers: usize,
}

/// Client connections `open_files` holds over all frontends: what it leaves once the reserve is
/// taken (the process's own, per worker thread, a listener per frontend and worker, a health
/// check per checked server, and the admin endpoint's), at two descriptors per connection.
pub fn connection_budget(open_files: usize, demand: Demand) -> usize {
    let reserve = PROCESS_RESERVE
        + ADMIN_RESERVE
        + demand.threads * THREAD_RESERVE
        + demand.threads * demand.frontends
        + demand.checked_servers;
    open_files.saturating_sub(reserve) / DESCRIPTORS_PER_CONNECTION
}

/// The `max_connections` of a frontend that sets none: the budget shared evenly among the
/// frontends, at least 1.
pub fn default_max_connections(open_files: usize, demand: Demand) -> usize {
    let shared = connection_budget(open_files, demand) / demand.frontends.max(1);
    shared.clamp(1, MOST_CONNECTIONS)
}

/// Whether `error` says the host is short of something of its own (file descriptors, socket
/// buffers, memory, local ports) rather than that the peer failed.
pub fn is_shortage(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        // EADDRNOTAVAIL, from connect(2): no ephemeral port is free.
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Counts a shortage met by `operation` and logs it, at most one line per `LOG_EVERY` for each
/// operation, saying how many were held back since the last.
pub fn shortage(operation: Shortage, error: &io::Error) {
    stats::shortage(operation).increment(1);
    let thinned = &SHORTAGE_LOGS[operation as usize];
    if let Some(held_back) = thinned.admit(Instant::now()) {
        let consequence = match operation {
            Shortage::Accept => "clients wait in the listen backlog until descriptors are free",
            Shortage::HealthCheck => "check skipped, the server's health stands",
            Shortage::ServerConnect => {
                "the client is turned away (http: 503), the server is not blamed"
            }
        };
        tracing::warn!(
            operation = operation.label(),
            %error,
            held_back,
            "out of local resources: {consequence}"
        );
    }
}

static SHORTAGE_LOGS: [Thinned; Shortage::ALL.len()] =
    [const { Thinned::new() }; Shortage::ALL.len()];

/// Lets one report of a repeating condition through per `LOG_EVERY` and counts the rest, so a
/// condition met thousands of times a second takes one log line every few seconds.
pub struct Thinned {
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl Thinned {
    pub const fn new() -> Thinned {
        Thinned {
            last: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last report)` when a report is due at `now`; `None` when this
    /// one is held back.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match *last {
            Some(at) if now.saturating_duration_since(at) < LOG_EVERY => {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held_back.swap(0, Ordering::Relaxed))
            }
        }
    }
}

impl Default for Thinned {
    fn default() -> Thinned {
        Thinned::new()
    }
}

/// The pause after each failed accept, as Go's net/http does it: 5 ms, doubling to 1 s while
/// accepting keeps failing, so a listener out of descriptors neither spins nor waits long once
/// some are free again.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    next: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MOST: Duration = Duration::from_secs(1);

    /// How long to pause after one more failure in a row.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next.unwrap_or(Self::FIRST);
        self.next = Some((pause * 2).min(Self::MOST));
        pause
    }

    /// An accept worked: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(frontends: usize, threads: usize, checked_servers: usize) -> Demand {
        Demand {
            frontends,
            threads,
            checked_servers,
        }
    }

    #[test]
    fn the_default_keeps_the_reserve_and_counts_two_descriptors_a_connection() {
        // 1024 - (64 + 32 + 4 + 1 + 2) = 921 descriptors, 460 connections.
        assert_eq!(default_max_connections(1024, demand(1, 1, 2)), 460);
        // 20000 - (64 + 32 + 8 + 4 + 0) = 19892, 9946 connections, 4973 for each frontend.
        assert_eq!(default_max_connections(20_000, demand(2, 2, 0)), 4973);
    }

    #[test]
    fn the_default_is_at_least_one_and_survives_extremes() {
        assert_eq!(default_max_connections(0, demand(1, 1, 0)), 1);
        assert_eq!(default_max_connections(100, demand(3, 64, 500)), 1);
        assert_eq!(default_max_connections(1024, demand(0, 1, 0)), 462);
        assert_eq!(
            default_max_connections(usize::MAX, demand(1, 1, 0)),
            1 << 20
        );
    }

    #[test]
    fn shortages_are_told_from_peer_failures() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(is_shortage(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::ECONNREFUSED, libc::ETIMEDOUT, libc::EHOSTUNREACH] {
            assert!(
                !is_shortage(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(!is_shortage(&io::Error::new(
            io::ErrorKind::TimedOut,
            "connect timed out"
        )));
    }

    #[test]
    fn thinned_reports_say_how_many_were_held_back() {
        let thinned = Thinned::new();
        let start = Instant::now();
        assert_eq!(thinned.admit(start), Some(0));
        for ms in [1, 100, 4_999] {
            assert_eq!(thinned.admit(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(thinned.admit(start + LOG_EVERY), Some(3));
        assert_eq!(thinned.admit(start + LOG_EVERY), None);
        assert_eq!(thinned.admit(start + LOG_EVERY * 3), Some(1));
        // A clock read taken before the last report (another thread's) is held back too.
        assert_eq!(thinned.admit(start), None);
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets_on_success() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..10)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(5));
    }
}
