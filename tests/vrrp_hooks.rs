//! `notify:` hooks and `sync_groups:` on two tandem nodes in network namespaces (a and b, and
//! a client c), as an operator sees them: what the hooks recorded, and who holds each VIP.
//! Needs root; fails under CI=true without it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::lab::wait_until;
use support::pair::*;
use support::Tandem;

/// Writes an executable shell script `name` into `dir` and returns its path.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The instance's `notify:` line, for `node_config`'s extra keys.
fn notify(command: &[&str], timeout: &str) -> String {
    format!(
        "      notify: {{ command: [{}], timeout: {timeout} }}\n",
        command.join(", ")
    )
}

/// A hook that appends each transition to a file per node: what the environment says, then
/// the arguments keepalived's notify scripts get.
#[test]
fn a_notify_hook_records_the_transitions_of_a_failover_on_each_node() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = |node: &str| dir.path().join(node);
    let hook = script(
        dir.path(),
        "record.sh",
        &format!(
            "node=$1; shift\n\
             echo \"$TANDEM_INSTANCE $TANDEM_OLD_STATE $TANDEM_NEW_STATE | $*\" >> {}/$node",
            dir.path().display()
        ),
    );
    let hook = hook.to_str().unwrap();
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, &notify(&[hook, "node-a"], "5s")),
    );
    wait_for_master(&lab, 0, VIP4);
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, &notify(&[hook, "node-b"], "5s")),
    );
    wait_until(FAILOVER, "node-b records its start as BACKUP", || {
        !read(&record("node-b")).is_empty()
    });

    assert!(a.signal_and_wait("TERM").success());
    wait_for_master(&lab, 1, VIP4);
    wait_until(FAILOVER, "node-b records its takeover", || {
        read(&record("node-b")).lines().count() == 2
    });
    assert_eq!(
        read(&record("node-a")),
        "VI_1 INIT BACKUP | INSTANCE VI_1 BACKUP 150\n\
         VI_1 BACKUP MASTER | INSTANCE VI_1 MASTER 150\n\
         VI_1 MASTER INIT | INSTANCE VI_1 INIT 150\n"
    );
    assert_eq!(
        read(&record("node-b")),
        "VI_1 INIT BACKUP | INSTANCE VI_1 BACKUP 100\n\
         VI_1 BACKUP MASTER | INSTANCE VI_1 MASTER 100\n"
    );
}

/// A hook that hangs (with a child of its own) holds up no transition: node b takes over on
/// time while its first hook still hangs, and the hook and its child are killed at the timeout.
#[test]
fn a_hung_hook_is_killed_at_its_timeout_and_blocks_no_failover() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let child_pid = dir.path().join("child.pid");
    let hook = script(
        dir.path(),
        "hang.sh",
        &format!(
            "echo \"$TANDEM_OLD_STATE $TANDEM_NEW_STATE\" >> {record}\n\
             [ \"$TANDEM_NEW_STATE\" = BACKUP ] || exit 0\n\
             sleep 600 &\n\
             echo $! > {child}\n\
             wait",
            record = record.display(),
            child = child_pid.display()
        ),
    );
    const TIMEOUT: Duration = Duration::from_secs(10);
    let mut a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, ""),
    );
    wait_for_master(&lab, 0, VIP4);
    let b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config(
            "node-b",
            100,
            VIP4,
            &notify(&[hook.to_str().unwrap()], "10s"),
        ),
    );
    let hook_started = Instant::now();
    wait_until(FAILOVER, "node-b's first hook hangs", || {
        child_pid.exists() && read(&record) == "INIT BACKUP\n"
    });

    assert!(a.signal_and_wait("TERM").success());
    // The 5 s bound is half the hook's timeout: an engine waiting for it would miss it.
    wait_for_master(&lab, 1, VIP4);
    assert!(
        hook_started.elapsed() < TIMEOUT,
        "the failover took until the hook's timeout"
    );
    assert_eq!(read(&record), "INIT BACKUP\n", "the hook should still hang");

    wait_until(TIMEOUT + FAILOVER, "node-b kills the hung hook", || {
        b.log().contains("notify hook ran past its timeout")
    });
    let child = read(&child_pid).trim().to_owned();
    wait_until(FAILOVER, "the hook's own child is killed too", || {
        !Path::new(&format!("/proc/{child}")).exists()
    });
    // The next transition's hook runs once the hung one is gone.
    wait_until(FAILOVER, "node-b's takeover is recorded", || {
        read(&record) == "INIT BACKUP\nBACKUP MASTER\n"
    });
}

/// A hook that starts a process in the background without redirecting its stderr, and
/// fails: the failure is logged when the hook exits, with its stderr on one line, and what it
/// started keeps running.
#[test]
fn a_hook_is_done_when_it_exits_whatever_it_left_running() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let child_pid = dir.path().join("child.pid");
    let hook = script(
        dir.path(),
        "leave.sh",
        &format!(
            "echo \"$TANDEM_NEW_STATE\" >> {record}\n\
             [ \"$TANDEM_NEW_STATE\" = BACKUP ] || exit 0\n\
             sleep 600 &\n\
             echo $! > {child}\n\
             echo 'first line' >&2\n\
             echo 'second line' >&2\n\
             exit 3",
            record = record.display(),
            child = child_pid.display()
        ),
    );
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config(
            "node-a",
            150,
            VIP4,
            &notify(&[hook.to_str().unwrap()], "30s"),
        ),
    );
    // Well within the hook's 30 s timeout.
    wait_until(FAILOVER, "node-a logs the failed hook", || {
        a.log().contains("notify hook failed")
    });
    let log = a.log();
    let pid: i32 = (read(&child_pid).trim().parse()).expect("the hook wrote its child's pid");
    // Alive: in /proc and not a zombie (the state after the command name's parenthesis).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive =
        (stat.rsplit_once(')')).is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(log.contains("exit code 3"), "{log}");
    assert!(log.contains("first line\\nsecond line"), "{log}");
    assert!(!log.contains("ran past its timeout"), "{log}");
    assert!(alive, "the hook's background process was killed");
    wait_for_master(&lab, 0, VIP4);
    wait_until(FAILOVER, "the next hook runs", || {
        read(&record) == "BACKUP\nMASTER\n"
    });
}

const VIP_2: &str = "203.0.113.10";

/// A second instance on eth1 that faults when eth1 loses its link, and a sync group of both.
fn grouped(priority: u8) -> String {
    grouped_with_delay(priority, "0s")
}

/// As `grouped`, with both instances' `preempt_delay`.
fn grouped_with_delay(priority: u8, delay: &str) -> String {
    format!(
        "      preempt_delay: {delay}\n    \
         - {{ name: VI_2, interface: eth1, virtual_router_id: 34, priority: {priority}, \
         advert_interval: 100ms, version: 3, virtual_ips: [\"{VIP_2}/24\"], \
         preempt_delay: {delay}, track: [{{ interface: eth1 }}] }}\n  \
         sync_groups: [{{ name: g, instances: [VI_1, VI_2] }}]\n"
    )
}

fn holds_on(lab: &support::lab::Lab, host: usize, dev: &str, vip: &str) -> bool {
    (lab.addresses_on(&lab.hosts[host], dev)).contains(&format!(" {vip}/"))
}

/// One link of the master goes down: the instance on it faults, and the group takes the
/// instance on the other, healthy link along, so both VIPs move to the peer together.
#[test]
fn a_sync_group_moves_two_instances_on_two_links_together() {
    let Some(lab) = lab() else { return };
    lab.add_second_link();
    let _a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, VIP4, &grouped(150)),
    );
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, &grouped(100)),
    );
    let on =
        |host: usize| holds_on(&lab, host, "eth0", VIP4) && holds_on(&lab, host, "eth1", VIP_2);
    let on_neither =
        |host: usize| !holds_on(&lab, host, "eth0", VIP4) && !holds_on(&lab, host, "eth1", VIP_2);
    wait_until(FAILOVER, "node-a holds both VIPs", || {
        on(0) && on_neither(1)
    });

    lab.set_second_cable(0, false);
    wait_until(FAILOVER, "node-b holds both VIPs, node-a neither", || {
        on(1) && on_neither(0)
    });
    // The client on eth0's link, which stayed up, now reaches node-b.
    wait_until(FAILOVER, "the client reaches node-b via VI_1", || {
        answer_via_vip(&lab, VIP4).as_deref() == Some("node-b")
    });

    lab.set_second_cable(0, true);
    wait_until(FAILOVER, "both VIPs return to node-a", || {
        on(0) && on_neither(1)
    });
}

/// A reload swaps the hook in place: no state change, and the next transition runs the new
/// hook. A reload naming a hook that cannot run is refused and keeps the running one.
#[test]
fn a_reload_changes_the_hook_without_a_state_change() {
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let hook = |name: &str| {
        let path = script(
            dir.path(),
            name,
            &format!(
                "echo \"{name} $TANDEM_OLD_STATE $TANDEM_NEW_STATE\" >> {}",
                record.display()
            ),
        );
        notify(&[path.to_str().unwrap()], "5s")
    };
    let config = |hook: &str| node_config("node-a", 150, VIP4, hook);
    let mut a = Tandem::start_in(&lab.hosts[0].namespace, &config(&hook("first")));
    wait_until(FAILOVER, "node-a is master and says so", || {
        read(&record) == "first INIT BACKUP\nfirst BACKUP MASTER\n"
    });
    let transitions = |tandem: &Tandem| tandem.log().matches("VRRP state changed").count();
    let before = transitions(&a);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let missing = notify(&["/nonexistent/hook"], "5s");
    let refused = runtime.block_on(a.reload(&config(&missing)));
    assert!(refused.contains("reload failed"), "{refused}");
    let second = hook("second");
    let reloaded = runtime.block_on(a.reload(&config(&second)));
    assert!(reloaded.contains("config reloaded"), "{reloaded}");
    assert_eq!(transitions(&a), before, "the reload changed the state");
    assert!(holds(&lab, 0, VIP4));

    assert!(a.signal_and_wait("TERM").success());
    assert_eq!(
        read(&record),
        "first INIT BACKUP\nfirst BACKUP MASTER\nsecond MASTER INIT\n"
    );
}

/// The higher-priority node restarts with a preempt delay: while it waits, its members follow
/// the peer's, which must not hold each other back; once the delay has passed, both VIPs
/// return to it (keepalived's sync groups fail back too).
#[test]
fn a_sync_group_fails_back_after_a_restart_with_a_preempt_delay() {
    let Some(lab) = lab() else { return };
    lab.add_second_link();
    let config_a = node_config("node-a", 150, VIP4, &grouped_with_delay(150, "1s"));
    let mut a = Tandem::start_in(&lab.hosts[0].namespace, &config_a);
    let _b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, VIP4, &grouped(100)),
    );
    let on =
        |host: usize| holds_on(&lab, host, "eth0", VIP4) && holds_on(&lab, host, "eth1", VIP_2);
    let on_neither =
        |host: usize| !holds_on(&lab, host, "eth0", VIP4) && !holds_on(&lab, host, "eth1", VIP_2);
    wait_until(FAILOVER, "node-a holds both VIPs", || {
        on(0) && on_neither(1)
    });

    assert!(a.signal_and_wait("TERM").success());
    wait_until(FAILOVER, "node-b holds both VIPs", || on(1));
    let _a = Tandem::start_in(&lab.hosts[0].namespace, &config_a);
    wait_until(
        FAILOVER + Duration::from_secs(1),
        "both VIPs return to node-a",
        || on(0) && on_neither(1),
    );
}
