//! The `announce` section: the device tandem creates for FRR to redistribute, the host
//! addresses it puts on it, the items whose failure withdraws them, and how long a drain waits
//! for the routers after withdrawing.

use super::super::duration;
use super::super::model::*;
use super::super::schema::*;
use super::Validator;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

const DEFAULT_INTERFACE: &str = "tandem0";
/// Linux's IFNAMSIZ, less the name's terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;
/// Linux's loopback interface.
const LOOPBACK: &str = "lo";
const DEFAULT_QUIET: Duration = Duration::from_secs(1);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);
/// Routers move new flows away within a second or two of a withdrawal; a drain still waiting
/// after minutes is waiting for clients that keep connecting to an address they cached, and
/// holds up the shutdown behind it.
const MAX_WITHDRAW_WAIT: Duration = Duration::from_secs(5 * 60);
/// The item shown when one names nothing to track.
const EXAMPLE: &str = "{ backend: web_pool }";

impl Validator {
    /// `vrrp` is the validated `vrrp.instances`, whose interfaces and virtual IPs announce must
    /// leave alone.
    pub(super) fn announce(
        &mut self,
        spec: AnnounceSpec,
        frontends: &[Frontend],
        backends: &[Backend],
        vrrp: &[VrrpInstance],
    ) -> Announce {
        let interface = (spec.interface).unwrap_or_else(|| DEFAULT_INTERFACE.to_owned());
        self.announce_interface(&interface, vrrp);
        let addresses = self.announced_addresses(&spec.addresses, vrrp);
        let track = (spec.track.into_iter().enumerate())
            .filter_map(|(i, item)| {
                self.announce_track(
                    format!("announce.track[{i}]"),
                    item,
                    &interface,
                    frontends,
                    backends,
                )
            })
            .collect();
        let withdraw = spec.withdraw.unwrap_or(WithdrawSpec {
            quiet: None,
            max_wait: None,
        });
        let (withdraw_quiet, withdraw_max_wait) = self.withdraw_waits(withdraw);
        Announce {
            interface,
            addresses,
            track,
            withdraw_quiet,
            withdraw_max_wait,
        }
    }

    /// A name Linux takes for a new device, and one no other part of the config uses.
    fn announce_interface(&mut self, name: &str, vrrp: &[VrrpInstance]) {
        let field = "announce.interface";
        if name.is_empty() {
            self.error(
                field,
                format!("must not be empty; leave it out for {DEFAULT_INTERFACE}"),
            );
            return;
        }
        if name.len() > MAX_INTERFACE_NAME {
            self.error(
                field,
                format!(
                    "interface name {name:?} is {} bytes, but Linux allows at most \
                     {MAX_INTERFACE_NAME}",
                    name.len()
                ),
            );
        }
        if name == "." || name == ".." {
            self.error(
                field,
                format!("{name:?} is not a valid interface name: Linux keeps . and .. for paths"),
            );
        }
        if let Some(refused) = name.chars().find(|&c| refused_in_interface_name(c)) {
            self.error(
                field,
                format!(
                    "interface name {name:?} contains {refused:?}, which Linux refuses in one \
                     (no /, :, whitespace or NUL)"
                ),
            );
        }
        if name.contains('%') {
            self.error(
                field,
                format!(
                    "interface name {name:?} contains %, which the kernel takes as a number to \
                     fill in (tandem%d makes tandem0): name the device as it will be"
                ),
            );
        }
        if name == LOOPBACK {
            self.error(
                field,
                format!(
                    "lo is the loopback interface; announce needs a device of its own, which \
                     tandem creates: leave interface out for {DEFAULT_INTERFACE}"
                ),
            );
        }
        for instance in vrrp {
            // The macvlan of a virtual MAC is `vrrp::net::virtual_mac::macvlan_name`; config
            // imports no runtime module, so the name is spelt here too (a test there holds them equal).
            let macvlan = instance.virtual_mac.then(|| {
                let family = match instance.virtual_ips.first().map(|vip| vip.address) {
                    Some(IpAddr::V6(_)) => 6,
                    _ => 4,
                };
                format!("vrrp{family}.{}", instance.virtual_router_id)
            });
            let uses = if instance.interface == name {
                "the interface"
            } else if macvlan.as_deref() == Some(name) {
                "the virtual MAC's macvlan"
            } else {
                continue;
            };
            self.error(
                field,
                format!(
                    "{name} is {uses} of vrrp instance {:?}; announce needs a device of its own, \
                     which tandem creates: give it a name no other interface has, or leave it \
                     out for {DEFAULT_INTERFACE}",
                    instance.name
                ),
            );
        }
    }

    /// Every address, parsed; each must be a unicast host address, listed once, and not a
    /// VRRP virtual IP.
    fn announced_addresses(&mut self, texts: &[String], vrrp: &[VrrpInstance]) -> Vec<IpAddr> {
        if texts.is_empty() {
            self.error(
                "announce.addresses",
                "no addresses to announce; add at least one host address, e.g. [203.0.113.10]",
            );
        }
        let mut addresses = Vec::with_capacity(texts.len());
        let mut first_use: HashMap<IpAddr, usize> = HashMap::new();
        for (index, text) in texts.iter().enumerate() {
            let field = format!("announce.addresses[{index}]");
            let address = match host_address(text) {
                Ok(address) => address,
                Err(message) => {
                    self.error(field, message);
                    continue;
                }
            };
            if let Some(first) = first_use.get(&address) {
                self.error(
                    field,
                    format!(
                        "{address} is already listed as announce.addresses[{first}]; list each \
                         address once"
                    ),
                );
                continue;
            }
            let holder = vrrp
                .iter()
                .find(|instance| (instance.virtual_ips.iter()).any(|vip| vip.address == address));
            if let Some(instance) = holder {
                self.error(
                    field,
                    format!(
                        "{address} is also a virtual IP of vrrp instance {:?}; an address is \
                         held by VRRP or announced, not both: remove it from one of them",
                        instance.name
                    ),
                );
                continue;
            }
            first_use.insert(address, index);
            addresses.push(address);
        }
        addresses
    }

    /// One `track:` item, read as VRRP reads its own, without a weight: any failing item
    /// withdraws.
    fn announce_track(
        &mut self,
        at: String,
        spec: TrackSpec,
        interface: &str,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> Option<Track> {
        if spec.weight.is_some() {
            self.error(
                format!("{at}.weight"),
                "announce tracks have no weight: any failing item withdraws; remove it",
            );
        }
        let field = format!("{at}.interface");
        let target = self.track_target(at, spec, EXAMPLE, frontends, backends)?;
        if target == TrackTarget::Interface(interface.to_owned()) {
            self.error(
                field,
                format!(
                    "{interface} is announce's own device, which is up while tandem runs, so \
                     this would never fail; track the interface that faces the routers"
                ),
            );
            return None;
        }
        Some(Track {
            target,
            weight: TrackWeight::Fault,
        })
    }

    /// `withdraw.quiet` and `withdraw.max_wait`: each positive and at most
    /// `MAX_WITHDRAW_WAIT`, and max_wait at least quiet.
    fn withdraw_waits(&mut self, spec: WithdrawSpec) -> (Duration, Duration) {
        let errors_before = self.errors.len();
        let quiet = self.timeout(
            "announce.withdraw.quiet".to_owned(),
            spec.quiet.as_deref(),
            DEFAULT_QUIET,
            MAX_WITHDRAW_WAIT,
        );
        let max_wait = self.timeout(
            "announce.withdraw.max_wait".to_owned(),
            spec.max_wait.as_deref(),
            DEFAULT_MAX_WAIT,
            MAX_WITHDRAW_WAIT,
        );
        // Compared only when both are as written: a default standing in for an invalid one
        // would make up a second error.
        if self.errors.len() == errors_before && max_wait < quiet {
            // At max_wait unless only quiet is written, so the place shown is one to edit.
            let field = if spec.max_wait.is_some() {
                "announce.withdraw.max_wait"
            } else {
                "announce.withdraw.quiet"
            };
            self.error(
                field,
                format!(
                    "max_wait {} is shorter than quiet {}: a drain would give up before it \
                     could see the routers move new flows away; make max_wait at least quiet",
                    duration::display(max_wait),
                    duration::display(quiet)
                ),
            );
        }
        (quiet, max_wait)
    }
}

/// What the kernel's `dev_valid_name` refuses in an interface name: `/`, `:`, and what its
/// `isspace` counts as space (tab to carriage return, space, and the byte 0xA0, which may
/// appear inside a UTF-8 character); and NUL, which would end the name early.
fn refused_in_interface_name(c: char) -> bool {
    let mut utf8 = [0; 4];
    let has_byte_a0 = c.encode_utf8(&mut utf8).bytes().any(|byte| byte == 0xA0);
    matches!(c, '/' | ':' | '\0' | ' ' | '\t'..='\r') || has_byte_a0
}

/// An address as written in `addresses`: alone, or with its host prefix length (`/32`,
/// `/128`); unicast only.
fn host_address(text: &str) -> Result<IpAddr, String> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().map_err(|_| {
        format!(
            "invalid address {text:?}; write a host address, e.g. 203.0.113.10 or \
             2001:db8::10 (host names are not resolved)"
        )
    })?;
    let host_bits = match address {
        IpAddr::V4(_) => "32",
        IpAddr::V6(_) => "128",
    };
    if prefix.is_some_and(|prefix| prefix != host_bits) {
        return Err(format!(
            "{text} is not a host route; announce a host address: {address} or \
             {address}/{host_bits}"
        ));
    }
    let refused = match address {
        _ if address.is_unspecified() => Some("the unspecified address"),
        _ if address.is_multicast() => Some("a multicast address"),
        _ if address.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local (169.254.0.0/16)"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local (fe80::/10)"),
        _ => None,
    };
    match refused {
        Some(what) => Err(format!(
            "{address} is {what}, which routers cannot send to this node; announce a routable \
             unicast address, e.g. 203.0.113.10"
        )),
        None => Ok(address),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::net::IpAddr;

    /// [`TRACKABLE`], VRRP instance `VI_1` on eth0 (VRID 33, VIP 198.51.100.10/24, virtual MAC), then
    /// `announce:` with `body` under it, from line 11.
    fn announcing(body: &str) -> String {
        format!(
            "{TRACKABLE}\
             vrrp:\n  instances:\n    - {{ name: VI_1, interface: eth0, virtual_router_id: 33, \
             virtual_ips: [198.51.100.10/24], virtual_mac: true }}\n\
             announce:\n{body}"
        )
    }

    /// `announce:` with `addresses: [203.0.113.10]` and `keys` (a flow mapping's).
    fn with(keys: &str) -> String {
        announcing(&format!("  {{ addresses: [203.0.113.10]{keys} }}\n"))
    }

    /// Every error as the operator reads it: `line:column: field: message`.
    fn located(text: &str) -> Vec<String> {
        let errors = crate::config::parse(text, Path::new("inline.yaml")).unwrap_err();
        (errors.0.iter())
            .map(|error| error.to_string().replacen("inline.yaml:", "", 1))
            .collect()
    }

    fn addresses(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn accepts_the_designs_example() {
        let config = valid(&announcing(
            "  interface: tandem0\n  addresses: [203.0.113.10]\n  track:\n    - backend: web\n  \
             withdraw:\n    quiet: 1s\n    max_wait: 10s\n",
        ));
        assert_eq!(
            config.announce,
            Some(Announce {
                interface: "tandem0".into(),
                addresses: addresses(&["203.0.113.10"]),
                track: vec![Track {
                    target: TrackTarget::Backend {
                        backend: 0,
                        min_healthy: 1
                    },
                    weight: TrackWeight::Fault,
                }],
                withdraw_quiet: Duration::from_secs(1),
                withdraw_max_wait: Duration::from_secs(10),
            })
        );
    }

    #[test]
    fn reads_every_key() {
        let config = valid(&announcing(
            "  interface: bgp-vips\n  \
             addresses: [203.0.113.10, 203.0.113.11/32, '2001:db8::10', '2001:db8::11/128']\n  \
             track:\n    - { backend: web, min_healthy: 2 }\n    - frontend: web\n    \
             - interface: eth1\n  \
             withdraw: { quiet: 500ms, max_wait: 5m }\n",
        ));
        assert_eq!(
            config.announce,
            Some(Announce {
                interface: "bgp-vips".into(),
                addresses: addresses(&[
                    "203.0.113.10",
                    "203.0.113.11",
                    "2001:db8::10",
                    "2001:db8::11"
                ]),
                track: vec![
                    Track {
                        target: TrackTarget::Backend {
                            backend: 0,
                            min_healthy: 2
                        },
                        weight: TrackWeight::Fault,
                    },
                    Track {
                        target: TrackTarget::Frontend(0),
                        weight: TrackWeight::Fault,
                    },
                    Track {
                        target: TrackTarget::Interface("eth1".into()),
                        weight: TrackWeight::Fault,
                    },
                ],
                withdraw_quiet: Duration::from_millis(500),
                withdraw_max_wait: Duration::from_secs(300),
            })
        );
    }

    #[test]
    fn fills_in_every_default_and_is_off_unless_configured() {
        assert_eq!(
            valid(&with("")).announce,
            Some(Announce {
                interface: "tandem0".into(),
                addresses: addresses(&["203.0.113.10"]),
                track: vec![],
                withdraw_quiet: Duration::from_secs(1),
                withdraw_max_wait: Duration::from_secs(10),
            })
        );
        let announce = |keys: &str| valid(&with(keys)).announce.unwrap();
        let withdraw = announce(", withdraw: { quiet: 3s }");
        assert_eq!(withdraw.withdraw_quiet, Duration::from_secs(3));
        assert_eq!(withdraw.withdraw_max_wait, Duration::from_secs(10));
        let withdraw = announce(", withdraw: { max_wait: 2s }");
        assert_eq!(withdraw.withdraw_quiet, Duration::from_secs(1));
        assert_eq!(withdraw.withdraw_max_wait, Duration::from_secs(2));
        let withdraw = announce(", withdraw: { quiet: 2s, max_wait: 2s }");
        assert_eq!(withdraw.withdraw_max_wait, Duration::from_secs(2));
        assert_eq!(valid(&one_backend("")).announce, None);
    }

    #[test]
    fn refuses_interface_names_linux_would_not_take() {
        let refused = |name: &str, shown: &str| {
            format!(
                "interface name {name:?} contains {shown}, which Linux refuses in one (no /, :, \
                 whitespace or NUL)"
            )
        };
        let dots = |name: &str| {
            format!("{name:?} is not a valid interface name: Linux keeps . and .. for paths")
        };
        for (written, expected) in [
            (
                "''",
                "must not be empty; leave it out for tandem0".to_owned(),
            ),
            (
                "abcdefghijklmnop",
                "interface name \"abcdefghijklmnop\" is 16 bytes, but Linux allows at most 15"
                    .to_owned(),
            ),
            ("'.'", dots(".")),
            ("'..'", dots("..")),
            ("vips/a", refused("vips/a", "'/'")),
            ("'vips:a'", refused("vips:a", "':'")),
            ("'vips a'", refused("vips a", "' '")),
            ("\"vips\\ta\"", refused("vips\ta", "'\\t'")),
            ("\"vips\\0\"", refused("vips\0", "'\\0'")),
            // U+00E0 is C3 A0 in UTF-8, and the kernel's isspace takes 0xA0 for a space.
            ("vipsà", refused("vipsà", "'à'")),
            (
                "tandem%d",
                "interface name \"tandem%d\" contains %, which the kernel takes as a number to \
                 fill in (tandem%d makes tandem0): name the device as it will be"
                    .to_owned(),
            ),
            (
                "lo",
                "lo is the loopback interface; announce needs a device of its own, which tandem \
                 creates: leave interface out for tandem0"
                    .to_owned(),
            ),
        ] {
            assert_eq!(
                problems(&with(&format!(", interface: {written}"))),
                [format!("announce.interface: {expected}")],
                "{written}"
            );
        }
        // 15 bytes, and bytes above ASCII other than 0xA0, are fine.
        valid(&with(", interface: abcdefghijklmno"));
        valid(&with(", interface: vipsé"));
    }

    #[test]
    fn refuses_an_interface_a_vrrp_instance_uses() {
        let uses = |name: &str, what: &str| {
            vec![format!(
                "announce.interface: {name} is {what} of vrrp instance \"VI_1\"; announce needs \
                 a device of its own, which tandem creates: give it a name no other interface \
                 has, or leave it out for tandem0"
            )]
        };
        assert_eq!(
            problems(&with(", interface: eth0")),
            uses("eth0", "the interface")
        );
        assert_eq!(
            problems(&with(", interface: vrrp4.33")),
            uses("vrrp4.33", "the virtual MAC's macvlan")
        );
        // Without a virtual MAC there is no macvlan; an IPv6 instance's has its own name.
        valid(&with(", interface: vrrp4.33").replace(", virtual_mac: true", ""));
        let v6 = with(", interface: vrrp6.33").replace(
            "virtual_ips: [198.51.100.10/24]",
            "version: 3, virtual_ips: ['2001:db8::1/64']",
        );
        assert_eq!(problems(&v6), uses("vrrp6.33", "the virtual MAC's macvlan"));
    }

    #[test]
    fn needs_at_least_one_address() {
        let none = "announce.addresses: no addresses to announce; add at least one host \
                    address, e.g. [203.0.113.10]";
        assert_eq!(problems(&announcing("  addresses: []\n")), [none]);
        assert_eq!(problems(&announcing("  interface: tandem0\n")), [none]);
    }

    #[test]
    fn refuses_every_address_that_is_not_one_unicast_host_at_once_with_its_place() {
        let text = announcing(
            "  addresses:\n    - 203.0.113.10\n    - nope\n    - 203.0.113.0/24\n    \
             - 203.0.113.11/33\n    - '2001:db8::/64'\n    - 203.0.113.12/\n    - 0.0.0.0\n    \
             - '::'\n    - 224.0.0.18\n    - 'ff02::1'\n    - 127.0.0.1\n    - '::1'\n    \
             - 169.254.1.1\n    - 'fe80::1'\n    - 255.255.255.255\n    - 203.0.113.10/32\n    \
             - '2001:db8::10'\n    - '2001:DB8:0::10/128'\n    - 198.51.100.10\n",
        );
        // Line 12 holds addresses[0], and each line one more.
        let index = |at: &str| at.split(':').next().unwrap().parse::<usize>().unwrap() - 12;
        let not_unicast = |at: &str, address: &str, what: &str| {
            format!(
                "{at}: announce.addresses[{}]: {address} is {what}, which routers cannot \
                 send to this node; announce a routable unicast address, e.g. 203.0.113.10",
                index(at)
            )
        };
        let not_host = |at: &str, text: &str, host: &str| {
            format!(
                "{at}: announce.addresses[{}]: {text} is not a host route; announce a host \
                 address: {host}",
                index(at)
            )
        };
        assert_eq!(
            located(&text),
            [
                "13:7: announce.addresses[1]: invalid address \"nope\"; write a host address, \
                 e.g. 203.0.113.10 or 2001:db8::10 (host names are not resolved)"
                    .to_owned(),
                not_host("14:7", "203.0.113.0/24", "203.0.113.0 or 203.0.113.0/32"),
                not_host("15:7", "203.0.113.11/33", "203.0.113.11 or 203.0.113.11/32"),
                not_host("16:7", "2001:db8::/64", "2001:db8:: or 2001:db8::/128"),
                not_host("17:7", "203.0.113.12/", "203.0.113.12 or 203.0.113.12/32"),
                not_unicast("18:7", "0.0.0.0", "the unspecified address"),
                not_unicast("19:7", "::", "the unspecified address"),
                not_unicast("20:7", "224.0.0.18", "a multicast address"),
                not_unicast("21:7", "ff02::1", "a multicast address"),
                not_unicast("22:7", "127.0.0.1", "a loopback address"),
                not_unicast("23:7", "::1", "a loopback address"),
                not_unicast("24:7", "169.254.1.1", "link-local (169.254.0.0/16)"),
                not_unicast("25:7", "fe80::1", "link-local (fe80::/10)"),
                not_unicast("26:7", "255.255.255.255", "the broadcast address"),
                "27:7: announce.addresses[15]: 203.0.113.10 is already listed as \
                 announce.addresses[0]; list each address once"
                    .to_owned(),
                "29:7: announce.addresses[17]: 2001:db8::10 is already listed as \
                 announce.addresses[16]; list each address once"
                    .to_owned(),
                "30:7: announce.addresses[18]: 198.51.100.10 is also a virtual IP of vrrp \
                 instance \"VI_1\"; an address is held by VRRP or announced, not both: remove \
                 it from one of them"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn reads_track_items_as_vrrp_does_but_refuses_a_weight() {
        let text = announcing(
            "  addresses: [203.0.113.10]\n  track:\n    - { backend: web, weight: -50 }\n    \
             - { interface: eth1, weight: 0 }\n    - { backend: nope }\n    \
             - { backend: plain }\n    - { backend: web, min_healthy: 3 }\n    \
             - { frontend: api, min_healthy: 1 }\n    - { interface: '' }\n    \
             - { min_healthy: 1 }\n    - { backend: web, frontend: web }\n    \
             - { interface: tandem0 }\n",
        );
        let no_weight = "announce tracks have no weight: any failing item withdraws; remove it";
        assert_eq!(
            located(&text),
            [
                format!("13:31: announce.track[0].weight: {no_weight}"),
                format!("14:34: announce.track[1].weight: {no_weight}"),
                "15:18: announce.track[2].backend: unknown backend \"nope\"; defined backends: \
                 web, plain"
                    .to_owned(),
                "16:18: announce.track[3].backend: backend \"plain\" has no health_check, so \
                 its servers always count as up and this would never fail; add a health_check \
                 to it"
                    .to_owned(),
                "17:36: announce.track[4].min_healthy: min_healthy 3 is out of range 1..=2 \
                 (backend \"web\" has 2 servers): 0 would never fail and more would never pass"
                    .to_owned(),
                "18:19: announce.track[5].frontend: unknown frontend \"api\"; defined \
                 frontends: web"
                    .to_owned(),
                "18:37: announce.track[5].min_healthy: only applies to a backend; remove it"
                    .to_owned(),
                "19:9: announce.track[6].interface: must not be empty".to_owned(),
                "20:7: announce.track[7]: names nothing to track; give one of backend, \
                 frontend or interface, e.g. { backend: web_pool }"
                    .to_owned(),
                "20:22: announce.track[7].min_healthy: only applies to a backend; remove it"
                    .to_owned(),
                "21:7: announce.track[8]: names more than one of backend, frontend and \
                 interface; give each its own item"
                    .to_owned(),
                "22:20: announce.track[9].interface: tandem0 is announce's own device, which \
                 is up while tandem runs, so this would never fail; track the interface that \
                 faces the routers"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn bounds_the_withdraw_waits() {
        let at = "announce.withdraw";
        for (keys, expected) in [
            ("quiet: 0s", format!("{at}.quiet: must be longer than zero")),
            (
                "max_wait: 0ms",
                format!("{at}.max_wait: must be longer than zero"),
            ),
            (
                "quiet: 1, max_wait: soon",
                format!("{at}.quiet: invalid duration \"1\": missing unit; write e.g. 1s or 1ms"),
            ),
            (
                "max_wait: 301s",
                format!("{at}.max_wait: 301s is longer than this can be; the most is 5m"),
            ),
            (
                "quiet: 6m, max_wait: 5m",
                format!("{at}.quiet: 6m is longer than this can be; the most is 5m"),
            ),
            (
                "quiet: 2s, max_wait: 1500ms",
                format!(
                    "{at}.max_wait: max_wait 1500ms is shorter than quiet 2s: a drain would \
                     give up before it could see the routers move new flows away; make \
                     max_wait at least quiet"
                ),
            ),
            (
                "quiet: 20s",
                format!(
                    "{at}.quiet: max_wait 10s is shorter than quiet 20s: a drain would give up \
                     before it could see the routers move new flows away; make max_wait at \
                     least quiet"
                ),
            ),
        ] {
            let found = problems(&with(&format!(", withdraw: {{ {keys} }}")));
            assert_eq!(found[0], expected, "{keys}");
            if keys.contains("soon") {
                assert_eq!(
                    found[1],
                    format!(
                        "{at}.max_wait: invalid duration \"soon\": expected a whole number and \
                         a unit; use ms, s, m or h, e.g. 500ms or 2s"
                    )
                );
            }
            assert_eq!(
                found.len(),
                1 + usize::from(keys.contains("soon")),
                "{found:#?}"
            );
        }
        valid(&with(", withdraw: { quiet: 5m, max_wait: 5m }"));
    }

    #[test]
    fn reports_every_announce_error_at_once_beside_the_rest() {
        let text = announcing(
            "  interface: lo\n  addresses: [203.0.113.10/24, 203.0.113.10]\n  \
             track: [{ backend: web, weight: -10 }]\n  withdraw: { quiet: 3s, max_wait: 2s }\n",
        )
        .replace("virtual_router_id: 33", "virtual_router_id: 0");
        assert_eq!(
            located(&text),
            [
                "9:57: vrrp.instances[0].virtual_router_id: virtual_router_id 0 is out of \
                 range 1..=255",
                "11:14: announce.interface: lo is the loopback interface; announce needs a \
                 device of its own, which tandem creates: leave interface out for tandem0",
                "12:15: announce.addresses[0]: 203.0.113.10/24 is not a host route; announce \
                 a host address: 203.0.113.10 or 203.0.113.10/32",
                "13:35: announce.track[0].weight: announce tracks have no weight: any failing \
                 item withdraws; remove it",
                "14:36: announce.withdraw.max_wait: max_wait 2s is shorter than quiet 3s: a \
                 drain would give up before it could see the routers move new flows away; \
                 make max_wait at least quiet",
            ]
        );
    }
}
