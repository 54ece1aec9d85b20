//! Response compression on an http frontend, as curl sees it: each algorithm curl decodes here
//! (zstd, br, gzip) arrives encoded and decodes to the server's bytes exactly, over HTTP/1.1
//! and HTTP/2; what must not be compressed (already encoded, small, another type, a range,
//! HEAD) arrives as the server sent it; Vary is set either way; a stream is compressed as it
//! flows, each part decodable as soon as it arrives. And `check` places a bad algorithm or size.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use compression_codecs::core::util::{PartialBuffer, WriteBuffer};
use compression_codecs::{DecodeV2, GzipDecoder};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use support::edge::{body, curl, h1_client, installed};
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// `len` bytes of text that compress well but are not all one byte.
fn page(len: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 64);
    let mut line = 0u64;
    while text.len() < len {
        let line_text = format!(
            "line {line}: the quick brown fox jumps over {} lazy dogs\n",
            line * line % 977
        );
        text.extend_from_slice(line_text.as_bytes());
        line += 1;
    }
    text.truncate(len);
    text
}

const PAGE: usize = 40 * 1024;
/// What /stream sends: three events, each its own chunk.
const EVENTS: [&str; 3] = [
    "event: tick\ndata: one\n\n",
    "event: tick\ndata: two\n\n",
    "event: tick\ndata: three\n\n",
];

type Reply = BoxBody<Bytes, Infallible>;

fn reply(status: u16, headers: &[(&str, &str)], bytes: Vec<u8>) -> Response<Reply> {
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        let name: http::HeaderName = name.parse().unwrap();
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// The server behind tandem. `/text` (honouring `Range: bytes=0-99`), `/json`, `/small`,
/// `/image`, `/encoded` (already br) and `/vary` answer at once; `/stream` sends [`EVENTS`]
/// as separate chunks, 50 ms apart; `/held` sends its first event and the rest only once
/// `release` is notified.
async fn answer(request: Request<Incoming>, release: Arc<Notify>) -> Response<Reply> {
    let text = "text/plain; charset=utf-8";
    match request.uri().path() {
        "/text" if request.headers().get("range").is_some() => reply(
            206,
            &[
                ("content-type", text),
                ("content-range", &format!("bytes 0-99/{PAGE}")),
            ],
            page(PAGE)[..100].to_vec(),
        ),
        "/text" => reply(
            200,
            &[
                ("content-type", text),
                ("etag", "\"v1\""),
                ("accept-ranges", "bytes"),
            ],
            page(PAGE),
        ),
        "/json" => reply(200, &[("content-type", "application/json")], page(PAGE)),
        "/small" => reply(200, &[("content-type", text)], page(200)),
        "/image" => reply(200, &[("content-type", "image/png")], page(PAGE)),
        "/encoded" => reply(
            200,
            &[("content-type", text), ("content-encoding", "br")],
            page(PAGE),
        ),
        "/vary" => reply(
            200,
            &[("content-type", text), ("vary", "Origin")],
            page(PAGE),
        ),
        "/stream" => {
            let events = futures_util::stream::unfold(0, |sent| async move {
                if sent == EVENTS.len() {
                    return None;
                }
                if sent > 0 {
                    // The pace of a real event stream; what is checked is only the bytes.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let frame = Frame::data(Bytes::from_static(EVENTS[sent].as_bytes()));
                Some((Ok::<_, Infallible>(frame), sent + 1))
            });
            let mut response = Response::new(StreamBody::new(events).boxed());
            (response.headers_mut()).insert("content-type", "text/event-stream".parse().unwrap());
            response
        }
        "/held" => {
            let events = futures_util::stream::unfold(0, move |sent| {
                let release = Arc::clone(&release);
                async move {
                    match sent {
                        0 => {}
                        1 => release.notified().await,
                        _ => return None,
                    }
                    let data = match sent {
                        0 => Bytes::from_static(EVENTS[0].as_bytes()),
                        _ => Bytes::from(EVENTS[1..].concat()),
                    };
                    Some((Ok::<_, Infallible>(Frame::data(data)), sent + 1))
                }
            });
            let mut response = Response::new(StreamBody::new(events).boxed());
            (response.headers_mut()).insert("content-type", "text/event-stream".parse().unwrap());
            response
        }
        _ => reply(404, &[("content-type", text)], b"no such page\n".to_vec()),
    }
}

struct Setup {
    tandem: Tandem,
    listen: SocketAddr,
    release: Arc<Notify>,
    access_log: tempfile::NamedTempFile,
    _server: tokio::task::JoinHandle<()>,
}

/// The server, and tandem in front of it with `compression` (flow YAML) on its frontend.
async fn start(compression: &str) -> Setup {
    let release = Arc::new(Notify::new());
    let for_server = Arc::clone(&release);
    let (server, task) = spawn_server(move |stream| {
        let release = Arc::clone(&for_server);
        async move {
            let service = service_fn(move |request| {
                let release = Arc::clone(&release);
                async move { Ok::<_, Infallible>(answer(request, release).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    let listen = listen();
    let access_log = tempfile::NamedTempFile::new().unwrap();
    let config = format!(
        "node: {{ name: compress, threads: 1 }}\n\
         access_log: {{ format: json, path: \"{}\" }}\n\
         frontends:\n\
         \x20 - name: web\n    listen: \"{listen}\"\n    mode: http\n    backend: app\n\
         \x20   compression: {compression}\n\
         backends:\n\
         \x20 - {{ name: app, servers: [{{ name: s, address: \"{server}\" }}] }}\n",
        access_log.path().display()
    );
    let tandem = Tandem::start(&config, &[listen]).await;
    Setup {
        tandem,
        listen,
        release,
        access_log,
        _server: task,
    }
}

/// The algorithms this curl decodes, by `curl -V`'s features; each one missing is said, and
/// under CI=true fails the test, since CI's curl (Debian's) has them all.
fn curl_decodes() -> Vec<&'static str> {
    if !installed("curl", "curl") {
        return Vec::new();
    }
    let version = Command::new("curl").arg("-V").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let features: Vec<&str> = (version.lines())
        .find_map(|line| line.strip_prefix("Features:"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mut decodes = Vec::new();
    for (algorithm, feature) in [("zstd", "zstd"), ("br", "brotli"), ("gzip", "libz")] {
        if features.contains(&feature) {
            decodes.push(algorithm);
            continue;
        }
        let why = format!("curl here lacks {feature}, so {algorithm} is not tested");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
    }
    decodes
}

/// The `bytes` of the access log's line for `target` (path and query, asked for once), once
/// it is written.
async fn logged_bytes(log: &Path, target: &str) -> u64 {
    let mut bytes = None;
    wait_until(LIMIT, "the access log has the request", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        bytes = (text.lines())
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|line| line["path"] == target)
            .map(|line| line["bytes"].as_u64().unwrap());
        async move { bytes.is_some() }
    })
    .await;
    bytes.unwrap()
}

const ISSUE_EXAMPLE: &str =
    "{ algorithms: [zstd, br, gzip], types: [text/*, application/json], min_size: 1KiB }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_algorithm_curl_decodes_arrives_compressed_and_decodes_to_the_servers_bytes() {
    let algorithms = curl_decodes();
    if algorithms.is_empty() {
        return;
    }
    let setup = start(ISSUE_EXAMPLE).await;
    let mut cases = 0;
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        for algorithm in &algorithms {
            for path in ["/text", "/json"] {
                cases += 1;
                let target = format!("{path}?case={cases}");
                let url = format!("http://{}{target}", setup.listen);
                let accept = format!("Accept-Encoding: {algorithm}");
                let raw = curl(&[version, "-H", &accept, &url]).await;
                let case = format!("{version} {algorithm} {path}");
                assert_eq!(raw.status, 200, "{case}");
                assert_eq!(raw.header("content-encoding"), Some(*algorithm), "{case}");
                assert_eq!(raw.header("vary"), Some("accept-encoding"), "{case}");
                assert_eq!(raw.header("content-length"), None, "{case}");
                assert!(
                    raw.bytes.len() < PAGE / 4,
                    "{case}: {} bytes on the wire",
                    raw.bytes.len()
                );
                if path == "/text" {
                    assert_eq!(raw.header("etag"), Some("w/\"v1\""), "{case}");
                    assert_eq!(raw.header("accept-ranges"), None, "{case}");
                    let logged = logged_bytes(setup.access_log.path(), &target).await;
                    assert_eq!(
                        logged,
                        raw.bytes.len() as u64,
                        "{case}: the log counts what was sent"
                    );
                }

                let decoded = curl(&[version, "--compressed", "-H", &accept, &url]).await;
                assert_eq!(
                    decoded.header("content-encoding"),
                    Some(*algorithm),
                    "{case}"
                );
                assert!(
                    decoded.bytes == page(PAGE),
                    "{case}: decodes to the server's bytes"
                );
            }
        }
    }
    // curl's own Accept-Encoding offers all it decodes; tandem's first choice among them wins.
    let url = format!("http://{}/text", setup.listen);
    let decoded = curl(&["--compressed", &url]).await;
    assert_eq!(decoded.header("content-encoding"), Some(algorithms[0]));
    assert!(decoded.bytes == page(PAGE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_must_not_be_compressed_arrives_as_the_server_sent_it() {
    if curl_decodes().is_empty() {
        return;
    }
    let setup = start(ISSUE_EXAMPLE).await;
    let url = |path: &str| format!("http://{}{path}", setup.listen);
    let gzip = "Accept-Encoding: gzip, br, zstd";

    let encoded = curl(&["-H", gzip, &url("/encoded")]).await;
    assert_eq!(encoded.header("content-encoding"), Some("br"));
    assert_eq!(encoded.header("content-length"), Some(&*PAGE.to_string()));
    assert_eq!(encoded.header("vary"), None);
    assert!(
        encoded.bytes == page(PAGE),
        "already encoded: passed untouched"
    );

    let small = curl(&["-H", gzip, &url("/small")]).await;
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(
        small.header("vary"),
        None,
        "never compressed, so it does not vary"
    );
    assert!(small.bytes == page(200), "below min_size");

    let image = curl(&["-H", gzip, &url("/image")]).await;
    assert_eq!(image.header("content-encoding"), None);
    assert_eq!(image.header("vary"), None);
    assert!(image.bytes == page(PAGE), "a type not listed");

    let part = curl(&["-H", gzip, "-H", "Range: bytes=0-99", &url("/text")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), None);
    assert_eq!(
        part.header("content-range"),
        Some(&*format!("bytes 0-99/{PAGE}"))
    );
    assert!(
        part.bytes == page(PAGE)[..100],
        "a range is never compressed"
    );

    let head = curl(&["--head", "-H", gzip, &url("/text")]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-encoding"),
        None,
        "HEAD has no body to compress"
    );
    assert_eq!(head.header("content-length"), Some(&*PAGE.to_string()));
    assert_eq!(head.header("vary"), Some("accept-encoding"));

    let plain = curl(&[&url("/text?plain")]).await;
    assert_eq!(plain.header("content-encoding"), None, "no Accept-Encoding");
    assert_eq!(
        plain.header("vary"),
        Some("accept-encoding"),
        "but it could vary"
    );
    assert_eq!(plain.header("etag"), Some("\"v1\""));
    assert!(plain.bytes == page(PAGE));
    assert_eq!(
        logged_bytes(setup.access_log.path(), "/text?plain").await,
        PAGE as u64
    );

    let identity = curl(&["-H", "Accept-Encoding: gzip;q=0.5, identity", &url("/text")]).await;
    assert_eq!(
        identity.header("content-encoding"),
        None,
        "identity weighs more"
    );

    let vary = curl(&["-H", gzip, &url("/vary")]).await;
    assert_eq!(
        vary.header("vary"),
        Some("origin, accept-encoding"),
        "merged"
    );
    assert!(vary.header("content-encoding").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_arrives_compressed_and_whole() {
    let algorithms = curl_decodes();
    if algorithms.is_empty() {
        return;
    }
    let setup = start("{ types: [text/event-stream] }").await;
    let url = format!("http://{}/stream", setup.listen);
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        for algorithm in &algorithms {
            let accept = format!("Accept-Encoding: {algorithm}");
            let case = format!("{version} {algorithm}");
            let raw = curl(&[version, "-H", &accept, &url]).await;
            assert_eq!(raw.header("content-encoding"), Some(*algorithm), "{case}");
            let decoded = curl(&[version, "--compressed", "-H", &accept, &url]).await;
            assert_eq!(
                decoded.header("content-encoding"),
                Some(*algorithm),
                "{case}"
            );
            assert_eq!(
                String::from_utf8(decoded.bytes).unwrap(),
                EVENTS.concat(),
                "{case}"
            );
        }
    }
}

/// Decodes gzip that may stop midway: what the bytes so far decode to.
fn gunzip_so_far(compressed: &[u8]) -> Vec<u8> {
    let mut decoder = GzipDecoder::new();
    let mut input = PartialBuffer::new(compressed);
    let mut decoded = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let mut out = WriteBuffer::new_initialized(&mut chunk);
        let ended = decoder.decode(&mut input, &mut out).unwrap();
        let full = out.has_no_spare_space();
        decoded.extend_from_slice(out.written());
        if ended || (input.unwritten().is_empty() && !full) {
            return decoded;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_part_of_a_stream_is_decodable_as_soon_as_it_arrives() {
    let setup = start("{ algorithms: [gzip], types: [text/event-stream] }").await;
    let stream = TcpStream::connect(setup.listen).await.unwrap();
    let mut client = h1_client(stream).await;
    let request = Request::get("/held")
        .header("host", "example.com")
        .header("accept-encoding", "gzip")
        .body(body(Bytes::new()))
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut body = response.into_body();
    // The server sends the rest only once the first event has been decoded here: were it held
    // in the compressor, this would wait for ever.
    let mut compressed = Vec::new();
    while gunzip_so_far(&compressed) != EVENTS[0].as_bytes() {
        let frame = tokio::time::timeout(LIMIT, body.frame())
            .await
            .expect("the first event arrives while the server holds the rest")
            .expect("the body goes on")
            .unwrap();
        compressed.extend_from_slice(frame.data_ref().unwrap());
    }
    setup.release.notify_one();
    while let Some(frame) = tokio::time::timeout(LIMIT, body.frame()).await.unwrap() {
        compressed.extend_from_slice(frame.unwrap().data_ref().unwrap());
    }
    assert_eq!(gunzip_so_far(&compressed), EVENTS.concat().as_bytes());
    drop(setup.tandem);
}

/// Each error of `text`, read as the file `inline.yaml`, as its operator-facing line.
fn inline_errors(text: &str) -> Vec<String> {
    let errors = tandem::config::parse(text, Path::new("inline.yaml")).expect_err("invalid");
    errors.0.iter().map(ToString::to_string).collect()
}

#[test]
fn check_places_a_bad_algorithm_and_a_bad_size() {
    let text = "\
node: { name: n }
frontends:
  - name: web
    listen: 127.0.0.1:80
    mode: http
    backend: b
    compression: { algorithms: [zstd, brotli, gzip], types: [text/*], min_size: 1KB }
backends:
  - { name: b, servers: [{ name: s, address: 127.0.0.1:81 }] }
";
    assert_eq!(
        inline_errors(text),
        [
            "inline.yaml:7:39: frontends[0].compression.algorithms[1]: unknown algorithm \
             \"brotli\"; use zstd, br or gzip; brotli is written br, as in Content-Encoding",
            "inline.yaml:7:81: frontends[0].compression.min_size: invalid size \"1KB\": \"KB\" \
             is ambiguous; write 1KiB for the binary unit (1KiB = 1024 bytes), or the number of \
             bytes",
        ]
    );
    let tcp = text
        .replace("mode: http", "mode: tcp")
        .replace("brotli", "br");
    let errors = inline_errors(&tcp);
    assert!(
        errors.contains(
            &"inline.yaml:7:5: frontends[0].compression: compression needs mode: http; a tcp \
              frontend relays bytes as they are"
                .to_string()
        ),
        "{errors:?}"
    );
}
