//! A node restarted with preemption takes its VIP back without a 503: it does not preempt until
//! its tracked backend has had a first health verdict. In a test binary of its own, its
//! cases one at a time: they count failed requests, and tests running beside them on two cores
//! would stretch every request. Beside another tandem, keepalived, and FRR's vrrpd (IPv4 and
//! IPv6, with the restarted node on the virtual MAC).
//! Needs root; fails under CI=true without it.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::lab::{join, spawn_in, wait_until, Dad, Lab};
use support::pair::{FAILOVER, VIP4, VIP6};
use support::peer::{Peer, PeerNode};
use support::Tandem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An http frontend on `vip` in front of the node's app, whose http check takes up to 1 s;
/// VI_1 (v3, 100 ms adverts, preempting) loses 100 points while the app is down.
fn node_config(name: &str, priority: u8, vip: &str, vrrp_extra: &str) -> String {
    let (listen, prefix) = if vip.contains(':') {
        (format!("[{vip}]:80"), 64)
    } else {
        (format!("{vip}:80"), 24)
    };
    format!(
        "node: {{ name: {name}, threads: 1 }}\n\
         frontends:\n  - {{ name: web, listen: \"{listen}\", mode: http, backend: app }}\n\
         backends:\n  - name: app\n    \
         health_check: {{ type: http, path: /, interval: 1s, timeout: 1s, rise: 1, fall: 1 }}\n    \
         servers: [ {{ name: app, address: \"127.0.0.1:9000\" }} ]\n\
         vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 33\n      \
         priority: {priority}\n      advert_interval: 100ms\n      version: 3\n      \
         virtual_ips: [\"{vip}/{prefix}\"]\n      track: [{{ backend: app, weight: -100 }}]\n{vrrp_extra}"
    )
}

/// A node's http app on `listen`, answering 200 with the node's name while `ready`; until then
/// it accepts and says nothing for 5 s, as an app still starting up behind a listening socket
/// would.
fn start_app(namespace: &str, listen: &'static str, name: &'static str, ready: Arc<AtomicBool>) {
    let (bound, listening) = std::sync::mpsc::channel();
    spawn_in(namespace, move || async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        bound.send(()).unwrap();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let ready = ready.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = [0; 1024];
                let _ = stream.read(&mut head).await;
                if !ready {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    listening.recv().unwrap();
}

/// One request through the VIP on a new connection: the status and body, or what went wrong.
async fn request(address: SocketAddr) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            .await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    // A lost SYN would be retried only after 1 s: silence counts as a failure.
    let reply = match tokio::time::timeout(Duration::from_millis(500), exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => return Err(error.kind().to_string()),
        Err(_) => return Err("no answer within 500 ms".into()),
    };
    let status = (reply.get(9..12))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an http answer: {reply:?}"))?;
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}

/// a (150) is stopped, so b (100) holds the VIP; a restarts while its app is still starting.
/// a waits for its check's verdict (down: priority 50) instead of preempting on b's first
/// advert; once its app answers it takes the VIP back. A client requesting through the VIP
/// every 5 ms meanwhile gets only 200s. One failed connection is tolerated, and only one: a
/// connection b accepted just before a took the VIP loses its last packets, as b gives the VIP
/// up (no answer from b) or the client's go to a (reset), as in any preemption.
#[test]
fn a_node_restarted_with_preemption_takes_the_vip_back_without_a_503() {
    restart_takes_the_vip_back_without_a_503(Peer::Tandem, VIP4);
}

/// The same beside keepalived, whose host b serves the VIP's port itself.
#[test]
fn a_node_restarted_with_preemption_takes_the_vip_back_from_keepalived_without_a_503() {
    restart_takes_the_vip_back_without_a_503(Peer::Keepalived, VIP4);
}

/// The same beside FRR's vrrpd, a on the virtual MAC, over IPv4 and IPv6.
#[test]
fn a_node_restarted_with_preemption_takes_the_vip_back_from_frr_over_ipv4_without_a_503() {
    restart_takes_the_vip_back_without_a_503(Peer::Frr, VIP4);
}

#[test]
fn a_node_restarted_with_preemption_takes_the_vip_back_from_frr_over_ipv6_without_a_503() {
    restart_takes_the_vip_back_without_a_503(Peer::Frr, VIP6);
}

fn restart_takes_the_vip_back_without_a_503(peer: Peer, vip: &'static str) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(lab) = Lab::new(3, Dad::Off) else {
        return;
    };
    let ready_a = Arc::new(AtomicBool::new(true));
    let (a_host, b_host) = (&lab.hosts[0].namespace, &lab.hosts[1].namespace);
    start_app(a_host, "127.0.0.1:9000", "node-a", Arc::clone(&ready_a));
    let b_listen = match peer {
        Peer::Tandem => "127.0.0.1:9000",
        // Takes IPv4 too (bindv6only is 0 in a new namespace).
        Peer::Keepalived | Peer::Frr => "[::]:80",
    };
    start_app(b_host, b_listen, "node-b", Arc::new(AtomicBool::new(true)));
    let a_config = node_config("node-a", 150, vip, peer.tandem_extra());
    let mut a = Tandem::start_in(a_host, &a_config);
    let b = PeerNode::start(&lab, peer, vip, &node_config("node-b", 100, vip, ""));
    let a_holds = || b.a_holds(&lab, vip);
    let b_holds = || b.b_holds(&lab, vip);
    wait_until(FAILOVER, "a holds the VIP alone", || {
        a_holds() && !b_holds()
    });
    assert!(a.signal_and_wait("TERM").success());
    wait_until(FAILOVER, "b holds the VIP alone", || {
        b_holds() && !a_holds()
    });
    ready_a.store(false, Ordering::SeqCst);

    let stop = Arc::new(AtomicBool::new(false));
    let answered_by_a = Arc::new(AtomicUsize::new(0));
    let client = spawn_in(&lab.hosts[2].namespace, {
        let (stop, answered_by_a) = (Arc::clone(&stop), Arc::clone(&answered_by_a));
        move || async move {
            let address = SocketAddr::new(vip.parse().unwrap(), 80);
            let mut outcomes = Vec::new();
            let (mut last_200, mut longest_without_200) = (Instant::now(), Duration::ZERO);
            // Bounded: until told to stop, or 6000 requests.
            for _ in 0..6000 {
                let outcome = request(address).await;
                if matches!(&outcome, Ok((200, body)) if body == "node-a") {
                    answered_by_a.fetch_add(1, Ordering::SeqCst);
                }
                if matches!(&outcome, Ok((200, _))) {
                    longest_without_200 = longest_without_200.max(last_200.elapsed());
                    last_200 = Instant::now();
                }
                outcomes.push(outcome);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (outcomes, longest_without_200)
        }
    });

    let a = Tandem::start_in(a_host, &a_config);
    wait_until(FAILOVER, "a's first check finds its app down", || {
        a.log().contains("tracked items changed the VRRP priority")
    });
    assert!(b_holds() && !a_holds(), "{}", a.log());
    ready_a.store(true, Ordering::SeqCst);
    wait_until(FAILOVER, "a takes the VIP back and answers", || {
        a_holds() && !b_holds() && answered_by_a.load(Ordering::SeqCst) >= 50
    });
    stop.store(true, Ordering::SeqCst);
    let (outcomes, longest_without_200) = join(client);

    let by = |name: &str| {
        (outcomes.iter())
            .filter(|outcome| matches!(outcome, Ok((200, body)) if body == name))
            .count()
    };
    let not_ok: Vec<_> = (outcomes.iter())
        .filter(|outcome| !matches!(outcome, Ok((200, _))))
        .collect();
    eprintln!(
        "{} requests: {} answered by b, {} by a, not 200: {not_ok:?}; \
         the longest the client went without a 200 was {longest_without_200:?}",
        outcomes.len(),
        by("node-b"),
        by("node-a")
    );
    assert!(
        !not_ok.iter().any(|outcome| outcome.is_ok()),
        "statuses other than 200: {not_ok:?}\n{}",
        a.log()
    );
    assert!(
        not_ok.len() <= 1,
        "failed requests: {not_ok:?}\n{}",
        a.log()
    );
    let log = a.log();
    let line_of = |text: &str| log.lines().position(|line| line.contains(text));
    assert!(
        line_of("tracked items changed the VRRP priority") < line_of("to=\"MASTER\""),
        "a took the VIP before its first check verdict:\n{log}"
    );
    assert!(
        by("node-b") > 0,
        "the client was served by b before a came back"
    );
}
