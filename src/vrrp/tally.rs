//! Repeated VRRP events (dropped packets, disagreeing peers) counted by kind and sender, with
//! logs that thin out as a sender keeps repeating itself: a misconfigured peer advertises every
//! interval, forever.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Default)]
pub struct Tally {
    counts: HashMap<(&'static str, IpAddr), u64>,
}

impl Tally {
    /// Counts one event; true when this one should be logged (the 1st, 2nd, 4th, 8th... of its
    /// kind from that sender).
    pub fn record(&mut self, reason: &'static str, from: IpAddr) -> bool {
        let count = self.counts.entry((reason, from)).or_default();
        *count += 1;
        count.is_power_of_two()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_thin_out_per_reason_and_sender() {
        let mut tally = Tally::default();
        let peer: IpAddr = "198.51.100.12".parse().unwrap();
        let other: IpAddr = "198.51.100.13".parse().unwrap();
        let logged: Vec<u32> = (1..=20).filter(|_| tally.record("auth", peer)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
        assert!(tally.record("auth", other));
        assert!(tally.record("vrid", peer));
    }
}
