//! TLS to servers (a backend's `tls:`), against nginx with certificates from a CA made here:
//! the right CA and name pass, a wrong CA or SNI fails and is named in the log, a client
//! certificate nginx requires, HTTP/2 over TLS by ALPN, gRPC-style calls (trailers) to an h2
//! server over TLS, tcp mode, a CA file replaced and picked up on SIGHUP, health checks over
//! TLS, and `tandem check` naming a missing CA file.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::net::TcpStream;

use support::edge::{body as edge_body, h2_client, installed, program, start_nginx, Peer};
use support::*;

const LIMIT: Duration = Duration::from_secs(10);
/// The name nginx's certificate carries (with 127.0.0.1 as an address entry).
const SERVER_NAME: &str = "backend.test";

/// A CA made for one test, and the files it signs, in a directory of its own.
struct Ca {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate as PEM.
    cert: PathBuf,
}

/// A certificate and key as PEM files.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(common_name: &str) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let cert = dir.path().join("ca.pem");
        std::fs::write(&cert, issuer.pem()).unwrap();
        Ca { dir, issuer, cert }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `names` (DNS names or addresses) used as `purpose`.
    fn issue(&self, stem: &str, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Pair {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pair = Pair {
            cert: self.path(&format!("{stem}.pem")),
            key: self.path(&format!("{stem}.key")),
        };
        std::fs::write(&pair.cert, cert.pem()).unwrap();
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        pair
    }
}

/// nginx on four ports: TLS (HTTP/1.1), TLS with HTTP/2, TLS requiring a client certificate
/// from the CA, and plain HTTP. Each answers with what it saw.
struct Nginx {
    _peer: Peer,
    tls: SocketAddr,
    h2: SocketAddr,
    mtls: SocketAddr,
    plain: SocketAddr,
}

impl Nginx {
    async fn start(ca: &Ca) -> Nginx {
        let server = ca.issue(
            "nginx",
            &[SERVER_NAME, "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (tls, h2, mtls, plain) = (port(), port(), port(), port());
        let certificate = format!(
            "ssl_certificate {}; ssl_certificate_key {};",
            server.cert.display(),
            server.key.display()
        );
        // One process (no master), so that killing it leaves no worker behind; every path in
        // the temporary directory, so that it runs beside a system nginx and as any user.
        let config = format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n\
               access_log off;\n\
               ssl_protocols TLSv1.2 TLSv1.3;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen {tls} ssl;\n {certificate}\n\
                 location / {{ add_header X-Server nginx-tls always;\n\
                   return 200 \"$server_protocol $ssl_protocol sni=$ssl_server_name\\n\"; }}\n\
               }}\n\
               server {{\n\
                 listen {h2} ssl http2;\n {certificate}\n\
                 location / {{ add_header X-Server nginx-h2 always;\n\
                   return 200 \"$server_protocol\\n\"; }}\n\
               }}\n\
               server {{\n\
                 listen {mtls} ssl;\n {certificate}\n\
                 ssl_verify_client on; ssl_client_certificate {};\n\
                 location / {{ add_header X-Server nginx-mtls always;\n\
                   return 200 \"client $ssl_client_s_dn\\n\"; }}\n\
               }}\n\
               server {{\n\
                 listen {plain};\n\
                 location / {{ add_header X-Server nginx-plain always; return 200 \"plain\\n\"; }}\n\
               }}\n\
             }}\n",
            ca.cert.display()
        );
        let mut peer = start_nginx(&program("nginx"), dir, &config);
        for address in [tls, h2, mtls, plain] {
            peer.wait_listening(address).await;
        }
        Nginx {
            _peer: peer,
            tls,
            h2,
            mtls,
            plain,
        }
    }
}

/// One plain http (or tcp) frontend per backend, named after it. `backends` are
/// `(name, mode, YAML of the backend's other keys, indented four spaces)`.
fn config(backends: &[(&str, &str, String)]) -> (String, Vec<SocketAddr>) {
    let mut frontends = String::new();
    let mut pools = String::new();
    let mut listens = Vec::new();
    for (name, mode, backend) in backends {
        let listen = listen();
        listens.push(listen);
        frontends.push_str(&format!(
            "  - {{ name: {name}, listen: \"{listen}\", mode: {mode}, backend: {name} }}\n"
        ));
        pools.push_str(&format!("  - name: {name}\n    retries: 0\n{backend}"));
    }
    let yaml =
        format!("node: {{ name: tls, threads: 1 }}\nfrontends:\n{frontends}backends:\n{pools}");
    (yaml, listens)
}

/// A backend's `servers:` list with one server, and its `tls:` map.
fn server(name: &str, address: SocketAddr, tls: &str) -> String {
    format!("    tls: {tls}\n    servers:\n      - {{ name: {name}, address: \"{address}\" }}\n")
}

fn body(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.body).into_owned()
}

#[tokio::test]
async fn a_verified_server_answers_and_a_wrong_ca_or_name_fails_and_is_logged() {
    if !installed("nginx", "nginx") {
        return;
    }
    let ca = Ca::new("tandem test CA");
    let other_ca = Ca::new("another CA");
    let nginx = Nginx::start(&ca).await;
    let trusted = ca.cert.display();
    let (yaml, listens) =
        config(&[
            (
                "right",
                "http",
                server(
                    "a",
                    nginx.tls,
                    &format!("{{ ca: \"{trusted}\", sni: {SERVER_NAME} }}"),
                ),
            ),
            (
                "by_address",
                "http",
                server("a", nginx.tls, &format!("{{ ca: \"{trusted}\" }}")),
            ),
            (
                "wrong_ca",
                "http",
                server(
                    "a",
                    nginx.tls,
                    &format!(
                        "{{ ca: \"{}\", sni: {SERVER_NAME} }}",
                        other_ca.cert.display()
                    ),
                ),
            ),
            (
                "wrong_name",
                "http",
                server(
                    "a",
                    nginx.tls,
                    &format!("{{ ca: \"{trusted}\", sni: other.test }}"),
                ),
            ),
            (
                "unverified",
                "http",
                server("a", nginx.tls, "{ verify: false, sni: other.test }"),
            ),
            (
                "relay",
                "tcp",
                server(
                    "a",
                    nginx.tls,
                    &format!("{{ ca: \"{trusted}\", sni: {SERVER_NAME} }}"),
                ),
            ),
            // A plain check passes; traffic's failed handshakes count against the server.
            (
                "passive",
                "http",
                format!(
                "    health_check: {{ type: tcp, tls: false, interval: 1h, rise: 1, fall: 1 }}\n{}",
                server(
                    "a",
                    nginx.tls,
                    &format!("{{ ca: \"{}\", sni: {SERVER_NAME} }}", other_ca.cert.display()),
                )
            ),
            ),
        ]);
    let tandem = Tandem::start(&yaml, &listens).await;
    let [right, by_address, wrong_ca, wrong_name, unverified, relay, passive] = listens[..] else {
        unreachable!()
    };

    for _ in 0..3 {
        let answer = get(right, "/").await.unwrap();
        assert_eq!(answer.status, 200, "{}", tandem.log());
        assert_eq!(answer.server.as_deref(), Some("nginx-tls"));
        assert!(
            body(&answer).starts_with("HTTP/1.1 TLSv1.3 sni=backend.test"),
            "{}",
            body(&answer)
        );
    }
    // No SNI for a server named by address; its certificate is checked against the address.
    let answer = get(by_address, "/").await.unwrap();
    assert_eq!(answer.status, 200, "{}", tandem.log());
    assert_eq!(body(&answer), "HTTP/1.1 TLSv1.3 sni=\n");
    let answer = get(unverified, "/").await.unwrap();
    assert_eq!(
        (answer.status, body(&answer)),
        (200, "HTTP/1.1 TLSv1.3 sni=other.test\n".to_owned())
    );
    // tcp mode: the client's bytes go over TLS to the server.
    let answer = get(relay, "/").await.unwrap();
    assert_eq!(answer.status, 200, "{}", tandem.log());
    assert_eq!(answer.server.as_deref(), Some("nginx-tls"));

    for address in [wrong_ca, wrong_name, passive] {
        let answer = get(address, "/").await.unwrap();
        assert_eq!(answer.status, 503, "a failed handshake is a failed connect");
        assert_eq!(answer.server, None);
    }
    let log = tandem.log();
    let logged = |what: &str| {
        log.lines()
            .any(|line| line.contains("TLS handshake with server failed") && line.contains(what))
    };
    assert!(
        logged("backend=wrong_ca") && logged("unknown issuer"),
        "the unknown issuer is logged:\n{log}"
    );
    assert!(
        logged("backend=wrong_name") && logged(r#"certificate not valid for name "other.test""#),
        "the name is logged:\n{log}"
    );
    assert!(
        log.lines().any(|line| line.contains("backend=passive")
            && line.contains("server is down")
            && line.contains("detail=connect: TLS: server certificate has an unknown issuer")),
        "a failed handshake is a failed connect, which passive health counts:\n{log}"
    );
}

#[tokio::test]
async fn http2_over_tls_by_alpn() {
    if !installed("nginx", "nginx") {
        return;
    }
    let ca = Ca::new("tandem test CA");
    let nginx = Nginx::start(&ca).await;
    let tls = format!("{{ ca: \"{}\", sni: {SERVER_NAME} }}", ca.cert.display());
    let offered = format!(
        "{{ ca: \"{}\", sni: {SERVER_NAME}, alpn: [h2, http/1.1] }}",
        ca.cert.display()
    );
    let (yaml, listens) = config(&[
        // gRPC's setting: h2 only.
        (
            "h2",
            "http",
            format!("    protocol: h2\n{}", server("a", nginx.h2, &tls)),
        ),
        // HTTP/1.1 configured, both offered: the server's choice is spoken.
        ("chosen", "http", server("a", nginx.h2, &offered)),
        // The same offer to a server without HTTP/2.
        ("fallback", "http", server("a", nginx.tls, &offered)),
    ]);
    let tandem = Tandem::start(&yaml, &listens).await;
    let [h2, chosen, fallback] = listens[..] else {
        unreachable!()
    };
    for (address, expected) in [
        (h2, "HTTP/2.0\n"),
        (chosen, "HTTP/2.0\n"),
        (fallback, "HTTP/1.1 TLSv1.3 sni=backend.test\n"),
    ] {
        // Several, on new client connections: the server connection is reused or shared.
        for _ in 0..3 {
            let answer = get(address, "/").await.unwrap();
            assert_eq!(answer.status, 200, "{}", tandem.log());
            assert_eq!(body(&answer), expected);
        }
    }
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    if !installed("nginx", "nginx") {
        return;
    }
    let ca = Ca::new("tandem test CA");
    let nginx = Nginx::start(&ca).await;
    let client = ca.issue("tandem-client", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let trusted = ca.cert.display();
    let (yaml, listens) = config(&[
        (
            "with_certificate",
            "http",
            server(
                "a",
                nginx.mtls,
                &format!(
                    "{{ ca: \"{trusted}\", sni: {SERVER_NAME}, client_cert: \"{}\", \
                     client_key: \"{}\" }}",
                    client.cert.display(),
                    client.key.display()
                ),
            ),
        ),
        (
            "without",
            "http",
            server(
                "a",
                nginx.mtls,
                &format!("{{ ca: \"{trusted}\", sni: {SERVER_NAME} }}"),
            ),
        ),
    ]);
    let tandem = Tandem::start(&yaml, &listens).await;
    let answer = get(listens[0], "/").await.unwrap();
    assert_eq!(answer.status, 200, "{}", tandem.log());
    assert_eq!(body(&answer), "client CN=tandem-client\n");
    // nginx finishes the handshake and refuses the request itself.
    let answer = get(listens[1], "/").await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(
        body(&answer).contains("No required SSL certificate was sent"),
        "{}",
        body(&answer)
    );
}

#[tokio::test]
async fn a_replaced_ca_file_takes_effect_on_sighup() {
    if !installed("nginx", "nginx") {
        return;
    }
    let ca = Ca::new("tandem test CA");
    let other_ca = Ca::new("another CA");
    let nginx = Nginx::start(&ca).await;
    let ca_file = ca.path("trusted.pem");
    std::fs::copy(&other_ca.cert, &ca_file).unwrap();
    let (yaml, listens) = config(&[(
        "pool",
        "http",
        server(
            "a",
            nginx.tls,
            &format!("{{ ca: \"{}\", sni: {SERVER_NAME} }}", ca_file.display()),
        ),
    )]);
    let tandem = Tandem::start(&yaml, &listens).await;
    assert_eq!(get(listens[0], "/").await.unwrap().status, 503);

    std::fs::copy(&ca.cert, &ca_file).unwrap();
    let log = tandem.reload(&yaml).await;
    assert!(log.contains("config reloaded"), "{log}");
    let answer = get(listens[0], "/").await.unwrap();
    assert_eq!(answer.status, 200, "{}", tandem.log());
    assert_eq!(answer.server.as_deref(), Some("nginx-tls"));

    // A CA file that no longer reads fails the reload, and the running config goes on.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let log = tandem.reload(&yaml).await;
    assert!(
        log.contains("reload failed") && log.contains(&ca_file.display().to_string()),
        "{log}"
    );
    assert_eq!(get(listens[0], "/").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_tls_health_check_keeps_a_tls_server_up_and_takes_a_plain_one_down() {
    if !installed("nginx", "nginx") {
        return;
    }
    let ca = Ca::new("tandem test CA");
    let nginx = Nginx::start(&ca).await;
    let backend = format!(
        "    health_check: {{ type: http, tls: true, interval: 1s, timeout: 900ms, rise: 1, fall: 1 }}\n\
         \x20   tls: {{ ca: \"{}\", sni: {SERVER_NAME} }}\n\
         \x20   servers:\n\
         \x20     - {{ name: secure, address: \"{}\" }}\n\
         \x20     - {{ name: plain, address: \"{}\" }}\n",
        ca.cert.display(),
        nginx.tls,
        nginx.plain
    );
    let (yaml, listens) = config(&[("pool", "http", backend)]);
    let tandem = Tandem::start(&yaml, &listens).await;
    wait_until(LIMIT, "the plain server is marked down", || async {
        tandem
            .log()
            .lines()
            .any(|line| line.contains("server=plain") && line.contains("server is down"))
    })
    .await;
    let log = tandem.log();
    let down = log
        .lines()
        .find(|line| line.contains("server is down"))
        .unwrap();
    assert!(down.contains("health check: TLS:"), "{down}");
    assert!(
        !log.lines()
            .any(|line| line.contains("server=secure") && line.contains("down")),
        "{log}"
    );
    for _ in 0..6 {
        let answer = get(listens[0], "/").await.unwrap();
        assert_eq!(answer.status, 200, "{}", tandem.log());
        assert_eq!(answer.server.as_deref(), Some("nginx-tls"));
    }
}

#[test]
fn check_names_a_missing_ca_file_at_its_key() {
    let ca = Ca::new("tandem test CA");
    let missing = ca.path("missing.pem");
    let config = format!(
        "node: {{ name: tls }}\n\
         frontends: [{{ name: fe, listen: 127.0.0.1:8080, mode: http, backend: pool }}]\n\
         backends:\n  - name: pool\n    tls: {{ sni: {SERVER_NAME} }}\n    servers:\n\
         \x20     - {{ name: a, address: 127.0.0.1:8443 }}\n\
         \x20     - {{ name: b, address: 127.0.0.1:8444, tls: {{ ca: \"{}\" }} }}\n",
        missing.display()
    );
    let path = ca.path("tandem.yaml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(tandem_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let expected = format!(
        "backends[0].servers[1].tls.ca: server b: {}: cannot read: No such file or directory",
        missing.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
}

/// A gRPC-style server over TLS (ALPN h2 only): echoes each request's body, then the trailer
/// `grpc-status: 0`; counts the TLS connections that settled on h2.
async fn grpc_tls_server(
    certificate: &Pair,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let chain = CertificateDer::pem_file_iter(&certificate.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certificate.key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let over_h2 = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&over_h2);
    let (address, task) = spawn_server(move |stream| {
        let acceptor = acceptor.clone();
        let counted = Arc::clone(&counted);
        async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            let service = service_fn(|request: Request<Incoming>| async move {
                let message = request.into_body().collect().await.unwrap().to_bytes();
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                let frames = vec![
                    Ok::<_, Infallible>(Frame::data(message)),
                    Ok(Frame::trailers(trailers)),
                ];
                let mut response =
                    Response::new(StreamBody::new(futures_util::stream::iter(frames)));
                (response.headers_mut())
                    .insert("content-type", "application/grpc".parse().unwrap());
                Ok::<_, Infallible>(response)
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (address, over_h2, task)
}

#[tokio::test]
async fn grpc_calls_reach_a_server_over_tls_and_its_trailers_come_back() {
    let ca = Ca::new("tandem test CA");
    let certificate = ca.issue("grpc", &[SERVER_NAME], ExtendedKeyUsagePurpose::ServerAuth);
    let (address, over_h2, task) = grpc_tls_server(&certificate).await;
    let (yaml, listens) = config(&[(
        "grpc",
        "http",
        format!(
            "    protocol: h2\n{}",
            server(
                "a",
                address,
                &format!("{{ ca: \"{}\", sni: {SERVER_NAME} }}", ca.cert.display())
            )
        ),
    )]);
    let tandem = Tandem::start(&yaml, &listens).await;
    // The client speaks h2c to tandem; tandem speaks h2 over TLS to the server.
    let mut client = h2_client(TcpStream::connect(listens[0]).await.unwrap()).await;
    for index in 0..3 {
        let message = Bytes::from(format!("\0\0\0\0\x07hello {index}"));
        let request = Request::post(format!("http://{}/echo.Echo/Say", listens[0]))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(edge_body(message.clone()))
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200, "{}", tandem.log());
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        assert_eq!(collected.to_bytes(), message);
        let status = trailers
            .as_ref()
            .and_then(|trailers| trailers.get("grpc-status"));
        assert_eq!(status.map(|value| value.as_bytes()), Some(&b"0"[..]));
    }
    assert_eq!(
        over_h2.load(Ordering::SeqCst),
        1,
        "one TLS connection, shared, over h2"
    );
    task.abort();
}
