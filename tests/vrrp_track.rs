//! Tracking in real namespaces: two tandem nodes whose VRRP priority follows their own health.
//! a (priority 150) and b (100) each proxy to an app on their own loopback. Needs root; fails
//! under CI=true without it.

mod support;

use std::time::{Duration, Instant};

use support::lab::{wait_until, Dad, Lab};
use support::pair::App;
use support::{Keepalived, Tandem};

const VIP: &str = "198.51.100.10";
/// Health checks every 100 ms, down after 2 failures: about 200 ms to notice a dead app.
const HEALTH_CHECK: &str = "{ type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }";
/// Generous against a busy machine; noticing and handing over need well under a second here.
const HANDOVER: Duration = Duration::from_secs(3);

/// A node's config: a tcp frontend on the VIP in front of its app, whose health is checked, and
/// one VRRP instance (v3, 100 ms adverts) tracking `track`.
fn node_config(name: &str, priority: u8, track: &str) -> String {
    format!(
        "node: {{ name: {name}, threads: 1 }}\n\
         frontends:\n  - {{ name: web, listen: \"{VIP}:80\", mode: tcp, backend: app }}\n\
         backends:\n  - name: app\n    health_check: {HEALTH_CHECK}\n    \
         servers: [ {{ name: app, address: \"127.0.0.1:9000\" }} ]\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 33\n      \
         priority: {priority}\n      advert_interval: 100ms\n      version: 3\n      \
         virtual_ips: [\"{VIP}/24\"]\n      track: [{track}]\n"
    )
}

fn holds(lab: &Lab, host: usize) -> bool {
    lab.addresses(&lab.hosts[host])
        .contains(&format!(" {VIP}/"))
}

fn wait_for_master(lab: &Lab, master: usize, limit: Duration) {
    let name = ["node-a", "node-b"][master];
    wait_until(limit, &format!("{name} holds {VIP} alone"), || {
        holds(lab, master) && !holds(lab, 1 - master)
    });
}

#[test]
fn a_failed_backend_moves_the_vip_to_the_healthy_node_and_back() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let track = "{ backend: app, weight: -100 }";
    let mut app_a = Some(App::start(&lab.hosts[0].namespace, 9000, "node-a"));
    let _app_b = App::start(&lab.hosts[1].namespace, 9000, "node-b");
    let a = Tandem::start_in(&lab.hosts[0].namespace, &node_config("node-a", 150, track));
    let b = Tandem::start_in(&lab.hosts[1].namespace, &node_config("node-b", 100, track));
    wait_for_master(&lab, 0, HANDOVER);

    // a still runs and advertises, now at 50: b must take over on hearing that.
    drop(app_a.take());
    let failed = Instant::now();
    wait_for_master(&lab, 1, HANDOVER);
    eprintln!("the VIP moved {:?} after a's app died", failed.elapsed());
    assert!(a.log().contains("tracked items changed the VRRP priority"));
    assert!(
        b.log().contains("preempted lower-priority master"),
        "b should take over on a's advert, not on a timer:\n{}",
        b.log()
    );

    let _app_a = App::start(&lab.hosts[0].namespace, 9000, "node-a");
    wait_for_master(&lab, 0, HANDOVER);
}

#[test]
fn both_backends_failing_moves_nothing() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let track = "{ backend: app, weight: -100 }";
    let mut app_a = Some(App::start(&lab.hosts[0].namespace, 9000, "node-a"));
    let mut app_b = Some(App::start(&lab.hosts[1].namespace, 9000, "node-b"));
    // Equal priorities: whoever is master stays master when both degrade alike.
    let nodes = [
        Tandem::start_in(&lab.hosts[0].namespace, &node_config("node-a", 150, track)),
        Tandem::start_in(&lab.hosts[1].namespace, &node_config("node-b", 150, track)),
    ];
    wait_until(HANDOVER, "one node holds the VIP", || {
        holds(&lab, 0) != holds(&lab, 1)
    });
    let master = usize::from(holds(&lab, 1));
    let backup = 1 - master;
    let apps = [&mut app_a, &mut app_b];
    // The backup degrades first, so the master never falls below it.
    for node in [backup, master] {
        drop(apps[node].take());
        wait_until(HANDOVER, "the node notices its app is down", || {
            nodes[node]
                .log()
                .contains("tracked items changed the VRRP priority")
        });
    }
    // Watched for a while rather than waited on: the VIP must not move at all.
    let watch_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch_until {
        assert!(
            holds(&lab, master) && !holds(&lab, 1 - master),
            "the VIP moved"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_tracked_interface_without_weight_faults_and_gives_up_the_vip() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let _app_a = App::start(&lab.hosts[0].namespace, 9000, "node-a");
    let _app_b = App::start(&lab.hosts[1].namespace, 9000, "node-b");
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, "{ interface: eth0 }"),
    );
    let _b = Tandem::start_in(&lab.hosts[1].namespace, &node_config("node-b", 100, ""));
    wait_for_master(&lab, 0, HANDOVER);

    // Without tracking, a would keep the VIP on its dead link (see vrrp_failover).
    lab.set_cable(0, false);
    wait_for_master(&lab, 1, HANDOVER);
    assert!(a.log().contains("to=\"FAULT\""), "{}", a.log());

    lab.set_cable(0, true);
    wait_for_master(&lab, 0, HANDOVER);
}

/// keepalived as the peer follows the RFC: it takes over from a degraded tandem when its
/// Master_Down_Timer fires, and tandem, healthy again, preempts it on its next advert.
#[test]
fn a_keepalived_peer_takes_over_from_a_degraded_node_and_yields_back() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let mut app_a = Some(App::start(&lab.hosts[0].namespace, 9000, "node-a"));
    let keepalived_config = format!(
        "global_defs {{\n  router_id keepalived-b\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 33\n  \
         priority 100\n  version 3\n  advert_int 0.1\n  virtual_ipaddress {{\n    {VIP}/24\n  \
         }}\n}}\n"
    );
    let _keepalived = Keepalived::start_in(&lab.hosts[1].namespace, &keepalived_config);
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, "{ backend: app, weight: -100 }"),
    );
    wait_for_master(&lab, 0, HANDOVER);

    drop(app_a.take());
    wait_for_master(&lab, 1, HANDOVER);

    let _app_a = App::start(&lab.hosts[0].namespace, 9000, "node-a");
    wait_for_master(&lab, 0, HANDOVER);
    assert!(
        a.log().contains("preempted lower-priority master"),
        "{}",
        a.log()
    );
}
