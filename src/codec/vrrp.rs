//! VRRP advertisements on the wire: version 2 (RFC 3768, IPv4 only) and version 3 (RFC 9568,
//! which replaced RFC 5798; IPv4 and IPv6).
//!
//! The input to [`decode`] is the VRRP message (the IP payload) plus the facts the socket reports
//! about the IP header around it; [`encode`] produces the message the shell sends with TTL 255.
//! Checks that need configuration (VRID, authentication, interval, the address list) belong to
//! the caller: the decoded [`Advertisement`] exposes every field for them.

mod checksum;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use checksum::vrrp_checksum;

/// IP protocol number of VRRP.
pub const IP_PROTOCOL: u8 = 112;

/// The only TTL (IPv4) or hop limit (IPv6) a VRRP packet may arrive with: anything lower crossed
/// a router, so it does not come from this link (RFC 3768 §7.1, RFC 9568 §7.1).
pub const REQUIRED_HOP_LIMIT: u8 = 255;

const ADVERTISEMENT_TYPE: u8 = 1;
const HEADER_LEN: usize = 8;
const CHECKSUM_OFFSET: usize = 6;
const V2_AUTH_DATA_LEN: usize = 8;
const V2_AUTH_NONE: u8 = 0;
const V2_AUTH_SIMPLE_TEXT: u8 = 1;
/// The v3 interval field is 12 bits; the 4 bits above it are reserved.
const V3_INTERVAL_MASK: u16 = 0x0fff;

/// Virtual router identifiers a group may use; 0 is none (RFC 3768 §5.3.3, RFC 9568 §5.2.3).
pub const VRIDS: RangeInclusive<u8> = 1..=255;
/// The priority of the router that owns the virtual addresses.
pub const OWNER_PRIORITY: u8 = 255;
/// Priorities a router may run with: 0 is only sent by a Master resigning.
pub const PRIORITIES: RangeInclusive<u8> = 1..=OWNER_PRIORITY;
/// Virtual addresses one advertisement carries at most: their count is one byte.
pub const MAX_ADDRESSES: usize = u8::MAX as usize;
/// A simple-text password fills at most the 8 bytes of authentication data.
pub const MAX_PASSWORD_LEN: usize = V2_AUTH_DATA_LEN;
/// VRRPv2 carries the interval as whole seconds in one byte.
pub const V2_INTERVAL_STEP: Duration = Duration::from_secs(1);
pub const V2_MAX_INTERVAL: Duration = Duration::from_secs(u8::MAX as u64);
/// VRRPv3 carries it as 12 bits of centiseconds.
pub const V3_INTERVAL_STEP: Duration = Duration::from_millis(10);
pub const V3_MAX_INTERVAL: Duration = AdvertInterval::from_centis(V3_INTERVAL_MASK).as_duration();

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, optional simple-text authentication.
    V2,
    /// RFC 9568: IPv4 or IPv6, interval in centiseconds, no authentication.
    V3,
}

/// `v2`, `v3`.
impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl Version {
    fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Time between adverts, in the centiseconds VRRPv3 carries. VRRPv2 carries whole seconds,
/// which are a multiple of this unit, so one type serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdvertInterval(u16);

/// In milliseconds, as the config may write it: `1000ms`.
impl std::fmt::Display for AdvertInterval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", u32::from(self.0) * 10)
    }
}

impl AdvertInterval {
    pub const fn from_centis(centis: u16) -> Self {
        AdvertInterval(centis)
    }

    /// The v2 form; 255 s (the v2 maximum) is 25500 cs, which fits.
    pub const fn from_secs(secs: u8) -> Self {
        AdvertInterval(secs as u16 * 100)
    }

    pub const fn as_centis(self) -> u16 {
        self.0
    }

    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0 as u64 * 10)
    }
}

/// Source and destination of the IP packet carrying an advertisement. One family per value,
/// because VRRP never mixes them; v3 checksums cover these addresses (the pseudo-header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Envelope {
    V4 {
        source: Ipv4Addr,
        destination: Ipv4Addr,
    },
    V6 {
        source: Ipv6Addr,
        destination: Ipv6Addr,
    },
}

impl Envelope {
    pub fn source(&self) -> IpAddr {
        match self {
            Envelope::V4 { source, .. } => IpAddr::V4(*source),
            Envelope::V6 { source, .. } => IpAddr::V6(*source),
        }
    }

    pub fn destination(&self) -> IpAddr {
        match self {
            Envelope::V4 { destination, .. } => IpAddr::V4(*destination),
            Envelope::V6 { destination, .. } => IpAddr::V6(*destination),
        }
    }

    fn address_len(&self) -> usize {
        match self {
            Envelope::V4 { .. } => 4,
            Envelope::V6 { .. } => 16,
        }
    }

    fn is_same_family(&self, address: &IpAddr) -> bool {
        matches!(
            (self, address),
            (Envelope::V4 { .. }, IpAddr::V4(_)) | (Envelope::V6 { .. }, IpAddr::V6(_))
        )
    }
}

/// What the checksum covers. Only VRRPv3 over IPv4 has a choice: keepalived and FRR include the
/// pseudo-header (RFC 9568 as written), while Cisco and the RFC's errata leave it out. VRRPv2
/// never includes it and IPv6 always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumVariant {
    #[default]
    PseudoHeader,
    MessageOnly,
}

/// A VRRPv2 simple-text password (keepalived's `auth_type PASS`): up to 8 bytes, zero padded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimpleTextPassword([u8; V2_AUTH_DATA_LEN]);

impl SimpleTextPassword {
    /// `None` when longer than the 8 bytes the packet has room for.
    pub fn new(password: &[u8]) -> Option<Self> {
        let mut padded = [0; V2_AUTH_DATA_LEN];
        padded.get_mut(..password.len())?.copy_from_slice(password);
        Some(SimpleTextPassword(padded))
    }

    /// All 8 bytes as on the wire: comparing these (not a trimmed string) is what RFC 3768 means
    /// by matching the authentication data.
    pub fn as_bytes(&self) -> &[u8; V2_AUTH_DATA_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SimpleTextPassword {
    // Keeps the password out of logs that print a decoded packet.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimpleTextPassword(..)")
    }
}

/// VRRPv2 authentication. RFC 9568 removed authentication, so v3 adverts always carry `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authentication {
    None,
    SimpleText(SimpleTextPassword),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertisement {
    pub version: Version,
    /// Virtual router identifier, 1..=255.
    pub vrid: u8,
    /// The sender's priority: 255 owns the addresses, 0 resigns mastership.
    pub priority: u8,
    /// v2: the Advertisement_Interval; v3: the Max Advertise Interval.
    pub interval: AdvertInterval,
    /// The virtual addresses, all of the envelope's family.
    pub addresses: Vec<IpAddr>,
    pub authentication: Authentication,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub advertisement: Advertisement,
    /// What the valid checksum covered: the engine learns it per peer and answers in kind.
    pub checksum: ChecksumVariant,
}

/// Why a received packet was dropped before any configuration was consulted.
/// [`DecodeError::as_str`] is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("TTL/hop limit {received} instead of 255: the packet crossed a router")]
    HopLimit { received: u8 },
    #[error("VRRP version {received} is not supported over this address family")]
    Version { received: u8 },
    #[error("VRRP type {received} is not an advertisement (1)")]
    Type { received: u8 },
    #[error("{length} bytes is shorter than the 8-byte VRRP header")]
    TooShort { length: usize },
    #[error("{count} addresses do not fit the {length}-byte message")]
    AddressCount { count: u8, length: usize },
    #[error("checksum does not match")]
    Checksum,
    #[error("unknown VRRPv2 authentication type {received}")]
    AuthType { received: u8 },
    #[error("advertisement interval 0")]
    ZeroInterval,
}

impl DecodeError {
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeError::HopLimit { .. } => "ttl",
            DecodeError::Version { .. } => "version",
            DecodeError::Type { .. } => "type",
            DecodeError::TooShort { .. } => "too_short",
            DecodeError::AddressCount { .. } => "address_count",
            DecodeError::Checksum => "checksum",
            DecodeError::AuthType { .. } => "auth_type",
            DecodeError::ZeroInterval => "interval",
        }
    }
}

/// An advertisement that cannot be put on the wire: configuration validation should have
/// prevented each of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("VRRPv2 runs over IPv4 only")]
    V2OverIpv6,
    #[error("virtual address {0} is not of the envelope's address family")]
    AddressFamily(IpAddr),
    #[error("{0} virtual addresses: at most 255 fit in an advertisement")]
    TooManyAddresses(usize),
    #[error("interval {0} cs cannot be encoded (v2: 1..=255 whole seconds, v3: 1..=4095 cs)")]
    Interval(u16),
    #[error("VRRPv3 has no authentication")]
    AuthenticationInV3,
}

/// Validates a received VRRP message and returns its fields.
///
/// `hop_limit` is the TTL (IPv4) or hop limit (IPv6) the socket reported. Checks run in the order
/// of RFC 9568 §7.1: hop limit, version, completeness, checksum.
pub fn decode(payload: &[u8], envelope: &Envelope, hop_limit: u8) -> Result<Decoded, DecodeError> {
    if hop_limit != REQUIRED_HOP_LIMIT {
        return Err(DecodeError::HopLimit {
            received: hop_limit,
        });
    }
    let header: &[u8; HEADER_LEN] = payload.first_chunk().ok_or(DecodeError::TooShort {
        length: payload.len(),
    })?;
    let version = match (header[0] >> 4, envelope) {
        (2, Envelope::V4 { .. }) => Version::V2,
        (3, _) => Version::V3,
        (received, _) => return Err(DecodeError::Version { received }),
    };
    if header[0] & 0x0f != ADVERTISEMENT_TYPE {
        return Err(DecodeError::Type {
            received: header[0] & 0x0f,
        });
    }
    let [_, vrid, priority, count, ..] = *header;
    let addresses_len = usize::from(count) * envelope.address_len();
    let auth_len = match version {
        Version::V2 => V2_AUTH_DATA_LEN,
        Version::V3 => 0,
    };
    if payload.len() != HEADER_LEN + addresses_len + auth_len {
        return Err(DecodeError::AddressCount {
            count,
            length: payload.len(),
        });
    }
    let checksum = verify_checksum(payload, version, envelope)?;

    let (interval, authentication) = match version {
        Version::V2 => {
            let auth_data = &payload[HEADER_LEN + addresses_len..];
            let authentication = match header[4] {
                V2_AUTH_NONE => Authentication::None,
                V2_AUTH_SIMPLE_TEXT => Authentication::SimpleText(SimpleTextPassword(
                    auth_data.try_into().expect("length checked above"),
                )),
                received => return Err(DecodeError::AuthType { received }),
            };
            (AdvertInterval::from_secs(header[5]), authentication)
        }
        Version::V3 => {
            let field = u16::from_be_bytes([header[4], header[5]]);
            (
                AdvertInterval::from_centis(field & V3_INTERVAL_MASK),
                Authentication::None,
            )
        }
    };
    if interval.as_centis() == 0 {
        return Err(DecodeError::ZeroInterval);
    }

    let address_bytes = &payload[HEADER_LEN..HEADER_LEN + addresses_len];
    let addresses = match envelope {
        Envelope::V4 { .. } => address_bytes
            .chunks_exact(4)
            .map(|octets| IpAddr::from(<[u8; 4]>::try_from(octets).expect("chunk of 4")))
            .collect(),
        Envelope::V6 { .. } => address_bytes
            .chunks_exact(16)
            .map(|octets| IpAddr::from(<[u8; 16]>::try_from(octets).expect("chunk of 16")))
            .collect(),
    };

    Ok(Decoded {
        advertisement: Advertisement {
            version,
            vrid,
            priority,
            interval,
            addresses,
            authentication,
        },
        checksum,
    })
}

fn verify_checksum(
    payload: &[u8],
    version: Version,
    envelope: &Envelope,
) -> Result<ChecksumVariant, DecodeError> {
    let candidates: &[ChecksumVariant] = match (version, envelope) {
        (Version::V2, _) => &[ChecksumVariant::MessageOnly],
        (Version::V3, Envelope::V6 { .. }) => &[ChecksumVariant::PseudoHeader],
        // The default first: it is what keepalived and FRR send.
        (Version::V3, Envelope::V4 { .. }) => {
            &[ChecksumVariant::PseudoHeader, ChecksumVariant::MessageOnly]
        }
    };
    candidates
        .iter()
        .copied()
        .find(|&variant| vrrp_checksum(payload, pseudo_header(variant, envelope)) == 0)
        .ok_or(DecodeError::Checksum)
}

fn pseudo_header(variant: ChecksumVariant, envelope: &Envelope) -> Option<&Envelope> {
    match variant {
        ChecksumVariant::PseudoHeader => Some(envelope),
        ChecksumVariant::MessageOnly => None,
    }
}

/// Builds the VRRP message for `advert`, sent inside `envelope`.
///
/// `checksum` matters only for VRRPv3 over IPv4; VRRPv2 always sums the message alone and IPv6
/// always includes the pseudo-header, whatever is passed.
pub fn encode(
    advert: &Advertisement,
    envelope: &Envelope,
    checksum: ChecksumVariant,
) -> Result<Vec<u8>, EncodeError> {
    if advert.version == Version::V2 && matches!(envelope, Envelope::V6 { .. }) {
        return Err(EncodeError::V2OverIpv6);
    }
    if let Some(address) = advert
        .addresses
        .iter()
        .find(|address| !envelope.is_same_family(address))
    {
        return Err(EncodeError::AddressFamily(*address));
    }
    let count = u8::try_from(advert.addresses.len())
        .map_err(|_| EncodeError::TooManyAddresses(advert.addresses.len()))?;
    let centis = advert.interval.as_centis();
    let interval_field: [u8; 2] = match advert.version {
        Version::V2 => {
            let secs = u8::try_from(centis / 100)
                .ok()
                .filter(|&secs| secs > 0 && centis % 100 == 0)
                .ok_or(EncodeError::Interval(centis))?;
            let auth_type = match advert.authentication {
                Authentication::None => V2_AUTH_NONE,
                Authentication::SimpleText(_) => V2_AUTH_SIMPLE_TEXT,
            };
            [auth_type, secs]
        }
        Version::V3 => {
            if advert.authentication != Authentication::None {
                return Err(EncodeError::AuthenticationInV3);
            }
            if centis == 0 || centis > V3_INTERVAL_MASK {
                return Err(EncodeError::Interval(centis));
            }
            centis.to_be_bytes()
        }
    };

    let mut message = Vec::with_capacity(
        HEADER_LEN + advert.addresses.len() * envelope.address_len() + V2_AUTH_DATA_LEN,
    );
    message.extend_from_slice(&[
        (advert.version.number() << 4) | ADVERTISEMENT_TYPE,
        advert.vrid,
        advert.priority,
        count,
        interval_field[0],
        interval_field[1],
        0,
        0,
    ]);
    for address in &advert.addresses {
        match address {
            IpAddr::V4(v4) => message.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => message.extend_from_slice(&v6.octets()),
        }
    }
    let variant = match advert.version {
        Version::V2 => {
            let auth_data = match &advert.authentication {
                Authentication::None => [0; V2_AUTH_DATA_LEN],
                Authentication::SimpleText(password) => *password.as_bytes(),
            };
            message.extend_from_slice(&auth_data);
            ChecksumVariant::MessageOnly
        }
        Version::V3 => match envelope {
            Envelope::V4 { .. } => checksum,
            Envelope::V6 { .. } => ChecksumVariant::PseudoHeader,
        },
    };
    let sum = vrrp_checksum(&message, pseudo_header(variant, envelope));
    message[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(message)
}

#[cfg(test)]
mod tests;
