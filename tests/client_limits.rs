//! `client_limits: { connections: N }` with a real tandem process, a real server and raw
//! client sockets on loopback: what one client address may hold open, on http and tcp
//! frontends, behind a PROXY-protocol balancer, across a reload, and how a bad limit is
//! reported.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::edge::connect_from;
use support::metrics::scrape;
use support::*;

const LIMIT: Duration = Duration::from_secs(20);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n";

/// Where the clients under test come from: not 127.0.0.1, which the harness's own probes
/// (connections that wait for tandem to listen) use.
fn client() -> IpAddr {
    "127.0.0.2".parse().unwrap()
}

fn other_client() -> IpAddr {
    "127.0.0.3".parse().unwrap()
}

/// An http frontend `web` and a tcp frontend `db`, both on the test server and with
/// `web_extra` and `db_extra` added; idle clients are kept for a minute.
fn yaml(
    web: SocketAddr,
    db: SocketAddr,
    admin: SocketAddr,
    server: &TestServer,
    web_extra: &str,
    db_extra: &str,
) -> String {
    format!(
        "node: {{ name: client-limits, threads: 2 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - {{ name: web, listen: \"{web}\", mode: http, backend: pool, \
         timeouts: {{ request_header: 60s }}{web_extra} }}\n\
         \x20 - {{ name: db, listen: \"{db}\", mode: tcp, backend: pool{db_extra} }}\n\
         backends:\n\
         \x20 - {{ name: pool, servers: [{{ name: s1, address: \"{}\" }}] }}\n",
        server.address
    )
}

/// A connection from `source` that sends `prefix` and a request, and is answered: the status.
async fn served_from(
    source: IpAddr,
    address: SocketAddr,
    prefix: &[u8],
) -> Option<(u16, TcpStream)> {
    let (mut stream, _) = connect_from(source, address).await;
    stream.write_all(&[prefix, REQUEST].concat()).await.ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = tokio::time::timeout(LIMIT, stream.read(&mut buffer)).await;
        match read.expect("an answer or a close in time") {
            Ok(0) | Err(_) => return None,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&received);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, stream))
}

/// A connection from `source` that is answered 200 and kept open.
async fn open_from(source: IpAddr, address: SocketAddr, prefix: &[u8]) -> TcpStream {
    match served_from(source, address, prefix).await {
        Some((200, stream)) => stream,
        other => panic!(
            "{source} to {address}: expected 200, got {:?}",
            other.map(|a| a.0)
        ),
    }
}

/// Asserts that a connection from `source` is closed without a byte of answer.
async fn assert_refused(source: IpAddr, address: SocketAddr, prefix: &[u8], why: &str) {
    let (mut stream, _) = connect_from(source, address).await;
    // The close may come before the write does.
    let _ = stream.write_all(&[prefix, REQUEST].concat()).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(LIMIT, stream.read_to_end(&mut received)).await;
    let read = read.unwrap_or_else(|_| panic!("{why}: the connection is still open"));
    // A reset (the request was sent and not read) is a close too.
    assert!(
        received.is_empty(),
        "{why}: got {:?} ({read:?})",
        String::from_utf8_lossy(&received)
    );
}

async fn denied(admin: SocketAddr, frontend: &str) -> f64 {
    scrape(admin).await.get(
        "tandem_frontend_denied_connections_total",
        &[("proxy", frontend)],
    )
}

/// Waits until a new connection from `source` is served again, once one of its connections
/// has closed (tandem sees the close a moment later).
async fn wait_until_served(source: IpAddr, address: SocketAddr, prefix: &[u8]) -> TcpStream {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some((200, stream)) = served_from(source, address, prefix).await {
            return stream;
        }
        assert!(
            Instant::now() < deadline,
            "{source} to {address}: not served again within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_its_connections_and_the_next_is_closed_on_http_and_tcp() {
    let server = TestServer::start("s1").await;
    let (web, db, admin) = (listen(), listen(), listen());
    let limited = ", client_limits: { connections: 3 }";
    let config = yaml(web, db, admin, &server, limited, limited);
    let tandem = Tandem::start(&config, &[web, db, admin]).await;
    for frontend in ["web", "db"] {
        assert_eq!(
            denied(admin, frontend).await,
            0.0,
            "{frontend}: exported from the start"
        );
    }

    for (frontend, address) in [("web", web), ("db", db)] {
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(open_from(client(), address, b"").await);
        }
        assert_refused(
            client(),
            address,
            b"",
            &format!("{frontend}: a 4th connection"),
        )
        .await;
        assert_eq!(denied(admin, frontend).await, 1.0, "{frontend}");
        // Another address has its own count.
        let _other = open_from(other_client(), address, b"").await;

        open.pop();
        open.push(wait_until_served(client(), address, b"").await);
        assert_refused(client(), address, b"", &format!("{frontend}: 3 open again")).await;
    }
    assert!(
        tandem.log().contains("client_limits.connections reached"),
        "{}",
        tandem.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_balancer_each_proxy_header_address_is_counted_apart() {
    let server = TestServer::start("s1").await;
    let (web, db, admin) = (listen(), listen(), listen());
    let limited = ", accept_proxy: true, client_limits: { connections: 2 }";
    let config = yaml(web, db, admin, &server, limited, limited);
    let _tandem = Tandem::start(&config, &[web, db, admin]).await;
    let from = |address: &str| format!("PROXY TCP4 {address} 127.0.0.1 40000 80\r\n").into_bytes();
    let (first, second) = (from("192.0.2.1"), from("192.0.2.2"));

    for address in [web, db] {
        // Every connection comes from the balancer's one address.
        let balancer = client();
        let _open = [
            open_from(balancer, address, &first).await,
            open_from(balancer, address, &first).await,
        ];
        assert_refused(balancer, address, &first, "192.0.2.1 has 2 open").await;
        let _second = [
            open_from(balancer, address, &second).await,
            open_from(balancer, address, &second).await,
        ];
        assert_refused(balancer, address, &second, "192.0.2.2 has 2 open").await;
    }
    assert_eq!(denied(admin, "web").await, 2.0);
    assert_eq!(denied(admin, "db").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_lowered_by_sighup_applies_to_new_connections() {
    let server = TestServer::start("s1").await;
    let (web, db, admin) = (listen(), listen(), listen());
    let limited = |connections: u32| {
        let extra = format!(", client_limits: {{ connections: {connections} }}");
        yaml(web, db, admin, &server, &extra, "")
    };
    let tandem = Tandem::start(&limited(3), &[web, db, admin]).await;
    let mut open = vec![
        open_from(client(), web, b"").await,
        open_from(client(), web, b"").await,
    ];

    let log = tandem.reload(&limited(1)).await;
    assert!(log.contains("config reloaded"), "{log}");
    // The two stay open, and a third, which the old limit let in, is refused.
    assert_refused(client(), web, b"", "2 open under a limit of 1").await;
    open.clear();
    let _one = wait_until_served(client(), web, b"").await;
    assert_refused(client(), web, b"", "1 open under a limit of 1").await;
    // Taken out, the limit is gone.
    let log = tandem.reload(&yaml(web, db, admin, &server, "", "")).await;
    assert_eq!(log.matches("config reloaded").count(), 2, "{log}");
    let _more = [
        open_from(client(), web, b"").await,
        open_from(client(), web, b"").await,
    ];
}

/// Each error as its operator-facing line.
fn inline_errors(text: &str) -> Vec<String> {
    let errors = tandem::config::parse(text, Path::new("inline.yaml")).expect_err("invalid");
    errors.0.iter().map(ToString::to_string).collect()
}

#[test]
fn a_zero_or_huge_connection_limit_is_reported_at_its_place() {
    let config = |connections: &str| {
        format!(
            "node: {{ name: n }}\n\
             frontends:\n\
             \x20 - name: f\n\
             \x20   listen: 127.0.0.1:80\n\
             \x20   mode: tcp\n\
             \x20   backend: b\n\
             \x20   client_limits: {{ connections: {connections} }}\n\
             backends: [{{ name: b, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}]\n"
        )
    };
    assert_eq!(
        inline_errors(&config("0")),
        ["inline.yaml:7:35: frontends[0].client_limits.connections: must be at least 1"]
    );
    assert_eq!(
        inline_errors(&config("2000000")),
        [
            "inline.yaml:7:35: frontends[0].client_limits.connections: 2000000 is out of range \
          1..=1048576, the most open files a process may have by default"
        ]
    );
    assert_eq!(
        inline_errors(&config("0, sessions: 5")),
        [
            "inline.yaml:7:35: frontends[0].client_limits.connections: must be at least 1",
            "inline.yaml:7:38: frontends[0].client_limits.sessions: unknown field `sessions`, \
             expected `connections`",
        ]
    );
}
