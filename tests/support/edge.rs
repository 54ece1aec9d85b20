//! Support for the edge-feature tests: a test CA issuing leaf certificates at run time, TLS and
//! HTTP/2 clients, curl and h2load as real clients, nginx and HAProxy as real peers speaking the
//! PROXY protocol, and small servers for what [`super::TestServer`] does not do (a gRPC-style
//! h2c echo with trailers, fixed response headers).

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{free_port, spawn_server};

/// How long a peer process has to start listening, and a client command to finish.
const PEER_LIMIT: Duration = Duration::from_secs(10);

/// Whether `program` (from Debian's `package`) is installed. When it is not, a test skips
/// after saying why; under CI=true it fails instead, since CI installs every package.
pub fn installed(program: &str, package: &str) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    let why = format!("{program} is not installed (apt-get install {package})");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}, and CI must run this test");
    }
    eprintln!("skipped: {why}");
    false
}

/// `program` on PATH, or in the sbin directories a non-root PATH leaves out (nginx, haproxy).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    (std::env::split_paths(&path))
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test certificate authority and the directory its files are written to.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate as PEM, for `curl --cacert`.
    pub ca_path: PathBuf,
}

/// A leaf certificate and its key, written as PEM files.
pub struct Leaf {
    /// Absolute paths, as the test configs need them.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name = name("tandem test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        Pki { dir, ca, ca_path }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a leaf for `names` (DNS names, wildcards allowed) and writes it as `<stem>.pem`
    /// and `<stem>.key`, replacing any earlier files of that stem.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        self.leaf_with(stem, names, |_| {})
    }

    /// Like [`Pki::leaf`], valid until midnight UTC of `year-month-day`.
    pub fn leaf_until(
        &self,
        stem: &str,
        names: &[&str],
        (year, month, day): (i32, u8, u8),
    ) -> Leaf {
        self.leaf_with(stem, names, |params| {
            params.not_after = rcgen::date_time_ymd(year, month, day);
        })
    }

    fn leaf_with(
        &self,
        stem: &str,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name = name(&names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let leaf = Leaf {
            cert: self.dir().join(format!("{stem}.pem")),
            key: self.dir().join(format!("{stem}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// The CA as the only trust anchor.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

impl Leaf {
    /// The `{ cert: ..., key: ... }` item of a frontend's `tls.certificates`.
    pub fn yaml(&self) -> String {
        format!(
            "{{ cert: \"{}\", key: \"{}\" }}",
            self.cert.display(),
            self.key.display()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// TLS clients

/// Which server certificates a client accepts.
pub enum Trust<'a> {
    /// Chains to the test CA and names the server name connected to.
    Ca(&'a Pki),
    /// Any (the handshake's signatures are still checked): for tests that look at which
    /// certificate was served, including to names it does not cover.
    AnyCertificate,
}

/// `TLS12` or `TLS13` from rustls::version.
pub type TlsVersion = &'static rustls::SupportedProtocolVersion;

/// A client config offering `alpn` (in order) and the TLS `versions`.
pub fn tls_client(trust: Trust, alpn: &[&str], versions: &[TlsVersion]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap();
    let mut config = match trust {
        Trust::Ca(pki) => builder.with_root_certificates(pki.roots()),
        Trust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    }
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|id| id.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Both TLS versions.
pub const ALL_VERSIONS: &[TlsVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Connects to `address` and completes a handshake, sending `sni` as the server name (none
/// at all when `None`; the certificate is then checked against `no-sni.invalid`).
pub async fn tls_connect(
    config: &Arc<ClientConfig>,
    address: SocketAddr,
    sni: Option<&str>,
) -> io::Result<TlsStream<TcpStream>> {
    let config = match sni {
        Some(_) => Arc::clone(config),
        None => {
            let mut config = (**config).clone();
            config.enable_sni = false;
            Arc::new(config)
        }
    };
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = TcpStream::connect(address).await?;
    tokio::time::timeout(PEER_LIMIT, TlsConnector::from(config).connect(name, stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// What a client learned from a handshake.
#[derive(Debug)]
pub struct Handshake {
    pub leaf: CertificateDer<'static>,
    pub alpn: Option<String>,
    pub version: rustls::ProtocolVersion,
}

pub fn handshake(stream: &TlsStream<TcpStream>) -> Handshake {
    let (_, connection) = stream.get_ref();
    Handshake {
        leaf: connection.peer_certificates().unwrap()[0].clone(),
        alpn: (connection.alpn_protocol()).map(|id| String::from_utf8_lossy(id).into_owned()),
        version: connection.protocol_version().unwrap(),
    }
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP clients over any stream

/// A request body: fixed bytes, or a stream such as [`super::ZeroBody`].
pub type ClientBody = BoxBody<Bytes, Infallible>;

pub fn body(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

/// An HTTP/2 client connection over `io` (TLS with ALPN h2, or plain TCP as h2c with prior
/// knowledge).
pub async fn h2_client<T>(io: T) -> hyper::client::conn::http2::SendRequest<ClientBody>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/1.1 client connection over `io`.
pub async fn h1_client<T>(io: T) -> hyper::client::conn::http1::SendRequest<ClientBody>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

/// A TCP connection from `source` (any 127.0.0.0/8 address), and the client address the
/// far side sees.
pub async fn connect_from(source: IpAddr, address: SocketAddr) -> (TcpStream, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let local = stream.local_addr().unwrap();
    (stream, local)
}

/// Writes `request` and reads until the far side closes; `Err` when that takes too long.
pub async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<Vec<u8>, String> {
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    match tokio::time::timeout(PEER_LIMIT, stream.read_to_end(&mut answer)).await {
        Err(_) => Err(format!(
            "still open after {PEER_LIMIT:?}, read so far: {:?}",
            String::from_utf8_lossy(&answer)
        )),
        // A reset is a close too.
        Ok(_) => Ok(answer),
    }
}

// ---------------------------------------------------------------------------------------------
// curl and h2load

/// What curl reported about one request.
#[derive(Debug)]
pub struct CurlAnswer {
    pub status: u16,
    /// `%{http_version}`: `1.1` or `2`.
    pub http_version: String,
    /// The response head as received, lowercased.
    pub head: String,
    /// The body as text (invalid UTF-8 replaced), and as the bytes received.
    pub body: String,
    pub bytes: Vec<u8>,
}

impl CurlAnswer {
    /// The value of `name` (lowercase) in the response head.
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.head.lines())
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    }
}

/// Runs curl with `args` (plus output options); panics with curl's stderr when it fails.
pub async fn curl(args: &[&str]) -> CurlAnswer {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let (head, body) = (dir.path().join("head"), dir.path().join("body"));
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20"])
            .arg("--dump-header")
            .arg(&head)
            .arg("--output")
            .arg(&body)
            .args(["--write-out", "%{http_code} %{http_version}"])
            .args(&args)
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let written = String::from_utf8(output.stdout).unwrap();
        let (status, http_version) = written.split_once(' ').unwrap();
        let bytes = std::fs::read(body).unwrap_or_default();
        CurlAnswer {
            status: status.parse().unwrap(),
            http_version: http_version.to_owned(),
            head: std::fs::read_to_string(head).unwrap().to_lowercase(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    })
    .await
    .unwrap()
}

/// The totals of an h2load run.
#[derive(Debug)]
pub struct H2loadReport {
    pub succeeded: u64,
    pub failed: u64,
    pub status_2xx: u64,
    pub output: String,
}

/// Runs h2load with `args` and reads its `requests:` and `status codes:` lines.
pub async fn h2load(args: &[&str]) -> H2loadReport {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("h2load")
            .args(&args)
            .output()
            .expect("h2load runs")
    })
    .await
    .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |prefix: &str| {
        (output.lines())
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in h2load's output:\n{output}"))
            .to_owned()
    };
    // "requests: 5000 total, 5000 started, 5000 done, 5000 succeeded, 0 failed, 0 errored, ..."
    let requests = line("requests:");
    // "status codes: 5000 2xx, 0 3xx, 0 4xx, 0 5xx"
    let statuses = line("status codes:");
    let count = |text: &str, label: &str| -> u64 {
        (text.split(',').map(str::trim))
            .find_map(|item| item.strip_suffix(label)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{label}` count in h2load's output:\n{output}"))
    };
    H2loadReport {
        succeeded: count(&requests, "succeeded"),
        failed: count(&requests, "failed"),
        status_2xx: count(&statuses, "2xx"),
        output,
    }
}

// ---------------------------------------------------------------------------------------------
// Peer processes

/// A peer process in its own temporary directory, killed when dropped.
pub struct Peer {
    child: Child,
    dir: tempfile::TempDir,
    what: &'static str,
    log: &'static str,
}

impl Peer {
    /// Its log, and what it wrote to stderr before opening it (`stderr.log`, if any).
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        let log = read(self.log).unwrap_or_default();
        log + &read("stderr.log").unwrap_or_default()
    }

    /// A file of its directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Waits until `address` accepts connections; panics with the peer's log if it exits or
    /// takes too long.
    pub async fn wait_listening(&mut self, address: SocketAddr) {
        let started = Instant::now();
        while TcpStream::connect(address).await.is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", self.what, self.log());
            }
            assert!(
                started.elapsed() < PEER_LIMIT,
                "{} did not listen on {address}:\n{}",
                self.what,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.what, self.log());
        }
    }
}

/// nginx (`program`) running `config` as its nginx.conf in `dir`, which is its prefix too: its
/// error log goes to `error.log`, what it says before opening that to `stderr.log`. Not yet
/// listening: see [`Peer::wait_listening`].
pub fn start_nginx(program: &Path, dir: tempfile::TempDir, config: &str) -> Peer {
    std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
    let child = Command::new(program)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    Peer {
        child,
        dir,
        what: "nginx",
        log: "error.log",
    }
}

/// `program` (from Debian) on PATH or in the sbin directories; panics when it is missing.
pub fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| panic!("{name} is installed"))
}

/// nginx listening with `proxy_protocol`, answering every request with the client address the
/// PROXY header carried, as `addr:port\n`.
pub struct Nginx {
    peer: Peer,
    pub address: SocketAddr,
}

impl Nginx {
    pub async fn start_proxy_protocol_echo() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let d = dir.path().display();
        // One process (no master), so that killing it leaves no worker behind; every path in
        // the temporary directory, so that it runs beside a system nginx and as any user.
        let config = format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n\
               log_format carried '$proxy_protocol_addr $request_uri';\n\
               access_log {d}/access.log carried;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen {address} proxy_protocol;\n\
                 location / {{ return 200 \"$proxy_protocol_addr:$proxy_protocol_port\\n\"; }}\n\
               }}\n\
             }}\n"
        );
        let mut peer = start_nginx(&program("nginx"), dir, &config);
        peer.wait_listening(address).await;
        Nginx { peer, address }
    }

    /// One line per request: the carried client address (empty for a LOCAL or UNKNOWN header)
    /// and the request URI.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.peer.file("access.log")).unwrap_or_default()
    }
}

/// HAProxy in tcp mode, passing each connection to one server with a PROXY v2 header.
pub struct Haproxy {
    _peer: Peer,
    pub address: SocketAddr,
}

impl Haproxy {
    pub async fn start_sending_proxy_v2_to(server: SocketAddr) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "global\n  maxconn 256\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen edge\n  bind {address}\n  server t {server} send-proxy-v2\n"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(find_program("haproxy").expect("haproxy is installed"))
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut peer = Peer {
            child,
            dir,
            what: "haproxy",
            log: "haproxy.log",
        };
        peer.wait_listening(address).await;
        Haproxy {
            _peer: peer,
            address,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

/// A gRPC-style h2c server: answers every request with its body echoed, then the trailer
/// `grpc-status: 0`, and keeps each request's headers.
pub struct GrpcEchoServer {
    pub address: SocketAddr,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
    task: JoinHandle<()>,
}

impl GrpcEchoServer {
    pub async fn start() -> GrpcEchoServer {
        let seen = Arc::<Mutex<Vec<HeaderMap>>>::default();
        let kept = Arc::clone(&seen);
        let (address, task) = spawn_server(move |stream| {
            let kept = Arc::clone(&kept);
            async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let kept = Arc::clone(&kept);
                    async move { Ok::<_, Infallible>(grpc_echo(request, &kept).await) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        GrpcEchoServer {
            address,
            seen,
            task,
        }
    }

    pub fn requests(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for GrpcEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type EchoBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn grpc_echo(request: Request<Incoming>, seen: &Mutex<Vec<HeaderMap>>) -> Response<EchoBody> {
    let (parts, body) = request.into_parts();
    seen.lock().unwrap().push(parts.headers);
    let message = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![Ok(Frame::data(message)), Ok(Frame::trailers(trailers))];
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    (response.headers_mut()).insert("content-type", "application/grpc".parse().unwrap());
    response
}

/// An HTTP/1.1 server answering every request with its request headers listed (`name: value`
/// lines, as [`super::TestServer`]'s `/headers`) and the fixed `headers` in the response.
pub struct HeaderServer {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl HeaderServer {
    pub async fn start(headers: &[(&str, &str)]) -> HeaderServer {
        let headers: Arc<Vec<(String, String)>> = Arc::new(
            (headers.iter())
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        );
        let (address, task) = spawn_server(move |stream| {
            let headers = Arc::clone(&headers);
            async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let headers = Arc::clone(&headers);
                    async move {
                        let mut listing = String::new();
                        for (name, value) in request.headers() {
                            let value = value.to_str().unwrap_or("?");
                            listing.push_str(&format!("{name}: {value}\n"));
                        }
                        let mut response = Response::new(Full::new(Bytes::from(listing)));
                        for (name, value) in headers.iter() {
                            let name: http::HeaderName = name.parse().unwrap();
                            response.headers_mut().insert(name, value.parse().unwrap());
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        HeaderServer { address, task }
    }
}

impl Drop for HeaderServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
