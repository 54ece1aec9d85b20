//! The VRRP codec (`vrrp::packet`): every advertisement tandem can send decodes to itself, a
//! single flipped bit is never taken for a valid advert, and whatever decodes re-encodes to
//! the same bytes, so a peer answered "in kind" gets back what it sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bolero::{check, TypeGenerator};
use tandem::codec::vrrp::{
    decode, encode, AdvertInterval, Advertisement, Authentication, ChecksumVariant, DecodeError,
    Envelope, SimpleTextPassword, Version, IP_PROTOCOL, REQUIRED_HOP_LIMIT,
};

use super::ITERATIONS;

/// The most a message can hold: the header, 255 IPv6 addresses, v2's authentication data.
/// Inputs may take twice that: bolero generates zeros past its length limit (4 KiB by default).
const MAX_MESSAGE: usize = 8 + 255 * 16 + 8;

#[derive(Debug, TypeGenerator)]
struct Wire {
    ipv6: bool,
    source: [u8; 16],
    destination: [u8; 16],
}

impl Wire {
    fn envelope(&self) -> Envelope {
        if self.ipv6 {
            Envelope::V6 {
                source: Ipv6Addr::from(self.source),
                destination: Ipv6Addr::from(self.destination),
            }
        } else {
            Envelope::V4 {
                source: Ipv4Addr::from(v4(&self.source)),
                destination: Ipv4Addr::from(v4(&self.destination)),
            }
        }
    }

    fn address(&self, octets: &[u8; 16]) -> IpAddr {
        if self.ipv6 {
            IpAddr::from(*octets)
        } else {
            IpAddr::from(v4(octets))
        }
    }
}

fn v4(octets: &[u8; 16]) -> [u8; 4] {
    [octets[0], octets[1], octets[2], octets[3]]
}

/// An advertisement that configuration validation would let tandem send.
#[derive(Debug, TypeGenerator)]
struct Sendable {
    wire: Wire,
    /// Over IPv4: v3 rather than v2 (IPv6 is always v3).
    v3: bool,
    vrid: u8,
    priority: u8,
    /// Brought into the version's range: 1..=255 s for v2, 1..=4095 cs for v3.
    interval: u16,
    /// v2 only: a simple-text password of up to 8 bytes.
    password: Option<([u8; 8], u8)>,
    /// v3 over IPv4 only: the checksum without the pseudo-header (Cisco's way).
    message_only: bool,
    /// Bits to flip and lengths to cut the message to (both modulo its own), besides each
    /// bit and each length of the header.
    #[generator(Vec::produce().with().len(1usize..=8))]
    damage: Vec<u16>,
    /// Last: what bolero generates past its length limit is zeros.
    #[generator(Vec::produce().with().len(0usize..=255))]
    addresses: Vec<[u8; 16]>,
}

impl Sendable {
    fn advertisement(&self) -> Advertisement {
        let version = if self.v3 || self.wire.ipv6 {
            Version::V3
        } else {
            Version::V2
        };
        let (interval, authentication) = match version {
            Version::V2 => (
                AdvertInterval::from_secs((self.interval % 255 + 1) as u8),
                match self.password {
                    Some((bytes, length)) => Authentication::SimpleText(
                        SimpleTextPassword::new(&bytes[..usize::from(length % 9)]).unwrap(),
                    ),
                    None => Authentication::None,
                },
            ),
            Version::V3 => (
                AdvertInterval::from_centis(self.interval % 4095 + 1),
                Authentication::None,
            ),
        };
        Advertisement {
            version,
            vrid: self.vrid,
            priority: self.priority,
            interval,
            addresses: self
                .addresses
                .iter()
                .map(|a| self.wire.address(a))
                .collect(),
            authentication,
        }
    }

    fn checksum(&self) -> ChecksumVariant {
        if self.message_only {
            ChecksumVariant::MessageOnly
        } else {
            ChecksumVariant::PseudoHeader
        }
    }
}

/// The variant a sender's checksum really covers, whatever was asked: v2 never sums the
/// pseudo-header, IPv6 always does.
fn covered(advert: &Advertisement, envelope: &Envelope, asked: ChecksumVariant) -> ChecksumVariant {
    match (advert.version, envelope) {
        (Version::V2, _) => ChecksumVariant::MessageOnly,
        (Version::V3, Envelope::V6 { .. }) => ChecksumVariant::PseudoHeader,
        (Version::V3, Envelope::V4 { .. }) => asked,
    }
}

#[test]
fn what_tandem_sends_decodes_to_itself_and_no_flipped_bit_passes() {
    check!()
        .with_type::<Sendable>()
        .with_max_len(2 * MAX_MESSAGE)
        // Each input decodes some eighty messages of up to 4 KiB.
        .with_iterations(ITERATIONS / 4)
        .for_each(|sendable| {
            let advert = sendable.advertisement();
            let envelope = sendable.wire.envelope();
            let asked = sendable.checksum();
            let bytes = encode(&advert, &envelope, asked).expect("a valid advert encodes");
            let v2 = advert.version == Version::V2;
            let expected_len = 8 + advert.addresses.len() * if sendable.wire.ipv6 { 16 } else { 4 };
            assert_eq!(bytes.len(), expected_len + if v2 { 8 } else { 0 });
            assert_eq!(
                internet_checksum(&bytes, covered(&advert, &envelope, asked), &envelope),
                0,
                "the checksum field makes the covered bytes sum to zero"
            );

            let decoded =
                decode(&bytes, &envelope, REQUIRED_HOP_LIMIT).expect("what tandem sends decodes");
            assert_eq!(decoded.advertisement, advert);
            // A message-only sum can, rarely, also pass with the pseudo-header; then the
            // decoder's choice must still reproduce the bytes when answering in kind.
            assert_eq!(encode(&advert, &envelope, decoded.checksum).unwrap(), bytes);
            if asked == ChecksumVariant::PseudoHeader || v2 || sendable.wire.ipv6 {
                assert_eq!(
                    decoded.checksum,
                    covered(&advert, &envelope, asked),
                    "only one variant can pass"
                );
            }

            for hop_limit in [0, 1, 64, 254] {
                assert_eq!(
                    decode(&bytes, &envelope, hop_limit),
                    Err(DecodeError::HopLimit {
                        received: hop_limit
                    })
                );
            }

            // The Internet checksum detects every single-bit error; only v3 over IPv4 accepts
            // two sums, and a flip can land on the other one.
            let bits = bytes.len() * 8;
            let anywhere = sendable.damage.iter().map(|&bit| usize::from(bit) % bits);
            for bit in (0..64).chain(anywhere) {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                if let Ok(wrong) = decode(&flipped, &envelope, REQUIRED_HOP_LIMIT) {
                    let either_sum = advert.version == Version::V3 && !sendable.wire.ipv6;
                    assert!(
                        either_sum && wrong.checksum != decoded.checksum,
                        "bit {bit} flipped, yet decoded as {wrong:?}"
                    );
                }
            }
            let anywhere = sendable
                .damage
                .iter()
                .map(|&at| usize::from(at) % bytes.len());
            for length in (0..8).chain(anywhere) {
                assert!(decode(&bytes[..length], &envelope, REQUIRED_HOP_LIMIT).is_err());
            }
        });
}

/// Any bytes, most of them given a valid checksum so that the fields after it are reached.
#[derive(Debug, TypeGenerator)]
struct Received {
    wire: Wire,
    /// Make the first byte an advert's (v2 or v3 by its top bit) and the length what its count
    /// says, so that random fields get past those checks.
    fit: bool,
    /// Fill in the checksum field so that the message passes with this variant.
    sum: Option<bool>,
    hop_limit: Option<u8>,
    #[generator(Vec::produce().with().len(0usize..=MAX_MESSAGE))]
    message: Vec<u8>,
}

#[test]
fn any_message_is_refused_or_decodes_to_what_re_encodes_it() {
    check!()
        .with_type::<Received>()
        .with_max_len(2 * MAX_MESSAGE)
        .with_iterations(ITERATIONS)
        .for_each(|received| {
            let envelope = received.wire.envelope();
            let mut message = received.message.clone();
            if received.fit && message.len() >= 8 {
                let v3 = message[0] & 0x80 != 0;
                message[0] = if v3 { 0x31 } else { 0x21 };
                let address_len = if received.wire.ipv6 { 16 } else { 4 };
                let auth_len = if v3 { 0 } else { 8 };
                message.resize(8 + usize::from(message[3]) * address_len + auth_len, 0);
            }
            if let Some(pseudo_header) = received.sum.filter(|_| message.len() >= 8) {
                let variant = if pseudo_header {
                    ChecksumVariant::PseudoHeader
                } else {
                    ChecksumVariant::MessageOnly
                };
                message[6..8].fill(0);
                let sum = internet_checksum(&message, variant, &envelope);
                message[6..8].copy_from_slice(&sum.to_be_bytes());
            }
            let hop_limit = received.hop_limit.unwrap_or(REQUIRED_HOP_LIMIT);

            let decoded = match decode(&message, &envelope, hop_limit) {
                Ok(decoded) => decoded,
                Err(DecodeError::HopLimit { received }) => {
                    assert_ne!(received, REQUIRED_HOP_LIMIT);
                    return;
                }
                Err(DecodeError::TooShort { length }) => {
                    assert!(length < 8 && length == message.len());
                    return;
                }
                Err(_) => return,
            };
            assert_eq!(hop_limit, REQUIRED_HOP_LIMIT);
            let advert = &decoded.advertisement;
            assert_eq!(
                (advert.vrid, advert.priority, advert.addresses.len()),
                (message[1], message[2], usize::from(message[3]))
            );
            assert!(advert.interval.as_centis() > 0);
            assert!(advert
                .addresses
                .iter()
                .all(|address| address.is_ipv6() == received.wire.ipv6));
            assert_eq!(
                internet_checksum(&message, decoded.checksum, &envelope),
                0,
                "the variant reported is one that passes"
            );

            let again = encode(advert, &envelope, decoded.checksum)
                .expect("whatever decodes can be sent back");
            assert_eq!(
                decode(&again, &envelope, REQUIRED_HOP_LIMIT).as_ref(),
                Ok(&decoded)
            );
            if is_canonical(&message, advert) {
                assert_eq!(again, message, "nothing ignored, so the same bytes");
            }
        });
}

/// Whether `message` has nothing decoding ignores: v3's reserved bits above the interval are
/// zero, and v2 without authentication carries zero authentication data.
fn is_canonical(message: &[u8], advert: &Advertisement) -> bool {
    match (advert.version, advert.authentication) {
        (Version::V3, _) => message[4] >> 4 == 0,
        (Version::V2, Authentication::None) => message[message.len() - 8..] == [0; 8],
        (Version::V2, Authentication::SimpleText(_)) => true,
    }
}

/// RFC 1071, written here apart from the codec's own so that each checks the other: the one's
/// complement of the one's complement sum of the (pseudo-header and) message.
fn internet_checksum(message: &[u8], variant: ChecksumVariant, envelope: &Envelope) -> u16 {
    let mut covered = Vec::new();
    if variant == ChecksumVariant::PseudoHeader {
        let length = message.len() as u32;
        match envelope {
            Envelope::V4 {
                source,
                destination,
            } => {
                covered.extend(source.octets());
                covered.extend(destination.octets());
                covered.extend([0, IP_PROTOCOL]);
                covered.extend((length as u16).to_be_bytes());
            }
            Envelope::V6 {
                source,
                destination,
            } => {
                covered.extend(source.octets());
                covered.extend(destination.octets());
                covered.extend(length.to_be_bytes());
                covered.extend([0, 0, 0, IP_PROTOCOL]);
            }
        }
    }
    covered.extend_from_slice(message);
    let mut sum: u32 = covered
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
