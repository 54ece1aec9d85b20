//! The http frontend against real servers on loopback.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_clients_reuse_pooled_server_connections() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;

    let mut client = KeepAliveClient::connect(address).await;
    for _ in 0..10 {
        let answer = client.get("/").await.unwrap();
        assert_eq!((answer.status, answer.server.as_deref()), (200, Some("s1")));
    }
    assert_eq!(server.requests(), 10);
    assert_eq!(
        server.control.connections.load(Ordering::SeqCst),
        1,
        "every request should reuse one server connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_added() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;

    let request = Request::get("/headers")
        .header("host", "app.example")
        .header("connection", "keep-alive, x-secret")
        .header("keep-alive", "timeout=5")
        .header("x-secret", "hop")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-app", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = request_from([127, 0, 0, 1].into(), address, request)
        .await
        .unwrap();
    let seen = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(seen.contains("host: app.example\n"), "{seen}");
    assert!(seen.contains("x-app: kept\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    for hop in ["x-secret", "keep-alive", "connection: keep-alive, x-secret"] {
        assert!(!seen.contains(hop), "{hop} reached the server: {seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_up_answers_503_with_a_short_body() {
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("s1", dead, 1)]).await;
    let answer = get(address, "/").await.unwrap();
    assert_eq!(answer.status, 503);
    assert!(!answer.body.is_empty() && answer.body.len() < 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_on_another_server() {
    let live = TestServer::start("live").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let servers = [("dead", dead, 1), ("live", live.address, 1)];

    let (tandem, address) = start_proxy("http", "round_robin", "    retries: 1\n", &servers).await;
    for _ in 0..6 {
        let answer = get(address, "/").await.unwrap();
        assert_eq!(
            (answer.status, answer.server.as_deref()),
            (200, Some("live"))
        );
    }
    drop(tandem);

    // Without retries, the requests that rotation sends to the dead server fail.
    let (_tandem, address) = start_proxy("http", "round_robin", "    retries: 0\n", &servers).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(address, "/").await.unwrap().status);
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_fails_mid_request_gives_502() {
    let broken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broken_address = broken.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = broken.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer).await;
            // Hang up without an answer.
        }
    });
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", broken_address, 1)]).await;
    assert_eq!(get(address, "/").await.unwrap().status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_gives_504_after_the_response_timeout() {
    let server = TestServer::start("slow").await;
    server.control.delay_ms.store(3000, Ordering::SeqCst);
    let address = listen();
    let yaml = config(
        "http",
        address,
        "round_robin",
        "    response_timeout: 300ms\n",
        &[("s1", server.address, 1)],
    );
    let _tandem = Tandem::start(&yaml, &[address]).await;
    let started = Instant::now();
    let answer = get(address, "/").await.unwrap();
    assert_eq!(answer.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_never_reach_a_server() {
    let server = TestServer::start("s1").await;
    let (_tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    for malformed in [
        "GET / HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "GET /\x01path HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(malformed.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.starts_with("HTTP/1.1 400"),
            "{malformed:?} got {reply:?}"
        );
    }
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off() {
    let server = TestServer::start("s1").await;
    let address = listen();
    let yaml = config(
        "http",
        address,
        "round_robin",
        "",
        &[("s1", server.address, 1)],
    )
    .replace(
        "    backend: pool\n",
        "    backend: pool\n    timeouts: { request_header: 1s, client_idle: 60s }\n",
    );
    let _tandem = Tandem::start(&yaml, &[address]).await;

    let mut stream = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A slowloris client: one header byte every 200 ms keeps the socket busy but never finishes.
    let closed_after = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"X").await.is_err() {
            break started.elapsed();
        }
        let mut byte = [0u8; 256];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "slow client still connected"
        );
    };
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed too early: {closed_after:?}"
    );
    assert!(
        closed_after < Duration::from_secs(4),
        "closed too late: {closed_after:?}"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_flat_memory() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let server = TestServer::start("s1").await;
    let (tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    let before_kib = tandem.status_kib("VmRSS");

    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let upload = Request::post("/upload")
        .header("host", "x")
        .body(ZeroBody::new(SIZE))
        .unwrap();
    let answer = read_answer(sender.send_request(upload).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.body.as_ref()),
        (200, SIZE.to_string().as_bytes())
    );

    let answer = get(address, &format!("/download/{SIZE}")).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len() as u64, SIZE);

    let peak_kib = tandem.status_kib("VmHWM");
    assert!(
        peak_kib < before_kib + 32 * 1024,
        "tandem grew from {before_kib} KiB to a peak of {peak_kib} KiB"
    );
}

/// A server whose first connection answers one request, then hangs up on the next one
/// unanswered, as a server does when its keep-alive timeout races with a new request.
async fn server_dropping_its_first_connection() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for connection in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                for request in 0.. {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if connection == 0 && request == 1 => return,
                        Ok(_) => {
                            let reply = format!("HTTP/1.1 200 OK\r\nx-server: conn{connection}\r\ncontent-length: 2\r\n\r\nok");
                            stream.write_all(reply.as_bytes()).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_is_resent_when_a_reused_connection_fails() {
    let server = server_dropping_its_first_connection().await;
    let (_tandem, address) = start_proxy(
        "http",
        "round_robin",
        "    retries: 0\n",
        &[("s1", server, 1)],
    )
    .await;
    let first = get(address, "/").await.unwrap();
    assert_eq!(
        (first.status, first.server.as_deref()),
        (200, Some("conn0"))
    );
    // The stimulus, not a wait for anything: a server closes connections that have idled, so
    // tandem keeps a copy to resend only on a connection idle for 500 ms or more.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = get(address, "/").await.unwrap();
    assert_eq!(
        (second.status, second.server.as_deref()),
        (200, Some("conn1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_is_not_resent() {
    let server = server_dropping_its_first_connection().await;
    let (_tandem, address) = start_proxy(
        "http",
        "round_robin",
        "    retries: 0\n",
        &[("s1", server, 1)],
    )
    .await;
    assert_eq!(get(address, "/").await.unwrap().status, 200);
    let post = Request::post("/orders")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(b"buy")))
        .unwrap();
    let answer = request_from([127, 0, 0, 1].into(), address, post)
        .await
        .unwrap();
    assert_eq!(answer.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    let server = TestServer::start("s1").await;
    server.control.delay_ms.store(500, Ordering::SeqCst);
    let (mut tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    let mut client = KeepAliveClient::connect(address).await;
    let in_flight = tokio::spawn(async move { client.get("/").await });
    wait_until(
        Duration::from_secs(5),
        "the request reached the server",
        || async { server.requests() == 1 },
    )
    .await;

    let status = tokio::task::spawn_blocking(move || tandem.signal_and_wait("TERM"))
        .await
        .unwrap();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!((answer.status, answer.server.as_deref()), (200, Some("s1")));
    assert!(status.success(), "tandem exited with {status}");
    assert!(
        TcpStream::connect(address).await.is_err(),
        "still accepting after exit"
    );
}

/// SIGTERM closes at once the connections with no request in progress: one whose client has
/// sent nothing yet, and a keep-alive one between requests. Neither waits for the shutdown
/// timeout (30 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_without_a_request_at_once() {
    let server = TestServer::start("s1").await;
    let (tandem, address) =
        start_proxy("http", "round_robin", "", &[("s1", server.address, 1)]).await;
    let mut silent = TcpStream::connect(address).await.unwrap();
    let mut between = TcpStream::connect(address).await.unwrap();
    between
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), between.read(&mut head))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..read]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    tandem.signal("TERM");
    for (which, stream) in [("silent", &mut silent), ("between requests", &mut between)] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest));
        assert!(
            closed.await.is_ok(),
            "the {which} connection still open 5 s after SIGTERM"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_server_does_not_downgrade_the_client_connection() {
    let (server, _task) = spawn_server(|mut stream| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("old", server, 1)]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    for _ in 0..3 {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut reply))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&reply[..read]);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(
            !reply.to_ascii_lowercase().contains("connection: close"),
            "{reply}"
        );
    }
}

/// An HTTP/1.0 request without a Host header stays HTTP/1.0 on its way to the server: made
/// HTTP/1.1, it would lack the Host that 1.1 requires, and nginx, say, would answer 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_request_without_host_reaches_the_server_as_http_1_0() {
    let (server, _task) = spawn_server(|mut stream| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buffer[..read]).into_owned();
        let line = head.lines().next().unwrap_or("").to_owned();
        let reply = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{line}",
            line.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    })
    .await;
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("old", server, 1)]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(b"GET /x HTTP/1.0\r\n\r\n").await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    assert!(reply.ends_with("GET /x HTTP/1.0"), "{reply}");
}

/// A server may answer before a request body has all arrived. Its connection is still busy
/// with that upload, so it must not be handed to the next request, which would wait behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_uploading_is_not_reused() {
    // Answers each request as soon as its head arrives, reading no body.
    let (server, _task) = spawn_server(|mut stream| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                return;
            }
            if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let (_tandem, address) = start_proxy("http", "round_robin", "", &[("early", server, 1)]).await;
    let mut uploader = TcpStream::connect(address).await.unwrap();
    uploader
        .write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut reply = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), uploader.read(&mut reply))
        .await
        .expect("the early answer arrives")
        .unwrap();
    assert!(reply[..read].starts_with(b"HTTP/1.1 200"));

    let answer = tokio::time::timeout(Duration::from_secs(3), get(address, "/next"))
        .await
        .expect("the next request is not held behind the unfinished upload")
        .unwrap();
    assert_eq!(answer.status, 200);
    drop(uploader);
}
