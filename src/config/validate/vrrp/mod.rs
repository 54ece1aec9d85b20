//! The `vrrp` section: each instance on its own (identity, priority, version, interval and
//! authentication here; addresses and tracking in their own files), then the checks across
//! instances.

mod addresses;
mod notify;
mod sync_groups;
mod track;

use super::super::duration;
use super::super::model::*;
use super::super::schema::*;
use super::fields::too_long;
use super::Validator;
use addresses::{first_valid_vip, Family};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::codec::vrrp as packet;

const DEFAULT_VRRP_PRIORITY: u8 = 100;
const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// keepalived bounds its `preempt_delay` to 1000 s; an hour is already more than any use.
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(3600);
/// Linux's loopback interface.
const LOOPBACK: &str = "lo";

/// What validation learnt about one VRRP instance beyond its model, for the checks across
/// instances.
struct InstanceFacts {
    /// Its index in the file.
    index: usize,
    /// The VIPs' address family; `None` when no VIP is valid (already reported).
    family: Option<Family>,
}

/// The `vrrp` section: each instance on its own, then the checks across instances.
impl Validator {
    pub(super) fn vrrp(
        &mut self,
        spec: VrrpSpec,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> Vec<VrrpInstance> {
        let mut instances = Vec::with_capacity(spec.instances.len());
        let mut facts = Vec::with_capacity(spec.instances.len());
        let mut skipped = Vec::new();
        let notify = (spec.notify).and_then(|notify| self.notify("vrrp.notify", notify));
        for (index, instance) in spec.instances.into_iter().enumerate() {
            // One skipped for a structural error is reported on its own.
            let instance = match instance {
                Unit::Read(instance) => instance,
                Unit::Skipped { name } => {
                    skipped.extend(name);
                    continue;
                }
            };
            let (mut instance, fact) = self.vrrp_instance(index, instance, frontends, backends);
            instance.notify = instance.notify.or_else(|| notify.clone());
            instances.push(instance);
            facts.push(fact);
        }
        let names = (facts.iter().map(|fact| fact.index)).zip(instances.iter().map(|i| &i.name));
        self.unique_names("vrrp.instances", "instance", names);
        self.unique_vrids(&instances, &facts);
        self.sync_groups(spec.sync_groups, &mut instances, &skipped);
        instances
    }

    fn vrrp_instance(
        &mut self,
        index: usize,
        spec: VrrpInstanceSpec,
        frontends: &[Frontend],
        backends: &[Backend],
    ) -> (VrrpInstance, InstanceFacts) {
        let at = format!("vrrp.instances[{index}]");
        self.non_empty(format!("{at}.name"), &spec.name);
        self.non_empty(format!("{at}.interface"), &spec.interface);
        if spec.interface == LOOPBACK {
            self.error(
                format!("{at}.interface"),
                "VRRP cannot run on the loopback interface: adverts are multicast to the link and \
                 clients find the VIP by ARP or neighbour discovery, which lo has neither of; \
                 name the interface that faces the clients",
            );
        }
        let virtual_router_id = self
            .integer_in(
                format!("{at}.virtual_router_id"),
                &spec.virtual_router_id,
                packet::VRIDS,
                "virtual_router_id",
                "",
            )
            .unwrap_or(0);
        let priority = match &spec.priority {
            None => DEFAULT_VRRP_PRIORITY,
            Some(priority) => self
                .integer_in(
                    format!("{at}.priority"),
                    priority,
                    packet::PRIORITIES,
                    "priority",
                    &format!(
                        " (0 is reserved for a Master resigning; {} makes this node the address \
                         owner)",
                        packet::OWNER_PRIORITY
                    ),
                )
                .unwrap_or(DEFAULT_VRRP_PRIORITY),
        };
        // `None`: invalid and reported, so the checks that depend on it are skipped.
        let version = match spec.version.as_ref().map(|version| version.0.as_str()) {
            None | Some("2") => Some(VrrpVersion::V2),
            Some("3") => Some(VrrpVersion::V3),
            Some(other) => {
                self.error(
                    format!("{at}.version"),
                    format!("unknown VRRP version {other}; use 2 (keepalived's default) or 3"),
                );
                None
            }
        };
        let advert_interval = self.advert_interval(
            format!("{at}.advert_interval"),
            spec.advert_interval.as_deref(),
            version,
        );
        let preempt = spec.preempt.unwrap_or(true);
        // Zero is the RFC behaviour; with preempt: false the delay is simply unused.
        let preempt_delay = match spec.preempt_delay.as_deref() {
            None => Duration::ZERO,
            Some(text) => match duration::parse(text) {
                Ok(delay) if delay > MAX_PREEMPT_DELAY => {
                    self.error(
                        format!("{at}.preempt_delay"),
                        too_long(text, MAX_PREEMPT_DELAY),
                    );
                    Duration::ZERO
                }
                Ok(delay) => delay,
                Err(message) => {
                    self.error(format!("{at}.preempt_delay"), message);
                    Duration::ZERO
                }
            },
        };
        let password = spec
            .authentication
            .and_then(|auth| self.authentication(&format!("{at}.authentication"), auth, version));

        let virtual_ips = self.virtual_ips(&at, &spec.name, &spec.virtual_ips);
        let family = virtual_ips.first().map(|vip| Family::of(vip.address));
        if family == Some(Family::V6) && version == Some(VrrpVersion::V2) {
            // Pointed at the first IPv6 address, where the reader looks.
            self.error(
                format!("{at}.virtual_ips[{}]", first_valid_vip(&spec.virtual_ips)),
                "IPv6 needs version: 3; VRRPv2 is IPv4 only",
            );
        }
        let source_ip = spec
            .source_ip
            .as_deref()
            .and_then(|text| self.instance_address(format!("{at}.source_ip"), text, family));
        let unicast_peers: Vec<IpAddr> = spec
            .unicast_peers
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                self.instance_address(format!("{at}.unicast_peers[{i}]"), text, family)
            })
            .collect();
        if spec.v3_checksum.is_some()
            && (version == Some(VrrpVersion::V2) || family == Some(Family::V6))
        {
            self.error(
                format!("{at}.v3_checksum"),
                "only applies to version 3 over IPv4; remove it",
            );
        }
        let v3_checksum_pseudo_header = spec.v3_checksum != Some(V3ChecksumSpec::NoPseudoHeader);
        let track = (spec.track.into_iter().enumerate())
            .filter_map(|(i, item)| {
                let at = format!("{at}.track[{i}]");
                self.track(at, item, priority, frontends, backends)
            })
            .collect();
        let notify = (spec.notify).and_then(|notify| self.notify(&format!("{at}.notify"), notify));

        let instance = VrrpInstance {
            name: spec.name,
            interface: spec.interface,
            virtual_router_id,
            priority,
            advert_interval,
            // A stand-in when the version is invalid: the model is then discarded.
            version: version.unwrap_or(VrrpVersion::V2),
            preempt,
            preempt_delay,
            password,
            source_ip,
            unicast_peers,
            virtual_ips,
            v3_checksum_pseudo_header,
            // Any VRID and family has its virtual MAC: nothing to check.
            virtual_mac: spec.virtual_mac.unwrap_or(false),
            track,
            notify,
            // Set by the checks across instances.
            sync_group: None,
        };
        (instance, InstanceFacts { index, family })
    }

    /// An integer that must lie in `range`; `None` (reported) when it does not.
    fn integer_in(
        &mut self,
        field: String,
        value: &IntegerSpec,
        range: std::ops::RangeInclusive<u8>,
        what: &str,
        why: &str,
    ) -> Option<u8> {
        let parsed = value.0.parse::<u8>().ok().filter(|n| range.contains(n));
        if parsed.is_none() {
            self.error(
                field,
                format!(
                    "{what} {} is out of range {}..={}{why}",
                    value.0,
                    range.start(),
                    range.end()
                ),
            );
        }
        parsed
    }

    /// The interval must be one the version's advert carries exactly: keepalived silently
    /// truncates any other, so a group can end up advertising something no one wrote. We refuse
    /// instead and name the nearest valid values.
    fn advert_interval(
        &mut self,
        field: String,
        text: Option<&str>,
        version: Option<VrrpVersion>,
    ) -> Duration {
        let Some(text) = text else {
            return DEFAULT_ADVERT_INTERVAL;
        };
        let interval = match duration::parse(text) {
            Ok(interval) => interval,
            Err(message) => {
                self.error(field, message);
                return DEFAULT_ADVERT_INTERVAL;
            }
        };
        let (step, max, carries) = match version {
            None => return interval,
            Some(VrrpVersion::V2) => (
                packet::V2_INTERVAL_STEP,
                packet::V2_MAX_INTERVAL,
                "VRRPv2 carries whole seconds",
            ),
            Some(VrrpVersion::V3) => (
                packet::V3_INTERVAL_STEP,
                packet::V3_MAX_INTERVAL,
                "VRRPv3 carries multiples of 10ms",
            ),
        };
        let nearest = nearest_steps(interval, step, max);
        if nearest != [interval] {
            let nearest: Vec<String> = nearest.iter().map(|d| format!("{d:?}")).collect();
            self.error(
                field,
                format!(
                    "advert_interval {text} cannot be sent: {carries} from {step:?} to \
                     {max:?}; use {}",
                    nearest.join(" or ")
                ),
            );
            return DEFAULT_ADVERT_INTERVAL;
        }
        interval
    }

    /// The v2 password, `None` when there is none or it is invalid (reported).
    fn authentication(
        &mut self,
        at: &str,
        spec: AuthenticationSpec,
        version: Option<VrrpVersion>,
    ) -> Option<String> {
        if version == Some(VrrpVersion::V3) {
            self.error(at, "VRRPv3 has no authentication; remove it");
            return None;
        }
        match spec.kind.as_str() {
            "pass" => {}
            "ah" => {
                self.error(
                    format!("{at}.type"),
                    "authentication type ah (IPsec AH) is not supported; use type: pass, or \
                     remove authentication",
                );
                return None;
            }
            other => {
                self.error(
                    format!("{at}.type"),
                    format!("unknown authentication type {other:?}; the only one is pass"),
                );
                return None;
            }
        }
        let Some(password) = spec.password else {
            self.error(
                at,
                "type: pass needs a password; add one of at most 8 bytes, e.g. \
                 { type: pass, password: \"1111\" }",
            );
            return None;
        };
        // The password itself stays out of messages: they end up in logs.
        if password.is_empty() {
            self.error(
                format!("{at}.password"),
                "must not be empty; remove authentication for none",
            );
            return None;
        }
        if password.len() > packet::MAX_PASSWORD_LEN {
            self.error(
                format!("{at}.password"),
                format!(
                    "password is {} bytes, but VRRPv2 carries at most {}; \
                     shorten it on every node of the group",
                    password.len(),
                    packet::MAX_PASSWORD_LEN
                ),
            );
            return None;
        }
        Some(password)
    }

    /// Two virtual routers on one link and address family with the same VRID would take each
    /// other's adverts. IPv4 and IPv6 ones may share it, as in keepalived.
    fn unique_vrids(&mut self, instances: &[VrrpInstance], facts: &[InstanceFacts]) {
        let mut first_use: HashMap<(&str, u8, Family), usize> = HashMap::new();
        for (position, (instance, fact)) in instances.iter().zip(facts).enumerate() {
            // An empty interface or a VRID out of range (0 stands in) is reported on its own.
            let Some(family) = fact.family else { continue };
            if instance.interface.is_empty() || instance.virtual_router_id == 0 {
                continue;
            }
            let key = (
                instance.interface.as_str(),
                instance.virtual_router_id,
                family,
            );
            if let Some(&first) = first_use.get(&key) {
                self.error(
                    format!("vrrp.instances[{}].virtual_router_id", fact.index),
                    format!(
                        "virtual_router_id {} is already used for {family} on {} by \
                         vrrp.instances[{}] ({:?}); give each virtual router on a link its \
                         own ID",
                        instance.virtual_router_id,
                        instance.interface,
                        facts[first].index,
                        instances[first].name
                    ),
                );
            } else {
                first_use.insert(key, position);
            }
        }
    }
}

/// The valid intervals nearest `interval`: itself if valid, else the multiples of `step`
/// either side of it within `step..=max` (one when they coincide).
fn nearest_steps(interval: Duration, step: Duration, max: Duration) -> Vec<Duration> {
    let step_nanos = step.as_nanos();
    let below = interval.as_nanos() / step_nanos * step_nanos;
    let above = below
        + if below == interval.as_nanos() {
            0
        } else {
            step_nanos
        };
    let clamp = |nanos: u128| {
        let nanos = nanos.clamp(step_nanos, max.as_nanos());
        Duration::from_nanos(u64::try_from(nanos).expect("max fits in u64 nanoseconds"))
    };
    let mut nearest = vec![clamp(below)];
    if clamp(above) != nearest[0] {
        nearest.push(clamp(above));
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn leaves_vrrp_empty_unless_configured() {
        assert_eq!(valid(&one_backend("")).vrrp, []);
        let text = format!("{}vrrp: {{}}\n", one_backend(""));
        assert_eq!(valid(&text).vrrp, []);
    }

    #[test]
    fn fills_in_every_vrrp_default() {
        assert_eq!(
            valid(&instance("")).vrrp,
            [VrrpInstance {
                name: "VI_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 33,
                priority: 100,
                advert_interval: Duration::from_secs(1),
                version: VrrpVersion::V2,
                preempt: true,
                preempt_delay: Duration::ZERO,
                password: None,
                source_ip: None,
                unicast_peers: vec![],
                virtual_ips: vec![vip("198.51.100.10/24")],
                v3_checksum_pseudo_header: true,
                virtual_mac: false,
                track: vec![],
                notify: None,
                sync_group: None,
            }]
        );
    }

    #[test]
    fn reads_a_v3_ipv6_instance() {
        let config = valid(&instance(
            ", version: 3, advert_interval: 100ms, priority: 255, preempt: false, \
             preempt_delay: 30s, source_ip: 'fe80::1', unicast_peers: ['fe80::2', 'fe80::3'], \
             virtual_ips: ['2001:db8::10/64', '2001:db8::11/128'], virtual_mac: true",
        ));
        assert_eq!(
            config.vrrp,
            [VrrpInstance {
                name: "VI_1".into(),
                interface: "eth0".into(),
                virtual_router_id: 33,
                priority: 255,
                advert_interval: Duration::from_millis(100),
                version: VrrpVersion::V3,
                preempt: false,
                preempt_delay: Duration::from_secs(30),
                password: None,
                source_ip: Some("fe80::1".parse().unwrap()),
                unicast_peers: vec!["fe80::2".parse().unwrap(), "fe80::3".parse().unwrap()],
                virtual_ips: vec![vip("2001:db8::10/64"), vip("2001:db8::11/128")],
                v3_checksum_pseudo_header: true,
                virtual_mac: true,
                track: vec![],
                notify: None,
                sync_group: None,
            }]
        );
    }

    #[test]
    fn reads_the_v3_checksum_choice_over_ipv4() {
        let checksum = |keys: &str| valid(&instance(keys)).vrrp[0].v3_checksum_pseudo_header;
        assert!(checksum(", version: 3"));
        assert!(checksum(", version: 3, v3_checksum: pseudo_header"));
        assert!(!checksum(", version: 3, v3_checksum: no_pseudo_header"));
    }

    #[test]
    fn rejects_the_v3_checksum_choice_elsewhere() {
        let message =
            "vrrp.instances[0].v3_checksum: only applies to version 3 over IPv4; remove it";
        assert_eq!(
            problems(&instance(", v3_checksum: pseudo_header")),
            [message]
        );
        assert_eq!(
            problems(&instance(
                ", version: 3, v3_checksum: no_pseudo_header, virtual_ips: ['2001:db8::10/64']"
            )),
            [message]
        );
    }

    #[test]
    fn bounds_the_virtual_router_id_to_1_through_255() {
        assert_eq!(
            valid(&instance("").replace("33", "1")).vrrp[0].virtual_router_id,
            1
        );
        assert_eq!(
            valid(&instance("").replace("33", "255")).vrrp[0].virtual_router_id,
            255
        );
        for vrid in ["0", "256", "-1", "99999999999999999999"] {
            assert_eq!(
                problems(&instance("").replace("33", vrid)),
                [format!(
                    "vrrp.instances[0].virtual_router_id: virtual_router_id {vrid} is out of \
                     range 1..=255"
                )]
            );
        }
    }

    #[test]
    fn bounds_the_priority_to_1_through_255() {
        assert_eq!(valid(&instance(", priority: 1")).vrrp[0].priority, 1);
        assert_eq!(valid(&instance(", priority: 255")).vrrp[0].priority, 255);
        for priority in ["0", "256"] {
            assert_eq!(
                problems(&instance(&format!(", priority: {priority}"))),
                [format!(
                    "vrrp.instances[0].priority: priority {priority} is out of range 1..=255 \
                     (0 is reserved for a Master resigning; 255 makes this node the address \
                     owner)"
                )]
            );
        }
    }

    #[test]
    fn rejects_an_unknown_version_without_checking_what_depends_on_it() {
        // 1500ms would be wrong for either version; an IPv6 VIP for version 2.
        assert_eq!(
            problems(&instance(
                ", version: 4, advert_interval: 1500ms, virtual_ips: ['2001:db8::10/64']"
            )),
            [
                "vrrp.instances[0].version: unknown VRRP version 4; use 2 (keepalived's default) \
              or 3"
            ]
        );
    }

    fn interval(keys: &str) -> Result<Duration, Vec<String>> {
        let text = instance(keys);
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => Ok(config.vrrp[0].advert_interval),
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn takes_v2_intervals_in_whole_seconds_up_to_255() {
        assert_eq!(
            interval(", advert_interval: 1s"),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            interval(", advert_interval: 3000ms"),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            interval(", advert_interval: 255s"),
            Ok(Duration::from_secs(255))
        );
        let refused = |nearest: &str| {
            format!("cannot be sent: VRRPv2 carries whole seconds from 1s to 255s; use {nearest}")
        };
        for (written, nearest) in [
            ("1500ms", "1s or 2s"),
            ("500ms", "1s"),
            ("0s", "1s"),
            ("256s", "255s"),
            ("1h", "255s"),
        ] {
            assert_eq!(
                interval(&format!(", advert_interval: {written}")),
                Err(vec![format!(
                    "vrrp.instances[0].advert_interval: advert_interval {written} {}",
                    refused(nearest)
                )]),
                "{written}"
            );
        }
    }

    #[test]
    fn takes_v3_intervals_in_10ms_steps_up_to_40_95s() {
        let v3 = |written: &str| interval(&format!(", version: 3, advert_interval: {written}"));
        assert_eq!(v3("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(v3("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(v3("40950ms"), Ok(Duration::from_millis(40_950)));
        for (written, nearest) in [
            ("15ms", "10ms or 20ms"),
            ("5ms", "10ms"),
            ("0ms", "10ms"),
            ("1001ms", "1s or 1.01s"),
            ("41s", "40.95s"),
        ] {
            assert_eq!(
                v3(written),
                Err(vec![format!(
                    "vrrp.instances[0].advert_interval: advert_interval {written} cannot be sent: \
                     VRRPv3 carries multiples of 10ms from 10ms to 40.95s; use {nearest}"
                )]),
                "{written}"
            );
        }
    }

    #[test]
    fn rejects_invalid_vrrp_durations() {
        assert_eq!(
            problems(&instance(", advert_interval: 1, preempt_delay: soon")),
            [
                "vrrp.instances[0].advert_interval: invalid duration \"1\": missing unit; \
                 write e.g. 1s or 1ms",
                "vrrp.instances[0].preempt_delay: invalid duration \"soon\": expected a whole \
                 number and a unit; use ms, s, m or h, e.g. 500ms or 2s",
            ]
        );
    }

    #[test]
    fn ignores_a_preempt_delay_without_preempt() {
        let config = valid(&instance(", preempt: false, preempt_delay: 10s"));
        assert!(!config.vrrp[0].preempt);
        assert_eq!(config.vrrp[0].preempt_delay, Duration::from_secs(10));
    }

    fn password(keys: &str) -> Result<Option<String>, Vec<String>> {
        let text = instance(keys);
        match validate(spec(&text), Path::new(TEST_BASE)) {
            Ok(config) => Ok(config.vrrp[0].password.clone()),
            Err(_) => Err(problems(&text)),
        }
    }

    #[test]
    fn reads_a_v2_password_as_written() {
        let auth = |written: &str| {
            password(&format!(
                ", authentication: {{ type: pass, password: {written} }}"
            ))
        };
        assert_eq!(auth("'1111'"), Ok(Some("1111".into())));
        assert_eq!(auth("0011"), Ok(Some("0011".into())));
        assert_eq!(auth("12345678"), Ok(Some("12345678".into())));
    }

    #[test]
    fn rejects_bad_v2_passwords_without_showing_them() {
        let at = "vrrp.instances[0].authentication";
        assert_eq!(
            password(", authentication: { type: pass, password: '123456789' }"),
            Err(vec![format!(
                "{at}.password: password is 9 bytes, but VRRPv2 carries at most 8; shorten it \
                 on every node of the group"
            )])
        );
        assert_eq!(
            password(", authentication: { type: pass, password: '' }"),
            Err(vec![format!(
                "{at}.password: must not be empty; remove authentication for none"
            )])
        );
        assert_eq!(
            password(", authentication: { type: pass }"),
            Err(vec![format!(
                "{at}: type: pass needs a password; add one of at most 8 bytes, e.g. \
                 {{ type: pass, password: \"1111\" }}"
            )])
        );
    }

    #[test]
    fn supports_only_the_pass_authentication_type() {
        let at = "vrrp.instances[0].authentication.type";
        assert_eq!(
            password(", authentication: { type: ah, password: secret }"),
            Err(vec![format!(
                "{at}: authentication type ah (IPsec AH) is not supported; use type: pass, or \
                 remove authentication"
            )])
        );
        assert_eq!(
            password(", authentication: { type: md5, password: secret }"),
            Err(vec![format!(
                "{at}: unknown authentication type \"md5\"; the only one is pass"
            )])
        );
    }

    #[test]
    fn rejects_authentication_on_version_3() {
        assert_eq!(
            password(", version: 3, authentication: { type: pass, password: '1111' }"),
            Err(vec![
                "vrrp.instances[0].authentication: VRRPv3 has no authentication; remove it".into()
            ])
        );
    }

    #[test]
    fn rejects_empty_instance_names_and_interfaces() {
        assert_eq!(
            problems(&vrrp(&[
                "name: '', interface: '', virtual_router_id: 1, virtual_ips: [198.51.100.10/24]"
            ])),
            [
                "vrrp.instances[0].name: must not be empty",
                "vrrp.instances[0].interface: must not be empty",
            ]
        );
    }

    #[test]
    fn rejects_duplicate_instance_names() {
        assert_eq!(
            problems(&vrrp(&[
                "name: VI_1, interface: eth0, virtual_router_id: 1, virtual_ips: [198.51.100.10/24]",
                "name: VI_1, interface: eth0, virtual_router_id: 2, virtual_ips: [198.51.100.11/24]",
            ])),
            ["vrrp.instances[1].name: duplicate instance name \"VI_1\"; vrrp.instances[0] \
              already uses it"]
        );
    }

    #[test]
    fn rejects_a_vrid_used_twice_on_one_link_and_family() {
        assert_eq!(
            problems(&vrrp(&[
                "name: a, interface: eth0, virtual_router_id: 7, virtual_ips: [198.51.100.10/24]",
                "name: b, interface: eth0, virtual_router_id: 7, virtual_ips: [198.51.100.11/24]",
            ])),
            ["vrrp.instances[1].virtual_router_id: virtual_router_id 7 is already used for IPv4 \
              on eth0 by vrrp.instances[0] (\"a\"); give each virtual router on a link its own \
              ID"]
        );
    }

    #[test]
    fn lets_a_vrid_repeat_on_another_link_or_family() {
        valid(&vrrp(&[
            "name: a, interface: eth0, virtual_router_id: 7, virtual_ips: [198.51.100.10/24]",
            "name: b, interface: eth1, virtual_router_id: 7, virtual_ips: [198.51.100.11/24]",
            "name: c, interface: eth0, virtual_router_id: 7, version: 3, \
             virtual_ips: ['2001:db8::10/64']",
        ]));
    }
}
