//! Two tandem nodes holding a VIP between them, as real hosts in network namespaces: a and b are
//! the load balancers, c is a client. Needs root; fails under CI=true without it.

mod support;

use std::time::Duration;

use support::lab::wait_until;
use support::pair::*;
use support::Tandem;

#[test]
fn the_higher_priority_holds_the_vip_and_losing_its_link_moves_it() {
    let Some(lab) = lab() else { return };
    let (_a, _b) = start_pair(&lab, VIP4);

    lab.set_cable(0, false);
    wait_until(FAILOVER, "node-b takes the VIP", || holds(&lab, 1, VIP4));
    wait_until(FAILOVER, "the client reaches node-b", || {
        answer_via_vip(&lab, VIP4).as_deref() == Some("node-b")
    });

    // Back on the link, a outranks b and takes over again (preempt is on by default).
    lab.set_cable(0, true);
    wait_for_master(&lab, 0, VIP4);
}

#[test]
fn preempt_takes_the_vip_back_and_nopreempt_leaves_it() {
    let Some(lab) = lab() else { return };
    for (extra, expect_master) in [("", 0), ("      preempt: false\n", 1)] {
        let mut a = Tandem::start_in(
            &lab.hosts[0].namespace,
            &node_config("node-a", 150, VIP4, extra),
        );
        let _b = Tandem::start_in(
            &lab.hosts[1].namespace,
            &node_config("node-b", 100, VIP4, ""),
        );
        wait_for_master(&lab, 0, VIP4);
        assert!(a.signal_and_wait("TERM").success());
        wait_for_master(&lab, 1, VIP4);

        let _a = Tandem::start_in(
            &lab.hosts[0].namespace,
            &node_config("node-a", 150, VIP4, extra),
        );
        // Give a's adverts time to be heard before judging who stays master.
        wait_until(FAILOVER, "node-a settles", || {
            _a.log().contains("to=\"BACKUP\"") || _a.log().contains("to=\"MASTER\"")
        });
        wait_for_master(&lab, expect_master, VIP4);
        if expect_master == 1 {
            std::thread::sleep(Duration::from_millis(500));
            assert!(
                holds(&lab, 1, VIP4) && !holds(&lab, 0, VIP4),
                "nopreempt: node-a took the VIP back"
            );
        }
    }
}

/// Two masters of equal priority that meet (a healed partition) keep the one with the higher
/// address. A backup, as in the RFC, follows any master of equal priority.
#[test]
fn equal_priorities_elect_the_higher_address() {
    let Some(lab) = lab() else { return };
    lab.block_vrrp_multicast();
    let _a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 100, VIP4, ""),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, ""),
    );
    wait_until(FAILOVER, "both nodes claim the VIP", || {
        holds(&lab, 0, VIP4) && holds(&lab, 1, VIP4)
    });
    lab.unblock_vrrp_multicast();
    // b is 198.51.100.12, a is .11.
    wait_for_master(&lab, 1, VIP4);
}

#[test]
fn an_ipv6_vip_moves_too() {
    let Some(lab) = lab() else { return };
    let (mut a, _b) = start_pair(&lab, VIP6);
    assert!(a.signal_and_wait("TERM").success());
    wait_for_master(&lab, 1, VIP6);
}

#[test]
fn a_killed_master_leaves_no_stale_vip() {
    let Some(lab) = lab() else { return };
    let (mut a, _b) = start_pair(&lab, VIP4);
    a.signal_and_wait("KILL");
    wait_until(
        Duration::from_secs(4),
        "the dead node's VIP expires",
        || !holds(&lab, 0, VIP4),
    );
    wait_for_master(&lab, 1, VIP4);
}

#[test]
fn unicast_peers_elect_across_a_switch_that_drops_vrrp_multicast() {
    let Some(lab) = lab() else { return };
    lab.block_vrrp_multicast();
    // Without unicast, the nodes can't hear each other: both claim the VIP.
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, ""),
    );
    let b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, ""),
    );
    wait_until(FAILOVER, "both nodes claim the VIP", || {
        holds(&lab, 0, VIP4) && holds(&lab, 1, VIP4)
    });
    drop((a, b));

    let peer = |ip: &str| format!("      unicast_peers: [{ip}]\n");
    let _a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, &peer("198.51.100.12")),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, &peer("198.51.100.11")),
    );
    wait_for_master(&lab, 0, VIP4);
}

/// Active-active: each node is master of one instance, and takes the other's VIP when it dies.
#[test]
fn two_instances_run_active_active() {
    let Some(lab) = lab() else { return };
    const VIP_2: &str = "198.51.100.20";
    let second = |priority: u8| {
        format!(
            "    - {{ name: VI_2, interface: eth0, virtual_router_id: 34, priority: {priority}, \
             advert_interval: 100ms, version: 3, virtual_ips: [\"{VIP_2}/24\"] }}\n"
        )
    };
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, &second(100)),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, &second(150)),
    );
    wait_until(FAILOVER, "a holds VI_1 and b holds VI_2", || {
        holds(&lab, 0, VIP4)
            && !holds(&lab, 1, VIP4)
            && holds(&lab, 1, VIP_2)
            && !holds(&lab, 0, VIP_2)
    });
    assert!(a.signal_and_wait("TERM").success());
    wait_until(FAILOVER, "b holds both", || {
        holds(&lab, 1, VIP4) && holds(&lab, 1, VIP_2)
    });
}

/// A v2 node and a v3 node can't understand each other; both hold the VIP, and say why loudly.
#[test]
fn a_version_mismatch_is_reported() {
    let Some(lab) = lab() else { return };
    let v2 = node_config("node-a", 150, VIP4, "")
        .replace("version: 3", "version: 2")
        .replace("advert_interval: 100ms", "advert_interval: 1s");
    let a = Tandem::start_in(&lab.hosts[0].namespace, &v2);
    let b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, ""),
    );
    wait_until(FAILOVER, "both report the other version", || {
        a.log().contains("the other version") && b.log().contains("the other version")
    });
    wait_until(FAILOVER, "both hold the VIP", || {
        holds(&lab, 0, VIP4) && holds(&lab, 1, VIP4)
    });
}

/// A reload changes an instance's priority and VIPs in place: no spurious state change, new VIPs
/// appear on the master at once, and a lowered priority hands the VIP over.
#[test]
fn a_reload_changes_priority_and_vips_without_a_spurious_transition() {
    const VIP_2: &str = "198.51.100.20";
    let Some(lab) = lab() else { return };
    let reload = |tandem: &Tandem, config: &str| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(tandem.reload(config))
    };
    let transitions = |tandem: &Tandem| tandem.log().matches("VRRP state changed").count();
    let (a, b) = start_pair(&lab, VIP4);
    let (a_before, b_before) = (transitions(&a), transitions(&b));

    let two_vips = node_config("node-a", 140, VIP4, "").replace(
        &format!("virtual_ips: [\"{VIP4}/24\"]"),
        &format!("virtual_ips: [\"{VIP4}/24\", \"{VIP_2}/24\"]"),
    );
    // The engine applies a reload on its own thread, just after the data plane logs it.
    let reconfigured = |tandem: &Tandem, times: usize| {
        wait_until(FAILOVER, "the VRRP instance takes the reload", || {
            tandem.log().matches("VRRP instance reconfigured").count() == times
        })
    };
    reload(&a, &two_vips);
    reconfigured(&a, 1);
    wait_until(FAILOVER, "the master adds the new VIP", || {
        holds(&lab, 0, VIP_2)
    });
    reload(&b, &node_config("node-b", 120, VIP4, ""));
    reconfigured(&b, 1);
    assert!(holds(&lab, 0, VIP4) && !holds(&lab, 1, VIP4));
    assert_eq!(
        (transitions(&a), transitions(&b)),
        (a_before, b_before),
        "a reload changed a state"
    );

    // Below b's priority now: b takes over (it preempts on a's next advert).
    reload(&a, &node_config("node-a", 50, VIP4, ""));
    wait_for_master(&lab, 1, VIP4);
    assert!(!holds(&lab, 0, VIP_2), "the dropped VIP stayed");
}

/// `GET /metrics` from the admin endpoint inside a lab host.
fn scrape_in(lab: &support::lab::Lab, host: usize) -> support::metrics::Metrics {
    let admin = "127.0.0.1:9900".parse().unwrap();
    support::lab::run_in(&lab.hosts[host].namespace, move || {
        support::metrics::scrape(admin)
    })
}

#[test]
fn vrrp_metrics_show_the_state_priorities_and_the_master_each_node_sees() {
    let Some(lab) = lab() else { return };
    let admin = "admin: { listen: 127.0.0.1:9900 }\n";
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &(node_config("node-a", 150, VIP4, "") + admin),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &(node_config("node-b", 100, VIP4, "") + admin),
    );
    wait_for_master(&lab, 0, VIP4);
    let (address_a, address_b) = (lab.hosts[0].ipv4.to_string(), lab.hosts[1].ipv4.to_string());
    let vi = [("vrrp_instance", "VI_1"), ("vrid", "33")];
    let with = |extra: (&'static str, &'static str)| [vi[0], vi[1], extra];

    let on_a = scrape_in(&lab, 0);
    assert_eq!(
        on_a.get("tandem_vrrp_state", &with(("state", "MASTER"))),
        1.0
    );
    assert_eq!(
        on_a.get("tandem_vrrp_state", &with(("state", "BACKUP"))),
        0.0
    );
    assert_eq!(on_a.get("tandem_vrrp_priority", &vi), 150.0);
    assert_eq!(on_a.get("tandem_vrrp_effective_priority", &vi), 150.0);
    assert_eq!(
        on_a.get("tandem_vrrp_transitions_total", &with(("state", "MASTER"))),
        1.0
    );
    assert!(on_a.get("tandem_vrrp_adverts_sent_total", &vi) > 0.0);
    let master_seen = |m: &support::metrics::Metrics| {
        (m.samples("tandem_vrrp_master_info", &vi))
            .map(|sample| sample.labels.get("address").unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(master_seen(&on_a), [address_a.as_str()]);
    deploy_files_use_only_exported_metrics(&on_a);

    wait_until(FAILOVER, "node-b sees node-a as master", || {
        let on_b = scrape_in(&lab, 1);
        on_b.get("tandem_vrrp_state", &with(("state", "BACKUP"))) == 1.0
            && master_seen(&on_b) == [address_a.as_str()]
            && on_b.get("tandem_vrrp_adverts_received_total", &vi) > 0.0
    });

    a.signal_and_wait("KILL");
    wait_until(FAILOVER, "node-b reports itself master", || {
        let on_b = scrape_in(&lab, 1);
        on_b.get("tandem_vrrp_state", &with(("state", "MASTER"))) == 1.0
            && on_b.get("tandem_vrrp_transitions_total", &with(("state", "MASTER"))) == 1.0
            && master_seen(&on_b) == [address_b.as_str()]
    });
}

/// The shipped dashboard and alert rules name only metrics a node exports (or, for drops, will
/// export once something is dropped, and for checks once a health check has run: these nodes
/// have none): they would otherwise show nothing, silently.
fn deploy_files_use_only_exported_metrics(scraped: &support::metrics::Metrics) {
    let exported: Vec<&str> = (scraped.0.samples.iter())
        .map(|sample| sample.metric.as_str())
        .chain([
            "tandem_vrrp_packets_dropped_total",
            "tandem_vrrp_interface_packets_dropped_total",
            "tandem_server_check_status",
            "tandem_server_check_duration_seconds",
        ])
        .collect();
    for file in [
        "deploy/grafana/tandem-dashboard.json",
        "deploy/prometheus/tandem-alerts.yaml",
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("tandem_") {
            let name: String = (text[at..].chars())
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let family = name.strip_suffix("_bucket").unwrap_or(&name);
            assert!(
                exported.contains(&family),
                "{file} uses {name}, which tandem does not export"
            );
        }
    }
}
