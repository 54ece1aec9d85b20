//! The Internet checksum (RFC 1071) over a VRRP message, with or without the IP pseudo-header
//! that VRRPv3 folds in (RFC 9568 §5.2.8).

use super::{Envelope, IP_PROTOCOL};

/// The checksum of `message`, preceded by the pseudo-header of `pseudo_header` when given.
///
/// To fill in the field, compute it with the field zeroed. To verify, compute it over the message
/// as received: a correct message sums to zero.
pub(super) fn vrrp_checksum(message: &[u8], pseudo_header: Option<&Envelope>) -> u16 {
    let mut sum = OnesComplementSum::default();
    if let Some(envelope) = pseudo_header {
        // VRRP messages are at most 8 + 255 * 16 bytes, so the length always fits.
        let length = message.len() as u32;
        match envelope {
            Envelope::V4 {
                source,
                destination,
            } => {
                sum.add(&source.octets());
                sum.add(&destination.octets());
                sum.add(&[0, IP_PROTOCOL]);
                sum.add(&(length as u16).to_be_bytes());
            }
            Envelope::V6 {
                source,
                destination,
            } => {
                sum.add(&source.octets());
                sum.add(&destination.octets());
                sum.add(&length.to_be_bytes());
                sum.add(&[0, 0, 0, IP_PROTOCOL]);
            }
        }
    }
    sum.add(message);
    sum.finish()
}

/// A running 16-bit one's complement sum. Every part but the last must have an even length (the
/// pseudo-header parts do); an odd last byte is padded with zero, as RFC 1071 says.
#[derive(Default)]
struct OnesComplementSum(u32);

impl OnesComplementSum {
    fn add(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(2);
        for word in &mut words {
            self.0 += u32::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            self.0 += u32::from(*last) << 8;
        }
        // Fold as we go so that even a maximal message cannot overflow the accumulator.
        self.0 = (self.0 & 0xffff) + (self.0 >> 16);
    }

    fn finish(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_its_complement() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (after the carry).
        assert_eq!(
            vrrp_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], None),
            !0xddf2
        );
    }

    #[test]
    fn odd_length_is_padded_with_zero() {
        assert_eq!(vrrp_checksum(&[0x12], None), !0x1200);
    }

    #[test]
    fn a_message_carrying_its_checksum_verifies_to_zero() {
        let mut message = [0x21, 0x01, 0x64, 0x01, 0x00, 0x01, 0x00, 0x00, 192, 0, 2, 1];
        let checksum = vrrp_checksum(&message, None);
        message[6..8].copy_from_slice(&checksum.to_be_bytes());
        assert_eq!(vrrp_checksum(&message, None), 0);
    }
}
