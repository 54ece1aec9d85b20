//! Two tandem nodes (a and b) and a client (c) in a namespace lab, each node with its own app
//! behind a tcp frontend on the VIP, for failover tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::lab::{join, run_in, spawn_in, wait_until, Dad, Lab};
use super::Tandem;

pub const VIP4: &str = "198.51.100.10";
pub const VIP6: &str = "2001:db8::10";
/// Generous against a busy machine; the protocol itself needs well under a second here.
pub const FAILOVER: Duration = Duration::from_secs(5);

/// A node's config: a tcp frontend on the VIP in front of the node's own app, and one VRRP
/// instance (v3, 100 ms adverts) with `vrrp_extra` added to it.
pub fn node_config(name: &str, priority: u8, vip: &str, vrrp_extra: &str) -> String {
    let (listen, prefix) = if vip.contains(':') {
        (format!("[{vip}]:80"), 64)
    } else {
        (format!("{vip}:80"), 24)
    };
    format!(
        "node: {{ name: {name}, threads: 1 }}\n\
         frontends:\n  - {{ name: web, listen: \"{listen}\", mode: tcp, backend: app }}\n\
         backends:\n  - name: app\n    servers: [ {{ name: app, address: \"127.0.0.1:9000\" }} ]\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 33\n      \
         priority: {priority}\n      advert_interval: 100ms\n      version: 3\n      \
         virtual_ips: [\"{vip}/{prefix}\"]\n{vrrp_extra}"
    )
}

/// The node's app: answers every connection with the node's name, for the rest of the test.
pub fn start_app(namespace: &str, name: &'static str) {
    let (bound, listening) = std::sync::mpsc::channel();
    spawn_in(namespace, move || async move {
        let listener = TcpListener::bind("127.0.0.1:9000").await.unwrap();
        bound.send(()).unwrap();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(name.as_bytes()).await;
        }
    });
    listening.recv().unwrap();
}

pub fn holds(lab: &Lab, host: usize, vip: &str) -> bool {
    lab.addresses(&lab.hosts[host])
        .contains(&format!(" {vip}/"))
}

/// Which node's app the client reaches through the VIP, if any.
pub fn answer_via_vip(lab: &Lab, vip: &str) -> Option<String> {
    let address: SocketAddr = if vip.contains(':') {
        format!("[{vip}]:80")
    } else {
        format!("{vip}:80")
    }
    .parse()
    .unwrap();
    run_in(&lab.hosts[2].namespace, move || async move {
        let attempt = async {
            let mut stream = TcpStream::connect(address).await.ok()?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.ok()?;
            Some(reply)
        };
        tokio::time::timeout(Duration::from_millis(500), attempt)
            .await
            .ok()
            .flatten()
    })
}

pub fn wait_for_master(lab: &Lab, master: usize, vip: &str) {
    let backup = 1 - master;
    let name = ["node-a", "node-b"][master];
    wait_until(FAILOVER, &format!("{name} holds {vip} alone"), || {
        holds(lab, master, vip) && !holds(lab, backup, vip)
    });
    wait_until(
        FAILOVER,
        &format!("the client reaches {name} via {vip}"),
        || answer_via_vip(lab, vip).as_deref() == Some(name),
    );
}

/// Starts node a (priority 150) and node b (100) with a VRRP instance for `vip`, and waits
/// until a is master.
pub fn start_pair(lab: &Lab, vip: &str) -> (Tandem, Tandem) {
    let a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &node_config("node-a", 150, vip, ""),
    );
    let b = Tandem::start_in(
        &lab.hosts[1].namespace,
        &node_config("node-b", 100, vip, ""),
    );
    wait_for_master(lab, 0, vip);
    (a, b)
}

/// A lab of a, b and a client, with both nodes' apps running.
pub fn lab() -> Option<Lab> {
    let lab = Lab::new(3, Dad::Off)?;
    start_app(&lab.hosts[0].namespace, "node-a");
    start_app(&lab.hosts[1].namespace, "node-b");
    Some(lab)
}

/// An app on `port` in a namespace, answering with `name` until dropped; then the port refuses.
pub struct App {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl App {
    pub fn start(namespace: &str, port: u16, name: &'static str) -> App {
        let (bound, listening) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = spawn_in(namespace, move || async move {
            let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            bound.send(()).unwrap();
            let serve = async {
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let _ = stream.write_all(name.as_bytes()).await;
                }
            };
            tokio::select! {
                () = serve => {}
                _ = stopped => {}
            }
        });
        listening.recv().unwrap();
        App {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        if let Some(thread) = self.thread.take() {
            join(thread);
        }
    }
}

/// A client on host c opening a new connection to VIP4 every 5 ms through a planned handover
/// from node-a to node-b: no answer within 500 ms counts as a failure (a lost SYN would be
/// retried only after 1 s).
pub struct HandoverClient(JoinHandle<(Vec<String>, usize)>);

impl HandoverClient {
    /// Starts the client and returns once node-a has served it 50 times.
    pub fn start(lab: &Lab) -> HandoverClient {
        let served = Arc::new(AtomicUsize::new(0));
        let client = spawn_in(&lab.hosts[2].namespace, {
            let served = Arc::clone(&served);
            move || async move {
                let address: SocketAddr = format!("{VIP4}:80").parse().unwrap();
                let mut failures = Vec::new();
                let mut answered_by_b = 0;
                // Bounded: stops 100 answers after b first answered, or after 2000 attempts.
                for attempt in 0..2000 {
                    let reply = tokio::time::timeout(Duration::from_millis(500), async {
                        let mut stream = TcpStream::connect(address).await?;
                        let mut reply = String::new();
                        stream.read_to_string(&mut reply).await?;
                        Ok::<_, std::io::Error>(reply)
                    })
                    .await;
                    match reply {
                        Ok(Ok(name)) if !name.is_empty() => {
                            served.fetch_add(1, Ordering::SeqCst);
                            answered_by_b += usize::from(name == "node-b");
                        }
                        other => failures.push(format!("attempt {attempt}: {other:?}")),
                    }
                    if answered_by_b >= 100 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (failures, answered_by_b)
            }
        });
        wait_until(FAILOVER, "the client is being served", || {
            served.load(Ordering::SeqCst) >= 50
        });
        HandoverClient(client)
    }

    /// Waits for the client to end, and asserts that node-b answered it 100 times and that it
    /// saw no failure but at most one reset: a connection that a opened just before b's
    /// gratuitous ARP lands sends its last packets to b, which knows no such connection and
    /// resets it (keepalived pairs have the same race, see the README's table).
    pub fn assert_handed_over(self) {
        let (failures, answered_by_b) = self.0.join().unwrap();
        let at_the_switch = |failure: &String| failure.contains("ConnectionReset");
        assert!(
            failures.len() <= 1 && failures.iter().all(at_the_switch),
            "{} failed connections: {failures:?}",
            failures.len()
        );
        assert_eq!(answered_by_b, 100, "node-b never took over");
    }
}
