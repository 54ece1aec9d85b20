//! The families that match HAProxy's exporter (issue 20): scraped from a running tandem with
//! real loopback servers, read with a real Prometheus text-format parser, each one moved by
//! traffic, health checks or a queue, and the whole scrape passed through `promtool check
//! metrics`.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::metrics::{scrape, Metrics};
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Waits until a scrape satisfies `condition`, and returns that scrape.
async fn scrape_until(admin: SocketAddr, what: &str, condition: impl Fn(&Metrics) -> bool) {
    wait_until(LIMIT, what, || async { condition(&scrape(admin).await) }).await;
}

/// The scrape as text, as Prometheus gets it.
async fn scrape_text(admin: SocketAddr) -> String {
    let answer = get(admin, "/metrics")
        .await
        .expect("the admin endpoint answers");
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.body.to_vec()).unwrap()
}

/// What changed between two scrapes, for one series.
fn moved(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.value(name, labels).unwrap_or(0.0)
}

const POOL_S1: [(&str, &str); 2] = [("proxy", "pool"), ("server", "s1")];
const POOL: [(&str, &str); 1] = [("proxy", "pool")];

fn code<'a>(labels: &[(&'a str, &'a str)], code: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut labels = labels.to_vec();
    labels.push(("code", code));
    labels
}

/// A server that answers every request with a head promising 100 bytes, sends 3 and closes.
async fn cut_short_server() -> SocketAddr {
    let (address, task) = spawn_server(|mut stream: TcpStream| async move {
        let mut head = Vec::new();
        let mut buffer = [0; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
        let _ = (stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")).await;
    })
    .await;
    // The listener lives as long as the test's runtime.
    std::mem::forget(task);
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_backend_families_move_with_traffic() {
    let s1 = TestServer::start("s1").await;
    let cut = cut_short_server().await;
    let (web, raw, short, admin) = (listen(), listen(), listen(), listen());
    let config = format!(
        "node: {{ name: metrics, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - {{ name: web, listen: \"{web}\", mode: http, backend: pool, max_connections: 77 }}\n\
         \x20 - {{ name: raw, listen: \"{raw}\", mode: tcp, backend: pool }}\n\
         \x20 - {{ name: short, listen: \"{short}\", mode: http, backend: broken }}\n\
         backends:\n\
         \x20 - name: pool\n    retries: 0\n    servers:\n\
         \x20     - {{ name: s1, address: \"{}\", weight: 3 }}\n\
         \x20 - name: broken\n    retries: 0\n    servers:\n\
         \x20     - {{ name: b1, address: \"{cut}\" }}\n",
        s1.address
    );
    let _tandem = Tandem::start(&config, &[web, raw, short, admin]).await;
    // Start-up's readiness probe of `raw` was a session to s1: let it end first.
    scrape_until(admin, "the start-up probe's session ended", |m| {
        m.get("tandem_frontend_sessions_total", &[("proxy", "raw")]) == 1.0
            && m.get("tandem_frontend_current_sessions", &[("proxy", "raw")]) == 0.0
            && m.get("tandem_server_current_sessions", &POOL_S1) == 0.0
    })
    .await;
    let before = scrape(admin).await;
    let connections_before = s1.control.connections.load(Ordering::SeqCst);

    // http: 4 small answers, one of 5000 bytes, one 503 from the server, one upload.
    let mut client = KeepAliveClient::connect(web).await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.unwrap().body, "s1");
    }
    assert_eq!(client.get("/download/5000").await.unwrap().body.len(), 5000);
    s1.control.health_status.store(503, Ordering::SeqCst);
    assert_eq!(client.get("/health").await.unwrap().status, 503);
    let upload = Request::post("/upload")
        .header("host", web.to_string())
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    let uploaded = request_from([127, 0, 0, 1].into(), web, upload)
        .await
        .unwrap();
    assert_eq!(uploaded.body, "1000");

    let after = scrape(admin).await;
    let responses = "tandem_server_http_responses_total";
    assert_eq!(
        moved(&before, &after, responses, &code(&POOL_S1, "2xx")),
        6.0
    );
    assert_eq!(
        moved(&before, &after, responses, &code(&POOL_S1, "5xx")),
        1.0
    );
    assert_eq!(
        moved(&before, &after, responses, &code(&POOL_S1, "4xx")),
        0.0
    );
    let backend_responses = "tandem_backend_http_responses_total";
    assert_eq!(
        moved(&before, &after, backend_responses, &code(&POOL, "2xx")),
        6.0
    );
    assert_eq!(
        moved(&before, &after, backend_responses, &code(&POOL, "5xx")),
        1.0
    );
    assert_eq!(after.get(backend_responses, &code(&POOL, "other")), 0.0);
    // Bodies: "s1" four times, 5000 bytes, "health", "1000".
    let bodies_out = 4.0 * 2.0 + 5000.0 + 6.0 + 4.0;
    for (name, labels) in [
        ("tandem_server_bytes_out_total", &POOL_S1[..]),
        ("tandem_backend_bytes_out_total", &POOL[..]),
    ] {
        assert_eq!(moved(&before, &after, name, labels), bodies_out, "{name}");
    }
    for (name, labels) in [
        ("tandem_server_bytes_in_total", &POOL_S1[..]),
        ("tandem_backend_bytes_in_total", &POOL[..]),
    ] {
        assert_eq!(moved(&before, &after, name, labels), 1000.0, "{name}");
    }
    let opened = s1.control.connections.load(Ordering::SeqCst) - connections_before;
    assert!(opened >= 1);
    assert_eq!(
        moved(
            &before,
            &after,
            "tandem_server_connection_attempts_total",
            &POOL_S1
        ),
        opened as f64,
        "one attempt per connection the server accepted; reused ones are none"
    );
    assert_eq!(after.get("tandem_server_weight", &POOL_S1), 3.0);
    assert_eq!(
        after.get("tandem_frontend_limit_sessions", &[("proxy", "web")]),
        77.0
    );
    assert!(after.get("tandem_frontend_limit_sessions", &[("proxy", "raw")]) >= 1.0);

    // tcp: every byte each way, on the server and its backend.
    let before = after;
    let request = b"GET / HTTP/1.0\r\n\r\n";
    let mut stream = TcpStream::connect(raw).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    // The relay ends, and counts what is left, once both sides have closed.
    drop(stream);
    assert!(
        answer.ends_with(b"s1"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let sent = request.len() as f64;
    let received = answer.len() as f64;
    scrape_until(admin, "the relay's bytes are counted", |m| {
        moved(&before, m, "tandem_server_bytes_in_total", &POOL_S1) == sent
            && moved(&before, m, "tandem_server_bytes_out_total", &POOL_S1) == received
            && moved(&before, m, "tandem_backend_bytes_in_total", &POOL) == sent
            && moved(&before, m, "tandem_backend_bytes_out_total", &POOL) == received
    })
    .await;

    // A client that goes away in the middle of a large body aborts it.
    let before = scrape(admin).await;
    let mut stream = TcpStream::connect(web).await.unwrap();
    let request = format!("GET /download/100000000 HTTP/1.1\r\nHost: {web}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0; 4096];
    assert!(stream.read(&mut head).await.unwrap() > 0);
    drop(stream);
    scrape_until(admin, "the client's abort is counted", |m| {
        moved(&before, m, "tandem_server_client_aborts_total", &POOL_S1) == 1.0
            && moved(&before, m, "tandem_backend_client_aborts_total", &POOL) == 1.0
    })
    .await;
    let after = scrape(admin).await;
    assert_eq!(
        moved(
            &before,
            &after,
            "tandem_server_server_aborts_total",
            &POOL_S1
        ),
        0.0
    );

    // A server that closes in the middle of its body aborts it.
    let cut_labels = [("proxy", "broken"), ("server", "b1")];
    let before = after;
    assert!(
        get(short, "/").await.is_err(),
        "the client sees the body cut short"
    );
    scrape_until(admin, "the server's abort is counted", |m| {
        moved(&before, m, "tandem_server_server_aborts_total", &cut_labels) == 1.0
            && moved(
                &before,
                m,
                "tandem_backend_server_aborts_total",
                &[("proxy", "broken")],
            ) == 1.0
    })
    .await;
    let after = scrape(admin).await;
    assert_eq!(
        moved(
            &before,
            &after,
            "tandem_server_client_aborts_total",
            &cut_labels
        ),
        0.0
    );

    assert_process_family(&after);
    promtool_check_metrics(&scrape_text(admin).await);
}

/// The standard `process_*` family, as the Prometheus client libraries export it.
fn assert_process_family(metrics: &Metrics) {
    let resident = metrics.get("process_resident_memory_bytes", &[]);
    assert!(resident > 1e6, "resident memory {resident}");
    assert!(metrics.get("process_virtual_memory_bytes", &[]) >= resident);
    let (open, max) = (
        metrics.get("process_open_fds", &[]),
        metrics.get("process_max_fds", &[]),
    );
    assert!(open >= 3.0 && open <= max, "{open} fds open of {max}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = metrics.get("process_start_time_seconds", &[]);
    assert!(
        started <= now && started > now - 600.0,
        "started at {started}, now {now}"
    );
    assert!(metrics.get("process_cpu_seconds_total", &[]) >= 0.0);
}

/// `promtool check metrics` finds nothing to say about `scrape`. promtool comes with Debian's
/// `prometheus`; without it the check is skipped, except under CI=true.
fn promtool_check_metrics(scrape: &str) {
    let Some(promtool) = check_peers::peer_program("promtool", "prometheus") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(scrape.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_families_follow_a_server_that_fails_and_goes_away() {
    let mut s1 = TestServer::start("s1").await;
    let (web, admin) = (listen(), listen());
    let config = format!(
        "node: {{ name: metrics, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - {{ name: web, listen: \"{web}\", mode: http, backend: pool }}\n\
         backends:\n\
         \x20 - name: pool\n    retries: 0\n\
         \x20   health_check: {{ type: http, path: /health, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }}\n\
         \x20   servers:\n\
         \x20     - {{ name: s1, address: \"{}\" }}\n",
        s1.address
    );
    let _tandem = Tandem::start(&config, &[web, admin]).await;
    let status = |state: &'static str| {
        let mut labels = POOL_S1.to_vec();
        labels.push(("state", state));
        labels
    };
    let check_is = |m: &Metrics, state: &'static str| {
        m.value("tandem_server_check_status", &status(state)) == Some(1.0)
    };
    // The last change is at start-up until the server goes up or down.
    scrape_until(admin, "a passed check, two seconds after start-up", |m| {
        check_is(m, "L7OK") && m.get("tandem_server_check_last_change_seconds", &POOL_S1) >= 2.0
    })
    .await;
    let up = scrape(admin).await;
    assert_eq!(
        up.sum("tandem_server_check_status", &POOL_S1),
        1.0,
        "one state at a time"
    );
    let took = up.get("tandem_server_check_duration_seconds", &POOL_S1);
    assert!(took > 0.0 && took < 0.2, "a check took {took} s");
    assert_eq!(
        up.get("tandem_server_downtime_seconds_total", &POOL_S1),
        0.0
    );

    // A wrong status takes it down: L7STS, and the last change is now.
    s1.control.health_status.store(500, Ordering::SeqCst);
    scrape_until(admin, "L7STS and DOWN", |m| {
        check_is(m, "L7STS")
            && m.get("tandem_server_status", &status("DOWN")) == 1.0
            && m.get("tandem_server_check_last_change_seconds", &POOL_S1) < 2.0
    })
    .await;
    let down = scrape(admin).await;
    assert!(moved(&up, &down, "tandem_server_check_failures_total", &POOL_S1) >= 1.0);

    // With no server up, the backend answers 503 itself: its count, not the server's.
    assert_eq!(get(web, "/").await.unwrap().status, 503);
    let answered = scrape(admin).await;
    let server_5xx = code(&POOL_S1, "5xx");
    let backend_5xx = code(&POOL, "5xx");
    let responses = "tandem_server_http_responses_total";
    assert_eq!(
        moved(
            &down,
            &answered,
            "tandem_backend_http_responses_total",
            &backend_5xx
        ),
        1.0
    );
    assert_eq!(moved(&down, &answered, responses, &server_5xx), 0.0);

    // Gone: the connection is refused, and the time down adds up.
    s1.kill();
    scrape_until(admin, "L4CON and a second down", |m| {
        check_is(m, "L4CON") && m.get("tandem_server_downtime_seconds_total", &POOL_S1) >= 1.0
    })
    .await;

    // Back: L7OK and UP again, the time down kept.
    s1.control.health_status.store(0, Ordering::SeqCst);
    s1.restart().await;
    scrape_until(admin, "L7OK and UP again", |m| {
        check_is(m, "L7OK") && m.get("tandem_server_status", &status("UP")) == 1.0
    })
    .await;
    let back = scrape(admin).await;
    assert!(back.get("tandem_server_downtime_seconds_total", &POOL_S1) >= 1.0);
    assert_eq!(get(web, "/").await.unwrap().status, 200);
    promtool_check_metrics(&scrape_text(admin).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauges_build_while_a_limited_server_is_busy_and_drain() {
    let s1 = TestServer::start("s1").await;
    s1.control.delay_ms.store(600, Ordering::SeqCst);
    let (web, admin) = (listen(), listen());
    // Hashing: the waiting requests wait for s1 itself, so its own queue shows them too.
    let config = format!(
        "node: {{ name: metrics, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - {{ name: web, listen: \"{web}\", mode: http, backend: pool }}\n\
         backends:\n\
         \x20 - name: pool\n    balance: source_hash\n    queue_timeout: 20s\n\
         \x20   servers:\n\
         \x20     - {{ name: s1, address: \"{}\", max_connections: 1 }}\n",
        s1.address
    );
    let _tandem = Tandem::start(&config, &[web, admin]).await;
    let requests: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { get(web, "/").await }))
        .collect();
    scrape_until(admin, "one request at s1 and two queued", |m| {
        m.get("tandem_server_current_sessions", &POOL_S1) == 1.0
            && m.get("tandem_server_current_queue", &POOL_S1) == 2.0
            && m.get("tandem_backend_current_queue", &POOL) == 2.0
    })
    .await;
    let busy = scrape(admin).await;
    assert_eq!(busy.get("tandem_server_max_connections", &POOL_S1), 1.0);
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap().status, 200);
    }
    scrape_until(admin, "the queue drained", |m| {
        m.get("tandem_server_current_queue", &POOL_S1) == 0.0
            && m.get("tandem_backend_current_queue", &POOL) == 0.0
    })
    .await;
}
