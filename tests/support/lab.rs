//! A throwaway L2 segment for VRRP IO tests: hosts in their own network namespaces, joined by
//! veth pairs to a bridge that lives in a namespace too. Nothing touches the root namespace, and
//! every namespace goes away when the `Lab` is dropped, also when a test panics.
//!
//! Code under test runs in a thread that has entered a host's namespace (`setns` is per thread)
//! and then builds its own tokio runtime, so its sockets and netlink connection live there.

use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Whether hosts run IPv6 duplicate address detection. Off, link-local addresses are usable the
/// moment the link is up; on, a test can show that VIPs skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    On,
    Off,
}

pub struct Host {
    pub namespace: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

pub struct Lab {
    namespaces: Vec<String>,
    pub hosts: Vec<Host>,
}

impl Lab {
    /// Builds a segment of `count` hosts, each with `eth0` at 198.51.100.(11+i)/24 and
    /// 2001:db8::(11+i)/64. Returns None, after saying why, when the test can't run here.
    pub fn new(count: u8, dad: Dad) -> Option<Lab> {
        if !may_run_as_root("VRRP network tests need root (network namespaces, raw sockets)") {
            return None;
        }
        let prefix = format!(
            "vnet{}x{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            namespaces: Vec::new(),
            hosts: Vec::new(),
        };
        let switch = lab.add_namespace(format!("{prefix}-sw"));
        ip(&["-n", &switch, "link", "set", "lo", "up"]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        // Without snooping the bridge floods multicast, so no IGMP/MLD timing gets in the way.
        ip(&[
            "-n",
            &switch,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..count {
            let namespace = lab.add_namespace(format!("{prefix}-{}", char::from(b'a' + i)));
            let accept_dad = if dad == Dad::On { "1" } else { "0" };
            // Set before eth0 exists: a new interface takes the namespace's defaults.
            run(Command::new("ip")
                .args(["netns", "exec", &namespace, "sysctl", "-q", "-w"])
                .args([
                    format!("net.ipv6.conf.default.accept_dad={accept_dad}"),
                    format!("net.ipv6.conf.all.accept_dad={accept_dad}"),
                ]));
            let port = format!("p{i}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &namespace,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let host = Host {
                namespace,
                ipv4: Ipv4Addr::new(198, 51, 100, 11 + i),
                ipv6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + u16::from(i)),
            };
            let ns = &host.namespace;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", host.ipv4),
                "dev",
                "eth0",
            ]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/64", host.ipv6),
                "dev",
                "eth0",
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            lab.hosts.push(host);
        }
        Some(lab)
    }

    fn add_namespace(&mut self, name: String) -> String {
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        name
    }

    /// Takes host `index`'s link down or up from the switch side, like pulling its cable.
    pub fn set_cable(&self, index: usize, plugged: bool) {
        let state = if plugged { "up" } else { "down" };
        ip(&[
            "-n",
            &self.namespaces[0],
            "link",
            "set",
            &format!("p{index}"),
            state,
        ]);
    }

    /// Gives every host a second link, `eth1` at 203.0.113.(11+i)/24, on a second switch
    /// (`br1`, ports `q0`, `q1`...), for instances on two links.
    pub fn add_second_link(&self) {
        let switch = &self.namespaces[0];
        ip(&["-n", switch, "link", "add", "br1", "type", "bridge"]);
        ip(&[
            "-n",
            switch,
            "link",
            "set",
            "br1",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", switch, "link", "set", "br1", "up"]);
        for (i, host) in self.hosts.iter().enumerate() {
            let port = format!("q{i}");
            let ns = &host.namespace;
            ip(&[
                "-n", switch, "link", "add", &port, "type", "veth", "peer", "name", "eth1",
                "netns", ns,
            ]);
            ip(&["-n", switch, "link", "set", &port, "master", "br1", "up"]);
            let address = format!("203.0.113.{}/24", 11 + i);
            ip(&["-n", ns, "addr", "add", &address, "dev", "eth1"]);
            ip(&["-n", ns, "link", "set", "eth1", "up"]);
        }
    }

    /// Takes host `index`'s second link down or up from the switch side.
    pub fn set_second_cable(&self, index: usize, plugged: bool) {
        let state = if plugged { "up" } else { "down" };
        let port = format!("q{index}");
        ip(&["-n", &self.namespaces[0], "link", "set", &port, state]);
    }

    /// The addresses of `host`'s interface `dev` as `ip -o addr` shows them, one line each.
    pub fn addresses_on(&self, host: &Host, dev: &str) -> String {
        ip(&["-n", &host.namespace, "-o", "addr", "show", "dev", dev])
    }

    /// Makes the switch drop VRRP multicast (224.0.0.18, ff02::12), as some clouds and
    /// switches do, so only unicast adverts cross it.
    pub fn block_vrrp_multicast(&self) {
        let switch = &self.namespaces[0];
        let rules = "table bridge lab { chain forward { type filter hook forward priority 0; \
                     ip daddr 224.0.0.18 drop; ip6 daddr ff02::12 drop; }; }";
        run(Command::new("ip").args(["netns", "exec", switch, "nft", rules]));
    }

    pub fn unblock_vrrp_multicast(&self) {
        let switch = &self.namespaces[0];
        run(Command::new("ip").args(["netns", "exec", switch, "nft", "delete table bridge lab"]));
    }

    /// Makes the switch drop VRRP multicast from host `index` only: the others still hear each
    /// other, and host `index` hears them.
    pub fn block_vrrp_from(&self, index: usize) {
        let switch = &self.namespaces[0];
        let rules = format!(
            "table bridge lab_from {{ chain forward {{ type filter hook forward priority 0; \
             iifname \"p{index}\" ip daddr 224.0.0.18 drop; \
             iifname \"p{index}\" ip6 daddr ff02::12 drop; }}; }}"
        );
        run(Command::new("ip").args(["netns", "exec", switch, "nft", &rules]));
    }

    pub fn unblock_vrrp_from(&self) {
        let switch = &self.namespaces[0];
        run(Command::new("ip").args([
            "netns",
            "exec",
            switch,
            "nft",
            "delete table bridge lab_from",
        ]));
    }

    /// `eth0`'s MAC as `ip` shows it.
    pub fn mac(&self, host: &Host) -> String {
        let link = ip(&["-n", &host.namespace, "-o", "link", "show", "dev", "eth0"]);
        word_after(&link, "link/ether").expect("eth0 has a MAC")
    }

    /// `eth0`'s addresses as `ip -o addr` shows them, one line each.
    pub fn addresses(&self, host: &Host) -> String {
        ip(&["-n", &host.namespace, "-o", "addr", "show", "dev", "eth0"])
    }

    /// The MAC `host`'s neighbour table holds for `address` on eth0, if any.
    pub fn neighbour_mac(&self, host: &Host, address: &str) -> Option<String> {
        let entry = ip(&[
            "-n",
            &host.namespace,
            "neigh",
            "show",
            "to",
            address,
            "dev",
            "eth0",
        ]);
        word_after(&entry, "lladdr")
    }

    /// Puts a stale entry for `address` into `host`'s neighbour table, as a client that talked
    /// to the old master has: gratuitous ARP and unsolicited NA update entries, never create them.
    pub fn seed_neighbour(&self, host: &Host, address: &str, mac: &str) {
        let ns = &host.namespace;
        ip(&[
            "-n", ns, "neigh", "replace", address, "lladdr", mac, "dev", "eth0", "nud", "stale",
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for namespace in self.namespaces.iter().rev() {
            // Best effort: a failure here must not hide the test's own panic.
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

/// Whether this process is root, as namespace labs need; when it isn't, says `why` and, under
/// CI=true (where every test must run), fails.
pub fn may_run_as_root(why: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}, and CI must run them");
    }
    eprintln!("skipped: {why}");
    false
}

/// Runs `task` on a new thread inside `namespace`, on a tokio runtime created there.
pub fn spawn_in<T, F, Fut>(namespace: &str, task: F) -> JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let path = format!("/var/run/netns/{namespace}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|error| panic!("open {path}: {error}"));
        setns(&file, CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|error| panic!("setns {path}: {error}"));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(task())
    })
}

/// Runs `task` inside `namespace` and waits for it, passing its panic on.
pub fn run_in<T, F, Fut>(namespace: &str, task: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    join(spawn_in(namespace, task))
}

pub fn join<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Waits for every host's task and fails with all their panic messages, so the host that went
/// wrong first is named even when its peer then timed out waiting for it.
pub fn join_all(handles: Vec<(&str, JoinHandle<()>)>) {
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|(host, handle)| {
            let panic = handle.join().err()?;
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "non-text panic".into());
            Some(format!("host {host}: {message}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Polls `condition` until it holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ip ARGS`, which must succeed; its output.
pub fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

/// Runs `command`, which must succeed; its output.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn word_after(text: &str, label: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|word| *word == label)?;
    words.next().map(str::to_owned)
}
