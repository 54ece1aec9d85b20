//! The tcp frontend against real servers on loopback.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A tcp server that reads until the client half-closes, then answers how much it got and
/// whom the client reached.
async fn counting_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut received = Vec::new();
                stream.read_to_end(&mut received).await.unwrap();
                let reply = format!("{name} got {} bytes", received.len());
                stream.write_all(reply.as_bytes()).await.unwrap();
            });
        }
    });
    address
}

async fn read_reply(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .expect("no reply within 5 s")
        .unwrap();
    String::from_utf8(reply).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_reaches_the_server_and_its_answer_still_comes_back() {
    let server = counting_server("db1").await;
    let (_tandem, address) = start_proxy("tcp", "least_conn", "", &[("db1", server, 1)]).await;

    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(&[7u8; 100_000]).await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_reply(&mut client).await, "db1 got 100000 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_and_with_no_server_the_client_is_closed() {
    let live = counting_server("live").await;
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let address = listen();
    let yaml = config(
        "tcp",
        address,
        "round_robin",
        "    retries: 1\n",
        &[("dead", dead, 1), ("live", live, 1)],
    );
    let _tandem = Tandem::start(&yaml, &[address]).await;
    for _ in 0..4 {
        let mut client = TcpStream::connect(address).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(read_reply(&mut client).await, "live got 0 bytes");
    }

    let (_tandem, address) = start_proxy("tcp", "round_robin", "", &[("dead", dead, 1)]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    assert_eq!(read_reply(&mut client).await, "");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_client_idle() {
    let server = counting_server("db1").await;
    let address = listen();
    let yaml = config("tcp", address, "round_robin", "", &[("db1", server, 1)]).replace(
        "    backend: pool\n",
        "    backend: pool\n    timeouts: { client_idle: 500ms }\n",
    );
    let _tandem = Tandem::start(&yaml, &[address]).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    client.write_all(b"hello").await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection still open: {read:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_max_connections_wait_until_one_leaves() {
    let server = counting_server("db1").await;
    let address = listen();
    let yaml = config("tcp", address, "round_robin", "", &[("db1", server, 1)]).replace(
        "    backend: pool\n",
        "    backend: pool\n    max_connections: 2\n",
    );
    let _tandem = Tandem::start(&yaml, &[address]).await;

    let mut first = TcpStream::connect(address).await.unwrap();
    let _second = TcpStream::connect(address).await.unwrap();
    // The kernel completes the handshake, but tandem does not serve the third client yet.
    let mut third = TcpStream::connect(address).await.unwrap();
    third.shutdown().await.unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the third client was served while two were open: {early:?}"
    );

    first.shutdown().await.unwrap();
    assert_eq!(read_reply(&mut first).await, "db1 got 0 bytes");
    drop(first);
    assert_eq!(read_reply(&mut third).await, "db1 got 0 bytes");
}
