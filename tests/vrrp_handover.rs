//! Planned hand-over on SIGTERM, alone in its test binary: it counts failed connections, and
//! tests running beside it on two cores would stretch every connection's lifetime.

mod support;

use support::pair::*;

/// Planned handover: SIGTERM on the master resigns, keeps serving until b holds the VIP, drains
/// and exits 0, while a client opening a new connection every 5 ms sees no refusal and no
/// silence (no answer within 500 ms counts as a failure: a lost SYN would be retried only after
/// 1 s). One reset is tolerated, and only one: a connection that a opened just before b's
/// gratuitous ARP lands sends its last packets to b, which knows no such connection and resets
/// it (about one run in six; keepalived pairs have the same race, see the README's table).
#[test]
fn a_planned_handover_fails_no_connection() {
    let Some(lab) = lab() else { return };
    let (mut a, _b) = start_pair(&lab, VIP4);

    let client = HandoverClient::start(&lab);
    let status = a.signal_and_wait("TERM");
    assert!(status.success(), "node-a exited with {status}");
    client.assert_handed_over();
    assert!(holds(&lab, 1, VIP4) && !holds(&lab, 0, VIP4));
}
