//! The PROXY protocol with real peers: tandem sending v1 and v2 to nginx (http and tcp mode,
//! health checks included), and tandem behind HAProxy taking the client address from the
//! header it receives (forwarding headers, balancing, access log, refusing connections without
//! one).

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::Request;
use tandem::status::Status;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use support::edge::*;
use support::metrics::scrape;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

fn source(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// GET `path` with HTTP/1.1 on `stream`, which stays open for more.
async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<ClientBody>,
    path: &str,
) -> Answer {
    sender.ready().await.unwrap();
    let request = Request::get(path)
        .header("host", "www.example.com")
        .body(body(Bytes::new()))
        .unwrap();
    read_answer(sender.send_request(request).await.unwrap())
        .await
        .unwrap()
}

/// An HTTP/1.0 request through a tcp frontend; the body of the answer.
async fn tcp_get(stream: &mut TcpStream) -> String {
    let answer = exchange(stream, b"GET / HTTP/1.0\r\nHost: www.example.com\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    body.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_behind_send_proxy_see_the_client_address_in_http_and_tcp_mode() {
    if !installed("nginx", "nginx") {
        return;
    }
    let nginx = Nginx::start_proxy_protocol_echo().await;
    let admin = listen();
    let (http_v1, http_v2, tcp_v1, tcp_v2) = (listen(), listen(), listen(), listen());
    let backend = |version: &str| {
        format!(
            "  - name: pool_{version}\n    send_proxy: {version}\n\
             \x20   health_check: {{ type: http, path: /health, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }}\n\
             \x20   servers: [{{ name: nginx, address: \"{}\" }}]\n",
            nginx.address
        )
    };
    let config = format!(
        "node: {{ name: pp, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - {{ name: http_v1, listen: \"{http_v1}\", mode: http, backend: pool_v1 }}\n\
         \x20 - {{ name: http_v2, listen: \"{http_v2}\", mode: http, backend: pool_v2 }}\n\
         \x20 - {{ name: tcp_v1, listen: \"{tcp_v1}\", mode: tcp, backend: pool_v1 }}\n\
         \x20 - {{ name: tcp_v2, listen: \"{tcp_v2}\", mode: tcp, backend: pool_v2 }}\n\
         backends:\n{}{}",
        backend("v1"),
        backend("v2"),
    );
    let _tandem = Tandem::start(&config, &[http_v1, http_v2, tcp_v1, tcp_v2, admin]).await;

    for frontend in [http_v1, http_v2] {
        // Each client its own server connection, since the header names the client.
        for last in [7, 8] {
            let (stream, client) = connect_from(source(last), frontend).await;
            let mut sender = h1_client(stream).await;
            for _ in 0..2 {
                let answer = get_on(&mut sender, "/").await;
                assert_eq!(answer.status, 200, "{frontend}");
                assert_eq!(
                    text(&answer.body),
                    format!("{client}\n"),
                    "http on {frontend}"
                );
            }
        }
    }
    for frontend in [tcp_v1, tcp_v2] {
        let (mut stream, client) = connect_from(source(7), frontend).await;
        assert_eq!(
            tcp_get(&mut stream).await,
            format!("{client}\n"),
            "tcp on {frontend}"
        );
    }

    // Checks go through the same header, so nginx answers them and the server stays up.
    wait_until(LIMIT, "nginx has answered four health checks", || async {
        nginx.access_log().matches("/health").count() >= 4
    })
    .await;
    let status: Status =
        serde_json::from_slice(&get(admin, "/status").await.unwrap().body).unwrap();
    for backend in &status.backends {
        assert_eq!(backend.servers[0].state, "UP", "{}", backend.name);
    }
    let failures = scrape(admin)
        .await
        .sum("tandem_server_check_failures_total", &[]);
    assert_eq!(failures, 0.0, "nginx log:\n{}", nginx.access_log());
}

fn text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The JSON access-log records so far.
fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    (std::fs::read_to_string(path).unwrap_or_default().lines())
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_behind_haproxy_takes_the_client_from_the_proxy_header() {
    if !installed("haproxy", "haproxy") {
        return;
    }
    let servers = [
        TestServer::start("a").await,
        TestServer::start("b").await,
        TestServer::start("c").await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (behind, direct) = (listen(), listen());
    let mut config = format!(
        "node: {{ name: pp, threads: 1 }}\n\
         access_log: {{ format: json, path: \"{}\" }}\n\
         frontends:\n\
         \x20 - {{ name: behind, listen: \"{behind}\", mode: http, accept_proxy: true, backend: pool }}\n\
         \x20 - {{ name: direct, listen: \"{direct}\", mode: http, backend: pool }}\n\
         backends:\n  - name: pool\n    balance: source_hash\n    servers:\n",
        log.display()
    );
    for server in &servers {
        let (name, address) = (&server.name, server.address);
        config.push_str(&format!(
            "      - {{ name: {name}, address: \"{address}\" }}\n"
        ));
    }
    let _tandem = Tandem::start(&config, &[behind, direct]).await;
    let haproxy = Haproxy::start_sending_proxy_v2_to(behind).await;

    let (stream, client) = connect_from(source(7), haproxy.address).await;
    let mut sender = h1_client(stream).await;
    let answer = get_on(&mut sender, "/headers").await;
    assert_eq!(answer.status, 200);
    let seen = text(&answer.body);
    assert!(seen.contains("x-forwarded-for: 127.0.0.7\n"), "{seen}");
    drop(sender);

    // source_hash: through HAProxy, each client lands where it lands when connecting directly.
    let mut reached = BTreeSet::new();
    for last in 10..26 {
        let (stream, _) = connect_from(source(last), haproxy.address).await;
        let through = get_on(&mut h1_client(stream).await, "/").await.server;
        let (stream, _) = connect_from(source(last), direct).await;
        let directly = get_on(&mut h1_client(stream).await, "/").await.server;
        assert_eq!(through, directly, "client 127.0.0.{last}");
        reached.insert(through.unwrap());
    }
    assert!(
        reached.len() > 1,
        "16 clients all on {reached:?}: hashed on HAProxy's address?"
    );

    let logged = |records: &[serde_json::Value]| {
        (records.iter()).any(|r| r["frontend"] == "behind" && r["path"] == "/headers")
    };
    wait_until(LIMIT, "the access log has the first request", || async {
        logged(&records(&log))
    })
    .await;
    let records = records(&log);
    let first = (records.iter())
        .find(|r| r["frontend"] == "behind" && r["path"] == "/headers")
        .unwrap();
    assert_eq!(first["client"], client.to_string(), "{first}");
    let requests_behind =
        (records.iter()).filter(|r| r["frontend"] == "behind" && r["path"].is_string());
    for record in requests_behind {
        let logged_client = record["client"].as_str().unwrap_or_default();
        assert!(!logged_client.starts_with("127.0.0.1:"), "{record}");
    }

    // Without a PROXY header, the connection is closed and no server hears of it.
    let requests = || servers.iter().map(TestServer::requests).sum::<usize>();
    let before = requests();
    let mut stream = TcpStream::connect(behind).await.unwrap();
    let answer = exchange(&mut stream, b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("the connection is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains(" 200 "), "{answer}");
    assert_eq!(requests(), before);

    // A v1 header written by hand.
    let mut stream = TcpStream::connect(behind).await.unwrap();
    let answer = exchange(
        &mut stream,
        b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 80\r\n\
          GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-forwarded-for: 192.0.2.9\n"), "{answer}");
}

/// What a server behind a tcp frontend got on the connection that carried `payload`: its
/// PROXY header line. Connections without the payload (start-up probes) are skipped.
async fn proxy_line_before(server: &TcpListener, payload: &str) -> (String, TcpStream) {
    let find = async {
        loop {
            let (stream, _) = server.accept().await.unwrap();
            let mut stream = BufReader::new(stream);
            let (mut header, mut first) = (Vec::new(), Vec::new());
            stream.read_until(b'\n', &mut header).await.unwrap();
            stream.read_until(b'\n', &mut first).await.unwrap();
            if first == payload.as_bytes() {
                let header = String::from_utf8_lossy(&header).into_owned();
                return (header, stream.into_inner());
            }
        }
    };
    tokio::time::timeout(LIMIT, find)
        .await
        .expect("the payload reaches the server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_frontend_passes_the_carried_client_on_to_its_servers() {
    if !installed("haproxy", "haproxy") {
        return;
    }
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = listen();
    let config = format!(
        "node: {{ name: pp, threads: 1 }}\n\
         frontends:\n\
         \x20 - {{ name: relay, listen: \"{relay}\", mode: tcp, accept_proxy: true, backend: pool }}\n\
         backends:\n  - name: pool\n    send_proxy: v1\n\
         \x20   servers: [{{ name: s1, address: \"{}\" }}]\n",
        server.local_addr().unwrap()
    );
    let _tandem = Tandem::start(&config, &[relay]).await;
    let haproxy = Haproxy::start_sending_proxy_v2_to(relay).await;

    // HAProxy sends v2; the server must get tandem's own v1 header, naming HAProxy's client.
    let (mut client, client_address) = connect_from(source(7), haproxy.address).await;
    client.write_all(b"hello\n").await.unwrap();
    let (header, mut upstream) = proxy_line_before(&server, "hello\n").await;
    let fields: Vec<&str> = header.trim_end().split(' ').collect();
    assert_eq!(fields.len(), 6, "a v1 header: {header:?}");
    let port = client_address.port().to_string();
    assert_eq!(
        (&fields[..3], fields[4]),
        (&["PROXY", "TCP4", "127.0.0.7"][..], port.as_str()),
        "{header:?}"
    );
    assert!(header.ends_with("\r\n"), "{header:?}");
    upstream.write_all(b"world\n").await.unwrap();
    drop(upstream);
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "world\n");
}
