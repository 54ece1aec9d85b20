use super::*;

const V4_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const V6_MULTICAST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

fn v4_envelope() -> Envelope {
    Envelope::V4 {
        source: Ipv4Addr::new(198, 51, 100, 1),
        destination: V4_MULTICAST,
    }
}

fn v6_envelope() -> Envelope {
    Envelope::V6 {
        source: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        destination: V6_MULTICAST,
    }
}

fn v2_advert(authentication: Authentication) -> Advertisement {
    Advertisement {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval: AdvertInterval::from_secs(2),
        addresses: vec![
            "198.51.100.100".parse().unwrap(),
            "198.51.100.101".parse().unwrap(),
        ],
        authentication,
    }
}

fn v3_v4_advert() -> Advertisement {
    Advertisement {
        version: Version::V3,
        vrid: 52,
        priority: 120,
        interval: AdvertInterval::from_centis(150),
        addresses: vec!["198.51.100.102".parse().unwrap()],
        authentication: Authentication::None,
    }
}

fn v3_v6_advert() -> Advertisement {
    Advertisement {
        version: Version::V3,
        vrid: 53,
        priority: 200,
        interval: AdvertInterval::from_centis(100),
        addresses: vec![
            "2001:db8::100".parse().unwrap(),
            "2001:db8::101".parse().unwrap(),
        ],
        authentication: Authentication::None,
    }
}

fn password(text: &[u8]) -> Authentication {
    Authentication::SimpleText(SimpleTextPassword::new(text).unwrap())
}

fn round_trip(advert: &Advertisement, envelope: &Envelope, checksum: ChecksumVariant) {
    let bytes = encode(advert, envelope, checksum).unwrap();
    let decoded = decode(&bytes, envelope, 255).unwrap();
    assert_eq!(&decoded.advertisement, advert);
    assert_eq!(decoded.checksum, checksum);
    assert_eq!(
        encode(&decoded.advertisement, envelope, decoded.checksum).unwrap(),
        bytes
    );
}

/// Recomputes the checksum of a hand-edited message so that only the edited field is wrong.
fn with_valid_checksum(mut message: Vec<u8>, pseudo_header: Option<&Envelope>) -> Vec<u8> {
    message[6..8].fill(0);
    let sum = vrrp_checksum(&message, pseudo_header);
    message[6..8].copy_from_slice(&sum.to_be_bytes());
    message
}

#[test]
fn v2_without_authentication_round_trips() {
    round_trip(
        &v2_advert(Authentication::None),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    );
}

#[test]
fn v2_with_simple_text_password_round_trips() {
    round_trip(
        &v2_advert(password(b"1111")),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    );
}

#[test]
fn v3_over_ipv4_round_trips_in_both_checksum_variants() {
    round_trip(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    );
    round_trip(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    );
}

#[test]
fn v3_over_ipv6_round_trips() {
    round_trip(
        &v3_v6_advert(),
        &v6_envelope(),
        ChecksumVariant::PseudoHeader,
    );
}

#[test]
fn v2_layout_matches_rfc_3768() {
    let bytes = encode(
        &v2_advert(password(b"1111")),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    assert_eq!(bytes.len(), 8 + 2 * 4 + 8);
    assert_eq!(&bytes[..6], &[0x21, 51, 150, 2, 1, 2]);
    assert_eq!(&bytes[8..16], &[198, 51, 100, 100, 198, 51, 100, 101]);
    assert_eq!(&bytes[16..], b"1111\0\0\0\0");
}

#[test]
fn v3_layout_matches_rfc_9568() {
    let bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    assert_eq!(bytes.len(), 8 + 4);
    assert_eq!(&bytes[..6], &[0x31, 52, 120, 1, 0x00, 150]);
    assert_eq!(&bytes[8..], &[198, 51, 100, 102]);
}

#[test]
fn v2_without_authentication_sends_zeroed_auth_data() {
    let bytes = encode(
        &v2_advert(Authentication::None),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    assert_eq!(bytes[4], 0);
    assert_eq!(&bytes[16..], &[0; 8]);
}

#[test]
fn v3_over_ipv4_variants_differ_and_decode_reports_which_matched() {
    let with = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    let without = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    assert_ne!(with, without);
    assert_eq!(
        decode(&with, &v4_envelope(), 255).unwrap().checksum,
        ChecksumVariant::PseudoHeader
    );
    assert_eq!(
        decode(&without, &v4_envelope(), 255).unwrap().checksum,
        ChecksumVariant::MessageOnly
    );
}

#[test]
fn pseudo_header_checksum_covers_the_destination() {
    // A packet checksummed for the multicast group does not verify as unicast to a peer.
    let bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    let unicast = Envelope::V4 {
        source: Ipv4Addr::new(198, 51, 100, 1),
        destination: Ipv4Addr::new(198, 51, 100, 2),
    };
    assert_eq!(decode(&bytes, &unicast, 255), Err(DecodeError::Checksum));
}

#[test]
fn ipv6_requires_the_pseudo_header() {
    let bytes = encode(
        &v3_v6_advert(),
        &v6_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    let message_only = with_valid_checksum(bytes, None);
    assert_eq!(
        decode(&message_only, &v6_envelope(), 255),
        Err(DecodeError::Checksum)
    );
}

#[test]
fn ipv6_encode_ignores_a_message_only_request() {
    let asked = encode(
        &v3_v6_advert(),
        &v6_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    let default = encode(
        &v3_v6_advert(),
        &v6_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    assert_eq!(asked, default);
}

#[test]
fn v2_checksum_never_includes_the_pseudo_header() {
    let bytes = encode(
        &v2_advert(Authentication::None),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    assert_eq!(vrrp_checksum(&bytes, None), 0);
    let pseudo = with_valid_checksum(bytes, Some(&v4_envelope()));
    assert_eq!(
        decode(&pseudo, &v4_envelope(), 255),
        Err(DecodeError::Checksum)
    );
}

#[test]
fn drops_a_ttl_other_than_255() {
    let bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    assert_eq!(
        decode(&bytes, &v4_envelope(), 254),
        Err(DecodeError::HopLimit { received: 254 })
    );
}

#[test]
fn drops_unknown_versions() {
    let bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    for version in [0u8, 1, 4, 15] {
        let mut edited = bytes.clone();
        edited[0] = (version << 4) | 1;
        let edited = with_valid_checksum(edited, Some(&v4_envelope()));
        assert_eq!(
            decode(&edited, &v4_envelope(), 255),
            Err(DecodeError::Version { received: version })
        );
    }
}

#[test]
fn drops_version_2_over_ipv6() {
    let mut bytes = encode(
        &v3_v6_advert(),
        &v6_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    bytes[0] = 0x21;
    let bytes = with_valid_checksum(bytes, Some(&v6_envelope()));
    assert_eq!(
        decode(&bytes, &v6_envelope(), 255),
        Err(DecodeError::Version { received: 2 })
    );
}

#[test]
fn drops_types_other_than_advertisement() {
    let mut bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    bytes[0] = 0x32;
    let bytes = with_valid_checksum(bytes, Some(&v4_envelope()));
    assert_eq!(
        decode(&bytes, &v4_envelope(), 255),
        Err(DecodeError::Type { received: 2 })
    );
}

#[test]
fn drops_a_message_shorter_than_the_header() {
    assert_eq!(
        decode(&[0x31, 52, 120, 0, 0, 100, 0], &v4_envelope(), 255),
        Err(DecodeError::TooShort { length: 7 })
    );
}

#[test]
fn drops_a_message_whose_length_disagrees_with_the_address_count() {
    let bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    let mut claims_two = bytes.clone();
    claims_two[3] = 2;
    assert_eq!(
        decode(&claims_two, &v4_envelope(), 255),
        Err(DecodeError::AddressCount {
            count: 2,
            length: 12
        })
    );
    let mut trailing = bytes;
    trailing.extend_from_slice(&[0; 4]);
    assert_eq!(
        decode(&trailing, &v4_envelope(), 255),
        Err(DecodeError::AddressCount {
            count: 1,
            length: 16
        })
    );
}

#[test]
fn drops_v2_without_its_authentication_data() {
    let bytes = encode(
        &v2_advert(Authentication::None),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    let truncated = with_valid_checksum(bytes[..16].to_vec(), None);
    assert_eq!(
        decode(&truncated, &v4_envelope(), 255),
        Err(DecodeError::AddressCount {
            count: 2,
            length: 16
        })
    );
}

#[test]
fn drops_a_bad_checksum() {
    let mut bytes = encode(
        &v2_advert(password(b"1111")),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    bytes[2] ^= 0x01;
    assert_eq!(
        decode(&bytes, &v4_envelope(), 255),
        Err(DecodeError::Checksum)
    );
}

#[test]
fn drops_unknown_v2_authentication_types() {
    let mut bytes = encode(
        &v2_advert(Authentication::None),
        &v4_envelope(),
        ChecksumVariant::MessageOnly,
    )
    .unwrap();
    bytes[4] = 2; // RFC 2338's IP Authentication Header, removed by RFC 3768
    let bytes = with_valid_checksum(bytes, None);
    assert_eq!(
        decode(&bytes, &v4_envelope(), 255),
        Err(DecodeError::AuthType { received: 2 })
    );
}

#[test]
fn drops_a_zero_interval() {
    let mut bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    bytes[4] = 0xf0; // only the reserved bits set: the 12-bit interval is 0
    bytes[5] = 0;
    let bytes = with_valid_checksum(bytes, Some(&v4_envelope()));
    assert_eq!(
        decode(&bytes, &v4_envelope(), 255),
        Err(DecodeError::ZeroInterval)
    );
}

#[test]
fn v3_ignores_the_reserved_bits_on_receive() {
    let mut bytes = encode(
        &v3_v4_advert(),
        &v4_envelope(),
        ChecksumVariant::PseudoHeader,
    )
    .unwrap();
    bytes[4] |= 0xf0;
    let bytes = with_valid_checksum(bytes, Some(&v4_envelope()));
    let decoded = decode(&bytes, &v4_envelope(), 255).unwrap();
    assert_eq!(
        decoded.advertisement.interval,
        AdvertInterval::from_centis(150)
    );
}

#[test]
fn v3_reports_the_12_bit_maximum_interval() {
    let mut advert = v3_v4_advert();
    advert.interval = AdvertInterval::from_centis(4095);
    round_trip(&advert, &v4_envelope(), ChecksumVariant::PseudoHeader);
}

#[test]
fn drop_reasons_are_distinct_metric_labels() {
    let reasons = [
        DecodeError::HopLimit { received: 1 },
        DecodeError::Version { received: 1 },
        DecodeError::Type { received: 2 },
        DecodeError::TooShort { length: 0 },
        DecodeError::AddressCount {
            count: 1,
            length: 8,
        },
        DecodeError::Checksum,
        DecodeError::AuthType { received: 2 },
        DecodeError::ZeroInterval,
    ];
    let mut labels: Vec<_> = reasons.iter().map(DecodeError::as_str).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), reasons.len());
    assert!(labels
        .iter()
        .all(|label| label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn simple_text_passwords_compare_all_eight_bytes() {
    let short = SimpleTextPassword::new(b"1111").unwrap();
    assert_eq!(short.as_bytes(), b"1111\0\0\0\0");
    assert_ne!(short, SimpleTextPassword::new(b"1111\0\0\0x").unwrap());
    assert_eq!(
        SimpleTextPassword::new(b"12345678").unwrap().as_bytes(),
        b"12345678"
    );
    assert_eq!(SimpleTextPassword::new(b"123456789"), None);
}

#[test]
fn simple_text_password_stays_out_of_debug_output() {
    let advert = v2_advert(password(b"secret"));
    assert!(!format!("{advert:?}").contains("secret"));
}

#[test]
fn encode_rejects_what_the_wire_cannot_carry() {
    let v4 = v4_envelope();
    let v6 = v6_envelope();
    let variant = ChecksumVariant::PseudoHeader;

    let mut v2_over_v6 = v3_v6_advert();
    v2_over_v6.version = Version::V2;
    assert_eq!(
        encode(&v2_over_v6, &v6, variant),
        Err(EncodeError::V2OverIpv6)
    );

    let mut mixed = v3_v4_advert();
    let v6_address: IpAddr = "2001:db8::1".parse().unwrap();
    mixed.addresses.push(v6_address);
    assert_eq!(
        encode(&mixed, &v4, variant),
        Err(EncodeError::AddressFamily(v6_address))
    );

    let mut crowded = v3_v4_advert();
    crowded.addresses = vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)); 256];
    assert_eq!(
        encode(&crowded, &v4, variant),
        Err(EncodeError::TooManyAddresses(256))
    );

    for centis in [0, 150, 25600] {
        let mut advert = v2_advert(Authentication::None);
        advert.interval = AdvertInterval::from_centis(centis);
        assert_eq!(
            encode(&advert, &v4, variant),
            Err(EncodeError::Interval(centis))
        );
    }
    for centis in [0, 4096] {
        let mut advert = v3_v4_advert();
        advert.interval = AdvertInterval::from_centis(centis);
        assert_eq!(
            encode(&advert, &v4, variant),
            Err(EncodeError::Interval(centis))
        );
    }

    let mut authenticated_v3 = v3_v4_advert();
    authenticated_v3.authentication = password(b"1111");
    assert_eq!(
        encode(&authenticated_v3, &v4, variant),
        Err(EncodeError::AuthenticationInV3)
    );
}

#[test]
fn v2_encodes_the_longest_interval() {
    let mut advert = v2_advert(Authentication::None);
    advert.interval = AdvertInterval::from_secs(255);
    round_trip(&advert, &v4_envelope(), ChecksumVariant::MessageOnly);
}
