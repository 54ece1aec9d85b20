//! An instance's addresses: its virtual IPs, which set its address family, and the source and
//! peers, which must share it.

use super::super::super::model::*;
use super::super::Validator;
use crate::codec::vrrp as packet;
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

impl Validator {
    /// Parses every VIP and checks that they share one address family, which the first valid
    /// one sets.
    pub(super) fn virtual_ips(&mut self, at: &str, name: &str, texts: &[String]) -> Vec<VirtualIp> {
        if texts.is_empty() {
            self.error(
                format!("{at}.virtual_ips"),
                format!(
                    "instance {name:?} has no virtual_ips; add at least one, e.g. 198.51.100.10/24"
                ),
            );
        }
        if texts.len() > packet::MAX_ADDRESSES {
            self.error(
                format!("{at}.virtual_ips"),
                format!(
                    "{} virtual IPs, but an advert carries at most {}; split them over several \
                     instances",
                    texts.len(),
                    packet::MAX_ADDRESSES
                ),
            );
        }
        let mut vips: Vec<VirtualIp> = Vec::with_capacity(texts.len());
        let mut first: Option<(usize, Family)> = None;
        for (index, text) in texts.iter().enumerate() {
            let field = format!("{at}.virtual_ips[{index}]");
            let vip = match virtual_ip(text) {
                Ok(vip) => vip,
                Err(message) => {
                    self.error(field, message);
                    continue;
                }
            };
            let family = Family::of(vip.address);
            match first {
                None => first = Some((index, family)),
                Some((first_index, first_family)) if first_family != family => {
                    self.error(
                        field,
                        format!(
                            "{text} is {family} but virtual_ips[{first_index}] is {first_family}; \
                             an instance holds one address family, so put the {family} \
                             addresses in an instance of their own"
                        ),
                    );
                    continue;
                }
                Some(_) => {}
            }
            vips.push(vip);
        }
        vips
    }

    /// A source or peer address, which must be of the VIPs' `family` when that is known.
    pub(super) fn instance_address(
        &mut self,
        field: String,
        text: &str,
        family: Option<Family>,
    ) -> Option<IpAddr> {
        let Ok(address) = text.parse::<IpAddr>() else {
            self.error(
                field,
                format!(
                    "invalid IP address {text:?}; write e.g. 198.51.100.11 or 2001:db8::11, \
                     without a prefix length (host names are not resolved)"
                ),
            );
            return None;
        };
        match family {
            Some(family) if Family::of(address) != family => {
                self.error(
                    field,
                    format!(
                        "{address} is {} but the virtual IPs are {family}; use an {family} address",
                        Family::of(address)
                    ),
                );
                None
            }
            _ => Some(address),
        }
    }
}

/// `address/prefix_len`, the prefix length within the address family's bits.
fn virtual_ip(text: &str) -> Result<VirtualIp, String> {
    let invalid = || {
        format!(
            "invalid virtual IP {text:?}; write an address with its prefix length, e.g. \
             198.51.100.10/24 or 2001:db8::10/64"
        )
    };
    let Some((address, prefix)) = text.split_once('/') else {
        let address: IpAddr = text.parse().map_err(|_| invalid())?;
        let example = match address {
            IpAddr::V4(_) => 24,
            IpAddr::V6(_) => 64,
        };
        return Err(format!(
            "virtual IP {address} has no prefix length; write e.g. {address}/{example}"
        ));
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    // Digits only: `parse` alone would take `+24`.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let bits: u8 = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    match prefix.parse::<u8>() {
        Ok(prefix_len) if prefix_len <= bits => Ok(VirtualIp {
            address,
            prefix_len,
        }),
        _ => Err(format!(
            "prefix length /{prefix} is too long for {}; {} has at most {bits} bits",
            Family::of(address),
            Family::of(address),
        )),
    }
}

/// Index of the first VIP that parses, which set the instance's family.
pub(super) fn first_valid_vip(texts: &[String]) -> usize {
    texts
        .iter()
        .position(|text| virtual_ip(text).is_ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::super::test_support::*;

    fn vips(list: &str) -> Result<Vec<VirtualIp>, Vec<String>> {
        let text = instance(&format!(", version: 3, virtual_ips: [{list}]"));
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => Ok(config.vrrp[0].virtual_ips.clone()),
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn reads_virtual_ips_with_their_prefix_length() {
        assert_eq!(
            vips("198.51.100.10/24, 198.51.100.11/32, 0.0.0.0/0"),
            Ok(vec![
                vip("198.51.100.10/24"),
                vip("198.51.100.11/32"),
                vip("0.0.0.0/0"),
            ])
        );
        assert_eq!(
            vips("'2001:db8::10/128'"),
            Ok(vec![vip("2001:db8::10/128")])
        );
    }

    #[test]
    fn rejects_a_virtual_ip_without_a_prefix_length_and_shows_one() {
        let at = "vrrp.instances[0].virtual_ips";
        assert_eq!(
            vips("198.51.100.10, '2001:db8::10'"),
            Err(vec![
                format!(
                    "{at}[0]: virtual IP 198.51.100.10 has no prefix length; write e.g. \
                     198.51.100.10/24"
                ),
                format!(
                    "{at}[1]: virtual IP 2001:db8::10 has no prefix length; write e.g. \
                     2001:db8::10/64"
                ),
            ])
        );
    }

    #[test]
    fn rejects_invalid_virtual_ips_and_prefixes_too_long_for_the_family() {
        let at = "vrrp.instances[0].virtual_ips";
        let invalid = |text: &str| {
            format!(
                "invalid virtual IP {text:?}; write an address with its prefix length, e.g. \
                 198.51.100.10/24 or 2001:db8::10/64"
            )
        };
        assert_eq!(
            vips(
                "vip.example/24, 198.51.100.10/, 198.51.100.10/+24, 198.51.100.10/24/1, \
                  198.51.100.300/24"
            ),
            Err((0..5)
                .map(|i| {
                    let text = [
                        "vip.example/24",
                        "198.51.100.10/",
                        "198.51.100.10/+24",
                        "198.51.100.10/24/1",
                        "198.51.100.300/24",
                    ][i];
                    format!("{at}[{i}]: {}", invalid(text))
                })
                .collect())
        );
        assert_eq!(
            vips("198.51.100.10/33, '2001:db8::10/129', 198.51.100.10/999"),
            Err(vec![
                format!(
                    "{at}[0]: prefix length /33 is too long for IPv4; IPv4 has at most 32 bits"
                ),
                format!(
                    "{at}[1]: prefix length /129 is too long for IPv6; IPv6 has at most 128 bits"
                ),
                format!(
                    "{at}[2]: prefix length /999 is too long for IPv4; IPv4 has at most 32 bits"
                ),
            ])
        );
    }

    #[test]
    fn rejects_mixed_address_families_in_one_instance() {
        assert_eq!(
            vips("'2001:db8::10/64', 198.51.100.10/24, '2001:db8::11/64', 198.51.100.11/24"),
            Err(vec![
                "vrrp.instances[0].virtual_ips[1]: 198.51.100.10/24 is IPv4 but virtual_ips[0] \
                 is IPv6; an instance holds one address family, so put the IPv4 addresses in an \
                 instance of their own"
                    .into(),
                "vrrp.instances[0].virtual_ips[3]: 198.51.100.11/24 is IPv4 but virtual_ips[0] \
                 is IPv6; an instance holds one address family, so put the IPv4 addresses in an \
                 instance of their own"
                    .into(),
            ])
        );
    }

    #[test]
    fn rejects_ipv6_on_version_2_once_at_the_first_valid_address() {
        assert_eq!(
            problems(&instance(
                ", virtual_ips: [nonsense, '2001:db8::10/64', '2001:db8::11/64']"
            )),
            [
                "vrrp.instances[0].virtual_ips[0]: invalid virtual IP \"nonsense\"; write an \
                 address with its prefix length, e.g. 198.51.100.10/24 or 2001:db8::10/64",
                "vrrp.instances[0].virtual_ips[1]: IPv6 needs version: 3; VRRPv2 is IPv4 only",
            ]
        );
    }

    #[test]
    fn rejects_an_instance_without_virtual_ips() {
        let expected = [
            "vrrp.instances[0].virtual_ips: instance \"VI_1\" has no virtual_ips; add at least \
             one, e.g. 198.51.100.10/24",
        ];
        assert_eq!(problems(&instance(", virtual_ips: []")), expected);
        let left_out = vrrp(&["name: VI_1, interface: eth0, virtual_router_id: 33"]);
        assert_eq!(problems(&left_out), expected);
    }

    #[test]
    fn rejects_source_and_peers_of_the_other_family() {
        assert_eq!(
            problems(&instance(
                ", source_ip: '2001:db8::1', unicast_peers: [198.51.100.12, 'fe80::2', \
                 198.51.100.13/24, peer.example]"
            )),
            [
                "vrrp.instances[0].source_ip: 2001:db8::1 is IPv6 but the virtual IPs are IPv4; \
                 use an IPv4 address",
                "vrrp.instances[0].unicast_peers[1]: fe80::2 is IPv6 but the virtual IPs are \
                 IPv4; use an IPv4 address",
                "vrrp.instances[0].unicast_peers[2]: invalid IP address \"198.51.100.13/24\"; \
                 write e.g. 198.51.100.11 or 2001:db8::11, without a prefix length (host names \
                 are not resolved)",
                "vrrp.instances[0].unicast_peers[3]: invalid IP address \"peer.example\"; write \
                 e.g. 198.51.100.11 or 2001:db8::11, without a prefix length (host names are \
                 not resolved)",
            ]
        );
    }
}
