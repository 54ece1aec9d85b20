//! Limits under pressure, with real tandem processes and real servers on loopback: a
//! `max_connections` lowered while connections are open, more clients than the open-file limit,
//! and the counters a dashboard needs before anything has happened.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::metrics::{scrape, Metrics};
use support::*;

const LIMIT: Duration = Duration::from_secs(20);
/// How long a client waits to show that it is not being served.
const NOT_SERVED: Duration = Duration::from_millis(500);
/// More clients than a tandem limited to 1024 open files can hold.
const CLIENTS: usize = 2000;

/// One http frontend `web` (idle clients kept for a minute) on backend `pool` of `servers`,
/// checked every 300 ms and down after three failures in a row, with `frontend_extra` added to the
/// frontend.
fn yaml(
    web: SocketAddr,
    admin: SocketAddr,
    servers: &[&TestServer],
    frontend_extra: &str,
) -> String {
    let mut yaml = format!(
        "node: {{ name: limits, threads: 1 }}\n\
         admin: {{ listen: \"{web_admin}\" }}\n\
         frontends:\n  - name: web\n    listen: \"{web}\"\n    mode: http\n    backend: pool\n    \
         timeouts: {{ request_header: 60s }}\n{frontend_extra}\
         backends:\n  - name: pool\n    \
         health_check: {{ type: http, path: /health, interval: 300ms, timeout: 300ms, rise: 1, fall: 3 }}\n    \
         servers:\n",
        web_admin = admin,
    );
    for server in servers {
        yaml.push_str(&format!(
            "      - {{ name: {}, address: \"{}\" }}\n",
            server.name, server.address
        ));
    }
    yaml
}

/// A client that sends one request and reads the answer's status line.
struct RawClient(TcpStream);

impl RawClient {
    async fn connect(address: SocketAddr) -> RawClient {
        RawClient(TcpStream::connect(address).await.unwrap())
    }

    async fn send_get(&mut self) {
        (self.0)
            .write_all(b"GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n")
            .await
            .unwrap();
    }

    /// The status and what came with it, once a whole head has arrived; `None` if the
    /// connection ends first.
    async fn answer(&mut self) -> Option<(u16, String)> {
        let mut received = Vec::new();
        let mut buffer = [0u8; 1024];
        while !received.windows(4).any(|window| window == b"\r\n\r\n") {
            match self.0.read(&mut buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
        let text = String::from_utf8_lossy(&received).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        Some((status, text))
    }

    /// Asserts that nothing is answered within [`NOT_SERVED`].
    async fn assert_not_served(&mut self, why: &str) {
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(NOT_SERVED, self.0.read(&mut byte)).await;
        assert!(early.is_err(), "{why}, yet the client got {early:?}");
    }
}

/// Lets this test process hold a few thousand sockets (the hard limit here is 20000).
fn raise_own_open_files() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// tandem under `ulimit -n 1024` (soft and hard).
fn with_1024_open_files() -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg("--nofile=1024:1024")
        .arg("--")
        .arg(tandem_binary());
    command
}

/// `count` clients connected to `address` and sending nothing; the kernel completes the
/// handshake of those tandem has not accepted yet.
async fn idle_clients(address: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(TcpStream::connect(address).await.unwrap());
    }
    clients
}

fn server_labels<'a>(server: &'a str, state: &'a str) -> [(&'a str, &'a str); 3] {
    [("proxy", "pool"), ("server", server), ("state", state)]
}

fn assert_both_up(metrics: &Metrics) {
    for server in ["s1", "s2"] {
        let up = metrics.get("tandem_server_status", &server_labels(server, "UP"));
        assert_eq!(up, 1.0, "{server} is not UP");
        let labels = [("proxy", "pool"), ("server", server)];
        assert_eq!(
            metrics.get("tandem_server_check_up_down_total", &labels),
            0.0,
            "{server} went down on the way"
        );
    }
}

fn sessions(metrics: &Metrics) -> f64 {
    metrics.get("tandem_frontend_current_sessions", &[("proxy", "web")])
}

fn shortages(metrics: &Metrics, operation: &str) -> f64 {
    metrics.get("tandem_local_shortages_total", &[("operation", operation)])
}

fn health_checks(servers: [&TestServer; 2]) -> [usize; 2] {
    servers.map(|server| server.control.connections.load(Ordering::SeqCst))
}

/// The `held_back` count a thinned log line carries.
fn held_back(line: &str) -> Option<u64> {
    let after = line.split("held_back=").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Waits until tandem answers a new client with a server's name.
async fn wait_until_served(web: SocketAddr) {
    wait_until(LIMIT, "tandem serves a new client", || async {
        get(web, "/").await.is_ok_and(|answer| answer.status == 200)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_lowered_by_sighup_takes_effect_as_open_connections_close() {
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let (web, admin) = (listen(), listen());
    let limited = |max: usize| {
        yaml(
            web,
            admin,
            &[&s1, &s2],
            &format!("    max_connections: {max}\n"),
        )
    };
    let tandem = Tandem::start(&limited(6), &[web, admin]).await;

    let mut open = Vec::new();
    for _ in 0..6 {
        let mut client = RawClient::connect(web).await;
        client.send_get().await;
        assert_eq!(client.answer().await.map(|(status, _)| status), Some(200));
        open.push(client);
    }
    let log = tandem.reload(&limited(2)).await;
    assert!(log.contains("config reloaded"), "{log}");

    let mut waiting = RawClient::connect(web).await;
    waiting.send_get().await;
    waiting
        .assert_not_served("6 connections are open under a limit of 2")
        .await;
    open.truncate(2);
    wait_until(LIMIT, "tandem has seen 4 clients leave", || async {
        sessions(&scrape(admin).await) == 2.0
    })
    .await;
    waiting
        .assert_not_served("2 connections are open under a limit of 2")
        .await;
    open.truncate(1);
    let answer = tokio::time::timeout(LIMIT, waiting.answer()).await;
    let status = answer
        .expect("served once 1 is open")
        .map(|(status, _)| status);
    assert_eq!(status, Some(200));

    // Raised again, the limit lets a new client in at once.
    tandem.reload(&limited(3)).await;
    let mut third = RawClient::connect(web).await;
    third.send_get().await;
    let answer = tokio::time::timeout(LIMIT, third.answer()).await;
    assert_eq!(
        answer.expect("a third slot").map(|(status, _)| status),
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_ulimit_1024_the_default_limit_keeps_checks_and_admin_working() {
    raise_own_open_files();
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let (web, admin) = (listen(), listen());
    let config = yaml(web, admin, &[&s1, &s2], "");
    let tandem = Tandem::start_with(with_1024_open_files(), &config, &[web, admin]).await;
    // 1024 less the reserve (64 + 32 admin + 4 for the thread + 1 listener + 2 checks), halved.
    let expected = 460.0;
    assert!(
        tandem.log().contains("max_connections=460"),
        "{}",
        tandem.log()
    );

    let clients = idle_clients(web, CLIENTS).await;
    wait_until(
        LIMIT,
        "tandem holds its default max_connections",
        || async { sessions(&scrape(admin).await) == expected },
    )
    .await;
    let before = health_checks([&s1, &s2]);
    wait_until(
        LIMIT,
        "health checks go on reaching both servers",
        || async {
            let now = health_checks([&s1, &s2]);
            now[0] >= before[0] + 5 && now[1] >= before[1] + 5
        },
    )
    .await;
    let metrics = scrape(admin).await;
    assert_both_up(&metrics);
    assert_eq!(
        sessions(&metrics),
        expected,
        "no more clients than the limit"
    );
    for operation in ["accept", "health_check", "server_connect"] {
        assert_eq!(shortages(&metrics, operation), 0.0, "{operation}");
    }

    drop(clients);
    wait_until_served(web).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_open_file_limit_no_server_is_blamed_and_the_log_stays_thin() {
    raise_own_open_files();
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let (web, admin) = (listen(), listen());
    // More than 1024 open files can hold: tandem itself runs out.
    let config = yaml(web, admin, &[&s1, &s2], "    max_connections: 10000\n");
    let tandem = Tandem::start_with(with_1024_open_files(), &config, &[web, admin]).await;
    let started = Instant::now();
    let warned = "max_connections over all frontends is more than the open-file limit holds";
    assert!(tandem.log().contains(warned), "{}", tandem.log());

    let mut clients = idle_clients(web, CLIENTS).await;
    // Whether a line says that `what` met EMFILE (worded before and after shortages were told
    // apart, so that this test fails on what it asserts, not here).
    let ran_out = |what: [&str; 2]| {
        (tandem.log().lines()).any(|line| {
            line.contains("Too many open files") && what.iter().any(|what| line.contains(what))
        })
    };
    wait_until(
        LIMIT,
        "tandem runs out of descriptors to accept and to check",
        || async { ran_out(["accept", "accept"]) && ran_out(["health_check", "health check"]) },
    )
    .await;
    // The first clients were accepted; a request needs a descriptor to a server, and there
    // is none: the client is told, and the server is not blamed.
    // What each client got, by status and the body's last line.
    let mut answered = std::collections::BTreeMap::<_, usize>::new();
    for client in clients.drain(..50) {
        let mut client = RawClient(client);
        client.send_get().await;
        let answer = tokio::time::timeout(Duration::from_secs(2), client.answer()).await;
        if let Ok(Some((status, text))) = answer {
            let last = text.lines().last().unwrap_or_default().to_owned();
            *answered.entry((status, last)).or_default() += 1;
        }
    }
    let told = (
        503,
        "the proxy is out of resources, try again later".to_owned(),
    );
    assert!(
        answered.contains_key(&told),
        "no client was told: {answered:?}"
    );
    let served = |(status, _): &(u16, String)| *status == 200;
    assert!(
        (answered.keys()).all(|answer| *answer == told || served(answer)),
        "{answered:?}"
    );

    // Checks go on failing for want of descriptors: after 5 s, one more line says how many
    // were held back meanwhile.
    wait_until(
        LIMIT,
        "a thinned line counts the shortages held back",
        || async {
            (tandem.log().lines()).any(|line| {
                line.contains("operation=\"health_check\"")
                    && held_back(line).is_some_and(|held| held > 0)
            })
        },
    )
    .await;

    drop(clients);
    wait_until_served(web).await;
    let metrics = scrape(admin).await;
    assert_both_up(&metrics);
    for operation in ["accept", "health_check", "server_connect"] {
        assert!(shortages(&metrics, operation) > 0.0, "{operation}");
    }
    let log = tandem.log();
    assert!(!log.contains("server is down"), "{log}");
    // One line per kind of shortage every 5 s, where there were about 40 a second.
    let lines = log.matches("out of local resources").count();
    let most = 3 * (started.elapsed().as_secs() as usize / 5 + 1);
    assert!(
        lines <= most,
        "{lines} shortage lines in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_frontend_out_of_descriptors_for_servers_blames_none() {
    raise_own_open_files();
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let (web, admin) = (listen(), listen());
    let config = yaml(web, admin, &[&s1, &s2], "    max_connections: 10000\n")
        .replace("mode: http", "mode: tcp");
    let tandem = Tandem::start_with(with_1024_open_files(), &config, &[web, admin]).await;

    // Each client accepted takes a descriptor, and one more to its server: the last accepted
    // find none left for their server.
    let clients = idle_clients(web, CLIENTS).await;
    wait_until(
        LIMIT,
        "connecting to a server runs out of descriptors",
        || async {
            (tandem.log().lines()).any(|line| {
                line.contains("Too many open files")
                    && (line.contains("server_connect") || line.contains("connect:"))
            })
        },
    )
    .await;

    drop(clients);
    wait_until_served(web).await;
    let metrics = scrape(admin).await;
    assert_both_up(&metrics);
    assert!(shortages(&metrics, "server_connect") > 0.0);
    let log = tandem.log();
    assert!(!log.contains("server is down"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_with_known_labels_are_exported_at_zero_from_the_start() {
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let (web, admin) = (listen(), listen());
    let _tandem = Tandem::start(&yaml(web, admin, &[&s1, &s2], ""), &[web, admin]).await;

    let metrics = scrape(admin).await;
    let web_labels = |key, value| [("proxy", "web"), (key, value)];
    for code in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
        let responses = metrics.value(
            "tandem_frontend_http_responses_total",
            &web_labels("code", code),
        );
        assert_eq!(responses, Some(0.0), "{code}");
    }
    for reason in ["proxy_header", "tls_handshake"] {
        let errors = metrics.value(
            "tandem_frontend_connection_errors_total",
            &web_labels("reason", reason),
        );
        assert_eq!(errors, Some(0.0), "{reason}");
    }
    // (Sessions are not: waiting for tandem to listen opened one.)
    let requests = metrics.value("tandem_frontend_http_requests_total", &[("proxy", "web")]);
    assert_eq!(requests, Some(0.0));
    for name in [
        "tandem_server_sessions_total",
        "tandem_server_connection_errors_total",
        "tandem_server_retries_total",
        "tandem_server_check_up_down_total",
    ] {
        let value = metrics.value(name, &[("proxy", "pool"), ("server", "s2")]);
        assert_eq!(value, Some(0.0), "{name}");
    }
    for result in ["success", "failure"] {
        let reloads = metrics.value("tandem_config_reloads_total", &[("result", result)]);
        assert_eq!(reloads, Some(0.0), "{result}");
    }
    for operation in ["accept", "health_check", "server_connect"] {
        let value = metrics.value("tandem_local_shortages_total", &[("operation", operation)]);
        assert_eq!(value, Some(0.0), "{operation}");
    }
}

/// VRRP drop reasons, per instance and per interface, are there at 0 before any packet.
#[test]
fn vrrp_drop_reasons_are_exported_at_zero_from_the_start() {
    use support::pair::{lab, node_config, VIP4};
    let Some(lab) = lab() else { return };
    let admin = "admin: { listen: 127.0.0.1:9900 }\n";
    let _a = Tandem::start_in(
        &lab.hosts[0].namespace,
        &(node_config("node-a", 150, VIP4, "") + admin),
    );
    let scraped = || {
        let admin = "127.0.0.1:9900".parse().unwrap();
        support::lab::run_in(&lab.hosts[0].namespace, move || scrape(admin))
    };
    let dropped =
        |metrics: &Metrics, name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    support::lab::wait_until(LIMIT, "the interface's drop reasons are exported", || {
        dropped(
            &scraped(),
            "tandem_vrrp_interface_packets_dropped_total",
            &[("interface", "eth0"), ("reason", "checksum")],
        )
        .is_some()
    });
    let metrics = scraped();
    for reason in ["not_peer", "auth"] {
        let labels = [
            ("vrrp_instance", "VI_1"),
            ("vrid", "33"),
            ("reason", reason),
        ];
        let value = dropped(&metrics, "tandem_vrrp_packets_dropped_total", &labels);
        assert_eq!(value, Some(0.0), "{reason}");
    }
    for reason in [
        "ttl",
        "version",
        "type",
        "too_short",
        "address_count",
        "checksum",
        "auth_type",
        "interval",
        "vrid",
        "queue_full",
    ] {
        let labels = [("interface", "eth0"), ("reason", reason)];
        let value = dropped(
            &metrics,
            "tandem_vrrp_interface_packets_dropped_total",
            &labels,
        );
        assert_eq!(value, Some(0.0), "{reason}");
    }
}
