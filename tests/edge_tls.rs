//! TLS termination as clients see it: the certificate SNI picks, TLS 1.2 and 1.3, ALPN and
//! HTTP/2 (rustls and curl clients), large bodies streaming over HTTP/2 and h2c, h2load's load,
//! a gRPC-style exchange with an h2 server (trailers), certificates reloaded on SIGHUP, the
//! expiry metric, and `tandem check` naming a missing certificate file.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use rustls::version::{TLS12, TLS13};
use rustls::ProtocolVersion;
use tokio::net::TcpStream;

use support::edge::*;
use support::metrics::scrape;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Certificates for the `edge` frontend; `site` comes first, so it is the default.
struct Certificates {
    site: Leaf,
    static_site: Leaf,
    wildcard: Leaf,
}

impl Certificates {
    fn issue(pki: &Pki) -> Certificates {
        Certificates {
            site: pki.leaf("site", &["www.example.com", "example.com"]),
            static_site: pki.leaf("static", &["static.example.com"]),
            wildcard: pki.leaf("wildcard", &["*.example.net"]),
        }
    }
}

/// tandem with three http frontends on one backend: `edge` (TLS, every certificate, ALPN left
/// out), `only11` (TLS, the site certificate, `alpn: [http/1.1]`) and `plain`.
struct Edge {
    tandem: Tandem,
    edge: SocketAddr,
    only11: SocketAddr,
    plain: SocketAddr,
}

fn edge_config(
    certificates: &Certificates,
    (edge, only11, plain): (SocketAddr, SocketAddr, SocketAddr),
    backend: &str,
    extra: &str,
) -> String {
    let Certificates {
        site,
        static_site,
        wildcard,
    } = certificates;
    format!(
        "node: {{ name: edge, threads: 1 }}\n{extra}\
         frontends:\n\
         \x20 - name: edge\n    listen: \"{edge}\"\n    mode: http\n    backend: pool\n\
         \x20   tls:\n      certificates:\n        - {}\n        - {}\n        - {}\n\
         \x20 - name: only11\n    listen: \"{only11}\"\n    mode: http\n    backend: pool\n\
         \x20   tls:\n      certificates: [{}]\n      alpn: [http/1.1]\n\
         \x20 - {{ name: plain, listen: \"{plain}\", mode: http, backend: pool }}\n\
         backends:\n  - name: pool\n{backend}",
        site.yaml(),
        static_site.yaml(),
        wildcard.yaml(),
        site.yaml(),
    )
}

fn one_server(name: &str, address: SocketAddr) -> String {
    format!("    servers:\n      - {{ name: {name}, address: \"{address}\" }}\n")
}

async fn start_edge(certificates: &Certificates, backend: &str, extra: &str) -> Edge {
    let addresses = (listen(), listen(), listen());
    let config = edge_config(certificates, addresses, backend, extra);
    let (edge, only11, plain) = addresses;
    let tandem = Tandem::start(&config, &[edge, only11, plain]).await;
    Edge {
        tandem,
        edge,
        only11,
        plain,
    }
}

fn text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

async fn send<B>(
    sender: &mut hyper::client::conn::http2::SendRequest<B>,
    request: Request<B>,
) -> Answer
where
    B: hyper::body::Body + 'static,
{
    let response = sender.send_request(request).await.expect("an h2 response");
    read_answer(response).await.unwrap()
}

fn get_h2(uri: &str) -> Request<ClientBody> {
    Request::get(uri).body(body(Bytes::new())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_alpn_the_protocol_on_tls_12_and_13() {
    let pki = Pki::new();
    let certificates = Certificates::issue(&pki);
    let web = TestServer::start("web").await;
    let setup = start_edge(&certificates, &one_server("web", web.address), "").await;

    let Certificates {
        site,
        static_site,
        wildcard,
    } = &certificates;
    let cases = [
        (Some("www.example.com"), site, "exact name"),
        (
            Some("example.com"),
            site,
            "exact name, the default's second",
        ),
        (Some("static.example.com"), static_site, "exact name"),
        (Some("shop.example.net"), wildcard, "wildcard, one label"),
        (
            Some("a.shop.example.net"),
            site,
            "a wildcard covers one label only",
        ),
        (
            Some("example.net"),
            site,
            "a wildcard does not cover its parent",
        ),
        (Some("unknown.test"), site, "no name matches: the first"),
        (None, site, "no SNI: the first"),
    ];
    for (version, expected_version) in [
        (&TLS13, ProtocolVersion::TLSv1_3),
        (&TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let client = tls_client(Trust::AnyCertificate, &["h2", "http/1.1"], &[version]);
        for (sni, expected, why) in &cases {
            let stream = tls_connect(&client, setup.edge, *sni).await.unwrap();
            let shook = handshake(&stream);
            assert!(
                shook.leaf == expected.der,
                "SNI {sni:?} over {expected_version:?} ({why}): served the wrong certificate"
            );
            assert_eq!(shook.version, expected_version);
            assert_eq!(shook.alpn.as_deref(), Some("h2"), "SNI {sni:?}");
        }
    }

    // ALPN: the client's choice among what the frontend offers.
    let offers: [(&[&str], SocketAddr, Option<&str>); 4] = [
        (&["http/1.1"], setup.edge, Some("http/1.1")),
        (&[], setup.edge, None),
        (&["h2", "http/1.1"], setup.only11, Some("http/1.1")),
        (&["http/1.1", "h2"], setup.only11, Some("http/1.1")),
    ];
    for (offer, address, expected) in offers {
        let client = tls_client(Trust::AnyCertificate, offer, ALL_VERSIONS);
        let stream = tls_connect(&client, address, Some("www.example.com"))
            .await
            .unwrap();
        assert_eq!(
            handshake(&stream).alpn.as_deref(),
            expected,
            "offered {offer:?}"
        );
    }

    // Requests over each, with the certificate verified against the test CA.
    let h2 = tls_client(Trust::Ca(&pki), &["h2"], ALL_VERSIONS);
    let stream = tls_connect(&h2, setup.edge, Some("static.example.com"))
        .await
        .unwrap();
    let mut sender = h2_client(stream).await;
    let answer = send(&mut sender, get_h2("https://static.example.com/headers")).await;
    assert_eq!(
        (answer.status, answer.server.as_deref()),
        (200, Some("web"))
    );
    let seen = text(&answer.body);
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
    assert!(seen.contains("host: static.example.com\n"), "{seen}");

    let h1 = tls_client(Trust::Ca(&pki), &["h2", "http/1.1"], ALL_VERSIONS);
    let stream = tls_connect(&h1, setup.only11, Some("www.example.com"))
        .await
        .unwrap();
    let mut sender = h1_client(stream).await;
    let request = Request::get("/headers")
        .header("host", "www.example.com")
        .body(body(Bytes::new()))
        .unwrap();
    let answer = read_answer(sender.send_request(request).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.server.as_deref()),
        (200, Some("web"))
    );
    assert!(text(&answer.body).contains("x-forwarded-proto: https\n"));

    let answer = get(setup.plain, "/headers").await.unwrap();
    let seen = text(&answer.body);
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_http2_or_http11_and_verifies_the_certificate_for_each_name() {
    if !installed("curl", "curl") {
        return;
    }
    let pki = Pki::new();
    let certificates = Certificates::issue(&pki);
    let web = TestServer::start("web").await;
    let setup = start_edge(&certificates, &one_server("web", web.address), "").await;
    let ca = pki.ca_path.display().to_string();

    let cases = [
        ("www.example.com", setup.edge, "--http2", "2"),
        ("static.example.com", setup.edge, "--http2", "2"),
        ("shop.example.net", setup.edge, "--http2", "2"),
        ("static.example.com", setup.edge, "--http1.1", "1.1"),
        ("www.example.com", setup.only11, "--http2", "1.1"),
        ("www.example.com", setup.only11, "--http1.1", "1.1"),
    ];
    for (name, address, flag, expected_version) in cases {
        let port = address.port();
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}/headers");
        // curl fails unless the certificate chains to the CA and covers `name`.
        let answer = curl(&["--resolve", &resolve, "--cacert", &ca, flag, &url]).await;
        assert_eq!(
            (answer.status, answer.http_version.as_str()),
            (200, expected_version),
            "{name} on {address} with {flag}"
        );
        assert_eq!(answer.header("x-server"), Some("web"));
        assert!(answer.body.contains("x-forwarded-proto: https\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_large_bodies_both_ways_and_h2c_shares_the_plain_listener() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let pki = Pki::new();
    let certificates = Certificates::issue(&pki);
    let web = TestServer::start("web").await;
    let setup = start_edge(&certificates, &one_server("web", web.address), "").await;
    let before_kib = setup.tandem.status_kib("VmRSS");

    let client = tls_client(Trust::Ca(&pki), &["h2"], ALL_VERSIONS);
    let stream = tls_connect(&client, setup.edge, Some("www.example.com"))
        .await
        .unwrap();
    let mut sender = h2_client(stream).await;
    let response = sender
        .send_request(get_h2(&format!("https://www.example.com/download/{SIZE}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut download = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = download.frame().await {
        received += frame
            .unwrap()
            .data_ref()
            .map_or(0, |data| data.len() as u64);
    }
    assert_eq!(received, SIZE, "the whole download over h2");

    let upload = Request::post("https://www.example.com/upload")
        .body(ZeroBody::new(SIZE).boxed())
        .unwrap();
    let answer = send(&mut sender, upload).await;
    assert_eq!((answer.status, text(&answer.body)), (200, SIZE.to_string()));
    let peak_kib = setup.tandem.status_kib("VmHWM");
    assert!(
        peak_kib < before_kib + 32 * 1024,
        "streamed bodies should not be held: tandem grew from {before_kib} KiB to {peak_kib} KiB"
    );

    // h2c with prior knowledge and HTTP/1.1 on the same plain listener.
    let stream = TcpStream::connect(setup.plain).await.unwrap();
    let mut sender = h2_client(stream).await;
    let plain = setup.plain;
    let answer = send(&mut sender, get_h2(&format!("http://{plain}/headers"))).await;
    assert_eq!(
        (answer.status, answer.server.as_deref()),
        (200, Some("web"))
    );
    assert!(text(&answer.body).contains("x-forwarded-proto: http\n"));
    let upload = Request::post(format!("http://{plain}/upload"))
        .body(ZeroBody::new(SIZE / 8).boxed())
        .unwrap();
    let answer = send(&mut sender, upload).await;
    assert_eq!(
        (answer.status, text(&answer.body)),
        (200, (SIZE / 8).to_string())
    );

    let mut http11 = KeepAliveClient::connect(setup.plain).await;
    for _ in 0..2 {
        let answer = http11.get("/").await.unwrap();
        assert_eq!(
            (answer.status, answer.server.as_deref()),
            (200, Some("web"))
        );
    }

    if installed("curl", "curl") {
        let url = format!("http://{plain}/");
        let answer = curl(&["--http2-prior-knowledge", &url]).await;
        assert_eq!((answer.status, answer.http_version.as_str()), (200, "2"));
        let answer = curl(&["--http1.1", &url]).await;
        assert_eq!((answer.status, answer.http_version.as_str()), (200, "1.1"));
        assert_eq!(answer.body, "web");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_gets_every_request_answered_over_https_and_h2c() {
    if !installed("h2load", "nghttp2-client") {
        return;
    }
    let pki = Pki::new();
    let certificates = Certificates::issue(&pki);
    let web = TestServer::start("web").await;
    let setup = start_edge(&certificates, &one_server("web", web.address), "").await;

    for url in [
        format!("https://{}/", setup.edge),
        format!("http://{}/", setup.plain),
    ] {
        let report = h2load(&["-n", "5000", "-c", "10", "-m", "10", &url]).await;
        assert_eq!(
            (report.succeeded, report.failed, report.status_2xx),
            (5000, 0, 5000),
            "{url}:\n{}",
            report.output
        );
    }
    assert_eq!(web.requests(), 10_000);
}

/// A gRPC message: uncompressed, length-prefixed.
fn grpc_message(payload: &[u8]) -> Bytes {
    let mut message = vec![0u8];
    message.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    message.extend_from_slice(payload);
    Bytes::from(message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_style_calls_reach_an_h2_server_and_its_trailers_come_back() {
    let pki = Pki::new();
    let certificates = Certificates::issue(&pki);
    let grpc = GrpcEchoServer::start().await;
    let backend = format!("    protocol: h2\n{}", one_server("grpc", grpc.address));
    let setup = start_edge(&certificates, &backend, "").await;

    let client = tls_client(Trust::Ca(&pki), &["h2"], ALL_VERSIONS);
    let tls = tls_connect(&client, setup.edge, Some("www.example.com"))
        .await
        .unwrap();
    let h2c = TcpStream::connect(setup.plain).await.unwrap();
    let calls = [
        (h2_client(tls).await, "https://www.example.com"),
        (h2_client(h2c).await, &*format!("http://{}", setup.plain)),
    ];
    for (index, (mut sender, origin)) in calls.into_iter().enumerate() {
        let message = grpc_message(format!("hello {index}").as_bytes());
        let request = Request::post(format!("{origin}/echo.Echo/Say"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body(message.clone()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200, "{origin}");
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        assert_eq!(collected.to_bytes(), message, "{origin}: the echoed body");
        let status = trailers.as_ref().and_then(|t| t.get("grpc-status"));
        assert_eq!(
            status.map(|value| value.to_str().unwrap()),
            Some("0"),
            "{origin}: trailers {trailers:?}"
        );
    }
    let seen = grpc.requests();
    assert_eq!(seen.len(), 2);
    for headers in &seen {
        assert_eq!(
            headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert_eq!(
            headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/grpc"[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_on_sighup_and_a_broken_key_keeps_the_old_one() {
    let pki = Pki::new();
    let certificates = Certificates::issue(&pki);
    let web = TestServer::start("web").await;
    let setup = start_edge(&certificates, &one_server("web", web.address), "").await;
    let config = std::fs::read_to_string(&setup.tandem.config_path).unwrap();
    let any = tls_client(Trust::AnyCertificate, &["http/1.1"], ALL_VERSIONS);
    let served = |sni: &'static str| {
        let any = &any;
        let edge = setup.edge;
        async move { handshake(&tls_connect(any, edge, Some(sni)).await.unwrap()).leaf }
    };

    // A keep-alive connection made before the reload.
    let verified = tls_client(Trust::Ca(&pki), &["http/1.1"], ALL_VERSIONS);
    let stream = tls_connect(&verified, setup.edge, Some("www.example.com"))
        .await
        .unwrap();
    let mut before = h1_client(stream).await;
    let request = || {
        Request::get("/")
            .header("host", "www.example.com")
            .body(body(Bytes::new()))
            .unwrap()
    };
    let answer = read_answer(before.send_request(request()).await.unwrap()).await;
    assert_eq!(answer.unwrap().status, 200);
    assert!(served("www.example.com").await == certificates.site.der);

    // The same files, new contents: another key, serial and set of names.
    let renewed = pki.leaf("site", &["www.example.com", "renewed.example.com"]);
    let log = setup.tandem.reload(&config).await;
    assert!(log.contains("config reloaded"), "{log}");
    assert!(
        served("www.example.com").await == renewed.der,
        "new handshakes should get the renewed certificate"
    );
    let stream = tls_connect(&verified, setup.edge, Some("renewed.example.com"))
        .await
        .expect("the renewed certificate verifies for its new name");
    drop(stream);
    assert!(served("static.example.com").await == certificates.static_site.der);
    before
        .ready()
        .await
        .expect("the old connection is still open");
    let answer = read_answer(before.send_request(request()).await.unwrap()).await;
    assert_eq!(
        answer.unwrap().status,
        200,
        "the old connection still serves"
    );

    // A broken key: the running certificate stays, and the log says which file is at fault.
    std::fs::write(&renewed.key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    let logged_before = setup.tandem.log().len();
    let log = setup.tandem.reload(&config).await;
    let new_lines = &log[logged_before..];
    let key_path = renewed.key.display().to_string();
    assert!(
        new_lines.contains(&key_path),
        "the log should name {key_path}:\n{new_lines}"
    );
    assert!(
        served("www.example.com").await == renewed.der,
        "the certificate from before the broken reload should still be served"
    );
    let answer = get(setup.plain, "/").await.unwrap();
    assert_eq!(answer.status, 200, "tandem still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_expiry_is_exported_per_frontend_and_file() {
    let pki = Pki::new();
    let certificates = Certificates {
        site: pki.leaf_until("site", &["www.example.com"], (2031, 5, 17)),
        static_site: pki.leaf_until("static", &["static.example.com"], (2030, 1, 2)),
        wildcard: pki.leaf_until("wildcard", &["*.example.net"], (2029, 12, 31)),
    };
    let web = TestServer::start("web").await;
    let admin = listen();
    let extra = format!("admin: {{ listen: \"{admin}\" }}\n");
    let _edge = start_edge(&certificates, &one_server("web", web.address), &extra).await;
    wait_until(LIMIT, "the admin endpoint listens", || async {
        TcpStream::connect(admin).await.is_ok()
    })
    .await;

    let metrics = scrape(admin).await;
    let name = "tandem_tls_certificate_expiry_timestamp_seconds";
    let expected = [
        ("edge", &certificates.site, (2031, 5, 17)),
        ("edge", &certificates.static_site, (2030, 1, 2)),
        ("edge", &certificates.wildcard, (2029, 12, 31)),
        ("only11", &certificates.site, (2031, 5, 17)),
    ];
    for (frontend, leaf, (year, month, day)) in expected {
        let path = leaf.cert.display().to_string();
        let labels = [("proxy", frontend), ("certificate", path.as_str())];
        let not_after = rcgen::date_time_ymd(year, month, day).unix_timestamp() as f64;
        assert_eq!(metrics.get(name, &labels), not_after, "{labels:?}");
    }
    assert!(
        metrics.value(name, &[("proxy", "plain")]).is_none(),
        "no certificate on a plain frontend"
    );
}

#[test]
fn check_names_a_missing_certificate_or_key_file() {
    let pki = Pki::new();
    let site = pki.leaf("site", &["www.example.com"]);
    let missing = pki.dir().join("missing.pem");
    for (cert, key) in [(&missing, &site.key), (&site.cert, &missing)] {
        let config = format!(
            "node: {{ name: edge }}\n\
             frontends:\n  - name: edge\n    listen: 127.0.0.1:8443\n    mode: http\n    backend: pool\n\
             \x20   tls:\n      certificates:\n        - {{ cert: \"{}\", key: \"{}\" }}\n\
             backends:\n  - name: pool\n    servers:\n      - {{ name: s1, address: 127.0.0.1:8080 }}\n",
            cert.display(),
            key.display()
        );
        let path = pki.dir().join("tandem.yaml");
        std::fs::write(&path, config).unwrap();
        let output = Command::new(tandem_binary())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&missing.display().to_string()),
            "the error should name {}:\n{stderr}",
            missing.display()
        );
    }
}
