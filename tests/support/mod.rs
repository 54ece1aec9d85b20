//! Test harness: real servers on loopback, a real tandem process, and clients.
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod bgp_lab;
pub mod check_peers;
pub mod edge;
pub mod frr;
pub mod gap_client;
pub mod lab;
pub mod metrics;
pub mod pair;
pub mod peer;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Polls `condition` until it holds or `limit` passes; panics with `what` on time-out.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port nobody listens on right now, and not handed out before in this process: the
/// kernel may give the same free port to two binds in a row, and two addresses a test asks for
/// must differ.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A loopback address for tandem to listen on.
pub fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A server on a loopback port the kernel picks: `serve` gets each connection it accepts, on a
/// task of its own. Aborting the returned task closes the listener.
pub async fn spawn_server<F, Fut>(serve: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        }
    });
    (address, task)
}

/// Shared, adjustable behaviour of a test server.
#[derive(Default)]
pub struct ServerControl {
    pub requests: AtomicUsize,
    pub connections: AtomicUsize,
    /// Delay before answering anything but /health, in ms.
    pub delay_ms: AtomicU64,
    /// Status of /health; 0 means 200.
    pub health_status: AtomicU16,
}

/// An HTTP/1.1 server on loopback that names itself in every answer.
///
/// Paths: `/health`; `/headers` echoes the request headers; `/upload` counts the body's bytes;
/// `/download/N` streams N bytes; anything else answers with the server's name.
pub struct TestServer {
    pub name: String,
    pub address: SocketAddr,
    pub control: Arc<ServerControl>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(name: &str) -> TestServer {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)), Arc::default()).await
    }

    /// Listens on `address` (another loopback address than 127.0.0.1, say).
    pub async fn start_at(name: &str, address: SocketAddr) -> TestServer {
        Self::start_on(name, address, Arc::default()).await
    }

    async fn start_on(name: &str, address: SocketAddr, control: Arc<ServerControl>) -> TestServer {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_http(listener, name.to_owned(), Arc::clone(&control)));
        TestServer {
            name: name.to_owned(),
            address,
            control,
            task: Some(task),
        }
    }

    /// Closes the listener and every connection, like a crashed process.
    pub fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn restart(&mut self) {
        self.kill();
        let restarted = Self::start_on(&self.name, self.address, Arc::clone(&self.control)).await;
        *self = restarted;
    }

    pub fn requests(&self) -> usize {
        self.control.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn serve_http(listener: TcpListener, name: String, control: Arc<ServerControl>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        control.connections.fetch_add(1, Ordering::SeqCst);
        let name = name.clone();
        let control = Arc::clone(&control);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let name = name.clone();
                let control = Arc::clone(&control);
                async move { Ok::<_, Infallible>(answer(request, &name, &control).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn answer(
    request: Request<Incoming>,
    name: &str,
    control: &ServerControl,
) -> Response<TestBody> {
    let path = request.uri().path().to_owned();
    if path == "/health" {
        let status = match control.health_status.load(Ordering::SeqCst) {
            0 => 200,
            status => status,
        };
        return text(status, name, "health");
    }
    control.requests.fetch_add(1, Ordering::SeqCst);
    let delay = control.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if path == "/headers" {
        let mut listing = String::new();
        for (header, value) in request.headers() {
            listing.push_str(&format!("{}: {}\n", header, value.to_str().unwrap_or("?")));
        }
        return text(200, name, &listing);
    }
    if path == "/upload" {
        let mut body = request.into_body();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => total += frame.data_ref().map_or(0, Bytes::len),
                Err(_) => return text(400, name, "upload broken"),
            }
        }
        return text(200, name, &total.to_string());
    }
    if let Some(size) = path.strip_prefix("/download/") {
        let size: u64 = size.parse().unwrap();
        let mut response =
            Response::new(ZeroBody::new(size).map_err(|never| match never {}).boxed());
        response
            .headers_mut()
            .insert("x-server", name.parse().unwrap());
        return response;
    }
    text(200, name, name)
}

fn text(status: u16, name: &str, body: &str) -> Response<TestBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("x-server", name.parse().unwrap());
    response
}

/// `len` zero bytes in 64 KiB frames, made as they are read.
pub struct ZeroBody {
    left: u64,
    chunk: Bytes,
}

impl ZeroBody {
    pub fn new(len: u64) -> Self {
        ZeroBody {
            left: len,
            chunk: Bytes::from(vec![0u8; 64 * 1024]),
        }
    }
}

impl Body for ZeroBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let take = self.left.min(self.chunk.len() as u64);
        self.left -= take;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..take as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// A running `tandem run` process, killed when dropped.
pub struct Tandem {
    child: Child,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tandem {
    /// Starts tandem with `config` and waits until every `listens` address accepts.
    pub async fn start(config: &str, listens: &[SocketAddr]) -> Tandem {
        Tandem::start_with(Command::new(tandem_binary()), config, listens).await
    }

    /// Like [`Tandem::start`], with `command` running the binary (under `prlimit`, say).
    pub async fn start_with(command: Command, config: &str, listens: &[SocketAddr]) -> Tandem {
        let mut tandem = Tandem::spawn(config, command);
        for &address in listens {
            let started = Instant::now();
            while TcpStream::connect(address).await.is_err() {
                if let Some(status) = tandem.child.try_wait().unwrap() {
                    panic!("tandem exited with {status}:\n{}", tandem.log());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "tandem did not listen on {address}:\n{}",
                    tandem.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tandem
    }

    /// Starts tandem inside a lab host's network namespace and waits until it runs.
    pub fn start_in(namespace: &str, config: &str) -> Tandem {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .arg(tandem_binary());
        let mut tandem = Tandem::spawn(config, command);
        let started = Instant::now();
        while !tandem.log().contains("tandem is running") {
            if let Some(status) = tandem.child.try_wait().unwrap() {
                panic!(
                    "tandem in {namespace} exited with {status}:\n{}",
                    tandem.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tandem in {namespace} did not start:\n{}",
                tandem.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tandem
    }

    fn spawn(config: &str, mut command: Command) -> Tandem {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tandem.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("tandem.log");
        let child = command
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "tandem=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        Tandem {
            child,
            config_path,
            log_path,
            _dir: dir,
        }
    }

    /// Sends `signal` (such as `HUP`, `TERM` or `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends `signal` and waits for the process to end.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        self.signal(signal);
        self.child.wait().unwrap()
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// [`Tandem::reload`] for a test that runs no tokio runtime.
    pub fn reload_blocking(&self, config: &str) -> String {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.reload(config))
    }

    /// Replaces the config file and sends SIGHUP; returns the log once tandem has logged the
    /// outcome.
    pub async fn reload(&self, config: &str) -> String {
        std::fs::write(&self.config_path, config).unwrap();
        let outcomes = |log: &str| {
            log.matches("config reloaded").count() + log.matches("reload failed").count()
        };
        let before = outcomes(&self.log());
        self.signal("HUP");
        wait_until(
            Duration::from_secs(10),
            "tandem logs the reload",
            || async { outcomes(&self.log()) > before },
        )
        .await;
        self.log()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A field of /proc/PID/status in KiB, such as `VmHWM` (peak resident memory).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|line| line.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Tandem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- tandem log ---\n{}", self.log());
        }
    }
}

pub fn tandem_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tandem"))
}

/// `tandem ctl --socket SOCKET ARGS` (a unix socket reaches across network namespaces): the
/// exit code, and stdout then stderr.
pub fn ctl(socket: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(tandem_binary())
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() || !stderr.is_empty());
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned() + &stderr,
    )
}

/// An answer as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub server: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Sends one request on a new connection from `source` (any 127.0.0.0/8 address).
pub async fn request_from(
    source: IpAddr,
    address: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| e.to_string())?;
    let stream = socket.connect(address).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    read_answer(response).await
}

pub async fn read_answer(response: Response<Incoming>) -> Result<Answer, String> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        server: parts
            .headers
            .get("x-server")
            .map(|v| v.to_str().unwrap().to_owned()),
        headers: parts.headers,
        body,
    })
}

/// GET `path` on a new connection from 127.0.0.1.
pub async fn get(address: SocketAddr, path: &str) -> Result<Answer, String> {
    request_from([127, 0, 0, 1].into(), address, get_request(address, path)).await
}

pub fn get_request(address: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", address.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A client connection kept open across requests.
pub struct KeepAliveClient {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    address: SocketAddr,
}

impl KeepAliveClient {
    pub async fn connect(address: SocketAddr) -> KeepAliveClient {
        let stream = TcpStream::connect(address).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        KeepAliveClient { sender, address }
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let request = Request::get(path)
            .header("host", self.address.to_string())
            .body(Empty::new())
            .unwrap();
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        read_answer(response).await
    }
}

/// Starts tandem with [`config`] on a fresh loopback address and waits until it listens.
pub async fn start_proxy(
    mode: &str,
    balance: &str,
    backend_extra: &str,
    servers: &[(&str, SocketAddr, u32)],
) -> (Tandem, SocketAddr) {
    let address = listen();
    let yaml = config(mode, address, balance, backend_extra, servers);
    (Tandem::start(&yaml, &[address]).await, address)
}

/// A one-frontend, one-backend config; `backend_extra` is indented YAML added to the backend.
pub fn config(
    mode: &str,
    listen: SocketAddr,
    balance: &str,
    backend_extra: &str,
    servers: &[(&str, SocketAddr, u32)],
) -> String {
    let mut yaml = format!(
        "node: {{ name: test, threads: 1 }}\n\
         frontends:\n  - name: fe\n    listen: {listen}\n    mode: {mode}\n    backend: pool\n\
         backends:\n  - name: pool\n    balance: {balance}\n{backend_extra}    servers:\n"
    );
    for (name, address, weight) in servers {
        yaml.push_str(&format!(
            "      - {{ name: {name}, address: {address}, weight: {weight} }}\n"
        ));
    }
    yaml
}

/// A keepalived process (Debian's package) in a lab host's namespace, killed when dropped.
pub struct Keepalived {
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Keepalived {
    pub fn start_in(namespace: &str, config: &str) -> Keepalived {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("keepalived.conf"), config).unwrap();
        let log_path = path("keepalived.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                namespace,
                "keepalived",
                "--vrrp",
                "-n",
                "-l",
                "-D",
                "-f",
            ])
            .arg(path("keepalived.conf"))
            .arg("-p")
            .arg(path("keepalived.pid"))
            .arg("-r")
            .arg(path("vrrp.pid"))
            .arg("-c")
            .arg(path("checkers.pid"))
            .stdout(std::fs::File::create(&log_path).unwrap())
            .stderr(std::fs::File::create(path("keepalived.err")).unwrap())
            .spawn()
            .expect("keepalived is installed (apt-get install keepalived)");
        Keepalived {
            child,
            log_path,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops keepalived the way its init script does; it resigns and removes its VIPs.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- keepalived log ---\n{}", self.log());
        }
    }
}
