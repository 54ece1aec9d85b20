//! Two tandem nodes holding a VIP between them, as real hosts in network namespaces: a and b are
//! the load balancers, c is a client. Needs root; fails under CI=true without it.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::lab::{run_in, spawn_in, wait_until, Dad, Lab};
use support::Tandem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const VIP4: &str = "198.51.100.10";
const VIP6: &str = "2001:db8::10";
/// Generous against a busy machine; the protocol itself needs well under a second here.
const FAILOVER: Duration = Duration::from_secs(5);

/// A node's config: a tcp frontend on the VIP in front of the node's own app, and one VRRP
/// instance (v3, 100 ms adverts) with `vrrp_extra` added to it.
fn node_config(name: &str, priority: u8, vip: &str, vrrp_extra: &str) -> String {
    let (listen, prefix) = if vip.contains(':') {
        (format!("[{vip}]:80"), 64)
    } else {
        (format!("{vip}:80"), 24)
    };
    format!(
        "node: {{ name: {name}, threads: 1 }}\n\
         frontends:\n  - {{ name: web, listen: \"{listen}\", mode: tcp, backend: app }}\n\
         backends:\n  - name: app\n    servers: [ {{ name: app, address: \"127.0.0.1:9000\" }} ]\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 33\n      \
         priority: {priority}\n      advert_interval: 100ms\n      version: 3\n      \
         virtual_ips: [\"{vip}/{prefix}\"]\n{vrrp_extra}"
    )
}

/// The node's app: answers every connection with the node's name, for the rest of the test.
fn start_app(namespace: &str, name: &'static str) {
    let (bound, listening) = std::sync::mpsc::channel();
    spawn_in(namespace, move || async move {
        let listener = TcpListener::bind("127.0.0.1:9000").await.unwrap();
        bound.send(()).unwrap();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(name.as_bytes()).await;
        }
    });
    listening.recv().unwrap();
}

fn holds(lab: &Lab, host: usize, vip: &str) -> bool {
    lab.addresses(&lab.hosts[host])
        .contains(&format!(" {vip}/"))
}

/// Which node's app the client reaches through the VIP, if any.
fn answer_via_vip(lab: &Lab, vip: &str) -> Option<String> {
    let address: SocketAddr = if vip.contains(':') {
        format!("[{vip}]:80")
    } else {
        format!("{vip}:80")
    }
    .parse()
    .unwrap();
    run_in(&lab.hosts[2].namespace, move || async move {
        let attempt = async {
            let mut stream = TcpStream::connect(address).await.ok()?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.ok()?;
            Some(reply)
        };
        tokio::time::timeout(Duration::from_millis(500), attempt)
            .await
            .ok()
            .flatten()
    })
}

fn wait_for_master(lab: &Lab, master: usize, vip: &str) {
    let backup = 1 - master;
    let name = ["node-a", "node-b"][master];
    wait_until(FAILOVER, &format!("{name} holds {vip} alone"), || {
        holds(lab, master, vip) && !holds(lab, backup, vip)
    });
    wait_until(
        FAILOVER,
        &format!("the client reaches {name} via {vip}"),
        || answer_via_vip(lab, vip).as_deref() == Some(name),
    );
}

/// A lab of a, b and a client, with both nodes' apps running.
fn lab() -> Option<Lab> {
    let lab = Lab::new(3, Dad::Off)?;
    start_app(&lab.hosts[0].namespace, "node-a");
    start_app(&lab.hosts[1].namespace, "node-b");
    Some(lab)
}

#[test]
fn the_higher_priority_holds_the_vip_and_losing_its_link_moves_it() {
    let Some(lab) = lab() else { return };
    let _a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, ""),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, ""),
    );
    wait_for_master(&lab, 0, VIP4);

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
            _a.log().contains("to=\"backup\"") || _a.log().contains("to=\"master\"")
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
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP6, ""),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP6, ""),
    );
    wait_for_master(&lab, 0, VIP6);
    assert!(a.signal_and_wait("TERM").success());
    wait_for_master(&lab, 1, VIP6);
}

#[test]
fn a_killed_master_leaves_no_stale_vip() {
    let Some(lab) = lab() else { return };
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, ""),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, ""),
    );
    wait_for_master(&lab, 0, VIP4);
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
        a.log().contains("VersionMismatch") && b.log().contains("VersionMismatch")
    });
    wait_until(FAILOVER, "both hold the VIP", || {
        holds(&lab, 0, VIP4) && holds(&lab, 1, VIP4)
    });
}

/// Planned handover: SIGTERM on the master resigns, keeps serving until b holds the VIP, drains
/// and exits 0, while a client opening a new connection every 5 ms sees no failure (no answer
/// within 500 ms counts as one: a lost SYN would be retried only after 1 s).
#[test]
fn a_planned_handover_fails_no_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let Some(lab) = lab() else { return };
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, ""),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, ""),
    );
    wait_for_master(&lab, 0, VIP4);

    let served = Arc::new(AtomicUsize::new(0));
    let client = spawn_in(&lab.hosts[2].namespace, {
        let served = Arc::clone(&served);
        move || async move {
            let address: SocketAddr = format!("{VIP4}:80").parse().unwrap();
            let mut failures = Vec::new();
            let mut answered_by_b = 0;
            // Bounded: stops 100 answers after b first answered, or after 2000 attempts.
            for attempt in 0..2000 {
                let reply = tokio::time::timeout(Duration::from_millis(500), async {
                    let mut stream = TcpStream::connect(address).await?;
                    let mut reply = String::new();
                    stream.read_to_string(&mut reply).await?;
                    Ok::<_, std::io::Error>(reply)
                })
                .await;
                match reply {
                    Ok(Ok(name)) if !name.is_empty() => {
                        served.fetch_add(1, Ordering::SeqCst);
                        answered_by_b += usize::from(name == "node-b");
                    }
                    other => failures.push(format!("attempt {attempt}: {other:?}")),
                }
                if answered_by_b >= 100 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (failures, answered_by_b)
        }
    });
    wait_until(FAILOVER, "the client is being served", || {
        served.load(Ordering::SeqCst) >= 50
    });
    let status = a.signal_and_wait("TERM");
    assert!(status.success(), "node-a exited with {status}");
    let (failures, answered_by_b) = client.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed connections: {failures:?}",
        failures.len()
    );
    assert_eq!(answered_by_b, 100, "node-b never took over");
    assert!(holds(&lab, 1, VIP4) && !holds(&lab, 0, VIP4));
}
