//! What a server's health has been, for `/status` and the metrics: the last check's result and
//! how long it took, when the server last went up or down, and how long it has been down in
//! all. Pure data: time is passed in.

use std::time::{Duration, Instant};

use super::rise_fall::Health;

/// A health check's result, by the names HAProxy's `check_status` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// Connected; a tcp check asks no more.
    L4Ok,
    /// No connection within the check's timeout.
    L4Timeout,
    /// The connection was refused or failed.
    L4Connection,
    /// The connection failed after it was made (writing the PROXY header).
    SocketError,
    /// The TLS handshake passed (a TLS check asks no more than a tcp one).
    L6Ok,
    /// The TLS handshake took longer than the check's timeout.
    L6Timeout,
    /// The TLS handshake failed.
    L6Response,
    /// The server answered as expected (http status and body, send/expect steps, databases).
    L7Ok,
    /// No answer within the check's timeout.
    L7Timeout,
    /// An answer that is not what the check expects (malformed, wrong body or reply).
    L7Response,
    /// An http answer with a status the check does not expect.
    L7Status,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 11] = [
        CheckStatus::L4Ok,
        CheckStatus::L4Timeout,
        CheckStatus::L4Connection,
        CheckStatus::SocketError,
        CheckStatus::L6Ok,
        CheckStatus::L6Timeout,
        CheckStatus::L6Response,
        CheckStatus::L7Ok,
        CheckStatus::L7Timeout,
        CheckStatus::L7Response,
        CheckStatus::L7Status,
    ];

    /// HAProxy's name, the `state` label of `tandem_server_check_status`.
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::L4Ok => "L4OK",
            CheckStatus::L4Timeout => "L4TOUT",
            CheckStatus::L4Connection => "L4CON",
            CheckStatus::SocketError => "SOCKERR",
            CheckStatus::L6Ok => "L6OK",
            CheckStatus::L6Timeout => "L6TOUT",
            CheckStatus::L6Response => "L6RSP",
            CheckStatus::L7Ok => "L7OK",
            CheckStatus::L7Timeout => "L7TOUT",
            CheckStatus::L7Response => "L7RSP",
            CheckStatus::L7Status => "L7STS",
        }
    }

    pub fn passed(self) -> bool {
        matches!(
            self,
            CheckStatus::L4Ok | CheckStatus::L6Ok | CheckStatus::L7Ok
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// The last check's result and duration; `None` before the first.
    last: Option<(CheckStatus, Duration)>,
    /// When the server was added, or last went up or down.
    last_change: Instant,
    /// Since when the server is down; `None` while up.
    down_since: Option<Instant>,
    /// Time down before `down_since`.
    down_before: Duration,
}

impl CheckRecord {
    /// A server added at `now`, up (as every server starts).
    pub fn new(now: Instant) -> CheckRecord {
        CheckRecord {
            last: None,
            last_change: now,
            down_since: None,
            down_before: Duration::ZERO,
        }
    }

    pub fn checked(&mut self, status: CheckStatus, took: Duration) {
        self.last = Some((status, took));
    }

    /// The server went up or down at `now`.
    pub fn went(&mut self, health: Health, now: Instant) {
        self.last_change = now;
        match (health, self.down_since) {
            (Health::Down, None) => self.down_since = Some(now),
            (Health::Up, Some(since)) => {
                self.down_before += now.saturating_duration_since(since);
                self.down_since = None;
            }
            _ => {}
        }
    }

    pub fn last(&self) -> Option<(CheckStatus, Duration)> {
        self.last
    }

    pub fn since_change(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_change)
    }

    /// Time down in all, up to `now`.
    pub fn downtime(&self, now: Instant) -> Duration {
        let current =
            (self.down_since).map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.down_before + current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn downtime_adds_up_every_time_down_and_runs_while_down() {
        let start = Instant::now();
        let mut record = CheckRecord::new(start);
        assert_eq!(record.downtime(start + 10 * SECOND), Duration::ZERO);
        record.went(Health::Down, start + SECOND);
        assert_eq!(
            record.downtime(start + 4 * SECOND),
            3 * SECOND,
            "runs while down"
        );
        record.went(Health::Up, start + 5 * SECOND);
        assert_eq!(
            record.downtime(start + 9 * SECOND),
            4 * SECOND,
            "stops while up"
        );
        record.went(Health::Down, start + 10 * SECOND);
        record.went(Health::Down, start + 11 * SECOND);
        assert_eq!(
            record.downtime(start + 12 * SECOND),
            6 * SECOND,
            "a repeated down does not restart the count"
        );
    }

    #[test]
    fn the_last_change_is_the_start_until_the_server_goes_up_or_down() {
        let start = Instant::now();
        let mut record = CheckRecord::new(start);
        assert_eq!(record.since_change(start + 3 * SECOND), 3 * SECOND);
        record.checked(CheckStatus::L4Connection, SECOND);
        assert_eq!(
            record.since_change(start + 3 * SECOND),
            3 * SECOND,
            "a check alone changes nothing"
        );
        record.went(Health::Down, start + 2 * SECOND);
        assert_eq!(record.since_change(start + 3 * SECOND), SECOND);
        assert_eq!(record.last(), Some((CheckStatus::L4Connection, SECOND)));
    }

    #[test]
    fn only_the_ok_statuses_pass_and_each_has_a_label_of_its_own() {
        let passed: Vec<_> = (CheckStatus::ALL.iter())
            .filter(|status| status.passed())
            .map(|status| status.label())
            .collect();
        assert_eq!(passed, ["L4OK", "L6OK", "L7OK"]);
        let mut labels: Vec<_> = CheckStatus::ALL.map(CheckStatus::label).to_vec();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CheckStatus::ALL.len(), "one label each");
    }
}
