//! How a backend treats its servers beyond balancing: backups, per-server limits and the queue
//! before them, slow start, and what marking a server up or down does to its sessions.

use std::time::Duration;

use super::super::duration;
use super::super::schema::*;
use super::fields::too_long;
use super::Validator;

/// HAProxy's `maxqueue` is unbounded by default; a bound keeps memory bounded when every
/// server is full for long.
pub(super) const DEFAULT_QUEUE_SIZE: u32 = 1024;
const MAX_QUEUE_SIZE: u32 = 1 << 20;
/// A ramp longer than this is a typo, and it is added to the clock.
const MAX_SLOW_START: Duration = Duration::from_secs(24 * 3600);
const MAX_QUEUE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The backend-wide settings of this file, read from its spec.
pub(super) struct Roles {
    pub all_backups: bool,
    pub queue_timeout: Duration,
    pub queue_size: usize,
    pub slow_start: Option<Duration>,
    pub shutdown_sessions_on_down: bool,
    pub shutdown_backup_sessions_on_up: bool,
}

impl Validator {
    /// `connect_timeout` is the queue's default timeout, as HAProxy's `timeout queue` defaults
    /// to `timeout connect`.
    pub(super) fn backend_roles(
        &mut self,
        at: &str,
        spec: &BackendSpec,
        connect_timeout: Duration,
    ) -> Roles {
        let queue_timeout = self.timeout(
            format!("{at}.queue_timeout"),
            spec.queue_timeout.as_deref(),
            connect_timeout,
            MAX_QUEUE_TIMEOUT,
        );
        let queue_size = spec.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
        if queue_size > MAX_QUEUE_SIZE {
            self.error(
                format!("{at}.queue_size"),
                format!("{queue_size} is more than {MAX_QUEUE_SIZE}"),
            );
        }
        let slow_start = self.slow_start(format!("{at}.slow_start"), spec.slow_start.as_deref());
        if slow_start.is_some_and(|ramp| !ramp.is_zero())
            && matches!(
                spec.balance,
                Some(BalanceSpec::SourceHash | BalanceSpec::UriHash)
            )
        {
            self.error(
                format!("{at}.slow_start"),
                "does not apply to source_hash or uri_hash: a ramp would move clients twice; \
                 remove it or change balance",
            );
        }
        Roles {
            all_backups: spec.all_backups.unwrap_or(false),
            queue_timeout,
            queue_size: queue_size as usize,
            slow_start,
            shutdown_sessions_on_down: spec.on_down == Some(OnDownSpec::ShutdownSessions),
            shutdown_backup_sessions_on_up: spec.on_up == Some(OnUpSpec::ShutdownBackupSessions),
        }
    }

    /// A server's `max_connections` (at least 1) and its slow start, its own or else the
    /// backend's.
    pub(super) fn server_limits(
        &mut self,
        at: &str,
        spec: &ServerSpec,
        backend_slow_start: Option<Duration>,
    ) -> (Option<u32>, Option<Duration>) {
        if spec.max_connections == Some(0) {
            self.error(
                format!("{at}.max_connections"),
                "must be at least 1; leave it out for no limit",
            );
        }
        let own = self.slow_start(format!("{at}.slow_start"), spec.slow_start.as_deref());
        let slow_start = own.or(backend_slow_start).filter(|ramp| !ramp.is_zero());
        (spec.max_connections, slow_start)
    }

    /// `0s` is kept, so that a server's own turns off its backend's.
    fn slow_start(&mut self, field: String, text: Option<&str>) -> Option<Duration> {
        match duration::parse(text?) {
            Ok(ramp) if ramp > MAX_SLOW_START => {
                self.error(field, too_long(text?, MAX_SLOW_START));
                None
            }
            Ok(ramp) => Some(ramp),
            Err(message) => {
                self.error(field, message);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::*;
    use super::DEFAULT_QUEUE_SIZE;

    fn with_servers(backend: &str, servers: &str) -> String {
        one_backend(&format!("{backend}, servers: [{servers}]"))
    }

    #[test]
    fn defaults_keep_every_server_primary_unlimited_and_unramped() {
        let config = valid(&one_backend(", connect_timeout: 3s"));
        let backend = &config.backends[0];
        assert!(!backend.all_backups);
        assert_eq!(
            backend.queue_timeout,
            Duration::from_secs(3),
            "connect_timeout"
        );
        assert_eq!(backend.queue_size, DEFAULT_QUEUE_SIZE as usize);
        assert!(!backend.shutdown_sessions_on_down);
        assert!(!backend.shutdown_backup_sessions_on_up);
        let server = &backend.servers[0];
        assert!(!server.backup);
        assert_eq!(server.max_connections, None);
        assert_eq!(server.slow_start, None);
    }

    #[test]
    fn reads_every_key() {
        let text = with_servers(
            ", all_backups: true, queue_timeout: 2s, queue_size: 10, slow_start: 30s, \
             on_down: shutdown_sessions, on_up: shutdown_backup_sessions",
            "{ name: a, address: 127.0.0.1:81, max_connections: 5 }, \
             { name: b, address: 127.0.0.1:82, backup: true, slow_start: 5s }, \
             { name: c, address: 127.0.0.1:83, slow_start: 0s }",
        );
        let config = valid(&text);
        let backend = &config.backends[0];
        assert!(backend.all_backups);
        assert_eq!(backend.queue_timeout, Duration::from_secs(2));
        assert_eq!(backend.queue_size, 10);
        assert!(backend.shutdown_sessions_on_down);
        assert!(backend.shutdown_backup_sessions_on_up);
        let [a, b, c] = &backend.servers[..] else {
            panic!("three servers")
        };
        assert_eq!(a.max_connections, Some(5));
        assert_eq!(a.slow_start, Some(Duration::from_secs(30)), "the backend's");
        assert!(b.backup);
        assert_eq!(b.slow_start, Some(Duration::from_secs(5)), "its own");
        assert_eq!(c.slow_start, None, "0s turns it off");
    }

    #[test]
    fn rejects_what_cannot_work() {
        let text = with_servers(
            ", balance: source_hash, slow_start: 10s, queue_size: 2000000, queue_timeout: 0s",
            "{ name: a, address: 127.0.0.1:81, max_connections: 0, slow_start: 25h }",
        );
        assert_eq!(
            problems(&text),
            [
                "backends[0].queue_timeout: must be longer than zero",
                "backends[0].queue_size: 2000000 is more than 1048576",
                "backends[0].slow_start: does not apply to source_hash or uri_hash: a ramp \
                 would move clients twice; remove it or change balance",
                "backends[0].servers[0].max_connections: must be at least 1; leave it out for \
                 no limit",
                "backends[0].servers[0].slow_start: 25h is longer than this can be; the most is 24h",
            ]
        );
    }
}
