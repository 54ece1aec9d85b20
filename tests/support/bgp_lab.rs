//! The scale-out lab of issue 21: three tandem nodes announcing one service address over BGP
//! (each through its own FRR) to a router that spreads new connections over them by ECMP, a
//! client behind the router, and two HTTP backends. Everything lives in network namespaces with
//! unique names and goes away when the [`BgpLab`] is dropped, also when a test panics.
//!
//! ```text
//!   client 192.0.2.100/25 ── 192.0.2.1 router 192.0.2.129 ── 192.0.2.141 s1, .142 s2 (backend)
//!                                 198.51.100.1
//!                                      │ switch (bridge)
//!              ┌───────────────────────┼───────────────────────┐
//!   a 198.51.100.11            b 198.51.100.12            c 198.51.100.13
//! ```
//! The router (AS 64496) peers with every node (AS 64500) with BFD (50 ms x 3) and installs up to
//! 8 paths, hashed on the L4 5-tuple. A node's FRR announces the connected routes of tandem's
//! TUN device `tandem0`, so the service address is announced while tandem holds it there.

pub mod client;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::frr::Daemons;
use super::lab::{ip, join, may_run_as_root, run, spawn_in};
use super::Tandem;

/// The address the nodes announce and serve on port 80.
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const NODES: [&str; 3] = ["a", "b", "c"];
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const BACKENDS: [(&str, Ipv4Addr); 2] = [
    ("s1", Ipv4Addr::new(192, 0, 2, 141)),
    ("s2", Ipv4Addr::new(192, 0, 2, 142)),
];
const BACKEND_PORT: u16 = 8080;
const FRR_DAEMONS: [&str; 3] = ["zebra", "bfdd", "bgpd"];
/// Generous against a busy machine: BGP comes up in 1-2 s here.
const SETTLE: Duration = Duration::from_secs(30);

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// The address of node `index` on the fabric.
pub fn node_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 11 + index as u8)
}

/// The node that has `address` on the fabric, if any.
pub fn node_named_by(address: IpAddr) -> Option<&'static str> {
    (0..NODES.len())
        .find(|&index| IpAddr::V4(node_address(index)) == address)
        .map(|index| NODES[index])
}

pub struct Node {
    pub name: &'static str,
    pub namespace: String,
    frr: Daemons,
    tandem: Option<Tandem>,
    /// tandem's `admin.socket`, for `tandem ctl`.
    admin_socket: PathBuf,
}

pub struct BgpLab {
    /// Every namespace, in the order made; removed in reverse.
    namespaces: Vec<String>,
    switch: String,
    pub router: String,
    pub client: String,
    router_frr: Option<Daemons>,
    pub nodes: Vec<Node>,
    backends: Option<Backends>,
}

impl BgpLab {
    /// Builds the lab with FRR running everywhere and the backends serving, but no tandem yet.
    /// Returns None, after saying why, when the test can't run here (under CI=true it fails).
    pub fn new() -> Option<BgpLab> {
        if !may_run_as_root("the BGP lab needs root (network namespaces)") {
            return None;
        }
        let prefix = format!(
            "bgp{}x{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = BgpLab {
            namespaces: Vec::new(),
            switch: format!("{prefix}-sw"),
            router: format!("{prefix}-r"),
            client: format!("{prefix}-cl"),
            router_frr: None,
            nodes: Vec::new(),
            backends: None,
        };
        let switch = lab.add_namespace(lab.switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);

        let router = lab.add_namespace(lab.router.clone());
        lab.plug_into_switch(&router, "pr", &format!("{ROUTER}/24"));
        sysctl(
            &router,
            &[
                "net.ipv4.ip_forward=1",
                // L4 hashing: policy 1 over veth picks a path at random per connection here.
                "net.ipv4.fib_multipath_hash_policy=3",
                "net.ipv4.fib_multipath_hash_fields=0x37",
            ],
        );
        let client = lab.add_namespace(lab.client.clone());
        link_pair(&router, "cl0", "192.0.2.1/25", &client, &["192.0.2.100/25"]);
        ip(&["-n", &client, "route", "add", "default", "via", "192.0.2.1"]);
        let backend = lab.add_namespace(format!("{prefix}-be"));
        let backend_addresses: Vec<String> = BACKENDS
            .iter()
            .map(|(_, address)| format!("{address}/25"))
            .collect();
        let backend_addresses: Vec<&str> = backend_addresses.iter().map(String::as_str).collect();
        link_pair(
            &router,
            "be0",
            "192.0.2.129/25",
            &backend,
            &backend_addresses,
        );
        ip(&[
            "-n",
            &backend,
            "route",
            "add",
            "default",
            "via",
            "192.0.2.129",
        ]);
        lab.backends = Some(Backends::start(&backend));
        lab.router_frr = Some(Daemons::start(&router, &router_frr_config(), &FRR_DAEMONS));

        for (index, name) in NODES.into_iter().enumerate() {
            let namespace = lab.add_namespace(format!("{prefix}-{name}"));
            let address = node_address(index);
            lab.plug_into_switch(&namespace, &format!("p{index}"), &format!("{address}/24"));
            ip(&[
                "-n",
                &namespace,
                "route",
                "add",
                "default",
                "via",
                &ROUTER.to_string(),
            ]);
            let frr = Daemons::start(&namespace, &node_frr_config(name, address), &FRR_DAEMONS);
            let admin_socket = std::env::temp_dir().join(format!("{namespace}-admin.sock"));
            lab.nodes.push(Node {
                name,
                namespace,
                frr,
                tandem: None,
                admin_socket,
            });
        }
        Some(lab)
    }

    fn add_namespace(&mut self, name: String) -> String {
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Joins `namespace`'s `eth0`, at `address`, to the switch through port `port`.
    fn plug_into_switch(&self, namespace: &str, port: &str, address: &str) {
        let switch = &self.switch;
        ip(&[
            "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
            namespace,
        ]);
        ip(&["-n", switch, "link", "set", port, "master", "br0", "up"]);
        ip(&["-n", namespace, "addr", "add", address, "dev", "eth0"]);
        ip(&["-n", namespace, "link", "set", "eth0", "up"]);
    }

    /// Starts tandem on node `index` and waits until it runs.
    pub fn start_tandem(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        assert!(
            node.tandem.is_none(),
            "tandem already runs on {}",
            node.name
        );
        let config = node_config(node.name, &node.admin_socket);
        node.tandem = Some(Tandem::start_in(&node.namespace, &config));
    }

    /// Starts tandem on every node and waits until the router sends the service to all of them
    /// and watches every node with BFD.
    pub fn start_all(&mut self) {
        for index in 0..NODES.len() {
            self.start_tandem(index);
        }
        self.wait_for_paths(&NODES, SETTLE);
        self.wait_for_bfd_up();
    }

    /// Waits until the router's BFD session to every node is up. BGP comes up first, and a link
    /// cut before BFD has would be caught by the BGP hold time (3 s) instead.
    fn wait_for_bfd_up(&self) {
        let started = Instant::now();
        loop {
            let shown = self.router_frr().show("show bfd peers json");
            let peers: Vec<serde_json::Value> = serde_json::from_str(&shown).unwrap_or_default();
            let up = peers.iter().filter(|peer| peer["status"] == "up").count();
            if up == NODES.len() {
                return;
            }
            assert!(
                started.elapsed() < SETTLE,
                "BFD is up to {up} of {} nodes after {SETTLE:?}\n{shown}",
                NODES.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// kill -9 of tandem on node `index`; returns once the process is gone.
    pub fn kill_tandem(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let mut tandem = node.tandem.take().expect("tandem runs");
        tandem.signal_and_wait("KILL");
    }

    /// SIGTERM to tandem on node `index`, as an operator's `systemctl stop`; see
    /// [`BgpLab::wait_for_tandem_exit`].
    pub fn terminate_tandem(&self, index: usize) {
        let node = &self.nodes[index];
        node.tandem.as_ref().expect("tandem runs").signal("TERM");
    }

    /// Waits until tandem on node `index` has exited, and returns how it ended.
    pub fn wait_for_tandem_exit(
        &mut self,
        index: usize,
        limit: Duration,
    ) -> std::process::ExitStatus {
        let node = &mut self.nodes[index];
        let tandem = node.tandem.as_mut().expect("tandem runs");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = tandem.exited() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "tandem on {} did not exit within {limit:?}:\n{}",
                node.name,
                tandem.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        node.tandem = None;
        status
    }

    /// `tandem ctl ARGS` against node `index`'s tandem: whether it succeeded, and what it said.
    pub fn ctl(&self, index: usize, args: &[&str]) -> (bool, String) {
        let (code, said) = super::ctl(&self.nodes[index].admin_socket, args);
        (code == 0, said)
    }

    /// tandem's log on node `index` (empty when it doesn't run).
    pub fn tandem_log(&self, index: usize) -> String {
        self.nodes[index]
            .tandem
            .as_ref()
            .map(Tandem::log)
            .unwrap_or_default()
    }

    /// Stops node `index`'s FRR (zebra, bfdd, bgpd) as an init script does.
    pub fn stop_frr(&mut self, index: usize) {
        self.nodes[index].frr.stop();
    }

    /// Starts node `index`'s FRR again, with the same config.
    pub fn start_frr(&mut self, index: usize) {
        self.nodes[index].frr.start_again();
    }

    /// Takes node `index`'s switch port down or up, like pulling its cable.
    pub fn set_switch_port(&self, index: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &format!("p{index}"),
            state,
        ]);
    }

    /// Cuts node `index` off its backends, or reconnects it: an `unreachable` route for the
    /// backends' subnet in the node, so its connections to them fail at once.
    pub fn set_backends_reachable(&self, index: usize, reachable: bool) {
        let action = if reachable { "del" } else { "add" };
        let namespace = &self.nodes[index].namespace;
        ip(&[
            "-n",
            namespace,
            "route",
            action,
            "unreachable",
            "192.0.2.128/25",
        ]);
    }

    /// The nodes the router's kernel sends the service address to, by name, sorted.
    pub fn router_paths(&self) -> Vec<&'static str> {
        let route = ip(&[
            "-n",
            &self.router,
            "route",
            "show",
            "exact",
            &format!("{VIP}/32"),
        ]);
        let mut words = route.split_whitespace();
        let mut paths = Vec::new();
        while words.any(|word| word == "via") {
            let Some(address) = words.next().and_then(|word| word.parse().ok()) else {
                continue;
            };
            let name = node_named_by(address)
                .unwrap_or_else(|| panic!("the router routes {VIP} to {address}:\n{route}"));
            paths.push(name);
        }
        paths.sort_unstable();
        paths
    }

    /// Waits until the router sends the service address to exactly `nodes`.
    pub fn wait_for_paths(&self, nodes: &[&str], limit: Duration) {
        let mut expected = nodes.to_vec();
        expected.sort_unstable();
        let started = Instant::now();
        loop {
            let paths = self.router_paths();
            if paths == expected {
                return;
            }
            if started.elapsed() > limit {
                panic!(
                    "the router sends {VIP} to {paths:?}, not {expected:?}, after {limit:?}\n\
                     --- router ---\n{}\n{}",
                    self.router_frr().show("show ip bgp"),
                    self.router_frr().show("show bfd peers brief"),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn router_frr(&self) -> &Daemons {
        self.router_frr.as_ref().expect("the router's FRR")
    }
}

impl Drop for BgpLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!(
                    "--- node {} ---\n{}\n{}\n--- bgpd log ---\n{}",
                    node.name,
                    node.frr.show("show ip bgp"),
                    node.frr.show("show ip route"),
                    node.frr.log("bgpd"),
                );
            }
        }
        // Processes first: one still running keeps its namespace alive after `ip netns del`.
        for node in &mut self.nodes {
            node.tandem.take();
            // Left behind by a kill -9.
            let _ = std::fs::remove_file(&node.admin_socket);
        }
        self.nodes.clear();
        self.router_frr.take();
        self.backends.take();
        for namespace in self.namespaces.iter().rev() {
            // Best effort: a failure here must not hide the test's own panic.
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

/// Node `name`'s tandem: an HTTP frontend on the service address in front of both backends,
/// checked every 100 ms (down after 2 failures), and the service address announced while the
/// backend has a server up; the runtime API on `admin_socket`.
fn node_config(name: &str, admin_socket: &Path) -> String {
    let servers: Vec<String> = BACKENDS
        .iter()
        .map(|(server, address)| {
            format!("      - {{ name: {server}, address: \"{address}:{BACKEND_PORT}\" }}\n")
        })
        .collect();
    format!(
        "node: {{ name: node-{name}, threads: 1 }}\n\
         frontends:\n  - {{ name: web, listen: \"{VIP}:80\", mode: http, backend: web }}\n\
         backends:\n  - name: web\n    \
         health_check: {{ type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 2 }}\n    \
         servers:\n{}\
         announce:\n  addresses: [{VIP}]\n  track:\n    - backend: web\n\
         admin: {{ listen: \"127.0.0.1:9900\", socket: {} }}\n",
        servers.concat(),
        admin_socket.display()
    )
}

// No `exit` lines: every daemon reads the whole file, and one that doesn't know a section
// (bgpd and `bfd`) stays a level up, where `exit` would leave configuration mode for good.
// Each line is tried on the enclosing levels until one takes it, so sections need no end.

/// BFD with 50 ms x 3 and BGP keepalives of 1 s (hold 3 s) on every session.
const FAST_DETECTION: &str = "bfd\n \
     profile fast\n  \
     detect-multiplier 3\n  \
     receive-interval 50\n  \
     transmit-interval 50\n\
     !\n";

fn router_frr_config() -> String {
    let mut config = format!(
        "hostname router\n\
         ! A node that flapped would otherwise stay out of the kernel's ECMP group.\n\
         no zebra nexthop kernel enable\n\
         {FAST_DETECTION}\
         router bgp 64496\n \
         bgp router-id {ROUTER}\n \
         no bgp ebgp-requires-policy\n \
         timers bgp 1 3\n \
         neighbor nodes peer-group\n \
         neighbor nodes remote-as 64500\n \
         neighbor nodes bfd profile fast\n"
    );
    for index in 0..NODES.len() {
        config.push_str(&format!(
            " neighbor {} peer-group nodes\n",
            node_address(index)
        ));
    }
    config.push_str(" address-family ipv4 unicast\n  maximum-paths 8\n!\n");
    config
}

fn node_frr_config(name: &str, address: Ipv4Addr) -> String {
    format!(
        "hostname node-{name}\n\
         {FAST_DETECTION}\
         route-map TANDEM permit 10\n \
         match interface tandem0\n\
         !\n\
         router bgp 64500\n \
         bgp router-id {address}\n \
         no bgp ebgp-requires-policy\n \
         timers bgp 1 3\n \
         neighbor {ROUTER} remote-as 64496\n \
         neighbor {ROUTER} bfd profile fast\n \
         address-family ipv4 unicast\n  \
         redistribute connected route-map TANDEM\n\
         !\n"
    )
}

/// The two backends, s1 and s2, on port 8080 of their addresses in the backend namespace: GET
/// /health answers `ok`, anything else `<name> <peer address>`, which names the node that
/// forwarded the request.
struct Backends {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backends {
    fn start(namespace: &str) -> Backends {
        let (bound, listening) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = spawn_in(namespace, move || async move {
            let mut servers = tokio::task::JoinSet::new();
            for (name, address) in BACKENDS {
                let listener = TcpListener::bind((address, BACKEND_PORT)).await.unwrap();
                servers.spawn(serve(listener, name));
            }
            bound.send(()).unwrap();
            let _ = stopped.await;
            servers.abort_all();
        });
        listening.recv().expect("the backends listen");
        Backends {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        if let Some(thread) = self.thread.take() {
            join(thread);
        }
    }
}

async fn serve(listener: TcpListener, name: &'static str) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let body = if request.uri().path() == "/health" {
                "ok".to_owned()
            } else {
                format!("{name} {}", peer.ip())
            };
            async move {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                    body,
                ))))
            }
        });
        connections.spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service),
        );
        while connections.try_join_next().is_some() {}
    }
}

/// The service as the client reaches it.
pub fn service() -> SocketAddr {
    SocketAddr::from((VIP, 80))
}

/// Sets `settings` (`key=value`) in `namespace`.
fn sysctl(namespace: &str, settings: &[&str]) {
    run(Command::new("ip")
        .args(["netns", "exec", namespace, "sysctl", "-q", "-w"])
        .args(settings));
}

/// A veth pair: `near` in `near_namespace` at `near_address`, `eth0` in `far_namespace` at
/// `far_addresses`, both up.
fn link_pair(
    near_namespace: &str,
    near: &str,
    near_address: &str,
    far_namespace: &str,
    far_addresses: &[&str],
) {
    ip(&[
        "-n",
        near_namespace,
        "link",
        "add",
        near,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        far_namespace,
    ]);
    ip(&[
        "-n",
        near_namespace,
        "addr",
        "add",
        near_address,
        "dev",
        near,
    ]);
    ip(&["-n", near_namespace, "link", "set", near, "up"]);
    for address in far_addresses {
        ip(&["-n", far_namespace, "addr", "add", address, "dev", "eth0"]);
    }
    ip(&["-n", far_namespace, "link", "set", "eth0", "up"]);
}
