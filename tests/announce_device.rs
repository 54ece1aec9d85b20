//! `announce:` on one node, as the kernel shows it to FRR: which addresses are on the TUN
//! device (what FRR redistributes), whether the node still accepts them, and what `tandem ctl`
//! and `/status` say, through tracks, drains, reloads, SIGTERM and kill -9. The routers' side,
//! with FRR and ECMP, is tests/announce_bgp.rs. Needs root; fails under CI=true without it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::lab::{run_in, wait_until, Dad, Lab};
use support::pair::App;
use support::{ctl, Tandem};

const ADDRESS: &str = "203.0.113.10";
const SECOND: &str = "203.0.113.11";
const ADDRESS6: &str = "2001:db8::10";
/// Generous against a busy machine: the kernel and the health checks take well under a second.
const SOON: Duration = Duration::from_secs(5);

fn config(socket: &Path, announce: &str) -> String {
    config_with(socket, "", announce)
}

/// With `servers` added to the tracked backend's.
fn config_with(socket: &Path, servers: &str, announce: &str) -> String {
    format!(
        "node: {{ name: n1, threads: 1 }}
frontends:
  - {{ name: app, listen: \"0.0.0.0:80\", mode: tcp, backend: app }}
  - {{ name: app6, listen: \"[{ADDRESS6}]:80\", mode: tcp, backend: app }}
backends:
  - name: app
    servers: [ {{ name: s1, address: \"127.0.0.1:9000\" }}{servers} ]
    health_check: {{ type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }}
admin: {{ listen: \"127.0.0.1:9900\", socket: {} }}
{announce}",
        socket.display()
    )
}

fn announce(interface: &str, addresses: &[&str]) -> String {
    format!(
        "announce:\n  interface: {interface}\n  addresses: [{}]\n  track: [ {{ backend: app }} ]\n  withdraw: {{ quiet: 300ms }}\n",
        addresses.join(", ")
    )
}

/// The addresses on `device` in `namespace`, as `ip -o addr` shows them (`203.0.113.10/32`);
/// `None` when there is no such device.
fn on_device(namespace: &str, device: &str) -> Option<Vec<String>> {
    let output = Command::new("ip")
        .args(["-n", namespace, "-o", "addr", "show", "dev", device])
        .output()
        .unwrap();
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Some(
        text.lines()
            .filter_map(|line| line.split_whitespace().nth(3).map(str::to_owned))
            .collect(),
    )
}

fn announced(namespace: &str, device: &str, addresses: &[&str]) -> bool {
    let mut wanted: Vec<String> = (addresses.iter())
        .map(|address| match address.contains(':') {
            true => format!("{address}/128"),
            false => format!("{address}/32"),
        })
        .collect();
    wanted.sort();
    on_device(namespace, device).is_some_and(|mut on| {
        on.sort();
        on == wanted
    })
}

/// Whether tandem's `local` route for `address` is in the node's local table.
fn accepted_locally(namespace: &str, address: &str) -> bool {
    let family = if address.contains(':') { "-6" } else { "-4" };
    let output = Command::new("ip")
        .args([
            "-n", namespace, family, "route", "show", "table", "local", address,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).contains("proto 87")
}

/// What the node's app answers through the node's frontend on `address`, from the node itself.
fn answer_on(namespace: &str, address: &'static str) -> Option<String> {
    run_in(namespace, move || async move {
        use tokio::io::AsyncReadExt as _;
        let mut stream = tokio::net::TcpStream::connect((address, 80)).await.ok()?;
        let mut answer = String::new();
        let read = stream.read_to_string(&mut answer);
        tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .ok()?
            .ok()?;
        Some(answer)
    })
}

/// `tandem ctl`, succeeded or not, and what it said.
fn ctl_ok(socket: &Path, args: &[&str]) -> (bool, String) {
    let (code, said) = ctl(socket, args);
    (code == 0, said)
}

fn announce_status(socket: &Path) -> serde_json::Value {
    let (ok, text) = ctl_ok(socket, &["show", "--json"]);
    assert!(ok, "tandem ctl show: {text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    status["announce"].clone()
}

#[test]
fn announces_while_tracks_hold_withdraws_for_an_operator_and_dies_with_the_process() {
    let Some(lab) = Lab::new(1, Dad::Off) else {
        return;
    };
    let node = &lab.hosts[0].namespace;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let mut app = Some(App::start(node, 9000, "app"));
    let mut tandem = Tandem::start_in(
        node,
        &config(&socket, &announce("tandem0", &[ADDRESS, ADDRESS6])),
    );
    wait_until(SOON, "the address is announced", || {
        announced(node, "tandem0", &[ADDRESS, ADDRESS6])
    });
    assert!(accepted_locally(node, ADDRESS) && accepted_locally(node, ADDRESS6));
    assert_eq!(answer_on(node, ADDRESS).as_deref(), Some("app"));
    assert_eq!(answer_on(node, ADDRESS6).as_deref(), Some("app"));
    assert_eq!(announce_status(&socket)["state"], "announced");

    // The tracked backend fails: withdrawn, and /status says why.
    drop(app.take());
    wait_until(SOON, "the address is withdrawn", || {
        announced(node, "tandem0", &[])
    });
    let status = announce_status(&socket);
    assert_eq!(status["state"], "withdrawn");
    assert!(
        status["failing"][0]
            .as_str()
            .unwrap()
            .contains("backend app"),
        "{status}"
    );
    app = Some(App::start(node, 9000, "app"));
    wait_until(SOON, "the address is announced again", || {
        announced(node, "tandem0", &[ADDRESS, ADDRESS6])
    });

    // An operator drains: withdrawn until ready, while the node still takes connections.
    let (ok, said) = ctl_ok(&socket, &["announce", "drain"]);
    assert!(ok && said.contains("drained"), "{said}");
    assert!(announced(node, "tandem0", &[]));
    assert_eq!(answer_on(node, ADDRESS).as_deref(), Some("app"));
    assert_eq!(announce_status(&socket)["state"], "drained");
    let (ok, said) = ctl_ok(&socket, &["announce", "ready"]);
    assert!(ok, "{said}");
    wait_until(SOON, "the address is announced after ready", || {
        announced(node, "tandem0", &[ADDRESS, ADDRESS6])
    });

    // kill -9: the kernel deletes the device with the address on it.
    tandem.signal_and_wait("KILL");
    wait_until(SOON, "the device is gone", || {
        on_device(node, "tandem0").is_none()
    });
    drop(app);
}

#[test]
fn a_reload_changes_what_is_announced_all_or_nothing() {
    let Some(lab) = Lab::new(1, Dad::Off) else {
        return;
    };
    let node = &lab.hosts[0].namespace;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let _app = App::start(node, 9000, "app");
    let mut tandem = Tandem::start_in(node, &config(&socket, &announce("tandem0", &[ADDRESS])));
    wait_until(SOON, "the address is announced", || {
        announced(node, "tandem0", &[ADDRESS])
    });

    // A server added to the tracked backend (and down) awaits its first check, but a node
    // that serves goes on announcing: every node reloads at about the same time.
    let more = config_with(
        &socket,
        ", { name: s2, address: \"127.0.0.1:9001\" }",
        &announce("tandem0", &[ADDRESS]),
    );
    let before = tandem.log().len();
    let log = tandem.reload_blocking(&more);
    assert!(log.contains("config reloaded"), "{log}");
    wait_until(SOON, "the new server has had its check", || {
        let (ok, text) = ctl_ok(&socket, &["show", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        ok && status["backends"][0]["servers"][1]["state"] == "DOWN"
    });
    let since = &tandem.log()[before..];
    assert!(
        !since.contains("announce: not announcing") && !since.contains("withdrawing"),
        "{since}"
    );
    assert!(announced(node, "tandem0", &[ADDRESS]));

    // A second address, on a device of another name: the old device goes.
    let both = config(&socket, &announce("tandem7", &[ADDRESS, SECOND]));
    let log = tandem.reload_blocking(&both);
    assert!(log.matches("config reloaded").count() == 2, "{log}");
    wait_until(SOON, "both addresses on the new device", || {
        announced(node, "tandem7", &[ADDRESS, SECOND])
    });
    assert!(on_device(node, "tandem0").is_none());
    assert!(accepted_locally(node, SECOND));

    // A broken file changes nothing: one refused by validation, and one whose device the
    // kernel refuses (eth0 exists) once the rest is prepared.
    let broken = config(&socket, &announce("tandem7", &["fe80::1"]));
    let log = tandem.reload_blocking(&broken);
    assert_eq!(log.matches("reload failed").count(), 1, "{log}");
    let third = "203.0.113.12";
    let refused = config(&socket, &announce("eth0", &[ADDRESS, SECOND, third]));
    let log = tandem.reload_blocking(&refused);
    assert_eq!(log.matches("reload failed").count(), 2, "{log}");
    assert!(log.contains("eth0: cannot create the TUN device"), "{log}");
    assert!(announced(node, "tandem7", &[ADDRESS, SECOND]));
    assert!(!accepted_locally(node, third));
    assert!(!announced(node, "eth0", &[third]));

    // Without announce: withdrawn, device and local routes gone.
    let log = tandem.reload_blocking(&config(&socket, ""));
    assert!(log.matches("config reloaded").count() == 3, "{log}");
    wait_until(SOON, "the device is gone", || {
        on_device(node, "tandem7").is_none()
    });
    assert!(!accepted_locally(node, ADDRESS) && !accepted_locally(node, SECOND));

    // And back, then SIGTERM: withdrawn and cleaned up before a clean exit.
    let log = tandem.reload_blocking(&config(&socket, &announce("tandem0", &[ADDRESS])));
    assert!(log.matches("config reloaded").count() == 4, "{log}");
    wait_until(SOON, "announced again", || {
        announced(node, "tandem0", &[ADDRESS])
    });
    assert!(tandem.signal_and_wait("TERM").success());
    assert!(on_device(node, "tandem0").is_none());
    assert!(!accepted_locally(node, ADDRESS));
}
