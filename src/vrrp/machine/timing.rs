//! Time as the machine sees it, and the RFC's timer formulas.

use std::ops::Add;
use std::time::Duration;

use crate::codec::vrrp::{AdvertInterval, Version};

/// A point on the shell's monotonic clock, as the time elapsed since an epoch the shell picks
/// (its start, say). The machine never reads a clock: every event comes with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(Duration);

impl Timestamp {
    pub const fn from_since_epoch(since_epoch: Duration) -> Self {
        Timestamp(since_epoch)
    }

    pub const fn since_epoch(self) -> Duration {
        self.0
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, duration: Duration) -> Timestamp {
        Timestamp(self.0 + duration)
    }
}

/// Skew_Time: how much longer a lower priority waits, so the best Backup takes over first.
/// v2 (RFC 3768 §6.1): (256 - Priority) / 256 seconds. v3 (RFC 9568 §6.1): scaled by the
/// Master_Adver_Interval, ((256 - Priority) * Master_Adver_Interval) / 256.
pub(super) fn skew_time(
    version: Version,
    priority: u8,
    master_adver_interval: AdvertInterval,
) -> Duration {
    let unit = match version {
        Version::V2 => Duration::from_secs(1),
        Version::V3 => master_adver_interval.as_duration(),
    };
    unit * (256 - u32::from(priority)) / 256
}

/// Master_Down_Interval: 3 * Master_Adver_Interval + Skew_Time (v2 has no learned interval: its
/// Master_Adver_Interval is the configured one, which every router must share).
pub(super) fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: AdvertInterval,
) -> Duration {
    master_adver_interval.as_duration() * 3 + skew_time(version, priority, master_adver_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_SECOND: AdvertInterval = AdvertInterval::from_secs(1);

    #[test]
    fn v2_skew_is_a_fraction_of_a_second_whatever_the_interval() {
        assert_eq!(
            skew_time(Version::V2, 100, ONE_SECOND),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            skew_time(Version::V2, 100, AdvertInterval::from_secs(5)),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            skew_time(Version::V2, 255, ONE_SECOND),
            Duration::from_nanos(3_906_250)
        );
    }

    #[test]
    fn v3_skew_scales_with_the_master_adver_interval() {
        assert_eq!(
            skew_time(Version::V3, 100, ONE_SECOND),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            skew_time(Version::V3, 100, AdvertInterval::from_centis(50)),
            Duration::from_nanos(304_687_500)
        );
    }

    #[test]
    fn master_down_interval_is_three_intervals_plus_skew() {
        assert_eq!(
            master_down_interval(Version::V2, 100, AdvertInterval::from_secs(2)),
            Duration::from_micros(6_609_375)
        );
        assert_eq!(
            master_down_interval(Version::V3, 100, AdvertInterval::from_centis(50)),
            Duration::from_nanos(1_804_687_500)
        );
    }

    #[test]
    fn timestamps_advance_by_durations() {
        let start = Timestamp::from_since_epoch(Duration::from_secs(10));
        assert_eq!(
            (start + Duration::from_millis(1500)).since_epoch(),
            Duration::from_millis(11_500)
        );
    }
}
