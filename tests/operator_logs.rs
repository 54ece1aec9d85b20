//! What an operator reads in tandem's own log is plain words and fields, never Rust's Debug
//! shapes (`mode=Http`, `from=Priority(150)`, `cause=MasterDown { last_master: None }`): two
//! nodes in namespaces go through start-up, a server going down and up (which moves the VIP
//! there and back) and a reload, at debug level. Needs root; fails under CI=true without it.

mod support;

use std::time::Duration;

use regex::Regex;
use support::lab::{wait_until, Dad, Lab};
use support::pair::App;
use support::Tandem;

const VIP: &str = "198.51.100.10";
const LIMIT: Duration = Duration::from_secs(5);

/// An http frontend on the VIP in front of an app on loopback, whose health is checked and
/// tracked by one VRRP instance.
fn node_config(name: &str, priority: u8) -> String {
    format!(
        "node: {{ name: {name}, threads: 1 }}\n\
         frontends:\n  - {{ name: web, listen: \"{VIP}:80\", mode: http, backend: app }}\n\
         backends:\n  - name: app\n    \
         health_check: {{ type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }}\n    \
         servers: [ {{ name: app, address: \"127.0.0.1:9000\" }} ]\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      \
         virtual_router_id: 33\n      priority: {priority}\n      advert_interval: 100ms\n      \
         version: 3\n      virtual_ips: [\"{VIP}/24\"]\n      \
         track: [{{ backend: app, weight: -100 }}]\n"
    )
}

fn holds(lab: &Lab, host: usize) -> bool {
    lab.addresses(&lab.hosts[host])
        .contains(&format!(" {VIP}/"))
}

fn wait_for_master(lab: &Lab, master: usize) {
    wait_until(LIMIT, &format!("host {master} holds {VIP} alone"), || {
        holds(lab, master) && !holds(lab, 1 - master)
    });
}

/// The lines of `log` that show a Debug shape: `Name(`, `Name {`, `Some(`, `None`, `["`.
fn debug_shaped(log: &str) -> Vec<&str> {
    let shapes =
        Regex::new(r#"[A-Z][a-z]+\(|[A-Za-z] \{ |\bSome\(|\bNone\b|\["|\{ [a-z_]+: "#).unwrap();
    log.lines().filter(|line| shapes.is_match(line)).collect()
}

#[test]
fn logs_show_plain_words_through_start_failover_and_reload() {
    let Some(lab) = Lab::new(2, Dad::Off) else {
        return;
    };
    let mut app_a = Some(App::start(&lab.hosts[0].namespace, 9000, "node-a"));
    let _app_b = App::start(&lab.hosts[1].namespace, 9000, "node-b");
    let a = Tandem::start_in(&lab.hosts[0].namespace, &node_config("node-a", 150));
    let b = Tandem::start_in(&lab.hosts[1].namespace, &node_config("node-b", 100));
    wait_for_master(&lab, 0);

    // a's server goes down: its priority drops and b preempts it; then back.
    drop(app_a.take());
    wait_for_master(&lab, 1);
    let _app_a = App::start(&lab.hosts[0].namespace, 9000, "node-a");
    wait_for_master(&lab, 0);

    let reloaded = |tandem: &Tandem| tandem.log().contains("config reloaded");
    a.signal("HUP");
    wait_until(LIMIT, "a logs its reload", || reloaded(&a));

    let (a_log, b_log) = (a.log(), b.log());
    for (what, expected) in [
        ("the frontend's mode", "mode=http"),
        ("the tracked priority", "from=priority 150 to=priority 50"),
        (
            "what failed",
            "failing=backend app (0 of 1 up, min_healthy 1)",
        ),
        ("the cause", "cause=master down, none heard"),
    ] {
        assert!(a_log.contains(expected), "{what}: {expected}\n{a_log}");
    }
    assert!(
        b_log.contains("cause=preempted lower-priority master 198.51.100.11 (priority 50)"),
        "{b_log}"
    );
    assert_eq!(debug_shaped(&a_log), Vec::<&str>::new(), "{a_log}");
    assert_eq!(debug_shaped(&b_log), Vec::<&str>::new(), "{b_log}");
}

/// `mode=Http` has no shape to recognise: the run asserts `mode=http` instead.
#[test]
fn the_debug_shapes_are_recognised() {
    let log = "state changed cause=MasterDown { last_master: None }\n\
               from=Priority(150)\nfailing=[\"backend app\"]\n\
               error=Connection refused (os error 111)\n\
               listening mode=http from=priority 150 cause=master down, none heard\n";
    assert_eq!(
        debug_shaped(log),
        [
            "state changed cause=MasterDown { last_master: None }",
            "from=Priority(150)",
            "failing=[\"backend app\"]"
        ]
    );
}
