//! The access log's templates and its syslog output, through a running tandem: a template
//! writes exactly the line it says for a real request, a bad one is a config error that says
//! where, a client's header cannot break a line, and syslog receivers on a UDP socket and a
//! unix datagram socket get RFC 5424 messages.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};

use support::metrics::scrape;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Every kind of piece: fields, a request header, a response header, one absent, and braces.
const TEMPLATE: &str = "{{{frontend}}} {backend}/{server} \\\"{method} {path}\\\" {status} \
                        {bytes} ua=\\\"{request_header.User-Agent}\\\" \
                        srv={response_header.x-server} none={request_header.x-none} {end}";

/// An http frontend `web` on backend `pool` of `server`, with `access_log` keys.
fn config(web: SocketAddr, admin: SocketAddr, server: SocketAddr, access_log: &str) -> String {
    format!(
        "node: {{ name: logs, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         access_log: {{ {access_log} }}\n\
         frontends:\n  - {{ name: web, listen: \"{web}\", mode: http, backend: pool }}\n\
         backends:\n  - name: pool\n    servers:\n      - {{ name: s1, address: \"{server}\" }}\n"
    )
}

/// One HTTP/1.1 request written as raw bytes, so a header can hold what clients may send;
/// the status line of the answer.
async fn raw_request(address: SocketAddr, head: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

async fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let read = || std::fs::read_to_string(path).unwrap_or_default();
    wait_until(
        LIMIT,
        &format!("{count} lines in the access log"),
        || async { read().lines().count() >= count },
    )
    .await;
    let text = read();
    assert!(text.ends_with('\n'), "whole lines: {text:?}");
    text.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_writes_the_line_it_says_and_a_header_cannot_break_it() {
    let server = TestServer::start("s1").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (web, admin) = (listen(), listen());
    let keys = format!(
        "format: {{ template: \"{TEMPLATE}\" }}, path: \"{}\"",
        path.display()
    );
    let tandem = Tandem::start(&config(web, admin, server.address, &keys), &[web]).await;

    let status = raw_request(
        web,
        b"GET /p?q=1 HTTP/1.1\r\nHost: web\r\nUser-Agent: probe/1.0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    // A tab, quotes, a backslash and a byte past ASCII: all a header value may hold.
    let hostile = b"GET /h HTTP/1.1\r\nHost: web\r\nUser-Agent: a\t\"b\\\" x=\"1\xff\r\n\
                    Connection: close\r\n\r\n";
    assert_eq!(raw_request(web, hostile).await, "HTTP/1.1 200 OK");
    let lines = wait_for_lines(&path, 2).await;
    assert_eq!(
        lines,
        [
            "{web} pool/s1 \"GET /p?q=1\" 200 2 ua=\"probe/1.0\" srv=s1 none=- done",
            "{web} pool/s1 \"GET /h\" 200 2 ua=\"a\\x09\\\"b\\\\\\\" x=\\\"1\\xFF\" srv=s1 \
             none=- done",
        ],
        "{}",
        tandem.log()
    );
}

#[test]
fn a_bad_template_is_a_config_error_that_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.yaml");
    let address: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    for (template, expected) in [
        (
            "{status} {agent}",
            "access_log.format.template: at offset 9: unknown field {agent}; fields are time,",
        ),
        (
            "{status} {request_header.bad name}",
            "access_log.format.template: at offset 9: {request_header.bad name}: \"bad name\" \
             is not a header name",
        ),
        (
            "{status",
            "access_log.format.template: at offset 0: a { without a } (write {{ for a brace)",
        ),
    ] {
        let keys = format!("format: {{ template: \"{template}\" }}");
        let text = config(address, "127.0.0.1:9900".parse().unwrap(), address, &keys);
        std::fs::write(&path, &text).unwrap();
        let output = Command::new(tandem_binary())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The template's line and column in the file.
        let line = text.lines().position(|l| l.contains("template")).unwrap() + 1;
        let column = text.lines().nth(line - 1).unwrap().find("\"{").unwrap() + 1;
        let at = format!("{}:{line}:{column}: {expected}", path.display());
        assert!(stderr.contains(&at), "{at}\nin\n{stderr}");
    }
}

/// The next datagram from `receive`, as text.
async fn next_message<F, Fut>(receive: F) -> String
where
    F: FnOnce(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Vec<u8>>>,
{
    let received = tokio::time::timeout(LIMIT, receive(vec![0; 4096]))
        .await
        .expect("a syslog message within the limit")
        .unwrap();
    String::from_utf8(received).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_receivers_get_rfc_5424_messages_and_drops_are_counted() {
    let server = TestServer::start("s1").await;
    let (web, admin) = (listen(), listen());
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("log.sock");
    let unix = UnixDatagram::bind(&socket_path).unwrap();
    let template = "format: { template: \"{method} {path} {status} {server}\" }";
    let over_udp = format!(
        "{template}, syslog: {{ address: \"udp://{}\", facility: local3, level: notice, \
         hostname: lb1 }}",
        udp.local_addr().unwrap()
    );
    let tandem = Tandem::start(&config(web, admin, server.address, &over_udp), &[web]).await;
    let pid = tandem.pid();

    assert_eq!(get(web, "/over-udp").await.unwrap().status, 200);
    let message = next_message(|mut buffer| async {
        let length = udp.recv(&mut buffer).await?;
        buffer.truncate(length);
        Ok(buffer)
    })
    .await;
    // local3 (19) * 8 + notice (5) = 157; the time is RFC 3339 in UTC.
    let (header, text) = message.split_at(message.find(" lb1 ").unwrap());
    assert!(
        header.starts_with("<157>1 ") && header.ends_with('Z'),
        "{message}"
    );
    assert_eq!(text, format!(" lb1 tandem {pid} - - GET /over-udp 200 s1"));

    let over_unix = format!(
        "{template}, syslog: {{ address: \"unix:{}\", tag: edge }}",
        socket_path.display()
    );
    let reloaded = tandem
        .reload(&config(web, admin, server.address, &over_unix))
        .await;
    assert!(reloaded.contains("config reloaded"), "{reloaded}");
    assert_eq!(get(web, "/over-unix").await.unwrap().status, 200);
    let message = next_message(|mut buffer| async {
        let length = unix.recv(&mut buffer).await?;
        buffer.truncate(length);
        Ok(buffer)
    })
    .await;
    // local0 (16) * 8 + info (6) = 134, the defaults; the host name is the system's.
    assert!(message.starts_with("<134>1 "), "{message}");
    let fields: Vec<&str> = message.splitn(8, ' ').collect();
    assert_eq!(
        (fields[3], fields[4], fields[5], fields[6], fields[7]),
        ("edge", &*pid.to_string(), "-", "-", "GET /over-unix 200 s1")
    );

    // The receiver goes away: lines are dropped and counted, and the warning isn't repeated
    // for each.
    drop(unix);
    std::fs::remove_file(&socket_path).unwrap();
    for _ in 0..3 {
        assert_eq!(get(web, "/dropped").await.unwrap().status, 200);
    }
    let dropped = |metrics: &support::metrics::Metrics| {
        metrics.value("tandem_access_log_syslog_dropped_total", &[])
    };
    wait_until(LIMIT, "three lines counted as dropped", || async {
        dropped(&scrape(admin).await) == Some(3.0)
    })
    .await;
    let warnings = tandem
        .log()
        .matches("sending access log lines to syslog failed")
        .count();
    assert_eq!(warnings, 1, "{}", tandem.log());
}
