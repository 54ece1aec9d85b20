//! Servers as deployments use them, through a real tandem in front of real servers on loopback:
//! backups, per-server limits and the queue before them, slow start, and shutting sessions down
//! with their server.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use support::metrics::scrape;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An http health check that takes one result to rise or fall, every 100 ms.
const CHECKED: &str = "    health_check: { type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n";

/// One frontend on backend `pool`, with `backend_extra` (indented YAML) added to the backend and
/// each server's own extra keys (`, backup: true`) added to its line.
fn yaml(
    mode: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    backend_extra: &str,
    servers: &[(&str, SocketAddr, &str)],
) -> String {
    let mut yaml = format!(
        "node: {{ name: test, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n  - {{ name: fe, listen: \"{listen}\", mode: {mode}, backend: pool }}\n\
         backends:\n  - name: pool\n{backend_extra}    servers:\n"
    );
    for (name, address, extra) in servers {
        yaml.push_str(&format!(
            "      - {{ name: {name}, address: \"{address}\"{extra} }}\n"
        ));
    }
    yaml
}

async fn start(
    mode: &str,
    backend_extra: &str,
    servers: &[(&str, SocketAddr, &str)],
) -> (Tandem, SocketAddr, SocketAddr) {
    let (address, admin) = (listen(), listen());
    let config = yaml(mode, address, admin, backend_extra, servers);
    let tandem = Tandem::start(&config, &[address, admin]).await;
    (tandem, address, admin)
}

/// Which server answered each of `count` requests in a row.
async fn answered_by(address: SocketAddr, count: usize) -> Vec<String> {
    let mut answered = Vec::new();
    for _ in 0..count {
        let answer = get(address, "/").await.unwrap();
        assert_eq!(answer.status, 200);
        answered.push(answer.server.unwrap());
    }
    answered
}

fn set_health(server: &TestServer, status: u16) {
    server.control.health_status.store(status, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_takes_over_only_when_every_primary_is_down_and_gives_back() {
    let servers = [
        TestServer::start("p1").await,
        TestServer::start("p2").await,
        TestServer::start("b1").await,
    ];
    let (_tandem, address, admin) = start(
        "http",
        CHECKED,
        &[
            ("p1", servers[0].address, ""),
            ("p2", servers[1].address, ""),
            ("b1", servers[2].address, ", backup: true"),
        ],
    )
    .await;
    let mut first = answered_by(address, 4).await;
    first.sort();
    assert_eq!(first, ["p1", "p1", "p2", "p2"], "primaries only");

    set_health(&servers[0], 503);
    wait_until(Duration::from_secs(5), "p1 marked down", || async {
        answered_by(address, 2).await == ["p2", "p2"]
    })
    .await;
    assert!(
        answered_by(address, 6)
            .await
            .iter()
            .all(|name| name == "p2"),
        "one primary up keeps the backup out"
    );

    set_health(&servers[1], 503);
    wait_until(Duration::from_secs(5), "the backup takes over", || async {
        answered_by(address, 1).await == ["b1"]
    })
    .await;
    assert!(answered_by(address, 4)
        .await
        .iter()
        .all(|name| name == "b1"));
    let metrics = scrape(admin).await;
    assert_eq!(
        metrics.get("tandem_backend_active_servers", &[("proxy", "pool")]),
        0.0,
        "backups are not counted as active"
    );
    assert_eq!(
        metrics.get("tandem_backend_backup_servers", &[("proxy", "pool")]),
        1.0
    );

    set_health(&servers[0], 0);
    wait_until(Duration::from_secs(5), "p1 back up", || async {
        answered_by(address, 1).await == ["p1"]
    })
    .await;
    assert!(
        answered_by(address, 4)
            .await
            .iter()
            .all(|name| name == "p1"),
        "the backup gives back"
    );
}

/// An http server that answers after `delay`, naming itself, and records the most requests it
/// had in hand at once.
struct SlowServer {
    address: SocketAddr,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl SlowServer {
    async fn start(name: &'static str, delay: Duration) -> SlowServer {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most_in_flight = Arc::new(AtomicUsize::new(0));
        let counters = (Arc::clone(&in_flight), Arc::clone(&most_in_flight));
        let (address, _) = spawn_server(move |stream| {
            let (in_flight, most) = (Arc::clone(&counters.0), Arc::clone(&counters.1));
            async move {
                let service = service_fn(move |_request| {
                    let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
                    async move {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let mut response = Response::new(Full::new(Bytes::from(name)));
                        (response.headers_mut()).insert("x-server", name.parse().unwrap());
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        SlowServer {
            address,
            in_flight,
            most_in_flight,
        }
    }
}

/// `count` requests at once, each on its own connection; their statuses in the order sent.
async fn concurrent_statuses(address: SocketAddr, count: usize) -> Vec<u16> {
    let clients: Vec<_> = (0..count)
        .map(|_| tokio::spawn(async move { get(address, "/").await.unwrap().status }))
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.push(client.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_1_queues_the_excess_and_a_short_queue_timeout_refuses_it() {
    let slow = SlowServer::start("slow", Duration::from_millis(400)).await;
    let servers = [("slow", slow.address, ", max_connections: 1")];
    for balance in ["least_conn", "source_hash"] {
        let backend = format!("    balance: {balance}\n    queue_timeout: 10s\n");
        let (_tandem, address, admin) = start("http", &backend, &servers).await;
        let clients = tokio::spawn(concurrent_statuses(address, 4));
        wait_until(Duration::from_secs(5), "three requests queued", || async {
            scrape(admin)
                .await
                .get("tandem_backend_current_queue", &[("proxy", "pool")])
                == 3.0
        })
        .await;
        let metrics = scrape(admin).await;
        let server = [("proxy", "pool"), ("server", "slow")];
        assert_eq!(metrics.get("tandem_server_max_connections", &server), 1.0);
        assert_eq!(metrics.get("tandem_server_current_sessions", &server), 1.0);
        let status = get(admin, "/status").await.unwrap();
        let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
        assert_eq!(status["backends"][0]["current_queue"], 3, "{balance}");
        assert_eq!(status["backends"][0]["servers"][0]["max_connections"], 1);
        assert_eq!(clients.await.unwrap(), [200; 4], "{balance}: all answered");
        assert_eq!(
            slow.most_in_flight.load(Ordering::SeqCst),
            1,
            "{balance}: never two at the server"
        );
        assert_eq!(slow.in_flight.load(Ordering::SeqCst), 0);
    }

    let short = "    queue_timeout: 150ms\n";
    let (tandem, address, admin) = start("http", short, &servers).await;
    let started = Instant::now();
    let mut statuses = concurrent_statuses(address, 4).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503, 503, 503], "the excess times out");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(slow.most_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(
        scrape(admin)
            .await
            .get("tandem_backend_current_queue", &[("proxy", "pool")]),
        0.0
    );
    assert!(tandem
        .log()
        .contains("no server had room within queue_timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once() {
    let slow = SlowServer::start("slow", Duration::from_millis(1500)).await;
    let (_tandem, address, admin) = start(
        "http",
        "    queue_size: 1\n    queue_timeout: 10s\n",
        &[("slow", slow.address, ", max_connections: 1")],
    )
    .await;
    let clients = tokio::spawn(concurrent_statuses(address, 2));
    wait_until(Duration::from_secs(5), "one request queued", || async {
        scrape(admin)
            .await
            .get("tandem_backend_current_queue", &[("proxy", "pool")])
            == 1.0
    })
    .await;
    let started = Instant::now();
    assert_eq!(get(address, "/").await.unwrap().status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused without waiting"
    );
    assert_eq!(clients.await.unwrap(), [200, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_gives_a_server_back_up_a_small_share_at_first_then_its_full_share() {
    let servers = [TestServer::start("a").await, TestServer::start("b").await];
    let backend = format!("    balance: round_robin\n    slow_start: 6s\n{CHECKED}");
    let (_tandem, address, _admin) = start(
        "http",
        &backend,
        &[("a", servers[0].address, ""), ("b", servers[1].address, "")],
    )
    .await;
    let mut first = answered_by(address, 4).await;
    first.sort();
    assert_eq!(first, ["a", "a", "b", "b"], "no ramp at start-up");

    set_health(&servers[1], 503);
    wait_until(Duration::from_secs(5), "b marked down", || async {
        answered_by(address, 2).await == ["a", "a"]
    })
    .await;
    set_health(&servers[1], 0);
    wait_until(Duration::from_secs(5), "b back up", || async {
        answered_by(address, 1).await == ["b"]
    })
    .await;
    // Early in the ramp: b's weight is a small part of a's (a sixth after its first second).
    let ramp_started = Instant::now();
    let mut early = HashMap::<String, usize>::new();
    while ramp_started.elapsed() < Duration::from_millis(800) {
        for name in answered_by(address, 10).await {
            *early.entry(name).or_default() += 1;
        }
    }
    let (a, b) = (early["a"], early.get("b").copied().unwrap_or(0));
    assert!(b * 3 < a, "early in the ramp b got {b} to a's {a}");

    wait_until(Duration::from_secs(8), "the ramp ends", || async {
        ramp_started.elapsed() > Duration::from_secs(6)
    })
    .await;
    let late = answered_by(address, 40).await;
    let b = late.iter().filter(|name| *name == "b").count();
    assert_eq!(b, 20, "after the ramp, b's full share: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_with_weights_1_and_3_gives_a_1_to_3_share() {
    let servers = [
        TestServer::start("one").await,
        TestServer::start("three").await,
    ];
    let (_tandem, address, _admin) = start(
        "http",
        "    balance: round_robin\n",
        &[
            ("one", servers[0].address, ", weight: 1"),
            ("three", servers[1].address, ", weight: 3"),
        ],
    )
    .await;
    let answered = answered_by(address, 40).await;
    let one = answered.iter().filter(|name| *name == "one").count();
    assert_eq!((one, answered.len() - one), (10, 30), "{answered:?}");
}

/// A tcp server that answers every line with its name, and whose listener can be closed while
/// the connections it accepted stay open.
struct LineServer {
    address: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl LineServer {
    async fn start(name: &'static str) -> LineServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buffer = [0; 1024];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 || stream.write_all(name.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        LineServer { address, accepting }
    }
}

/// Sends a line and reads the answer; `None` when the connection was closed.
async fn ask(stream: &mut TcpStream) -> Option<String> {
    stream.write_all(b"hello\n").await.ok()?;
    let mut buffer = [0; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("an answer or a close within 5 s")
        .ok()?;
    (read > 0).then(|| String::from_utf8_lossy(&buffer[..read]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_down_shutdown_sessions_closes_a_tcp_session_when_its_server_is_marked_down() {
    let doomed = LineServer::start("doomed").await;
    let other = LineServer::start("other").await;
    let check =
        "    health_check: { type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n";
    let (tandem, address, _admin) = start(
        "tcp",
        &format!("    balance: round_robin\n    on_down: shutdown_sessions\n{check}"),
        &[("doomed", doomed.address, ""), ("other", other.address, "")],
    )
    .await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let name = ask(&mut stream).await.expect("an answer");
        sessions.push((name, stream));
    }
    sessions.sort_by(|a, b| a.0.cmp(&b.0));
    let [(doomed_name, mut on_doomed), (other_name, mut on_other)] =
        <[_; 2]>::try_from(sessions).ok().unwrap();
    assert_eq!(
        (doomed_name.as_str(), other_name.as_str()),
        ("doomed", "other")
    );

    // The server stops accepting (its checks fail) but would keep serving this session.
    doomed.accepting.abort();
    wait_until(Duration::from_secs(5), "doomed marked down", || async {
        tandem.log().contains("server is down")
    })
    .await;
    // The close may come just after the verdict is logged: a bounded number of tries.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(&mut on_doomed).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the session on doomed stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ask(&mut on_other).await.as_deref(),
        Some("other"),
        "a session on a server still up carries on"
    );
}

/// An http server that answers every request with a head and a first chunk at once, then holds
/// the rest of the body back; its listener can be closed while the responses stay open.
async fn held_stream_server() -> LineServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\nx-server: held\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                // Held open, the rest never sent, until tandem closes it.
                while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
            });
        }
    });
    LineServer { address, accepting }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_down_shutdown_sessions_ends_an_http_response_its_server_is_streaming() {
    use http_body_util::BodyExt;

    let held = held_stream_server().await;
    let check =
        "    health_check: { type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n";
    let (tandem, address, _admin) = start(
        "http",
        &format!("    on_down: shutdown_sessions\n{check}"),
        &[("held", held.address, "")],
    )
    .await;
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(get_request(address, "/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");

    held.accepting.abort();
    wait_until(Duration::from_secs(5), "held marked down", || async {
        tandem.log().contains("server is down")
    })
    .await;
    let rest = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the response ends once its server is marked down");
    assert!(
        !matches!(rest, Some(Ok(_))),
        "no more of the body: {rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_up_shutdown_backup_sessions_closes_the_backups_sessions_when_a_primary_returns() {
    let primary = LineServer::start("primary").await;
    let primary_address = primary.address;
    let backup = LineServer::start("backup").await;
    let check =
        "    health_check: { type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n";
    let (tandem, address, _admin) = start(
        "tcp",
        &format!("    on_up: shutdown_backup_sessions\n{check}"),
        &[
            ("primary", primary.address, ""),
            ("backup", backup.address, ", backup: true"),
        ],
    )
    .await;
    primary.accepting.abort();
    wait_until(Duration::from_secs(5), "primary marked down", || async {
        tandem.log().contains("server is down")
    })
    .await;
    let mut on_backup = TcpStream::connect(address).await.unwrap();
    assert_eq!(ask(&mut on_backup).await.as_deref(), Some("backup"));

    // The primary listens again on its address.
    let listener = TcpListener::bind(primary_address).await.unwrap();
    let _accepting = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    wait_until(Duration::from_secs(5), "primary back up", || async {
        tandem.log().contains("server is up")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(&mut on_backup).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the backup's session stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
