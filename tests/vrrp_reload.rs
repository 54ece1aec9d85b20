//! VRRP reloads in real namespaces, between two tandem nodes (a: 150, b: 100): `preempt`
//! turned off and on by SIGHUP, also beside keepalived and beside FRR's vrrpd (IPv4 and IPv6,
//! with a on the virtual MAC); instances added, re-identified and removed by SIGHUP without
//! touching the others; a refused VRRP part; and a tracker that follows a server a reload
//! replaced. Needs root; fails under CI=true without it.

mod support;

use support::frr::serve_name_on_port_80;
use support::lab::{run_in, wait_until, Lab};
use support::pair::*;
use support::peer::{Peer, PeerNode};
use support::Tandem;

const VIP_2: &str = "198.51.100.20";
const ADMIN: &str = "admin: { listen: 127.0.0.1:9900 }\n";

/// How many state changes `instance` has logged.
fn transitions(tandem: &Tandem, instance: &str) -> usize {
    let name = format!("instance={instance} ");
    (tandem.log().lines())
        .filter(|line| line.contains("VRRP state changed") && line.contains(&name))
        .count()
}

/// VI_1's adverts received by host `host`, from its admin endpoint.
fn adverts_received(lab: &Lab, host: usize) -> f64 {
    let admin = "127.0.0.1:9900".parse().unwrap();
    let metrics = run_in(&lab.hosts[host].namespace, move || {
        support::metrics::scrape(admin)
    });
    metrics.get(
        "tandem_vrrp_adverts_received_total",
        &[("vrrp_instance", "VI_1"), ("vrid", "33")],
    )
}

/// A second instance, VI_2, for `VIP_2`: to be appended to a node's config.
fn second(interface: &str, vrid: u8, priority: u8) -> String {
    format!(
        "    - name: VI_2\n      interface: {interface}\n      virtual_router_id: {vrid}\n      \
         priority: {priority}\n      advert_interval: 100ms\n      version: 3\n      \
         virtual_ips: [\"{VIP_2}/24\"]\n"
    )
}

#[test]
fn preempt_toggled_by_sighup_takes_effect_both_ways() {
    preempt_toggled_by_sighup(Peer::Tandem, VIP4);
}

#[test]
fn preempt_toggled_by_sighup_takes_effect_beside_keepalived() {
    preempt_toggled_by_sighup(Peer::Keepalived, VIP4);
}

#[test]
fn preempt_toggled_by_sighup_takes_effect_beside_frr_over_ipv4() {
    preempt_toggled_by_sighup(Peer::Frr, VIP4);
}

#[test]
fn preempt_toggled_by_sighup_takes_effect_beside_frr_over_ipv6() {
    preempt_toggled_by_sighup(Peer::Frr, VIP6);
}

/// Preemption off by SIGHUP: a, back above b, follows b. On by SIGHUP: a takes the VIP back.
/// Both reloads leave a's state alone until its next advert decision. Beside keepalived and
/// FRR, b's host serves the VIP's port itself.
fn preempt_toggled_by_sighup(peer: Peer, vip: &'static str) {
    let Some(lab) = lab() else { return };
    let (a_host, b_host) = (&lab.hosts[0].namespace, &lab.hosts[1].namespace);
    let virtual_mac = peer.tandem_extra();
    let config_a = |priority: u8, preempt: bool| {
        node_config(
            "node-a",
            priority,
            vip,
            &format!("      preempt: {preempt}\n{virtual_mac}"),
        ) + ADMIN
    };
    let a = Tandem::start_in(a_host, &config_a(150, true));
    if !matches!(peer, Peer::Tandem) {
        serve_name_on_port_80(b_host, "node-b");
    }
    let b = PeerNode::start(&lab, peer, vip, &node_config("node-b", 100, vip, ""));
    let alone_master = |name: &str| {
        let (a, b) = (b.a_holds(&lab, vip), b.b_holds(&lab, vip));
        (if name == "node-a" { a && !b } else { b && !a })
            && answer_via_vip(&lab, vip).as_deref() == Some(name)
    };
    wait_until(FAILOVER, "a alone serves the VIP", || {
        alone_master("node-a")
    });

    // Below b, which preempts: b takes over.
    a.reload_blocking(&config_a(50, false));
    wait_until(FAILOVER, "b alone serves the VIP", || {
        alone_master("node-b")
    });

    // Above b again, with preemption off: a keeps following b's adverts.
    let backup_changes = transitions(&a, "VI_1");
    a.reload_blocking(&config_a(150, false));
    let heard = adverts_received(&lab, 0);
    wait_until(FAILOVER, "a hears 10 more adverts from b", || {
        adverts_received(&lab, 0) >= heard + 10.0
    });
    assert!(
        alone_master("node-b"),
        "a took the VIP back with preemption off:\n{}",
        a.log()
    );
    assert_eq!(transitions(&a, "VI_1"), backup_changes, "{}", a.log());

    // Preemption on by SIGHUP: a takes the VIP back on b's next advert.
    a.reload_blocking(&config_a(150, true));
    wait_until(FAILOVER, "a alone serves the VIP again", || {
        alone_master("node-a")
    });
    assert!(
        a.log().contains("preempted lower-priority master"),
        "a should preempt, not wait for a timer:\n{}",
        a.log()
    );
}

/// VI_2 is added, given another VRID, and removed by SIGHUP on both nodes, with no restart;
/// VI_1 never changes state. A reload whose VI_2 sits on a missing interface is refused.
#[test]
fn instances_added_re_identified_and_removed_by_sighup_leave_the_others_alone() {
    let Some(lab) = lab() else { return };
    let (a, b) = start_pair(&lab, VIP4);
    let config_a = |extra: &str| node_config("node-a", 150, VIP4, "") + extra;
    let config_b = |extra: &str| node_config("node-b", 100, VIP4, "") + extra;
    let before = (transitions(&a, "VI_1"), transitions(&b, "VI_1"));
    let (pid_a, pid_b) = (a.pid(), b.pid());

    b.reload_blocking(&config_b(&second("eth0", 34, 100)));
    a.reload_blocking(&config_a(&second("eth0", 34, 150)));
    wait_until(FAILOVER, "a holds VI_2's VIP alone", || {
        holds(&lab, 0, VIP_2) && !holds(&lab, 1, VIP_2)
    });

    // A new VRID, and b above a this time: the new VI_2 is elected afresh.
    b.reload_blocking(&config_b(&second("eth0", 35, 150)));
    a.reload_blocking(&config_a(&second("eth0", 35, 100)));
    wait_until(FAILOVER, "b holds VI_2's VIP alone", || {
        holds(&lab, 1, VIP_2) && !holds(&lab, 0, VIP_2)
    });
    for (tandem, state) in [(&a, "BACKUP"), (&b, "MASTER")] {
        let log = tandem.log();
        assert!(
            log.lines()
                .any(|line| line.contains("instance=VI_2 vrid=35")
                    && line.contains("VRRP state changed")
                    && line.contains(state)),
            "{log}"
        );
    }

    a.reload_blocking(&config_a(""));
    b.reload_blocking(&config_b(""));
    wait_until(FAILOVER, "nobody holds VI_2's VIP", || {
        !holds(&lab, 0, VIP_2) && !holds(&lab, 1, VIP_2)
    });

    let log = a.reload_blocking(&config_a(&second("tandem-none0", 36, 150)));
    assert!(
        log.contains("reload failed") && log.contains("VI_2 on tandem-none0"),
        "{log}"
    );
    assert!(!holds(&lab, 0, VIP_2));

    assert_eq!(
        (transitions(&a, "VI_1"), transitions(&b, "VI_1")),
        before,
        "VI_1 changed state"
    );
    assert!(holds(&lab, 0, VIP4) && !holds(&lab, 1, VIP4));
    assert_eq!((a.pid(), b.pid()), (pid_a, pid_b));
}

/// Unicast peers and a slower advert interval by SIGHUP, in place: once multicast is dropped
/// at the switch, b still hears a (by unicast) and stays backup; neither changes state.
#[test]
fn unicast_peers_and_interval_change_in_place() {
    let Some(lab) = lab() else { return };
    let unicast = |peer: usize| format!("      unicast_peers: [\"{}\"]\n", lab.hosts[peer].ipv4);
    let config = |name: &str, priority: u8, extra: &str| {
        node_config(name, priority, VIP4, extra)
            .replace("advert_interval: 100ms", "advert_interval: 200ms")
            + ADMIN
    };
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &(node_config("node-a", 150, VIP4, "") + ADMIN),
    );
    let b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &(node_config("node-b", 100, VIP4, "") + ADMIN),
    );
    wait_for_master(&lab, 0, VIP4);
    let before = (transitions(&a, "VI_1"), transitions(&b, "VI_1"));

    b.reload_blocking(&config("node-b", 100, &unicast(0)));
    a.reload_blocking(&config("node-a", 150, &unicast(1)));
    lab.block_vrrp_multicast();
    let heard = adverts_received(&lab, 1);
    wait_until(FAILOVER, "b hears 10 more adverts from a", || {
        adverts_received(&lab, 1) >= heard + 10.0
    });
    assert!(holds(&lab, 0, VIP4) && !holds(&lab, 1, VIP4));
    assert_eq!(
        (transitions(&a, "VI_1"), transitions(&b, "VI_1")),
        before,
        "a reload changed a state:\n{}\n{}",
        a.log(),
        b.log()
    );
}

/// A node that started without VRRP gets its first instance by SIGHUP, and takes the VIP.
#[test]
fn vrrp_added_by_sighup_to_a_node_that_ran_none_takes_the_vip() {
    let Some(lab) = lab() else { return };
    let full = node_config("node-a", 150, VIP4, "");
    let without_vrrp = &full[..full.find("vrrp:").unwrap()];
    let a = Tandem::start_in(&lab.hosts[0].namespace, without_vrrp);
    let log = a.reload_blocking(&full);
    assert!(log.contains("config reloaded"), "{log}");
    wait_until(FAILOVER, "a holds the VIP", || holds(&lab, 0, VIP4));
    wait_until(FAILOVER, "the client reaches a via the VIP", || {
        answer_via_vip(&lab, VIP4).as_deref() == Some("node-a")
    });
}

/// A node whose VI_1 tracks its backend `app` (weight -100), of one server on `port`.
fn tracked_config(name: &str, priority: u8, server: &str, port: u16) -> String {
    node_config(
        name,
        priority,
        VIP4,
        "      track: [{ backend: app, weight: -100 }]\n",
    )
    .replace(
        "servers: [ { name: app, address: \"127.0.0.1:9000\" } ]",
        &format!(
            "health_check: {{ type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }}\n    \
             servers: [ {{ name: {server}, address: \"127.0.0.1:{port}\" }} ]"
        ),
    )
}

/// a's only server is replaced by SIGHUP; once the new server dies, a's priority drops below
/// b's and the VIP moves: the tracker watches the new server, not the one it started with.
#[test]
fn a_tracker_follows_a_server_replaced_by_a_reload() {
    let Some(lab) = Lab::new(3, support::lab::Dad::Off) else {
        return;
    };
    let old = App::start(&lab.hosts[0].namespace, 9000, "node-a");
    let new = App::start(&lab.hosts[0].namespace, 9001, "node-a");
    let _app_b = App::start(&lab.hosts[1].namespace, 9000, "node-b");
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &tracked_config("node-a", 150, "app", 9000),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &tracked_config("node-b", 100, "app", 9000),
    );
    wait_for_master(&lab, 0, VIP4);

    a.reload_blocking(&tracked_config("node-a", 150, "app2", 9001));
    drop(old);
    drop(new);
    wait_for_master(&lab, 1, VIP4);
    assert!(
        a.log().contains("backend app (0 of 1 up, min_healthy 1)"),
        "{}",
        a.log()
    );
}
