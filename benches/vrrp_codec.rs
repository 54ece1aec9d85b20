//! The VRRP codec: encode and decode of a v2 advert (simple-text password, two IPv4 addresses),
//! a v3 advert over IPv4 (checksum with the pseudo-header, keepalived's way) and a v3 advert
//! over IPv6. Decode includes checksum verification, as on receipt.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use tandem::codec::vrrp::{
    decode, encode, AdvertInterval, Advertisement, Authentication, ChecksumVariant, Envelope,
    SimpleTextPassword, Version, REQUIRED_HOP_LIMIT,
};

struct Case {
    name: &'static str,
    advert: Advertisement,
    envelope: Envelope,
}

fn cases() -> [Case; 3] {
    let v4 = Envelope::V4 {
        source: Ipv4Addr::new(198, 51, 100, 1),
        destination: Ipv4Addr::new(224, 0, 0, 18),
    };
    let v6 = Envelope::V6 {
        source: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        destination: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
    };
    let password = SimpleTextPassword::new(b"secret").expect("8 bytes at most");
    [
        Case {
            name: "v2",
            advert: Advertisement {
                version: Version::V2,
                vrid: 51,
                priority: 150,
                interval: AdvertInterval::from_secs(1),
                addresses: vec![
                    Ipv4Addr::new(198, 51, 100, 100).into(),
                    Ipv4Addr::new(198, 51, 100, 101).into(),
                ],
                authentication: Authentication::SimpleText(password),
            },
            envelope: v4,
        },
        Case {
            name: "v3_ipv4",
            advert: Advertisement {
                version: Version::V3,
                vrid: 52,
                priority: 120,
                interval: AdvertInterval::from_centis(5),
                addresses: vec![Ipv4Addr::new(198, 51, 100, 102).into()],
                authentication: Authentication::None,
            },
            envelope: v4,
        },
        Case {
            name: "v3_ipv6",
            advert: Advertisement {
                version: Version::V3,
                vrid: 53,
                priority: 200,
                interval: AdvertInterval::from_centis(100),
                addresses: vec![
                    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100).into(),
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100).into(),
                ],
                authentication: Authentication::None,
            },
            envelope: v6,
        },
    ]
}

fn bench_codec(c: &mut Criterion) {
    let checksum = ChecksumVariant::PseudoHeader;
    let mut encode_group = c.benchmark_group("vrrp_encode");
    for case in cases() {
        encode_group.bench_function(case.name, |b| {
            b.iter(|| encode(black_box(&case.advert), black_box(&case.envelope), checksum))
        });
    }
    encode_group.finish();
    let mut decode_group = c.benchmark_group("vrrp_decode");
    for case in cases() {
        let bytes = encode(&case.advert, &case.envelope, checksum).expect("a valid advert");
        let decoded = decode(&bytes, &case.envelope, REQUIRED_HOP_LIMIT).expect("round trip");
        assert_eq!(decoded.advertisement, case.advert);
        decode_group.bench_function(case.name, |b| {
            b.iter(|| {
                decode(
                    black_box(&bytes),
                    black_box(&case.envelope),
                    REQUIRED_HOP_LIMIT,
                )
            })
        });
    }
    decode_group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
