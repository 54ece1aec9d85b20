//! Hostile and unusual HTTP requests, written byte for byte on raw sockets, against a real
//! tandem and real servers on loopback: what the client is answered, and whether a server ever
//! saw the request.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer before calling it missing.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A response as it came over the wire.
#[derive(Debug)]
struct RawAnswer {
    /// `HTTP/1.1 400 Bad Request`, say.
    status_line: String,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads one response head, and its body by Content-Length (tandem's own answers have one).
async fn read_raw_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut received = Vec::new();
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout(ANSWER_WITHIN, stream.read(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("a readable connection");
        assert!(
            read > 0,
            "closed before a whole head: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = received[head_end..].to_vec();
    while body.len() < length {
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout(ANSWER_WITHIN, stream.read(&mut buffer))
            .await
            .expect("a body in time")
            .expect("a readable connection");
        assert!(read > 0, "closed mid-body");
        body.extend_from_slice(&buffer[..read]);
    }
    RawAnswer {
        status_line: head.lines().next().unwrap_or("").to_owned(),
        head,
        body,
    }
}

/// Writes `request` on a new connection and reads the answer.
async fn exchange(address: SocketAddr, request: &[u8]) -> RawAnswer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_raw_answer(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_1_without_one_valid_host_gets_400_and_never_reaches_a_server() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n",
        "GET http://example.com/ HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a@evil.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:badport\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET http://user@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a b\r\n\r\n",
    ] {
        let answer = exchange(address, request.as_bytes()).await;
        assert_eq!(answer.status(), 400, "{request:?}: {answer:?}");
    }
    assert_eq!(server.requests(), 0, "a server saw a request");

    // What the grammar allows goes through: an HTTP/1.0 request needs no Host.
    for request in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
    ] {
        let answer = exchange(address, request.as_bytes()).await;
        assert_eq!(answer.status(), 200, "{request:?}: {answer:?}");
        assert_eq!(answer.body, b"s1");
    }
    assert_eq!(server.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_authority_with_userinfo_gets_400_and_never_reaches_a_server() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    for (uri, status) in [
        ("http://a@evil.example/", 400),
        ("http://example.com:8080/", 200),
    ] {
        let request = hyper::Request::get(uri)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), status, "{uri}");
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_method_gets_501_and_never_reaches_a_server() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    for length in [33, 64 * 1024] {
        let request = format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "A".repeat(length));
        let answer = exchange(address, request.as_bytes()).await;
        assert_eq!(
            answer.status_line, "HTTP/1.1 501 Not Implemented",
            "a method of {length} bytes"
        );
    }
    assert_eq!(server.requests(), 0, "a server saw a request");
    // The longest registered method (WebDAV's) and a made-up one at the bound go through.
    for method in ["UPDATEREDIRECTREF", &"B".repeat(32)] {
        let request = format!("{method} / HTTP/1.1\r\nHost: x\r\n\r\n");
        let answer = exchange(address, request.as_bytes()).await;
        assert_eq!(answer.status(), 200, "{method}: {answer:?}");
    }
    assert_eq!(server.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_gets_400_and_counts_against_the_client() {
    let server = TestServer::start("s1").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (address, admin) = (listen(), listen());
    let yaml = config(
        "http",
        address,
        "round_robin",
        "",
        &[("s1", server.address, 1)],
    ) + &format!(
        "admin: {{ listen: \"{admin}\" }}\naccess_log: {{ format: json, path: \"{}\" }}\n",
        log.display()
    );
    let _tandem = Tandem::start(&yaml, &[address, admin]).await;
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\r\nzz\r\n\r\n",
    ] {
        let request =
            format!("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let answer = exchange(address, request.as_bytes()).await;
        assert_eq!(answer.status_line, "HTTP/1.1 400 Bad Request", "{body:?}");
        // Answered here: the server's own answer to a broken upload names it.
        assert!(!answer.head.contains("x-server"), "{answer:?}");
    }
    wait_until(ANSWER_WITHIN, "three lines in the access log", || async {
        std::fs::read_to_string(&log).is_ok_and(|text| text.lines().count() == 3)
    })
    .await;
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (record["status"].as_u64(), record["end"].as_str()),
            (Some(400), Some("bad_request")),
            "{record}"
        );
    }
    let metrics = support::metrics::scrape(admin).await;
    let server_labels = [("server", "s1")];
    assert_eq!(
        metrics.get("tandem_server_connection_errors_total", &server_labels),
        0.0
    );
    assert_eq!(
        metrics.get("tandem_server_retries_total", &server_labels),
        0.0
    );
    // Not marked down, and not retried: the next request goes to the same server, once.
    let before = server.requests();
    let answer = exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, &b"s1"[..]));
    assert_eq!(server.requests(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_2_is_answered_as_1_1_and_the_connection_closed() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_raw_answer(&mut stream).await;
    assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{answer:?}");
    assert_eq!(answer.body, b"s1");
    let mut rest = Vec::new();
    tokio::time::timeout(ANSWER_WITHIN, stream.read_to_end(&mut rest))
        .await
        .expect("the connection closed after the answer")
        .unwrap();
    assert_eq!(rest, b"", "nothing after the answer");
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_answered() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n" {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
    }
    let answer = read_raw_answer(&mut stream).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, &b"s1"[..]));
    // The connection goes on as usual once hyper has it.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_raw_answer(&mut stream).await.status(), 200);
}

/// How a raw test server meets a request that expects `100 Continue`.
#[derive(Clone, Copy, Debug)]
enum OnExpect {
    /// Says continue, reads the body, answers 200.
    Continue,
    /// Refuses at once with 401, without reading the body.
    Refuse,
    /// Ignores the expectation: waits for the body, answers 200.
    Ignore,
}

/// A server written byte for byte: it tells what request heads it got, and meets each with
/// `behaviour`.
async fn expect_server(
    behaviour: OnExpect,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (heads, received) = tokio::sync::mpsc::unbounded_channel();
    // Dropping the task's handle leaves it serving.
    let (address, _) = spawn_server(move |mut stream| {
        let heads = heads.clone();
        async move {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
            let answer: &[u8] = match behaviour {
                OnExpect::Refuse => b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno",
                OnExpect::Continue | OnExpect::Ignore => {
                    if let OnExpect::Continue = behaviour {
                        stream
                            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                            .await
                            .unwrap();
                    }
                    let mut body = [0u8; 5];
                    if stream.read_exact(&mut body).await.is_err() || &body != b"hello" {
                        return;
                    }
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                }
            };
            stream.write_all(answer).await.unwrap();
            let _ = stream.read(&mut [0u8; 64]).await;
        }
    })
    .await;
    (address, received)
}

const EXPECTING: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_100_continue_reaches_the_client_before_it_sends_the_body() {
    let (server, mut heads) = expect_server(OnExpect::Continue).await;
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("s1", server, 1)]).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(EXPECTING).await.unwrap();
    let interim = read_raw_answer(&mut stream).await;
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue");
    let head = heads.recv().await.unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("expect: 100-continue\r\n"),
        "the server was not asked: {head:?}"
    );
    stream.write_all(b"hello").await.unwrap();
    let answer = read_raw_answer(&mut stream).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, &b"ok"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_before_the_body_is_answered_without_100() {
    let (server, mut heads) = expect_server(OnExpect::Refuse).await;
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("s1", server, 1)]).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(EXPECTING).await.unwrap();
    // Not told to go on: the first answer is the server's refusal, and no body was sent.
    let answer = read_raw_answer(&mut stream).await;
    assert_eq!(
        answer.status_line, "HTTP/1.1 401 Unauthorized",
        "{answer:?}"
    );
    assert_eq!(answer.body, b"no");
    assert!(heads.recv().await.unwrap().starts_with("POST /upload "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ignoring_expect_gets_the_body_after_a_short_wait() {
    let (server, _heads) = expect_server(OnExpect::Ignore).await;
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("s1", server, 1)]).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(EXPECTING).await.unwrap();
    let interim = read_raw_answer(&mut stream).await;
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue");
    stream.write_all(b"hello").await.unwrap();
    let answer = read_raw_answer(&mut stream).await;
    assert_eq!((answer.status(), answer.body.as_slice()), (200, &b"ok"[..]));
}
