//! WebSocket through tandem with real peers: Python's `websockets` as the server and as an
//! HTTP/1.1 client, and an HTTP/2 client doing RFC 8441's extended CONNECT with `h2` and
//! websockets' frame codec (tests/fixtures/websocket/peer.py). Debian's python3-websockets and
//! python3-h2 are needed: without them the tests skip, and under CI=true they fail.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::metrics::scrape;
use support::{free_port, listen, wait_until, Tandem};

/// Debian's Python, where apt installs the packages (a PATH python3 may be another one).
const PYTHON: &str = "/usr/bin/python3";
const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/websocket/peer.py"
);
/// How long a peer has to start, answer, or see a close that is due.
const LIMIT: Duration = Duration::from_secs(10);

/// Whether Debian's python3-websockets and python3-h2 are installed; a test skips without
/// them, and fails under CI=true, which installs them.
fn peers_installed() -> bool {
    let found = Command::new(PYTHON)
        .args(["-c", "import websockets, h2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return true;
    }
    let why = "python3-websockets and python3-h2 are not installed \
               (apt-get install python3-websockets python3-h2)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}, and CI must run this test");
    }
    eprintln!("skipped: {why}");
    false
}

/// A peer.py process, its JSON lines read as they come; killed when dropped.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(PYTHON)
            .arg(PEER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Peer {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command (see peer.py).
    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line it prints, within `LIMIT`.
    fn next(&self) -> Value {
        let line = (self.lines.recv_timeout(LIMIT))
            .unwrap_or_else(|error| panic!("peer said nothing in {LIMIT:?}: {error}"));
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }

    /// The next message it received.
    fn received(&mut self) -> String {
        self.command("recv");
        let line = self.next();
        line["received"]
            .as_str()
            .unwrap_or_else(|| panic!("no message but {line}"))
            .to_owned()
    }

    /// Sends `message` and returns the server's echo.
    fn echo(&mut self, message: &str) -> String {
        self.command(&format!("send {message}"));
        self.received()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The echo server, listening.
fn server() -> (Peer, SocketAddr) {
    let port = free_port();
    let server = Peer::start(&["server", &port.to_string()]);
    assert_eq!(server.next()["listening"], port);
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// An HTTP/1.1 WebSocket client of `path` through tandem at `address`, open.
fn client(address: SocketAddr, path: &str) -> Peer {
    let client = Peer::start(&["client", &format!("ws://{address}{path}")]);
    let opened = client.next();
    assert_eq!(opened["open"], true, "{opened}");
    client
}

/// tandem on a fresh address with an admin endpoint, its frontend given `frontend` (indented
/// YAML), in front of `server`.
async fn tandem(
    server: SocketAddr,
    frontend: &str,
    node: &str,
) -> (Tandem, SocketAddr, SocketAddr) {
    let (address, admin) = (listen(), listen());
    let tandem = Tandem::start(&config(address, admin, server, frontend, node), &[address]).await;
    (tandem, address, admin)
}

fn config(
    address: SocketAddr,
    admin: SocketAddr,
    server: SocketAddr,
    frontend: &str,
    node: &str,
) -> String {
    format!(
        "node: {{ name: test, threads: 1{node} }}\n\
         admin: {{ listen: {admin} }}\n\
         frontends:\n  - name: fe\n    listen: {address}\n    mode: http\n    backend: pool\n{frontend}\
         backends:\n  - name: pool\n    servers: [{{ name: ws1, address: {server} }}]\n"
    )
}

#[tokio::test]
async fn websocket_over_http_1_1_carries_messages_both_ways_and_keeps_close_codes() {
    if !peers_installed() {
        return;
    }
    let (server, server_address) = server();
    let (address, admin) = (listen(), listen());
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    let yaml = config(address, admin, server_address, "", "")
        + &format!(
            "access_log: {{ format: json, path: \"{}\" }}\n",
            access_log.display()
        );
    let tandem = Tandem::start(&yaml, &[address]).await;

    let mut first = client(address, "/chat?room=1");
    assert_eq!(first.received(), "welcome /chat?room=1", "server to client");
    assert_eq!(
        first.echo("hello"),
        "echo hello",
        "client to server and back"
    );
    let large = "x".repeat(200_000);
    assert_eq!(first.echo(&large), format!("echo {large}"));
    first.command("send close 4001 server says bye");
    first.command("wait_close 10");
    let closed = first.next();
    assert_eq!(closed["closed"], 4001, "the server's close code: {closed}");
    assert_eq!(closed["reason"], "server says bye");
    assert_eq!(server.next()["closed"], 4001);

    let mut second = client(address, "/other");
    assert_eq!(second.received(), "welcome /other");
    second.command("close 4002 client says bye");
    assert_eq!(second.next()["closed"], 4002);
    let seen = server.next();
    assert_eq!(seen["closed"], 4002, "the client's close code: {seen}");
    assert_eq!(seen["reason"], "client says bye");

    wait_until(LIMIT, "both tunnels counted, and closed", || async {
        let metrics = scrape(admin).await;
        let labels = [("proxy", "fe")];
        metrics.get("tandem_frontend_tunnels_total", &labels) == 2.0
            && metrics.get("tandem_frontend_tunnels_current", &labels) == 0.0
    })
    .await;
    let log = tandem.log();
    assert!(log.contains("tunnel closed"), "{log}");

    // One line per tunnel, written when it closed: the bytes are those sent to the client.
    let read = || -> Vec<Value> {
        (std::fs::read_to_string(&access_log).unwrap_or_default())
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    wait_until(LIMIT, "both tunnels in the access log", || {
        let lines = read().len();
        async move { lines == 2 }
    })
    .await;
    let lines = read();
    let line = |path: &str| {
        (lines.iter())
            .find(|line| line["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {lines:?}"))
    };
    let first = line("/chat?room=1");
    assert_eq!(first["status"], 101, "{first}");
    assert_eq!(first["end"], "server_closed", "{first}");
    assert_eq!(first["server"], "ws1");
    assert!(first["bytes"].as_u64().unwrap() > 0, "{first}");
    // Whoever starts the closing handshake, the server closes TCP first (RFC 6455 §7.1.1).
    let second = line("/other");
    assert_eq!(second["status"], 101, "{second}");
    assert_eq!(second["end"], "server_closed", "{second}");
}

#[tokio::test]
async fn websocket_over_tls_carries_large_messages_both_ways() {
    if !peers_installed() {
        return;
    }
    let (server, server_address) = server();
    let pki = support::edge::Pki::new();
    let leaf = pki.leaf("site", &["localhost"]);
    let frontend = format!(
        "    tls: {{ certificates: [{{ cert: {}, key: {} }}] }}\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    let (_tandem, address, _admin) = tandem(server_address, &frontend, "").await;
    let url = format!("wss://localhost:{}/secure", address.port());
    let ca = pki.ca_path.to_str().unwrap();
    let mut client = Peer::start(&["client", &url, ca]);
    assert_eq!(client.next()["open"], true);
    assert_eq!(client.received(), "welcome /secure");
    // Little that deflate can shrink: many TLS records each way.
    let mut state = 1u64;
    let noise: String = (0..300_000)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'!' + (state >> 58) as u8)
        })
        .collect();
    assert_eq!(client.echo(&noise), format!("echo {noise}"));
    client.command("close 4005 tls bye");
    assert_eq!(client.next()["closed"], 4005);
    assert_eq!(server.next()["closed"], 4005);
}

#[tokio::test]
async fn websocket_over_http_2_extended_connect_reaches_an_http_1_1_server() {
    if !peers_installed() {
        return;
    }
    let (server, server_address) = server();
    let (_tandem, address, _admin) = tandem(server_address, "", "").await;
    let port = address.port().to_string();
    let mut client = Peer::start(&["h2client", "127.0.0.1", &port, "/live"]);
    let answer = client.next();
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(
        answer["headers"].get("sec-websocket-accept").is_none(),
        "the HTTP/1.1 handshake's own header stays on its hop: {answer}"
    );
    assert_eq!(client.received(), "welcome /live");
    assert_eq!(client.echo("hello over h2"), "echo hello over h2");
    client.command("send close 4003 h2 bye");
    client.command("wait_close");
    let closed = client.next();
    assert_eq!(closed["closed"], 4003, "{closed}");
    assert_eq!(closed["reason"], "h2 bye");
    assert_eq!(closed["stream_ended"], true);
    assert_eq!(server.next()["closed"], 4003);
}

#[tokio::test]
async fn a_tunnel_idle_past_timeouts_tunnel_is_closed() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    let frontend = "    timeouts: { tunnel: 1s, client_idle: 30s }\n";
    let (tandem, address, _admin) = tandem(server_address, frontend, "").await;
    let mut client = client(address, "/quiet");
    assert_eq!(client.received(), "welcome /quiet");
    client.command("wait_close 10");
    let closed = client.next();
    assert!(closed.get("timed_out").is_none(), "never closed: {closed}");
    let after = closed["after"]
        .as_f64()
        .unwrap_or_else(|| panic!("{closed}"));
    assert!(
        (0.9..5.0).contains(&after),
        "closed {after} s into the quiet, with a 1 s timeout"
    );
    wait_until(LIMIT, "the close logged", || async {
        tandem.log().contains("tunnel_timeout")
    })
    .await;
}

#[tokio::test]
async fn an_http_2_connection_is_not_idle_while_its_tunnel_is_open() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    let frontend = "    timeouts: { client_idle: 1s }\n";
    let (_tandem, address, _admin) = tandem(server_address, frontend, "").await;
    let port = address.port().to_string();
    let mut client = Peer::start(&["h2client", "127.0.0.1", &port, "/calm"]);
    assert_eq!(client.next()["status"], 200);
    assert_eq!(client.received(), "welcome /calm");
    // Quiet for more than client_idle (and its watchdog's quarter more): the tunnel has an hour.
    client.command("quiet 2.5");
    assert_eq!(client.next()["quiet"], 2.5);
    assert_eq!(client.echo("awake"), "echo awake");
}

#[tokio::test]
async fn a_tunnel_keeps_working_across_a_reload() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    let (tandem, address, admin) = tandem(server_address, "", "").await;
    let mut client = client(address, "/before");
    assert_eq!(client.received(), "welcome /before");
    assert_eq!(client.echo("one"), "echo one");
    let changed = config(
        address,
        admin,
        server_address,
        "    timeouts: { tunnel: 2h }\n    response_headers: { set: { x-reloaded: yes } }\n",
        "",
    );
    let log = tandem.reload(&changed).await;
    assert!(log.contains("config reloaded"), "{log}");
    assert_eq!(
        client.echo("two"),
        "echo two",
        "the open tunnel after the reload"
    );
    let mut after = self::client(address, "/after");
    assert_eq!(after.received(), "welcome /after", "a new one after it");
}

#[tokio::test]
async fn a_tunnel_open_at_sigterm_is_drained_and_then_tandem_exits() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    let node = ", shutdown_timeout: 30s";
    let (mut tandem, address, _admin) = tandem(server_address, "", node).await;
    let mut client = client(address, "/drain");
    assert_eq!(client.received(), "welcome /drain");
    tandem.signal("TERM");
    wait_until(LIMIT, "draining started: the listener closed", || async {
        tokio::net::TcpStream::connect(address).await.is_err()
    })
    .await;
    assert_eq!(
        client.echo("still here"),
        "echo still here",
        "while draining"
    );
    assert!(tandem.exited().is_none(), "tandem left with a tunnel open");
    client.command("close 1000 done");
    assert_eq!(client.next()["closed"], 1000);
    let closed = Instant::now();
    let status = exit_within(tandem, LIMIT).await;
    assert!(
        status.is_some_and(|status| status.success()),
        "tandem exits once the tunnel has closed: {status:?}"
    );
    assert!(
        closed.elapsed() < Duration::from_secs(30),
        "it waited for shutdown_timeout, not for the tunnel"
    );
}

/// How `tandem` exited, if it did within `limit`.
async fn exit_within(mut tandem: Tandem, limit: Duration) -> Option<std::process::ExitStatus> {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = tandem.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
}

/// The keepalive timer `ss` shows on the established socket matching `filter`, in whole
/// seconds (`ss` writes `49sec`, `2min5sec`, `120min`).
fn keepalive_timer(filter: &str) -> Option<u64> {
    let output = Command::new("ss")
        .args(["-tnoH", "state", "established", filter])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one socket matches {filter}: {text}");
    let timer = lines[0]
        .split("timer:(keepalive,")
        .nth(1)?
        .split(',')
        .next()?;
    let mut seconds = 0;
    let mut rest = timer;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        seconds += match &rest[..unit] {
            "h" => number * 3600,
            "min" => number * 60,
            "sec" => number,
            "ms" => 0,
            other => panic!("unknown unit {other:?} in {timer:?}"),
        };
        rest = &rest[unit..];
    }
    Some(seconds)
}

#[tokio::test]
async fn tcp_keepalive_is_set_on_client_and_server_connections() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    let frontend = "    tcp_keepalive: { idle: 50s, interval: 10s, count: 3 }\n";
    let (address, admin) = (listen(), listen());
    // Added to the backend, whose keys the config ends with.
    let yaml =
        config(address, admin, server_address, frontend, "") + "    tcp_keepalive: { idle: 40s }\n";
    let _tandem = Tandem::start(&yaml, &[address]).await;
    let mut client = client(address, "/kept");
    assert_eq!(client.received(), "welcome /kept");

    let accepted = keepalive_timer(&format!("( sport = :{} )", address.port()))
        .expect("keepalive on the accepted connection");
    assert!((1..=50).contains(&accepted), "idle 50s: {accepted}");
    let to_server = keepalive_timer(&format!("( dport = :{} )", server_address.port()))
        .expect("keepalive on the server connection");
    assert!((1..=40).contains(&to_server), "idle 40s: {to_server}");
}

/// `GET /headers` asking to upgrade to `protocol`, on a new client connection.
async fn upgrade_request(address: SocketAddr, protocol: &str) -> support::Answer {
    let mut request = support::get_request(address, "/headers");
    let headers = request.headers_mut();
    headers.insert("connection", "upgrade".parse().unwrap());
    headers.insert("upgrade", protocol.parse().unwrap());
    support::request_from([127, 0, 0, 1].into(), address, request)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upgrade_answered_plainly_is_an_ordinary_response_on_a_connection_of_its_own() {
    let server = support::TestServer::start("plain").await;
    let frontend = "    upgrades: [websocket]\n";
    let (_tandem, address, _admin) = tandem(server.address, frontend, "").await;
    assert_eq!(support::get(address, "/").await.unwrap().status, 200);
    assert_eq!(server.control.connections.load(Ordering::SeqCst), 1);

    let answer = upgrade_request(address, "websocket").await;
    assert_eq!(
        answer.status, 200,
        "the server did not switch: its answer as is"
    );
    let seen = String::from_utf8_lossy(&answer.body);
    assert!(seen.contains("upgrade: websocket\n"), "{seen}");
    assert!(seen.contains("connection: upgrade\n"), "{seen}");
    assert_eq!(
        server.control.connections.load(Ordering::SeqCst),
        2,
        "an upgrade never goes on a pooled connection"
    );

    let answer = upgrade_request(address, "x-not-allowed").await;
    assert_eq!(answer.status, 200);
    let seen = String::from_utf8_lossy(&answer.body);
    assert!(
        !seen.contains("upgrade"),
        "an upgrade the frontend does not allow is not passed on: {seen}"
    );
}

#[tokio::test]
async fn tcp_keepalive_is_set_in_tcp_mode_too() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    let frontend = "    tcp_keepalive: { idle: 30s }\n";
    let (address, admin) = (listen(), listen());
    let yaml = config(address, admin, server_address, frontend, "")
        .replace("mode: http", "mode: tcp")
        + "    tcp_keepalive: true\n";
    let _tandem = Tandem::start(&yaml, &[address]).await;
    // WebSocket relayed as bytes: the connections stay open to be looked at.
    let mut client = client(address, "/relayed");
    assert_eq!(client.received(), "welcome /relayed");

    let accepted = keepalive_timer(&format!("( sport = :{} )", address.port()))
        .expect("keepalive on the accepted connection");
    assert!((1..=30).contains(&accepted), "idle 30s: {accepted}");
    let kernel_default = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap();
    let to_server = keepalive_timer(&format!("( dport = :{} )", server_address.port()))
        .expect("keepalive on the server connection");
    assert!(
        to_server > 30 && to_server <= kernel_default,
        "the kernel's {kernel_default}s: {to_server}"
    );
}

/// A WebSocket client frame (masked, RFC 6455 §5.2) of a short payload.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(
        payload
            .iter()
            .zip(mask.iter().cycle())
            .map(|(byte, mask)| byte ^ mask),
    );
    frame
}

/// The next server frame (unmasked, short): its opcode and payload.
async fn server_frame<R: tokio::io::AsyncRead + Unpin>(io: &mut R) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    assert!(head[1] < 126, "short frames only: {head:?}");
    let mut payload = vec![0; usize::from(head[1])];
    io.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

#[tokio::test]
async fn an_http_2_tunnel_open_at_sigterm_is_drained_too() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    if !peers_installed() {
        return;
    }
    let (server, server_address) = server();
    let node = ", shutdown_timeout: 30s";
    let (tandem, address, _admin) = tandem(server_address, "", node).await;
    // hyper's HTTP/2 client (Python's h2 takes a GOAWAY for the end of every stream).
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let get = http::Request::get(format!("http://{address}/"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    // Answered after tandem's SETTINGS, which allow extended CONNECT, have come.
    sender.send_request(get).await.unwrap();
    let mut connect = http::Request::connect(format!("http://{address}/drain"))
        .header("sec-websocket-version", "13")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    (connect.extensions_mut()).insert(hyper::ext::Protocol::from_static("websocket"));
    let response = sender.send_request(connect).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut tunnel = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    assert_eq!(
        server_frame(&mut tunnel).await,
        (1, b"welcome /drain".to_vec())
    );

    tandem.signal("TERM");
    wait_until(LIMIT, "draining started: the listener closed", || async {
        tokio::net::TcpStream::connect(address).await.is_err()
    })
    .await;
    tunnel
        .write_all(&client_frame(1, b"still here"))
        .await
        .unwrap();
    assert_eq!(
        server_frame(&mut tunnel).await,
        (1, b"echo still here".to_vec()),
        "while draining"
    );
    let mut close = 4004u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    tunnel.write_all(&client_frame(8, &close)).await.unwrap();
    assert_eq!(server_frame(&mut tunnel).await, (8, close));
    assert_eq!(server.next()["closed"], 4004);
    assert_eq!(
        tunnel.read(&mut [0; 1]).await.unwrap(),
        0,
        "the stream ends"
    );
    let status = exit_within(tandem, LIMIT).await;
    assert!(
        status.is_some_and(|status| status.success()),
        "tandem exits once the tunnel has closed: {status:?}"
    );
}

#[tokio::test]
async fn other_connects_over_http_2_are_still_refused() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let server = support::TestServer::start("plain").await;
    let (_tandem, address, _admin) = tandem(server.address, "", "").await;
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let get = http::Request::get(format!("http://{address}/"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(get).await.unwrap().status(), 200);
    let mut other = http::Request::connect(format!("http://{address}/chat"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    (other.extensions_mut()).insert(hyper::ext::Protocol::from_static("x-other"));
    let answer = sender.send_request(other).await.unwrap();
    assert_eq!(
        answer.status(),
        405,
        "an extended CONNECT for another protocol"
    );
    let plain = http::Request::connect(address.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = sender.send_request(plain).await.unwrap();
    assert_eq!(answer.status(), 405, "a plain CONNECT");
    assert_eq!(server.requests(), 1, "neither reached the server");
}

#[tokio::test]
async fn on_down_shutdown_sessions_closes_a_tunnel_to_a_server_marked_down() {
    if !peers_installed() {
        return;
    }
    let (_server, server_address) = server();
    // The check goes to a port of its own, so the server is marked down while it still runs.
    let check = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let check_port = check.local_addr().unwrap().port();
    let (address, admin) = (listen(), listen());
    let text = config(address, admin, server_address, "", "").replace(
        "    servers: [",
        &format!(
            "    on_down: shutdown_sessions\n    health_check: {{ type: tcp, port: {check_port}, \
             interval: 100ms, timeout: 90ms, rise: 1, fall: 1 }}\n    servers: ["
        ),
    );
    let tandem = Tandem::start(&text, &[address]).await;
    let mut client = client(address, "/down");
    assert_eq!(client.received(), "welcome /down");
    assert_eq!(client.echo("still open"), "echo still open");
    drop(check);
    client.command("wait_close 10");
    let closed = client.next();
    assert!(closed.get("timed_out").is_none(), "never closed: {closed}");
    wait_until(LIMIT, "the close logged", || async {
        tandem.log().contains("server_shutdown")
    })
    .await;
}
