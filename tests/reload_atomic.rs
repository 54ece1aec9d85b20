//! A reload is all or nothing, VRRP included. In a namespace lab (needs root; fails under
//! CI=true without it), a file whose VRRP part the engine refuses changes nothing, not even the
//! parts that could have applied on their own.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::lab::{run_in, wait_until};
use support::pair::{self, answer_via_vip, holds, VIP4};
use support::Tandem;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const ADDED: &str = "198.51.100.10:8080";

/// What the client gets from `address`: the app's name, or `None` when nothing answers.
fn answer_from(lab: &support::lab::Lab, address: SocketAddr) -> Option<String> {
    run_in(&lab.hosts[2].namespace, move || async move {
        let attempt = async {
            let mut stream = TcpStream::connect(address).await.ok()?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.ok()?;
            Some(reply)
        };
        (tokio::time::timeout(Duration::from_millis(500), attempt).await)
            .ok()
            .flatten()
    })
}

/// Writes `config` and sends SIGHUP; returns once the outcome is logged, `true` if applied.
fn reload(tandem: &Tandem, config: &str) -> bool {
    let outcomes =
        |log: &str| log.matches("config reloaded").count() + log.matches("reload failed").count();
    let before = outcomes(&tandem.log());
    let applied = tandem.log().matches("config reloaded").count();
    std::fs::write(&tandem.config_path, config).unwrap();
    tandem.signal("HUP");
    wait_until(
        Duration::from_secs(10),
        "the reload's outcome is logged",
        || outcomes(&tandem.log()) > before,
    );
    tandem.log().matches("config reloaded").count() > applied
}

#[test]
fn a_reload_whose_vrrp_part_is_refused_changes_nothing() {
    let Some(lab) = pair::lab() else {
        return;
    };
    let (a, _b) = pair::start_pair(&lab, VIP4);
    let added: SocketAddr = ADDED.parse().unwrap();
    let with_added_frontend = pair::node_config("node-a", 150, VIP4, "").replace(
        "frontends:\n",
        &format!(
            "frontends:\n  - {{ name: added, listen: \"{ADDED}\", mode: tcp, backend: app }}\n"
        ),
    );

    // The instance moved to an interface this host lacks: VRRP refuses, so nothing changes.
    let refused = with_added_frontend.replace("interface: eth0", "interface: nosuch0");
    assert!(!reload(&a, &refused), "the reload applied:\n{}", a.log());
    assert!(
        a.log().contains("vrrp"),
        "the log does not say VRRP refused:\n{}",
        a.log()
    );
    assert!(holds(&lab, 0, VIP4), "node a gave up the VIP");
    assert_eq!(answer_via_vip(&lab, VIP4).as_deref(), Some("node-a"));
    assert_eq!(
        answer_from(&lab, added),
        None,
        "the frontend added in the refused file listens"
    );

    // The same file without the refused part applies, added frontend and all.
    assert!(reload(&a, &with_added_frontend), "{}", a.log());
    assert_eq!(answer_from(&lab, added).as_deref(), Some("node-a"));
}
