//! Interoperation with a real keepalived (Debian's package) on the same link, v2 with PASS
//! authentication and v3. Host a runs tandem, host b keepalived. Needs root; fails under CI=true
//! without it.

mod support;

use std::time::Duration;

use support::lab::{wait_until, Dad, Lab};
use support::{Keepalived, Tandem};

const VIP: &str = "198.51.100.10";
/// keepalived's v2 needs whole-second adverts: failover takes about 3.5 s.
const FAILOVER: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum Flavour {
    V2Pass,
    V3,
}

fn tandem_config(flavour: Flavour, priority: u8, vrid: u8, password: &str) -> String {
    let protocol = match flavour {
        Flavour::V2Pass => format!("version: 2\n      advert_interval: 1s\n      authentication: {{ type: pass, password: \"{password}\" }}\n"),
        Flavour::V3 => "version: 3\n      advert_interval: 100ms\n".to_owned(),
    };
    format!(
        "node: {{ name: tandem-a, threads: 1 }}\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: {vrid}\n      \
         priority: {priority}\n      {protocol}      virtual_ips: [\"{VIP}/24\"]\n"
    )
}

fn keepalived_config(flavour: Flavour, priority: u8, password: &str) -> String {
    let protocol = match flavour {
        Flavour::V2Pass => format!("  advert_int 1\n  authentication {{\n    auth_type PASS\n    auth_pass {password}\n  }}\n"),
        Flavour::V3 => "  version 3\n  advert_int 0.1\n".to_owned(),
    };
    format!(
        "global_defs {{\n  router_id keepalived-b\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 33\n  priority {priority}\n\
         {protocol}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn holds(lab: &Lab, host: usize) -> bool {
    lab.addresses(&lab.hosts[host])
        .contains(&format!(" {VIP}/"))
}

fn wait_for_master(lab: &Lab, master: usize) {
    let name = ["tandem", "keepalived"][master];
    wait_until(FAILOVER, &format!("{name} alone holds the VIP"), || {
        holds(lab, master) && !holds(lab, 1 - master)
    });
}

/// Whichever side has the higher priority is master, and each takes over when the other dies.
fn elect_and_fail_over(flavour: Flavour) {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let (a, b) = (&lab.hosts[0].namespace, &lab.hosts[1].namespace);

    let mut keepalived = Keepalived::start_in(b, &keepalived_config(flavour, 100, "1111"));
    let mut tandem = Tandem::start_in(a, &tandem_config(flavour, 150, 33, "1111"));
    wait_for_master(&lab, 0);
    assert!(tandem.signal_and_wait("TERM").success());
    wait_for_master(&lab, 1);
    keepalived.stop();
    drop(keepalived);
    wait_until(FAILOVER, "keepalived removes its VIP", || !holds(&lab, 1));

    let mut keepalived = Keepalived::start_in(b, &keepalived_config(flavour, 200, "1111"));
    let _tandem = Tandem::start_in(a, &tandem_config(flavour, 100, 33, "1111"));
    wait_for_master(&lab, 1);
    keepalived.stop();
    wait_for_master(&lab, 0);
}

#[test]
fn v2_with_pass_authentication_elects_and_fails_over_both_ways() {
    elect_and_fail_over(Flavour::V2Pass);
}

#[test]
fn v3_elects_and_fails_over_both_ways() {
    elect_and_fail_over(Flavour::V3);
}

/// A peer with another password or VRID is logged and ignored: both sides end up master.
#[test]
fn a_foreign_password_or_vrid_is_logged_and_not_obeyed() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let (a, b) = (&lab.hosts[0].namespace, &lab.hosts[1].namespace);
    for (tandem_config, expected_log) in [
        (
            tandem_config(Flavour::V2Pass, 100, 33, "2222"),
            "authentication does not match",
        ),
        (
            tandem_config(Flavour::V2Pass, 100, 34, "1111"),
            "VRID no instance here has",
        ),
    ] {
        let _keepalived = Keepalived::start_in(b, &keepalived_config(Flavour::V2Pass, 200, "1111"));
        wait_until(FAILOVER, "keepalived becomes master", || holds(&lab, 1));
        let tandem = Tandem::start_in(a, &tandem_config);
        wait_until(FAILOVER, "tandem logs the foreign advert", || {
            tandem.log().contains(expected_log)
        });
        wait_until(FAILOVER, "tandem becomes master anyway", || holds(&lab, 0));
        drop(tandem);
    }
}
