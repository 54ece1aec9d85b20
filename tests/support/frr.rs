//! FRR (Debian's `frr`) in lab hosts: its vrrpd as a VRRP peer, and [`Daemons`], the daemons of
//! one namespace (zebra and vrrpd here, zebra, bgpd and bfdd in the BGP lab), which run as user
//! `frr` from a world-writable state directory, with their sockets there, and are killed on drop.
//!
//! FRR does not create the virtual MAC's macvlan: like an operator, [`FrrHost::prepare`] creates
//! it with the VIP on it, and vrrpd keeps it protodown while it is not master.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::lab::{run, spawn_in, wait_until};

const FRR_BIN: &str = "/usr/lib/frr";

/// A lab host prepared for FRR: the virtual MAC's macvlan with the VIP on it, up.
pub struct FrrHost {
    namespace: String,
    vip: String,
    /// The macvlan FRR sends from and the VIP lives on.
    pub macvlan: String,
}

impl FrrHost {
    /// Creates the macvlan for VRID 33 on eth0 with `vip` on it, as FRR's documentation has
    /// the operator do, and sets the ARP sysctls FRR leaves to the operator.
    pub fn prepare(namespace: &str, vip: &str) -> FrrHost {
        let v6 = vip.contains(':');
        let (macvlan, mac, host_prefix) = if v6 {
            ("vrrp6-33", "00:00:5e:00:02:21", 128)
        } else {
            ("vrrp4-33", "00:00:5e:00:01:21", 32)
        };
        let ip = |args: &[&str]| {
            run(Command::new("ip").args(["-n", namespace]).args(args));
        };
        ip(&[
            "link", "add", macvlan, "link", "eth0", "type", "macvlan", "mode", "bridge",
        ]);
        ip(&["link", "set", macvlan, "address", mac]);
        // FRR sends IPv6 adverts from the macvlan's own link-local: a random one, so the two
        // nodes' macvlans (same MAC) do not derive the same address.
        ip(&["link", "set", macvlan, "addrgenmode", "random"]);
        let vip_with_prefix = format!("{vip}/{host_prefix}");
        let mut add = vec!["addr", "add", &vip_with_prefix, "dev", macvlan];
        if v6 {
            add.push("nodad");
        }
        ip(&add);
        run(Command::new("ip")
            .args(["netns", "exec", namespace, "sysctl", "-q", "-w"])
            .args([
                "net.ipv4.conf.eth0.arp_ignore=1".to_owned(),
                "net.ipv4.conf.eth0.arp_announce=2".to_owned(),
                format!("net.ipv4.conf.{macvlan}.arp_ignore=1"),
                // No router solicitations from the virtual MAC while vrrpd is not running.
                format!("net.ipv6.conf.{macvlan}.router_solicitations=0"),
            ]));
        ip(&["link", "set", macvlan, "up"]);
        FrrHost {
            namespace: namespace.to_owned(),
            vip: vip.to_owned(),
            macvlan: macvlan.to_owned(),
        }
    }
}

/// zebra and vrrpd on a prepared host.
pub struct Frr {
    namespace: String,
    macvlan: String,
    daemons: Daemons,
}

impl Frr {
    /// Starts zebra and vrrpd with `priority` (v3, 100 ms adverts, preempting).
    pub fn start(host: &FrrHost, priority: u8) -> Frr {
        let vip_keyword = if host.vip.contains(':') { "ipv6" } else { "ip" };
        let config = format!(
            "hostname frr-{namespace}\n\
             interface eth0\n \
             vrrp 33 version 3\n \
             vrrp 33 priority {priority}\n \
             vrrp 33 advertisement-interval 100\n \
             vrrp 33 {vip_keyword} {vip}\n",
            namespace = host.namespace,
            vip = host.vip,
        );
        Frr {
            namespace: host.namespace.clone(),
            macvlan: host.macvlan.clone(),
            daemons: Daemons::start(&host.namespace, &config, &["zebra", "vrrpd"]),
        }
    }

    /// Whether vrrpd is master: it keeps the macvlan protodown otherwise.
    pub fn is_master(&self) -> bool {
        let link = run(Command::new("ip").args([
            "-n",
            &self.namespace,
            "-d",
            "link",
            "show",
            "dev",
            &self.macvlan,
        ]));
        link.contains("state UP") && !link.contains("protodown on")
    }

    /// vrrpd's log, for failure messages.
    pub fn log(&self) -> String {
        self.daemons.log("vrrpd")
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- vrrpd log ---\n{}", self.log());
        }
    }
}

/// FRR daemons of one namespace, zebra first, run as user `frr` from a world-writable state
/// directory that holds their sockets and the one frr.conf they all read; killed on drop.
pub struct Daemons {
    namespace: String,
    names: Vec<&'static str>,
    running: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Daemons {
    /// Writes `config` as frr.conf and starts `names` (zebra first) in `namespace`.
    pub fn start(namespace: &str, config: &str, names: &[&'static str]) -> Daemons {
        let dir = tempfile::tempdir().unwrap();
        make_world_writable(dir.path());
        std::fs::write(dir.path().join("frr.conf"), config).unwrap();
        let mut daemons = Daemons {
            namespace: namespace.to_owned(),
            names: names.to_vec(),
            running: Vec::new(),
            dir,
        };
        daemons.start_again();
        daemons
    }

    /// Starts the daemons after [`Daemons::stop`], from the same state directory and config.
    pub fn start_again(&mut self) {
        assert!(
            self.running.is_empty(),
            "FRR already runs in {}",
            self.namespace
        );
        let api = self.dir.path().join("zserv.api");
        // A socket left by a killed zebra would pass for the new one's.
        let _ = std::fs::remove_file(&api);
        for daemon in self.names.clone() {
            self.spawn(daemon);
            if daemon == "zebra" {
                wait_until(
                    Duration::from_secs(10),
                    "zebra opens its API socket",
                    || api.exists(),
                );
            }
        }
    }

    /// Stops the daemons as an init script does (SIGTERM), and waits for them to exit.
    pub fn stop(&mut self) {
        for mut daemon in self.running.drain(..).rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &daemon.id().to_string()])
                .status();
            let _ = daemon.wait();
        }
    }

    fn spawn(&mut self, daemon: &str) {
        let dir = self.dir.path();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join(format!("{daemon}.out")))
            .unwrap();
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace])
            .arg(format!("{FRR_BIN}/{daemon}"))
            .args(["-P", "0", "-u", "frr", "-g", "frr"])
            .args(["-i", &path(&format!("{daemon}.pid"))])
            .args(["-z", &path("zserv.api")])
            .args(["--vty_socket", &path("")])
            .args(["-f", &path("frr.conf")])
            .args(["--log", &format!("file:{}", path(&format!("{daemon}.log")))]);
        if daemon == "bfdd" {
            command.args(["--bfdctl", &path("bfdd.sock")]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {daemon}: {error} (apt-get install frr)"));
        self.running.push(child);
    }

    /// `daemon`'s log and what it wrote to stderr, for failure messages.
    pub fn log(&self, daemon: &str) -> String {
        let read = |file: String| std::fs::read_to_string(self.dir.path().join(file));
        let log = read(format!("{daemon}.log")).unwrap_or_default();
        let stderr = read(format!("{daemon}.out")).unwrap_or_default();
        log + &stderr
    }

    /// What `vtysh -c command` shows, for failure messages.
    pub fn show(&self, command: &str) -> String {
        let output = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.path())
            .args(["-c", command])
            .output();
        match output {
            Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
            Err(error) => format!("vtysh: {error}"),
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for daemon in self.running.iter_mut().rev() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// The macvlan tandem makes for VRID 33's virtual MAC and puts `vip` on.
pub fn tandem_macvlan(vip: &str) -> &'static str {
    if vip.contains(':') {
        "vrrp6.33"
    } else {
        "vrrp4.33"
    }
}

/// `ip -o addr show dev <tandem's macvlan>` in `namespace`, none when there is no macvlan.
pub fn tandem_macvlan_addresses(namespace: &str, vip: &str) -> Option<String> {
    let output = Command::new("ip")
        .args(["-n", namespace, "-o", "addr", "show"])
        .args(["dev", tandem_macvlan(vip)])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether tandem in `namespace` holds `vip` on its virtual MAC's macvlan.
pub fn tandem_holds(namespace: &str, vip: &str) -> bool {
    tandem_macvlan_addresses(namespace, vip)
        .is_some_and(|addresses| addresses.contains(&format!(" {vip}/")))
}

/// An app on port 80 of every address of the host, VIP included, answering every connection
/// with `name`: what serves behind the VIP on the FRR node.
pub fn serve_name_on_port_80(namespace: &str, name: &'static str) {
    let (bound, listening) = std::sync::mpsc::channel();
    spawn_in(namespace, move || async move {
        // [::] takes IPv4 too (bindv6only is 0 in a new namespace).
        let listener = TcpListener::bind(SocketAddr::from(([0u16; 8], 80)))
            .await
            .unwrap();
        bound.send(()).unwrap();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(name.as_bytes()).await;
        }
    });
    listening.recv().unwrap();
}

fn make_world_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
}
