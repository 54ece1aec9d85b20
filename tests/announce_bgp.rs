//! Scale-out behind ECMP (issue 21): three tandem nodes announce one service address over BGP,
//! each through its own FRR, to a router that spreads new connections over them (see
//! tests/support/bgp_lab.rs for the lab). A client opens a new connection every 5 ms and learns
//! from the backend's answer which node served it. Needs root and FRR; fails under CI=true
//! without them. Each test prints its figures.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::bgp_lab::client::{spread, PacedClient};
use support::bgp_lab::{BgpLab, NODES};

/// The longest a client may go without a successful new connection.
const LONGEST_GAP: Duration = Duration::from_millis(300);
/// The lease: how long after tandem dies its node may still be announced.
const LEASE: Duration = Duration::from_secs(3);
/// Generous against a busy machine, where nothing else has a bound of its own.
const SETTLE: Duration = Duration::from_secs(30);
/// Answers from each survivor after a change before the run is judged: about 3 s of them.
const SETTLED: usize = 200;

/// One lab at a time: the measures are in tens of milliseconds, and two labs would compete for
/// the machine's cores with each other rather than with the test's subject.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` on a new lab with tandem running on every node and announced by all three.
fn with_lab(test: impl FnOnce(&mut BgpLab)) {
    let _turn = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(mut lab) = BgpLab::new() else { return };
    lab.start_all();
    test(&mut lab);
}

/// A client that the three nodes are all serving.
fn serving_client(lab: &BgpLab) -> PacedClient {
    let client = PacedClient::start(lab);
    client.wait_for_answers(&NODES, 20, SETTLE);
    client
}

#[test]
fn each_node_receives_between_20_and_47_percent_of_3000_new_connections() {
    with_lab(|lab| {
        const CONNECTIONS: usize = 3000;
        let (served, failures) = spread(lab, CONNECTIONS);
        eprintln!("spread over {CONNECTIONS} new connections: {served:?}");
        assert!(failures.is_empty(), "failed connections: {failures:?}");
        for node in NODES {
            let count = served.get(node).copied().unwrap_or_default();
            assert!(
                (CONNECTIONS * 20 / 100..=CONNECTIONS * 47 / 100).contains(&count),
                "node {node} served {count} of {CONNECTIONS}: {served:?}"
            );
        }
    });
}

#[test]
fn a_node_whose_backends_are_all_down_is_withdrawn_with_no_gap_over_300ms() {
    with_lab(|lab| {
        let client = serving_client(lab);
        let cut = Instant::now();
        lab.set_backends_reachable(0, false);
        lab.wait_for_paths(&["b", "c"], SETTLE);
        let withdrawn = Instant::now();
        client.wait_for_answers(&["b", "c"], SETTLED, SETTLE);
        lab.set_backends_reachable(0, true);
        let back = Instant::now();
        lab.wait_for_paths(&NODES, SETTLE);
        let reannounced = Instant::now();
        let announced = reannounced - back;
        client.wait_for_answers(&NODES, 20, SETTLE);
        let run = client.finish();
        eprintln!(
            "backends down: withdrawn after {:?}, announced again {announced:?} after they came \
             back; {}",
            withdrawn - cut,
            run.summary()
        );
        assert!(run.gap() <= LONGEST_GAP, "{}", run.summary());
        // Coming back changes the router's paths too: a reset then is the router's doing.
        let (failed, _) = run.failures_apart_from_switches(&[reannounced]);
        let failed_after: Vec<_> = (failed.into_iter())
            .filter(|attempt| attempt.started >= withdrawn)
            .collect();
        assert!(
            failed_after.is_empty(),
            "after the withdrawal: {failed_after:?}"
        );
        let log = lab.tandem_log(0);
        assert!(
            log.contains("announce: withdrawing") && log.contains("backend web"),
            "tandem on a does not say why it withdrew:\n{log}"
        );
    });
}

#[test]
fn a_node_stopped_by_sigterm_fails_no_request() {
    with_lab(|lab| {
        let client = serving_client(lab);
        let stopped = Instant::now();
        lab.terminate_tandem(0);
        lab.wait_for_paths(&["b", "c"], SETTLE);
        let switched = Instant::now();
        let withdrawn = switched - stopped;
        let status = lab.wait_for_tandem_exit(0, SETTLE);
        let exited = stopped.elapsed();
        client.wait_for_answers(&["b", "c"], SETTLED, SETTLE);
        let run = client.finish();
        eprintln!(
            "SIGTERM: withdrawn after {withdrawn:?}, exited after {exited:?}; {}",
            run.summary()
        );
        assert!(status.success(), "tandem ended with {status}");
        let (failed, moved) = run.failures_apart_from_switches(&[switched]);
        eprintln!("SIGTERM: {moved} reset by the router's switch of paths");
        assert!(failed.is_empty(), "{failed:?}\n{}", run.summary());
        assert!(
            run.served_by_since("a", stopped) > 0,
            "node a drained nothing"
        );
    });
}

#[test]
fn an_operator_drain_answers_once_the_router_has_moved_away_and_ready_brings_the_node_back() {
    with_lab(|lab| {
        let client = serving_client(lab);
        let asked = Instant::now();
        let lab = &*lab;
        let (withdrawn, (ok, drained)) = std::thread::scope(|scope| {
            let router = scope.spawn(|| {
                lab.wait_for_paths(&["b", "c"], SETTLE);
                Instant::now()
            });
            let answer = lab.ctl(0, &["announce", "drain"]);
            (router.join().unwrap(), answer)
        });
        let answered = Instant::now();
        assert!(ok, "tandem ctl announce drain: {drained}");
        // The drain answers only once new flows have left: the router has moved away by then.
        assert!(withdrawn <= answered, "{drained}");
        client.wait_for_answers(&["b", "c"], SETTLED, SETTLE);
        let drained_until = Instant::now();
        let (ok, said) = lab.ctl(0, &["announce", "ready"]);
        assert!(ok, "tandem ctl announce ready: {said}");
        lab.wait_for_paths(&NODES, SETTLE);
        let announced = Instant::now();
        client.wait_for_answers(&NODES, 20, SETTLE);
        let run = client.finish();
        let (failed, moved) = run.failures_apart_from_switches(&[withdrawn, announced]);
        eprintln!(
            "runtime API drain: the router moved away after {:?}, the drain answered after {:?} \
             ({}); {moved} reset by the router's switches of paths; {}",
            withdrawn - asked,
            answered - asked,
            drained.trim(),
            run.summary()
        );
        assert!(failed.is_empty(), "{failed:?}\n{}", run.summary());
        assert_eq!(
            run.served_by_since("a", answered) - run.served_by_since("a", drained_until),
            0,
            "node a served new connections while drained"
        );
        assert!(
            run.served_by_since("a", drained_until) > 0,
            "ready did not bring a back"
        );
    });
}

#[test]
fn a_node_whose_switch_port_goes_down_is_left_with_no_gap_over_300ms() {
    with_lab(|lab| {
        let client = serving_client(lab);
        let down = Instant::now();
        lab.set_switch_port(0, false);
        lab.wait_for_paths(&["b", "c"], SETTLE);
        let left = down.elapsed();
        client.wait_for_answers(&["b", "c"], SETTLED, SETTLE);
        let run = client.finish();
        eprintln!(
            "switch port down: the router left node a after {left:?}; {}",
            run.summary()
        );
        assert!(run.gap() <= LONGEST_GAP, "{}", run.summary());
        // BFD's 150 ms, not BGP's 3 s hold time, with room for a busy machine.
        assert!(left < Duration::from_secs(1), "BFD did not act: {left:?}");
        assert_eq!(run.served_by_since("a", down + left), 0);
    });
}

#[test]
fn kill_9_withdraws_the_node_within_the_lease_and_no_connection_reaches_it_after() {
    with_lab(|lab| {
        let client = serving_client(lab);
        let killed = Instant::now();
        lab.kill_tandem(0);
        lab.wait_for_paths(&["b", "c"], LEASE);
        let withdrawn = Instant::now();
        client.wait_for_answers(&["b", "c"], SETTLED, SETTLE);
        let run = client.finish();
        eprintln!(
            "kill -9: withdrawn after {:?}; {}",
            withdrawn - killed,
            run.summary()
        );
        // Node a refuses what reaches it now: a failure would mean a connection was sent there.
        let failed_after: Vec<_> = run
            .failures()
            .into_iter()
            .filter(|attempt| attempt.started >= withdrawn)
            .collect();
        assert!(
            failed_after.is_empty(),
            "after the withdrawal: {failed_after:?}"
        );
        assert_eq!(run.served_by_since("a", withdrawn), 0);
    });
}

#[test]
fn an_frr_restart_re_announces_the_node_within_10s_of_frr_coming_back() {
    with_lab(|lab| {
        lab.stop_frr(0);
        lab.wait_for_paths(&["b", "c"], SETTLE);
        let started = Instant::now();
        lab.start_frr(0);
        lab.wait_for_paths(&NODES, SETTLE);
        let announced = started.elapsed();
        eprintln!("FRR restart: node a announced again {announced:?} after its FRR started");
        assert!(announced <= Duration::from_secs(10), "{announced:?}");
        let client = serving_client(lab);
        client.finish();
    });
}

#[test]
fn a_tandem_restart_re_announces_the_node() {
    with_lab(|lab| {
        lab.terminate_tandem(0);
        let status = lab.wait_for_tandem_exit(0, SETTLE);
        assert!(status.success(), "tandem ended with {status}");
        lab.wait_for_paths(&["b", "c"], SETTLE);
        let started = Instant::now();
        lab.start_tandem(0);
        lab.wait_for_paths(&NODES, SETTLE);
        let announced = started.elapsed();
        eprintln!("tandem restart: node a announced again {announced:?} after tandem started");
        assert!(announced <= Duration::from_secs(10), "{announced:?}");
        let client = serving_client(lab);
        client.finish();
    });
}
