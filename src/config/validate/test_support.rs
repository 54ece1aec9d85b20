//! What the validation tests share: turning YAML text into a validated config or its problems,
//! and small files to vary.

pub use super::super::model::*;
use super::super::schema::*;
use super::super::yaml;
pub use super::validate;
pub use std::path::Path;
pub use std::time::Duration;

/// Where the test configs live, for relative paths.
pub const TEST_BASE: &str = "/etc/tandem";

pub fn spec(text: &str) -> FileSpec {
    yaml::deserialize_first(text).expect("test YAML fits the schema")
}

pub fn valid(text: &str) -> Config {
    validate(spec(text), Path::new(TEST_BASE)).expect("test YAML is valid")
}

/// Every problem as `field: message`, in the order found.
pub fn problems(text: &str) -> Vec<String> {
    validate(spec(text), Path::new(TEST_BASE))
        .expect_err("test YAML is invalid")
        .into_iter()
        .map(|error| format!("{}: {}", error.field, error.message))
        .collect()
}

/// A valid file with one http frontend on backend `b`; `backend` adds keys to `b`, with
/// its servers defaulting to one.
pub fn one_backend(backend: &str) -> String {
    let servers = if backend.contains("servers:") {
        ""
    } else {
        ", servers: [{ name: s, address: 127.0.0.1:81 }]"
    };
    format!(
        "node: {{ name: n }}\n\
         frontends: [{{ name: f, listen: 127.0.0.1:80, mode: http, backend: b }}]\n\
         backends: [{{ name: b{servers}{backend} }}]\n"
    )
}

pub fn check(keys: &str) -> String {
    one_backend(&format!(", health_check: {{ {keys} }}"))
}
/// Frontend `web` on backend `web` (two servers, health-checked) and backend `plain` (no
/// check), in six lines: what the tracking tests (VRRP's and the announcer's) point at.
pub const TRACKABLE: &str = "node: { name: n }\n\
     frontends:\n\
     \x20 - { name: web, listen: 127.0.0.1:8080, mode: http, backend: web }\n\
     backends:\n\
     \x20 - { name: web, health_check: { type: tcp }, servers: [\
     { name: s1, address: 127.0.0.1:81 }, { name: s2, address: 127.0.0.1:82 }] }\n\
     \x20 - { name: plain, servers: [{ name: s1, address: 127.0.0.1:83 }] }\n";

/// A valid file with VRRP instances, one per line of `instances` (the keys of a flow
/// mapping).
pub fn vrrp(instances: &[&str]) -> String {
    let mut text = "node: { name: n }\nvrrp:\n  instances:\n".to_string();
    for keys in instances {
        text.push_str(&format!("    - {{ {keys} }}\n"));
    }
    text
}

/// One instance: `VI_1` on eth0, VRID 33, VIP 198.51.100.10/24 unless `keys` give
/// virtual_ips, plus `keys`.
pub fn instance(keys: &str) -> String {
    let vips = if keys.contains("virtual_ips:") {
        ""
    } else {
        ", virtual_ips: [198.51.100.10/24]"
    };
    vrrp(&[&format!(
        "name: VI_1, interface: eth0, virtual_router_id: 33{vips}{keys}"
    )])
}

pub fn vip(text: &str) -> VirtualIp {
    let (address, prefix_len) = text.split_once('/').unwrap();
    VirtualIp {
        address: address.parse().unwrap(),
        prefix_len: prefix_len.parse().unwrap(),
    }
}
