//! The runtime API's VRRP resign and maintenance between two tandem nodes in namespaces, alone
//! in its test binary as `vrrp_handover.rs` is: it counts failed connections, and tests
//! running beside it on two cores would stretch every connection's lifetime.

mod support;

use std::path::Path;

use support::lab::wait_until;
use support::pair::*;
use support::{ctl, Tandem};

/// A node's config with its admin unix socket at `socket`: the test reaches it from outside
/// the node's network namespace.
fn node_with_socket(name: &str, priority: u8, socket: &Path) -> String {
    node_config(name, priority, VIP4, "")
        + &format!(
            "admin: {{ listen: 127.0.0.1:9900, socket: {} }}\n",
            socket.display()
        )
}

/// `vrrp resign` on the master moves the VIP to the peer while a client opening a new
/// connection every 5 ms sees no failure (no answer within 500 ms counts as one; one reset
/// at the switch is tolerated, as in `vrrp_handover.rs`), and the resigned node, of higher
/// priority, does not preempt back. Then `vrrp maintenance` on the peer: it stays backup
/// while the resigned node takes the VIP again; off, it is normal again.
#[test]
fn vrrp_resign_moves_the_vip_to_the_peer_with_no_failed_connection() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (socket_a, socket_b) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
    let _a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_with_socket("node-a", 150, &socket_a),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_with_socket("node-b", 100, &socket_b),
    );
    wait_for_master(&lab, 0, VIP4);

    let client = HandoverClient::start(&lab);
    let (code, out) = ctl(&socket_a, &["vrrp", "resign", "VI_1"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "vrrp instance VI_1 is BACKUP (was MASTER), mode resigned\n"
        )
    );
    client.assert_handed_over();
    // Node-a keeps the VIP until after node-b's last gratuitous ARP, hearing node-b's
    // adverts of lower priority all along: it would have preempted by then.
    wait_until(FAILOVER, "node-b alone holds the VIP", || {
        holds(&lab, 1, VIP4) && !holds(&lab, 0, VIP4)
    });
    let (code, shown) = ctl(&socket_a, &["show", "--json"]);
    assert_eq!(code, 0);
    assert!(
        shown.contains("\"state\": \"BACKUP\"") && shown.contains("\"mode\": \"resigned\""),
        "node-a, of higher priority, does not preempt back: {shown}"
    );

    let (code, out) = ctl(&socket_b, &["vrrp", "maintenance", "VI_1", "on"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "vrrp instance VI_1 is BACKUP (was MASTER), mode maintenance\n"
        )
    );
    wait_for_master(&lab, 0, VIP4);
    let (code, shown) = ctl(&socket_b, &["show"]);
    assert_eq!(code, 0);
    assert!(
        shown.contains("mode maintenance (set by an operator)"),
        "{shown}"
    );
    let (code, out) = ctl(&socket_b, &["vrrp", "maintenance", "VI_1", "off"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "vrrp instance VI_1 is BACKUP (was BACKUP), mode normal\n"
        )
    );
}
