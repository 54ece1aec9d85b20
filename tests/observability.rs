//! The admin endpoint and the access log of a running tandem: metrics parsed with a real
//! Prometheus parser move with traffic, health and reloads; `/status` and `tandem status` show
//! the same; every request and session leaves one log line.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tandem::status::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::metrics::{scrape, Metrics};
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

struct Setup {
    tandem: Tandem,
    web: SocketAddr,
    raw: SocketAddr,
    admin: SocketAddr,
}

/// An http frontend `web` and a tcp frontend `raw` on backend `pool` of `servers`, with
/// `extra` top-level YAML (and `check` added to the backend).
fn yaml(
    web: SocketAddr,
    raw: SocketAddr,
    admin: SocketAddr,
    check: &str,
    servers: &[(&str, SocketAddr)],
    extra: &str,
) -> String {
    let mut yaml = format!(
        "node: {{ name: obs, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n{extra}\
         frontends:\n  - {{ name: web, listen: \"{web}\", mode: http, backend: pool }}\n  \
         - {{ name: raw, listen: \"{raw}\", mode: tcp, backend: pool }}\n\
         backends:\n  - name: pool\n    retries: 0\n{check}    servers:\n"
    );
    for (name, address) in servers {
        yaml.push_str(&format!(
            "      - {{ name: {name}, address: \"{address}\" }}\n"
        ));
    }
    yaml
}

const CHECKED: &str =
    "    health_check: { type: tcp, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }\n";

fn named<'a>(servers: &[&'a TestServer]) -> Vec<(&'a str, SocketAddr)> {
    (servers.iter())
        .map(|server| (server.name.as_str(), server.address))
        .collect()
}

async fn start(check: &str, servers: &[(&str, SocketAddr)], extra: &str) -> Setup {
    let (web, raw, admin) = (listen(), listen(), listen());
    let config = yaml(web, raw, admin, check, servers, extra);
    let tandem = Tandem::start(&config, &[web, raw, admin]).await;
    Setup {
        tandem,
        web,
        raw,
        admin,
    }
}

/// Waits until a scrape satisfies `condition`.
async fn scrape_until(admin: SocketAddr, what: &str, condition: impl Fn(&Metrics) -> bool) {
    wait_until(LIMIT, what, || async { condition(&scrape(admin).await) }).await;
}

/// One request through the tcp frontend; the server's whole answer.
async fn tcp_get(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    (stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_traffic_and_server_health() {
    let mut s1 = TestServer::start("s1").await;
    let mut s2 = TestServer::start("s2").await;
    let setup = start(CHECKED, &named(&[&s1, &s2]), "").await;
    let admin = setup.admin;
    // Start-up's readiness probes were sessions too, one on each frontend.
    scrape_until(admin, "start-up's probes are counted", |m| {
        m.get("tandem_frontend_sessions_total", &[("proxy", "web")]) == 1.0
            && m.get("tandem_frontend_sessions_total", &[("proxy", "raw")]) == 1.0
    })
    .await;
    let probes = 1.0;
    let before = scrape(admin).await;
    assert_eq!(
        before.get("tandem_frontend_http_requests_total", &[("proxy", "web")]),
        0.0
    );
    assert_eq!(
        before.get("tandem_backend_active_servers", &[("proxy", "pool")]),
        2.0
    );
    assert_eq!(
        before.get(
            "tandem_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let mut client = KeepAliveClient::connect(setup.web).await;
    for _ in 0..10 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    let after = scrape(admin).await;
    let web = [("proxy", "web")];
    assert_eq!(
        after.get("tandem_frontend_sessions_total", &web),
        probes + 1.0
    );
    assert_eq!(
        after.get("tandem_frontend_current_sessions", &web),
        1.0,
        "the client is still connected"
    );
    assert_eq!(after.get("tandem_frontend_http_requests_total", &web), 10.0);
    assert_eq!(
        after.get(
            "tandem_frontend_http_responses_total",
            &[("proxy", "web"), ("code", "2xx")]
        ),
        10.0
    );
    assert_eq!(
        after.get(
            "tandem_frontend_http_responses_total",
            &[("proxy", "web"), ("code", "5xx")]
        ),
        0.0
    );
    let pool = [("proxy", "pool")];
    let sessions = |m: &Metrics, labels| m.sum("tandem_server_sessions_total", labels);
    assert_eq!(sessions(&after, &pool) - sessions(&before, &pool), 10.0);
    assert_eq!(
        after.sum("tandem_server_response_time_seconds", &pool),
        10.0,
        "histogram count"
    );
    let s1_only = [("server", "s1")];
    assert_eq!(
        sessions(&after, &s1_only) - sessions(&before, &s1_only),
        5.0,
        "round robin"
    );
    // Bytes are added to the frontend's counters in batches, and when the connection closes.
    drop(client);
    scrape_until(admin, "the closed connection's bytes are counted", |m| {
        m.get("tandem_frontend_current_sessions", &web) == 0.0
            && m.get("tandem_frontend_bytes_in_total", &web) >= 10.0 * 16.0
            && m.get("tandem_frontend_bytes_out_total", &web) >= 10.0 * 40.0
    })
    .await;

    assert!(tcp_get(setup.raw).await.contains("200 OK"));
    scrape_until(admin, "the tcp session is counted and closed", |m| {
        m.get("tandem_frontend_sessions_total", &[("proxy", "raw")]) == probes + 1.0
            && m.get("tandem_frontend_current_sessions", &[("proxy", "raw")]) == 0.0
            && m.get("tandem_frontend_bytes_out_total", &[("proxy", "raw")]) > 40.0
    })
    .await;

    s2.kill();
    scrape_until(admin, "s2 is DOWN", |m| {
        let s2 = |state| [("server", "s2"), ("state", state)];
        m.get("tandem_server_status", &s2("DOWN")) == 1.0
            && m.get("tandem_server_status", &s2("UP")) == 0.0
            && m.get("tandem_backend_active_servers", &[("proxy", "pool")]) == 1.0
    })
    .await;
    let down = scrape(admin).await;
    assert_eq!(
        down.get("tandem_server_check_up_down_total", &[("server", "s2")]),
        1.0
    );
    assert!(down.get("tandem_server_check_failures_total", &[("server", "s2")]) >= 1.0);
    assert_eq!(
        down.get("tandem_server_status", &[("server", "s1"), ("state", "UP")]),
        1.0
    );

    s1.kill();
    scrape_until(admin, "no server is up", |m| {
        m.get("tandem_backend_active_servers", &[("proxy", "pool")]) == 0.0
    })
    .await;
    assert_eq!(get(setup.web, "/").await.unwrap().status, 503);
    let failed = scrape(admin).await;
    assert_eq!(
        failed.get(
            "tandem_frontend_http_responses_total",
            &[("proxy", "web"), ("code", "5xx")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_label_takes_its_value_from_a_client() {
    let s1 = TestServer::start("s1").await;
    // Nothing listens there: connecting is refused.
    let gone = ("gone", listen());
    let setup = start("", &[(s1.name.as_str(), s1.address), gone], "").await;
    for path in ["/evil-path?evil-query=1", "/other-evil"] {
        let request = Request::builder()
            .method("PURGE")
            .uri(path)
            .header("host", "evil-host.example")
            .header("x-evil", "evil-header")
            .header("user-agent", "evil-agent")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let source = [127, 0, 0, 77].into();
        // Either server: s1 answers, or "gone" fails to connect (a 503 with retries 0).
        let answer = request_from(source, setup.web, request).await.unwrap();
        assert!([200, 503].contains(&answer.status));
    }
    let metrics = scrape(setup.admin).await;
    let allowed = [
        "proxy",
        "server",
        "code",
        "state",
        "le",
        "result",
        "version",
        "vrrp_instance",
        "vrid",
        "reason",
        "address",
        "interface",
        "operation",
    ];
    for sample in &metrics.0.samples {
        for (key, value) in sample.labels.iter() {
            assert!(
                allowed.contains(&key.as_str()),
                "label {key} on {}",
                sample.metric
            );
            assert!(
                !value.contains("evil") && !value.contains("127.0.0.77"),
                "{}{{{key}={value:?}}} came from the client",
                sample.metric
            );
        }
    }
    assert_eq!(
        metrics.get("tandem_frontend_http_requests_total", &[("proxy", "web")]),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_endpoint_and_cli_show_servers_and_frontends() {
    let s1 = TestServer::start("s1").await;
    let mut s2 = TestServer::start("s2").await;
    let setup = start(CHECKED, &named(&[&s1, &s2]), "").await;
    s2.kill();
    let status = || async {
        let answer = get(setup.admin, "/status").await.unwrap();
        assert_eq!(answer.status, 200);
        serde_json::from_slice::<Status>(&answer.body).expect("the documented status shape")
    };
    wait_until(LIMIT, "/status shows s2 DOWN", || async {
        status().await.backends[0].servers[1].state == "DOWN"
    })
    .await;
    let status = status().await;
    assert_eq!(status.node, "obs");
    assert_eq!(status.backends[0].active_servers, 1);
    assert_eq!(status.backends[0].servers[0].state, "UP");
    let frontends: Vec<_> = (status.frontends.iter())
        .map(|f| (f.name.as_str(), f.listen, f.mode.as_str(), f.accepting))
        .collect();
    assert_eq!(
        frontends,
        [
            ("web", setup.web, "http", true),
            ("raw", setup.raw, "tcp", true)
        ]
    );
    assert!(status.vrrp.is_empty());

    let output = Command::new(tandem_binary())
        .args(["status", "--config"])
        .arg(&setup.tandem.config_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let line = |name: &str| {
        (text.lines())
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(line("s2")[2], "DOWN", "{text}");
    assert_eq!(line("s1")[2], "UP", "{text}");
    assert!(line("pool").contains(&"1/2"), "{text}");
    assert_eq!(line("raw")[1], setup.raw.to_string());

    let unreachable = Command::new(tandem_binary())
        .args(["status", "--admin", &listen().to_string()])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("admin endpoint"));
}

fn lines(path: &Path) -> Vec<String> {
    (std::fs::read_to_string(path).unwrap_or_default().lines())
        .map(str::to_owned)
        .collect()
}

async fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    wait_until(
        LIMIT,
        &format!("{count} lines in {}", path.display()),
        || async { lines(path).len() >= count },
    )
    .await;
    let lines = lines(path);
    assert_eq!(lines.len(), count, "{lines:#?}");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_a_line_per_request_and_session_and_reopens_on_sighup() {
    let s1 = TestServer::start("s1").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let json_log = format!(
        "access_log: {{ format: json, path: \"{}\" }}\n",
        path.display()
    );
    let setup = start("", &named(&[&s1]), &json_log).await;

    let mut client = KeepAliveClient::connect(setup.web).await;
    assert_eq!(client.get("/first").await.unwrap().status, 200);
    assert_eq!(client.get("/second?q=1").await.unwrap().status, 200);
    tcp_get(setup.raw).await;
    let logged = wait_for_lines(&path, 4).await;
    let mut records: Vec<serde_json::Value> = (logged.iter())
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    // The probe's line comes when its session ends, which may be after the requests'.
    let sort_key = |r: &serde_json::Value| (r["bytes"] != 0, r["method"].is_null());
    records.sort_by_key(sort_key);
    let probe = &records[0];
    assert_eq!(
        probe["frontend"], "raw",
        "start-up's probe: a session that sent nothing"
    );
    assert_eq!(
        (probe["bytes"].as_u64(), probe["end"].as_str()),
        (Some(0), Some("closed"))
    );
    let http = &records[1];
    assert_eq!(http["frontend"], "web");
    assert_eq!(http["backend"], "pool");
    assert_eq!(http["server"], "s1");
    assert_eq!(http["method"], "GET");
    assert_eq!(http["path"], "/first");
    assert_eq!(http["status"], 200);
    assert_eq!(http["end"], "done");
    assert!(http["bytes"].as_u64().unwrap() >= 2, "{http}");
    assert!(http["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let (connect, first_byte, total) = (
        http["connect_us"].as_u64().unwrap(),
        http["first_byte_us"].as_u64().unwrap(),
        http["total_us"].as_u64().unwrap(),
    );
    assert!(connect <= first_byte && first_byte <= total, "{http}");
    assert!(http["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(records[2]["path"], "/second?q=1");
    let tcp = &records[3];
    assert_eq!(
        (tcp["frontend"].as_str(), tcp["method"].is_null()),
        (Some("raw"), true)
    );
    assert_eq!(tcp["end"], "closed");
    assert!(tcp["bytes"].as_u64().unwrap() > 40);

    // logrotate: move the file away, then SIGHUP; new lines go to a new file at the path.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let config = std::fs::read_to_string(&setup.tandem.config_path).unwrap();
    assert!(setup
        .tandem
        .reload(&config)
        .await
        .contains("config reloaded"));
    assert_eq!(client.get("/after").await.unwrap().status, 200);
    let after = wait_for_lines(&path, 1).await;
    let record: serde_json::Value = serde_json::from_str(&after[0]).unwrap();
    assert_eq!(record["path"], "/after");
    assert_eq!(lines(&rotated).len(), 4, "the rotated file is left alone");

    // In text, and with a server that refuses connections: a 503 that says why.
    let gone = ("gone", listen());
    let text = yaml(setup.web, setup.raw, setup.admin, "", &[gone], &json_log)
        .replace("format: json", "format: text");
    assert!(setup.tandem.reload(&text).await.contains("config reloaded"));
    assert_eq!(client.get("/text?a=1").await.map(|a| a.status), Ok(503));
    let both = wait_for_lines(&path, 2).await;
    let fields: Vec<&str> = both[1].split(' ').collect();
    // The server tried last, as HAProxy logs it.
    assert_eq!(&fields[1..3], ["web", "pool/gone"], "{}", both[1]);
    assert_eq!(&fields[4..6], ["\"GET", "/text?a=1\""], "{}", both[1]);
    assert_eq!(&fields[6..8], ["503", "20"], "{}", both[1]);
    assert_eq!(
        fields[9], "first_byte_us=-",
        "no server answered: {}",
        both[1]
    );
    assert!(fields[8].starts_with("connect_us=") && fields[10].starts_with("total_us="));
    assert_eq!(fields.last(), Some(&"end=no_server"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_and_a_removed_server_leaves_no_gauges() {
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let setup = start("", &named(&[&s1, &s2]), "").await;
    let before = scrape(setup.admin).await;
    let started = before.get("tandem_config_last_reload_success_timestamp_seconds", &[]);
    assert!(started > 1.7e9, "set at start: {started}");
    assert_eq!(
        before.get("tandem_server_status", &[("server", "s2"), ("state", "UP")]),
        1.0
    );
    assert_eq!(
        before.get("tandem_config_reloads_total", &[("result", "failure")]),
        0.0
    );

    let log = setup.tandem.reload("node: { name: [").await;
    assert!(log.contains("reload failed"));
    let config = yaml(setup.web, setup.raw, setup.admin, "", &named(&[&s1]), "");
    assert!(setup
        .tandem
        .reload(&config)
        .await
        .contains("config reloaded"));
    let after = scrape(setup.admin).await;
    assert_eq!(
        after.get("tandem_config_reloads_total", &[("result", "failure")]),
        1.0
    );
    assert_eq!(
        after.get("tandem_config_reloads_total", &[("result", "success")]),
        1.0
    );
    assert!(after.get("tandem_config_last_reload_success_timestamp_seconds", &[]) > started);
    assert_eq!(
        after.value("tandem_server_status", &[("server", "s2"), ("state", "UP")]),
        None
    );
    assert_eq!(
        after.value("tandem_server_current_sessions", &[("server", "s2")]),
        None
    );
    assert_eq!(
        after.get("tandem_backend_active_servers", &[("proxy", "pool")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_abandoned_before_its_answer_is_still_logged() {
    // A server that takes connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (web, raw, admin) = (listen(), listen(), listen());
    let log = format!("access_log: {{ path: \"{}\" }}\n", path.display());
    let config = yaml(web, raw, admin, "", &[("silent", silent_address)], &log).replace(
        "mode: http, backend: pool }",
        "mode: http, backend: pool, timeouts: { client_idle: 1s } }",
    );
    let _tandem = Tandem::start(&config, &[web, raw, admin]).await;

    let mut client = TcpStream::connect(web).await.unwrap();
    (client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await)
        .unwrap();
    scrape_until(admin, "the request waits on the server", |m| {
        m.get("tandem_server_current_sessions", &[("server", "silent")]) == 1.0
    })
    .await;
    drop(client);
    wait_until(LIMIT, "the abandoned request is logged", || async {
        lines(&path).iter().any(|line| line.contains("/slow"))
    })
    .await;
    let line = lines(&path)
        .into_iter()
        .find(|line| line.contains("/slow"))
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["status"], serde_json::Value::Null, "{record}");
    assert_eq!(record["end"], "client_aborted");
    assert_eq!(record["server"], "silent");
}
