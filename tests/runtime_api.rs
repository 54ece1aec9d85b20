//! The runtime API of a running tandem, as an operator uses it: with curl-like requests on the
//! admin address (bearer token) and with `tandem ctl` over TCP or the unix socket, against
//! real servers on loopback.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use support::{config, get, listen, tandem_binary, wait_until, Tandem, TestServer};
use tandem::status::{ServerStatus, Status};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "kJ8s-runtime-api-test";

/// One request to the admin endpoint: status, body, headers.
async fn api(
    admin: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String, HeaderMap) {
    let stream = TcpStream::connect(admin).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", admin.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
        parts.headers,
    )
}

async fn status(admin: SocketAddr) -> Status {
    let (code, body, _) = api(admin, Method::GET, "/status", "", None).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn server(admin: SocketAddr, backend: &str, name: &str) -> ServerStatus {
    let status = status(admin).await;
    let backend = status.backends.iter().find(|b| b.name == backend).unwrap();
    backend
        .servers
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .clone()
}

/// A token file in `dir`.
fn token_file(dir: &Path) -> PathBuf {
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    file
}

/// `fe` on `web` in front of `pool` (round robin over a and b, checked every second), with
/// `admin` added to the admin section and `more` to the file.
fn yaml(web: SocketAddr, admin: &str, servers: &[(&str, SocketAddr, u32)], more: &str) -> String {
    let check =
        "    health_check: { type: http, path: /health, interval: 1s, timeout: 1s, rise: 1, fall: 1 }\n";
    config("http", web, "round_robin", check, servers) + &format!("admin: {{ {admin} }}\n{more}")
}

/// `tandem ctl ARGS`: exit code, stdout, stderr.
fn ctl(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(tandem_binary())
        .arg("ctl")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Drain under load: a client sending one request after another on new connections sees no
/// failure; once the drain is answered, every new request goes to b; a slow request already on
/// a finishes with 200; and a's health checks go on (a failing check shows it DOWN).
#[tokio::test]
async fn draining_a_server_under_load_fails_no_request_and_lets_a_slow_one_finish() {
    let (a, b) = (TestServer::start("a").await, TestServer::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (web, admin) = (listen(), listen());
    let servers = [("a", a.address, 1), ("b", b.address, 1)];
    let admin_keys = format!("listen: \"{admin}\", token_file: {}", token.display());
    let _tandem = Tandem::start(&yaml(web, &admin_keys, &servers, ""), &[web, admin]).await;

    // The first request of a round robin goes to a, the first server.
    a.control.delay_ms.store(1500, Ordering::SeqCst);
    let slow = tokio::spawn(get(web, "/slow"));
    wait_until(LIMIT, "the slow request reaches a", || async {
        a.control.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    a.control.delay_ms.store(0, Ordering::SeqCst);

    let drained = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn({
        let drained = Arc::clone(&drained);
        async move {
            // Whether each request began after the drain was answered, and its answer.
            let mut answers = Vec::new();
            let mut after = 0;
            // Bounded: 100 requests after the drain, 2000 in all.
            for _ in 0..2000 {
                let after_drain = drained.load(Ordering::SeqCst);
                let answer = (get(web, "/").await).map(|answer| (answer.status, answer.server));
                answers.push((after_drain, answer));
                after += usize::from(after_drain);
                if after == 100 {
                    break;
                }
            }
            answers
        }
    });
    wait_until(LIMIT, "the load reaches both servers", || async {
        a.control.requests.load(Ordering::SeqCst) > 5
            && b.control.requests.load(Ordering::SeqCst) > 5
    })
    .await;
    let (code, body, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/a/state",
        "drain",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (200, "server pool/a set to drain, weight 1\n")
    );
    drained.store(true, Ordering::SeqCst);
    let answers = client.await.unwrap();

    let failed: Vec<_> = (answers.iter())
        .filter(|(_, answer)| !matches!(answer, Ok((200, _))))
        .collect();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let after: Vec<_> = (answers.iter()).filter(|(after, _)| *after).collect();
    assert_eq!(after.len(), 100);
    assert!(
        after
            .iter()
            .all(|(_, answer)| matches!(answer, Ok((_, Some(name))) if name == "b")),
        "after the drain only b answers: {after:?}"
    );
    let slow = slow.await.unwrap().expect("the slow request");
    assert_eq!((slow.status, slow.server.as_deref()), (200, Some("a")));

    let shown = server(admin, "pool", "a").await;
    assert_eq!(
        (
            shown.state.as_str(),
            shown.admin_state.as_str(),
            shown.weight
        ),
        ("DRAIN", "drain", 1)
    );
    a.control.health_status.store(503, Ordering::SeqCst);
    wait_until(
        LIMIT,
        "a's checks go on while drained: it shows DOWN",
        || async { server(admin, "pool", "a").await.state == "DOWN" },
    )
    .await;
}

/// Writes over TCP need the token: without it or with a wrong one, 401 with
/// `WWW-Authenticate: Bearer`, and nothing changes; reads need none. Without `token_file`,
/// writes are refused with 403 saying how to enable them.
#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_and_changes_nothing() {
    let (a, b) = (TestServer::start("a").await, TestServer::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (web, admin) = (listen(), listen());
    let servers = [("a", a.address, 1), ("b", b.address, 1)];
    let admin_keys = format!("listen: \"{admin}\", token_file: {}", token.display());
    let _tandem = Tandem::start(&yaml(web, &admin_keys, &servers, ""), &[web, admin]).await;

    for offered in [None, Some("not-the-token"), Some("kJ8s-runtime-api-tes")] {
        let (code, body, headers) = api(
            admin,
            Method::PUT,
            "/api/servers/pool/a/state",
            "maint",
            offered,
        )
        .await;
        assert_eq!(code, 401, "{offered:?}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"tandem\"");
    }
    let shown = server(admin, "pool", "a").await;
    assert_eq!(
        (shown.state.as_str(), shown.admin_state.as_str()),
        ("UP", "ready")
    );
    let answers: Vec<_> = futures_util::future::join_all((0..4).map(|_| get(web, "/"))).await;
    let mut names: Vec<_> = answers
        .into_iter()
        .map(|answer| answer.unwrap().server.unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "a", "b", "b"], "a still serves");

    for path in ["/status", "/metrics", "/health", "/ready"] {
        let (code, body, _) = api(admin, Method::GET, path, "", None).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, body, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/zz/state",
        "drain",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (404, "no server \"zz\" in backend \"pool\"\n")
    );
    let (code, body, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/a/state",
        "down",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "\"down\" is not a server state: ready, drain or maint\n"
        )
    );

    let (web, admin) = (listen(), listen());
    let admin_keys = format!("listen: \"{admin}\"");
    let _open = Tandem::start(&yaml(web, &admin_keys, &servers, ""), &[web, admin]).await;
    let (code, body, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/a/state",
        "drain",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 403);
    assert!(body.contains("set admin.token_file"), "{body}");
    assert_eq!(server(admin, "pool", "a").await.admin_state, "ready");
}

/// Over the unix socket (owner-only), `tandem ctl` needs no token: maintenance takes a out
/// of the traffic, `show` and `tandem status --socket` say so, ready brings it back.
#[tokio::test]
async fn over_the_unix_socket_ctl_works_without_a_token() {
    let (a, b) = (TestServer::start("a").await, TestServer::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let (web, admin) = (listen(), listen());
    let servers = [("a", a.address, 1), ("b", b.address, 1)];
    let admin_keys = format!("listen: \"{admin}\", socket: {}", socket.display());
    let _tandem = Tandem::start(&yaml(web, &admin_keys, &servers, ""), &[web, admin]).await;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only");

    let path = socket.to_str().unwrap();
    let (code, out, err) = ctl(&["--socket", path, "server", "set-state", "pool/a", "maint"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "server pool/a set to maint, weight 1\n"),
        "{err}"
    );
    for _ in 0..4 {
        let answer = get(web, "/").await.unwrap();
        assert_eq!((answer.status, answer.server.as_deref()), (200, Some("b")));
    }
    let (code, shown, _) = ctl(&["--socket", path, "show"]);
    assert_eq!(code, 0);
    let line = shown
        .lines()
        .find(|line| line.trim_start().starts_with("a "))
        .unwrap();
    assert!(
        line.contains("MAINT") && line.contains("set by an operator: maint"),
        "{shown}"
    );
    // `tandem status` reads over the socket too.
    let status = Command::new(tandem_binary())
        .args(["status", "--socket", path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("a "))
        .unwrap_or_else(|| panic!("no line for a:\n{text}"));
    assert!(line.contains("MAINT"), "{text}");

    let (code, out, _) = ctl(&["--socket", path, "server", "set-state", "pool/a", "ready"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "server pool/a set to ready, weight 1\n")
    );
    wait_until(LIMIT, "a serves again", || async {
        get(web, "/")
            .await
            .is_ok_and(|answer| answer.server.as_deref() == Some("a"))
    })
    .await;
}

/// SIGHUP: a runtime change stays through a reload that changes another backend, and goes
/// once the file changes that server's own entry.
#[tokio::test]
async fn a_runtime_change_survives_an_unrelated_reload_and_yields_to_the_file() {
    let (a, b, c) = (
        TestServer::start("a").await,
        TestServer::start("b").await,
        TestServer::start("c").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let (web, admin) = (listen(), listen());
    let admin_keys = format!("listen: \"{admin}\", token_file: {}", token.display());
    let other = |weight: u32| {
        format!(
            "  - name: other\n    servers: [ {{ name: c, address: \"{}\", weight: {weight} }} ]\n",
            c.address
        )
    };
    // The other backend goes at the end of the backends, just before the admin section.
    let file = |a_weight: u32, c_weight: u32| {
        let servers = [("a", a.address, a_weight), ("b", b.address, 1)];
        let text = yaml(web, &admin_keys, &servers, "");
        text.replace("admin:", &format!("{}admin:", other(c_weight)))
    };
    let tandem = Tandem::start(&file(1, 1), &[web, admin]).await;
    let (code, _, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/a/weight",
        "0",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/b/state",
        "drain",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, _) = api(
        admin,
        Method::PUT,
        "/api/servers/pool/b/state",
        "ready",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);

    let log = tandem.reload(&file(1, 5)).await;
    assert!(log.contains("config reloaded"), "{log}");
    let shown = server(admin, "pool", "a").await;
    assert_eq!(
        (shown.state.as_str(), shown.runtime_weight, shown.weight),
        ("DRAIN", Some(0), 0),
        "kept through a reload that changed another backend"
    );
    for _ in 0..4 {
        assert_eq!(get(web, "/").await.unwrap().server.as_deref(), Some("b"));
    }

    let log = tandem.reload(&file(2, 5)).await;
    assert!(
        log.contains("runtime change dropped: server pool/a"),
        "{log}"
    );
    let shown = server(admin, "pool", "a").await;
    assert_eq!(
        (
            shown.state.as_str(),
            shown.admin_state.as_str(),
            shown.runtime_weight,
            shown.weight
        ),
        ("UP", "ready", None, 2),
        "the file changed a: its weight is the file's again"
    );
    wait_until(LIMIT, "a serves again", || async {
        get(web, "/")
            .await
            .is_ok_and(|answer| answer.server.as_deref() == Some("a"))
    })
    .await;
}

/// `tandem ctl` over TCP: what it prints and its exit codes (0 done, 1 refused, 3 not
/// reachable, 4 not authorized), and a frontend disabled refuses new clients until enabled.
#[tokio::test]
async fn tandem_ctl_prints_what_changed_and_exits_with_a_code_per_failure() {
    let (a, b) = (TestServer::start("a").await, TestServer::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let (web, admin) = (listen(), listen());
    let servers = [("a", a.address, 1), ("b", b.address, 1)];
    let admin_keys = format!("listen: \"{admin}\", token_file: {}", token.display());
    let _tandem = Tandem::start(&yaml(web, &admin_keys, &servers, ""), &[web, admin]).await;
    let (admin_text, token) = (admin.to_string(), token.to_str().unwrap().to_owned());
    let with_token = |args: &[&str]| {
        let mut all = vec![
            "--admin",
            admin_text.as_str(),
            "--token-file",
            token.as_str(),
        ];
        all.extend_from_slice(args);
        ctl(&all)
    };

    let (code, out, err) = with_token(&["server", "set-weight", "pool/b", "3"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "server pool/b set to ready, weight 3\n"),
        "{err}"
    );
    assert_eq!(server(admin, "pool", "b").await.runtime_weight, Some(3));

    let (code, _, err) = with_token(&["server", "set-weight", "pool/zz", "3"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "tandem ctl: 404 Not Found: no server \"zz\" in backend \"pool\"\n"
    );
    let (code, _, err) = ctl(&[
        "--admin",
        &admin_text,
        "--token-file",
        wrong.to_str().unwrap(),
        "server",
        "set-state",
        "pool/a",
        "drain",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (4, "tandem ctl: 401 Unauthorized: wrong token\n")
    );
    let (code, _, err) = with_token(&["server", "set-state", "pool", "drain"]);
    assert_eq!(code, 2, "{err}");
    let closed = listen().to_string();
    let (code, _, err) = ctl(&["--admin", &closed, "show"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Connection refused"), "{err}");

    let (code, out, _) = with_token(&["frontend", "disable", "fe"]);
    assert_eq!((code, out.as_str()), (0, "frontend fe disabled\n"));
    assert!(
        TcpStream::connect(web).await.is_err(),
        "new clients are refused"
    );
    let (code, shown, _) = ctl(&["--admin", &admin_text, "show", "--json"]);
    assert_eq!(code, 0);
    let shown: Status = serde_json::from_str(&shown).unwrap();
    assert!(!shown.frontends[0].enabled);
    let (code, out, _) = with_token(&["frontend", "enable", "fe"]);
    assert_eq!((code, out.as_str()), (0, "frontend fe enabled\n"));
    assert_eq!(get(web, "/").await.unwrap().status, 200);
    let (code, _, err) = with_token(&["vrrp", "resign", "VI_1"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "tandem ctl: 404 Not Found: no VRRP instance \"VI_1\"\n")
    );
}

/// `/health` says alive and `/ready` ready while serving; once SIGTERM starts the drain,
/// `/ready` answers 503 (a load balancer in front stops sending) while `/health` stays 200
/// and a request in flight finishes.
#[tokio::test]
async fn ready_turns_503_while_stopping_and_health_stays_200() {
    let a = TestServer::start("a").await;
    let (web, admin) = (listen(), listen());
    let admin_keys = format!("listen: \"{admin}\"");
    let tandem = Tandem::start(
        &yaml(web, &admin_keys, &[("a", a.address, 1)], ""),
        &[web, admin],
    )
    .await;
    let (code, body, _) = api(admin, Method::GET, "/ready", "", None).await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));

    a.control.delay_ms.store(2000, Ordering::SeqCst);
    let slow = tokio::spawn(get(web, "/slow"));
    wait_until(LIMIT, "the slow request reaches a", || async {
        a.control.requests.load(Ordering::SeqCst) == 1
    })
    .await;
    tandem.signal("TERM");
    wait_until(LIMIT, "/ready says 503 while draining", || async {
        api(admin, Method::GET, "/ready", "", None).await.0 == 503
    })
    .await;
    let (code, body, _) = api(admin, Method::GET, "/health", "", None).await;
    assert_eq!((code, body.as_str()), (200, "alive\n"));
    let slow = slow.await.unwrap().expect("the request in flight");
    assert_eq!(slow.status, 200);
}
