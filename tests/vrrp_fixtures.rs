//! Adverts captured from a real keepalived 2.2.7 (see tests/fixtures/vrrp/README.md): our decoder
//! must read every field keepalived wrote, and our encoder must write the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use tandem::codec::vrrp::{
    decode, encode, AdvertInterval, Advertisement, Authentication, ChecksumVariant, Decoded,
    Envelope, SimpleTextPassword, Version,
};
use tandem::vrrp::machine::{self, Action, Cause, Event, Machine, Peer, ReceivedAdvert, Timestamp};

/// A fixture split the way the shell's socket presents a packet: header facts and payload.
struct Captured {
    envelope: Envelope,
    hop_limit: u8,
    payload: Vec<u8>,
}

/// Reads a fixture: one raw IPv4 or IPv6 packet as tcpdump saw it, Ethernet header removed.
fn captured(name: &str) -> Captured {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vrrp")
        .join(name);
    let packet = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match packet[0] >> 4 {
        4 => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            assert_eq!(packet[9], 112, "{name}: not VRRP");
            assert_eq!(total_len, packet.len(), "{name}: truncated");
            Captured {
                envelope: Envelope::V4 {
                    source: Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).unwrap()),
                    destination: Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap()),
                },
                hop_limit: packet[8],
                payload: packet[header_len..].to_vec(),
            }
        }
        6 => {
            let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            assert_eq!(
                packet[6], 112,
                "{name}: not VRRP (or has extension headers)"
            );
            assert_eq!(40 + payload_len, packet.len(), "{name}: truncated");
            Captured {
                envelope: Envelope::V6 {
                    source: Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).unwrap()),
                    destination: Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).unwrap()),
                },
                hop_limit: packet[7],
                payload: packet[40..].to_vec(),
            }
        }
        version => panic!("{name}: IP version {version}"),
    }
}

/// Decodes a fixture, checks that re-encoding gives keepalived's bytes back, and returns it.
fn decode_and_reencode(capture: &Captured) -> Decoded {
    let decoded = decode(&capture.payload, &capture.envelope, capture.hop_limit).unwrap();
    let reencoded = encode(&decoded.advertisement, &capture.envelope, decoded.checksum).unwrap();
    assert_eq!(reencoded, capture.payload);
    decoded
}

fn v4(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn pass_1111() -> Authentication {
    Authentication::SimpleText(SimpleTextPassword::new(b"1111").unwrap())
}

const KEEPALIVED_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const VRRP_V4_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

#[test]
fn v2_with_simple_text_password() {
    let capture = captured("v2_auth_pass.bin");
    assert_eq!(capture.hop_limit, 255);
    assert_eq!(
        capture.envelope,
        Envelope::V4 {
            source: KEEPALIVED_V4,
            destination: VRRP_V4_GROUP
        }
    );
    let decoded = decode_and_reencode(&capture);
    assert_eq!(
        decoded,
        Decoded {
            advertisement: Advertisement {
                version: Version::V2,
                vrid: 51,
                priority: 150,
                interval: AdvertInterval::from_secs(2),
                addresses: vec![v4("198.51.100.100"), v4("198.51.100.101")],
                authentication: pass_1111(),
            },
            checksum: ChecksumVariant::MessageOnly,
        }
    );
    // The engine compares all 8 bytes: a password that shares the printable prefix differs.
    assert_ne!(
        decoded.advertisement.authentication,
        Authentication::SimpleText(SimpleTextPassword::new(b"1111\0\0\0x").unwrap())
    );
}

#[test]
fn v2_resignation_on_shutdown() {
    let capture = captured("v2_auth_pass_resign.bin");
    let decoded = decode_and_reencode(&capture);
    assert_eq!(
        decoded.advertisement,
        Advertisement {
            version: Version::V2,
            vrid: 51,
            priority: 0,
            interval: AdvertInterval::from_secs(2),
            addresses: vec![v4("198.51.100.100"), v4("198.51.100.101")],
            authentication: pass_1111(),
        }
    );
}

#[test]
fn v3_over_ipv4_with_pseudo_header() {
    let capture = captured("v3_ipv4.bin");
    assert_eq!(capture.hop_limit, 255);
    assert_eq!(
        capture.envelope,
        Envelope::V4 {
            source: KEEPALIVED_V4,
            destination: VRRP_V4_GROUP
        }
    );
    let decoded = decode_and_reencode(&capture);
    assert_eq!(
        decoded,
        Decoded {
            advertisement: Advertisement {
                version: Version::V3,
                vrid: 52,
                priority: 120,
                interval: AdvertInterval::from_centis(150),
                addresses: vec![v4("198.51.100.102")],
                authentication: Authentication::None,
            },
            checksum: ChecksumVariant::PseudoHeader,
        }
    );
}

#[test]
fn v3_over_ipv4_without_pseudo_header() {
    let with = captured("v3_ipv4.bin");
    let without = captured("v3_ipv4_no_pseudo_header.bin");
    // Derived from v3_ipv4.bin: only the checksum differs.
    assert_eq!(with.payload[..6], without.payload[..6]);
    assert_eq!(with.payload[8..], without.payload[8..]);
    assert_ne!(with.payload[6..8], without.payload[6..8]);

    let decoded = decode_and_reencode(&without);
    assert_eq!(decoded.checksum, ChecksumVariant::MessageOnly);
    assert_eq!(
        decoded.advertisement,
        decode(&with.payload, &with.envelope, with.hop_limit)
            .unwrap()
            .advertisement
    );
}

#[test]
fn v3_over_ipv6() {
    let capture = captured("v3_ipv6.bin");
    assert_eq!(capture.hop_limit, 255);
    assert_eq!(
        capture.envelope,
        Envelope::V6 {
            source: "fe80::1".parse().unwrap(),
            destination: "ff02::12".parse().unwrap(),
        }
    );
    let decoded = decode_and_reencode(&capture);
    assert_eq!(
        decoded,
        Decoded {
            advertisement: Advertisement {
                version: Version::V3,
                vrid: 53,
                priority: 200,
                interval: AdvertInterval::from_centis(100),
                addresses: vec![
                    "2001:db8::100".parse().unwrap(),
                    "2001:db8::101".parse().unwrap()
                ],
                authentication: Authentication::None,
            },
            checksum: ChecksumVariant::PseudoHeader,
        }
    );
}

#[test]
fn keepalived_resignation_makes_our_backup_take_over_after_skew_time() {
    let mut backup = Machine::new(machine::Config {
        version: Version::V2,
        priority: 100,
        advert_interval: AdvertInterval::from_secs(2),
        preempt: machine::Preempt::After(Duration::ZERO),
        primary_address: v4("198.51.100.2"),
    });
    let start = Timestamp::from_since_epoch(Duration::ZERO);
    backup.handle(start, Event::Startup);

    let capture = captured("v2_auth_pass_resign.bin");
    let decoded = decode(&capture.payload, &capture.envelope, capture.hop_limit).unwrap();
    let advert = ReceivedAdvert::new(&decoded.advertisement, capture.envelope.source());
    let skew = Duration::from_secs(1) * 156 / 256;
    assert_eq!(
        backup.handle(start, Event::AdvertReceived(advert)),
        [Action::SetTimer {
            timer: machine::Timer::MasterDown,
            at: start + skew
        }]
    );
    let actions = backup.handle(start + skew, Event::MasterDownTimerFired);
    assert_eq!(
        actions.last(),
        Some(&Action::StateChanged {
            from: machine::State::Backup,
            to: machine::State::Master,
            cause: Cause::MasterResigned(Peer {
                address: v4("198.51.100.1"),
                priority: 0
            }),
        })
    );
}
