//! `tcp_keepalive` on frontends (accepted connections) and backends (connections to servers).

use super::super::duration;
use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use std::time::Duration;

/// Linux's ceilings: TCP_KEEPIDLE and TCP_KEEPINTVL take at most 32767 s (MAX_TCP_KEEPIDLE,
/// MAX_TCP_KEEPINTVL), TCP_KEEPCNT at most 127 probes (MAX_TCP_KEEPCNT).
const MAX_KEEPALIVE_TIME: Duration = Duration::from_secs(32_767);
const MAX_KEEPALIVE_COUNT: u32 = 127;

impl Validator {
    /// `None` when off (left out, or `false`).
    pub(super) fn tcp_keepalive(
        &mut self,
        at: &str,
        spec: Option<TcpKeepaliveSpec>,
    ) -> Option<TcpKeepalive> {
        let spec = spec.filter(|spec| spec.enabled)?;
        let at = format!("{at}.tcp_keepalive");
        let count = spec.count.filter(|count| {
            let fits = (1..=MAX_KEEPALIVE_COUNT).contains(count);
            if !fits {
                self.error(
                    format!("{at}.count"),
                    format!("{count} is not between 1 and {MAX_KEEPALIVE_COUNT} probes"),
                );
            }
            fits
        });
        Some(TcpKeepalive {
            idle: self.keepalive_time(format!("{at}.idle"), spec.idle.as_deref()),
            interval: self.keepalive_time(format!("{at}.interval"), spec.interval.as_deref()),
            count,
        })
    }

    /// A keepalive time: whole seconds, as the kernel counts them, from 1 s to its ceiling.
    fn keepalive_time(&mut self, field: String, text: Option<&str>) -> Option<Duration> {
        let text = text?;
        let time = match duration::parse(text) {
            Ok(time) => time,
            Err(message) => {
                self.error(field, message);
                return None;
            }
        };
        let whole = time.subsec_nanos() == 0;
        if !whole || time < Duration::from_secs(1) || time > MAX_KEEPALIVE_TIME {
            self.error(
                field,
                format!(
                    "{text} is not whole seconds between 1s and {}s, as the kernel takes it",
                    MAX_KEEPALIVE_TIME.as_secs()
                ),
            );
            return None;
        }
        Some(time)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn true_leaves_the_timing_to_the_kernel_and_false_turns_it_off() {
        let on = one_backend(", tcp_keepalive: true").replace(
            "backend: b }",
            "backend: b, tcp_keepalive: { idle: 60s, interval: 10s, count: 3 } }",
        );
        let config = valid(&on);
        assert_eq!(
            config.backends[0].tcp_keepalive,
            Some(TcpKeepalive::default())
        );
        assert_eq!(
            config.frontends[0].tcp_keepalive,
            Some(TcpKeepalive {
                idle: Some(Duration::from_secs(60)),
                interval: Some(Duration::from_secs(10)),
                count: Some(3),
            })
        );
        assert_eq!(
            valid(&one_backend(", tcp_keepalive: false")).backends[0].tcp_keepalive,
            None
        );
        assert_eq!(valid(&one_backend("")).backends[0].tcp_keepalive, None);
    }

    #[test]
    fn times_the_kernel_cannot_take_are_refused() {
        assert_eq!(
            problems(&one_backend(
                ", tcp_keepalive: { idle: 500ms, interval: 10h, count: 0 }"
            )),
            [
                "backends[0].tcp_keepalive.count: 0 is not between 1 and 127 probes",
                "backends[0].tcp_keepalive.idle: 500ms is not whole seconds between 1s and \
                 32767s, as the kernel takes it",
                "backends[0].tcp_keepalive.interval: 10h is not whole seconds between 1s and \
                 32767s, as the kernel takes it",
            ]
        );
    }
}
