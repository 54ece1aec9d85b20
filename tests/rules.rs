//! The rule layer as clients and servers see it: every matcher and action, named matchers and
//! negation, a client file swapped by a reload, error pages, request IDs in the server's view
//! and the log, rule metrics, and HTTP/2 clients getting the same rules.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use support::edge::*;
use support::metrics::*;
use support::*;

/// The example, with an api backend and an admin area open to one office address.
fn config(
    edge: SocketAddr,
    admin: SocketAddr,
    app: &TestServer,
    api: &TestServer,
    dir: &Path,
) -> String {
    format!(
        "node: {{ name: rules, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         access_log: {{ format: json, path: {dir}/access.log }}\n\
         frontends:\n\
         \x20 - name: web\n    listen: \"{edge}\"\n    mode: http\n    backend: app\n\
         \x20   request_id: true\n\
         \x20   error_pages: {{ 503: {dir}/503.html, 403: {dir}/403.html }}\n\
         \x20   matchers:\n\
         \x20     office: {{ client: [127.0.0.2, 2001:db8::/32] }}\n\
         \x20     listed: {{ client_file: {dir}/clients.txt }}\n\
         \x20     api: {{ path_regex: \"^/api/v[0-9]+/\" }}\n\
         \x20   rules:\n\
         \x20     - {{ name: admin, match: {{ path_prefix: /admin, not: office }}, deny: 403 }}\n\
         \x20     - {{ name: listed, match: {{ path_prefix: /listed, not: listed }}, deny: {{ status: 451, body: \"not listed\\n\" }} }}\n\
         \x20     - {{ name: moved, match: {{ host: old.example.com }}, redirect: {{ location: \"https://new.example.com{{path}}{{query}}\", code: 301 }} }}\n\
         \x20     - {{ name: health, match: {{ path: /healthz }}, respond: {{ status: 200, body: \"ok\\n\", headers: {{ Content-Type: text/plain, X-Served-By: \"tandem {{method}}\" }} }} }}\n\
         \x20     - {{ name: api, match: api, rewrite: {{ path_regex: {{ from: \"^/api/v[0-9]+(/.*)$\", to: \"{{1}}\" }} }}, backend: api }}\n\
         \x20     - {{ name: headers, set_request_headers: {{ X-Real-IP: \"{{client_ip}}\", X-Trace: \"{{request_id}}\" }}, remove_request_headers: [X-Debug], set_response_headers: {{ X-Frame-Options: DENY }} }}\n\
         \x20     - {{ name: read_only, match: {{ method: [PUT, DELETE], header: {{ X-Role: \"!admin\" }} }}, deny: {{ status: 405, body: \"read-only\\n\" }} }}\n\
         \x20     - {{ name: beta, match: {{ any: [{{ query: {{ beta: \"1\" }} }}, {{ cookie: {{ beta: \"~^(yes|1)$\" }} }}, {{ header: {{ X-Beta: true }} }}] }}, backend: api }}\n\
         \x20     - {{ name: down, match: {{ path: /down }}, backend: empty }}\n\
         backends:\n\
         \x20 - {{ name: app, servers: [{{ name: app, address: \"{}\" }}] }}\n\
         \x20 - {{ name: api, servers: [{{ name: api, address: \"{}\" }}] }}\n\
         \x20 - {{ name: empty, servers: [{{ name: gone, address: \"127.0.0.1:1\" }}], health_check: {{ type: tcp, interval: 100ms, timeout: 50ms }} }}\n",
        app.address,
        api.address,
        dir = dir.display(),
    )
}

/// `method path` with `headers` on a new connection from `source`.
async fn send(
    source: &str,
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    request_from(source.parse::<IpAddr>().unwrap(), address, request)
        .await
        .unwrap()
}

async fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut headers = headers.to_vec();
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        headers.push(("host", "www.example.com"));
    }
    send("127.0.0.3", address, "GET", path, &headers).await
}

fn text(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.body).into_owned()
}

struct Setup {
    app: TestServer,
    api: TestServer,
    edge: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
    tandem: Tandem,
}

async fn setup() -> Setup {
    let (app, api) = (
        TestServer::start("app").await,
        TestServer::start("api").await,
    );
    let (edge, admin) = (listen(), listen());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("503.html"), "<h1>down for a moment</h1>\n").unwrap();
    std::fs::write(dir.path().join("403.html"), "<h1>not for you</h1>\n").unwrap();
    std::fs::write(dir.path().join("clients.txt"), "# allowed\n127.0.0.4\n").unwrap();
    let config = config(edge, admin, &app, &api, dir.path());
    let tandem = Tandem::start(&config, &[edge, admin]).await;
    Setup {
        app,
        api,
        edge,
        admin,
        dir,
        tandem,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_redirect_and_respond_answer_without_the_server() {
    let setup = setup().await;
    let edge = setup.edge;

    let denied = get(edge, "/admin/users", &[]).await;
    assert_eq!(denied.status, 403);
    // Paths a server reads as /admin meet the rule on /admin too.
    for sneaky in [
        "//admin",
        "/./admin/x",
        "/x/../admin",
        "/%61dmin",
        "/%2e%2e/admin",
    ] {
        assert_eq!(get(edge, sneaky, &[]).await.status, 403, "{sneaky}");
    }
    assert_eq!(
        text(&denied),
        "<h1>not for you</h1>\n",
        "the 403 error page"
    );
    assert_eq!(denied.headers["content-type"], "text/html; charset=utf-8");
    let office = send("127.0.0.2", edge, "GET", "/admin/users", &[("host", "a")]).await;
    assert_eq!(
        (office.status, office.server.as_deref()),
        (200, Some("app"))
    );

    let moved = get(edge, "/a/b?c=1", &[("host", "old.example.com")]).await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.headers["location"], "https://new.example.com/a/b?c=1");

    let health = get(edge, "/healthz", &[]).await;
    assert_eq!((health.status, text(&health).as_str()), (200, "ok\n"));
    assert_eq!(health.headers["content-type"], "text/plain");
    assert_eq!(health.headers["x-served-by"], "tandem GET");
    assert_eq!(
        health.headers["x-frame-options"], "DENY",
        "later rules' response headers apply"
    );

    let put = send(
        "127.0.0.3",
        edge,
        "PUT",
        "/doc",
        &[("host", "a"), ("x-role", "editor")],
    )
    .await;
    assert_eq!((put.status, text(&put).as_str()), (405, "read-only\n"));
    let unnamed = send("127.0.0.3", edge, "DELETE", "/doc", &[("host", "a")]).await;
    assert_eq!(unnamed.status, 405, "no X-Role is not admin either");
    let admin = send(
        "127.0.0.3",
        edge,
        "PUT",
        "/doc",
        &[("host", "a"), ("x-role", "admin")],
    )
    .await;
    assert_eq!((admin.status, admin.server.as_deref()), (200, Some("app")));

    assert_eq!(
        (setup.app.requests(), setup.api.requests()),
        (2, 0),
        "only the office admin request and the admin PUT reached a server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_routes_and_header_templates_as_the_server_sees_them() {
    let setup = setup().await;
    let edge = setup.edge;

    // /api/v2/headers is rewritten to /headers, which the api server answers with what it got.
    let api = get(edge, "/api/v2/headers?x=1", &[("x-debug", "1")]).await;
    assert_eq!((api.status, api.server.as_deref()), (200, Some("api")));
    let seen = text(&api);
    assert!(seen.contains("x-real-ip: 127.0.0.3\n"), "{seen}");
    assert!(!seen.contains("x-debug"), "{seen}");
    let id = (seen.lines())
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a request ID is passed on");
    assert_eq!(id.len(), 32);
    assert!(seen.contains(&format!("x-trace: {id}\n")), "{seen}");

    let kept = get(edge, "/headers", &[("x-request-id", "client-chosen-7")]).await;
    assert_eq!(kept.server.as_deref(), Some("app"));
    assert!(text(&kept).contains("x-request-id: client-chosen-7\n"));
    let log = wait_for_log(&setup.dir.path().join("access.log"), "client-chosen-7").await;
    assert!(log.contains("\"request_id\":\"client-chosen-7\""), "{log}");

    for (headers, path) in [
        (&[("cookie", "a=b; beta=yes")][..], "/"),
        (&[("x-beta", "")][..], "/"),
        (&[][..], "/?beta=1"),
    ] {
        let beta = get(edge, path, headers).await;
        assert_eq!(beta.server.as_deref(), Some("api"), "{headers:?} {path}");
    }
    for (headers, path) in [(&[("cookie", "beta=no")][..], "/"), (&[][..], "/?beta=10")] {
        let plain = get(edge, path, headers).await;
        assert_eq!(plain.server.as_deref(), Some("app"), "{headers:?} {path}");
    }

    // A backend with no server up: the 503 page.
    let down = get(edge, "/down", &[]).await;
    assert_eq!(
        (down.status, text(&down).as_str()),
        (503, "<h1>down for a moment</h1>\n")
    );
}

async fn wait_for_log(path: &Path, wanted: &str) -> String {
    wait_until(
        std::time::Duration::from_secs(10),
        "the access log line",
        || async { std::fs::read_to_string(path).is_ok_and(|log| log.contains(wanted)) },
    )
    .await;
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_file_swapped_and_reloaded_changes_who_is_let_in() {
    let setup = setup().await;
    let edge = setup.edge;
    let from = |source: &'static str| async move {
        send(source, edge, "GET", "/listed", &[("host", "a")])
            .await
            .status
    };
    assert_eq!(
        (from("127.0.0.4").await, from("127.0.0.5").await),
        (200, 451)
    );
    let denied = send("127.0.0.5", edge, "GET", "/listed", &[("host", "a")]).await;
    assert_eq!(
        text(&denied),
        "not listed\n",
        "a rule's own body, not an error page"
    );

    std::fs::write(setup.dir.path().join("clients.txt"), "127.0.0.5/32\n").unwrap();
    let config = config(edge, setup.admin, &setup.app, &setup.api, setup.dir.path());
    let log = setup.tandem.reload(&config).await;
    assert!(log.contains("config reloaded"), "{log}");
    assert_eq!(
        (from("127.0.0.4").await, from("127.0.0.5").await),
        (451, 200)
    );

    // A broken client file fails the reload and keeps the list that runs.
    std::fs::write(
        setup.dir.path().join("clients.txt"),
        "127.0.0.4\nnot-an-address\n",
    )
    .unwrap();
    let log = setup.tandem.reload(&config).await;
    assert!(log.contains("clients.txt:2"), "{log}");
    assert_eq!(
        (from("127.0.0.4").await, from("127.0.0.5").await),
        (451, 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_the_same_rules_and_hits_are_counted() {
    let setup = setup().await;
    let url = |path: &str| format!("http://{}{path}", setup.edge);
    let denied = curl(&["--http2-prior-knowledge", &url("/admin")]).await;
    assert_eq!((denied.status, denied.http_version.as_str()), (403, "2"));
    let api = curl(&["--http2-prior-knowledge", &url("/api/v1/headers")]).await;
    assert_eq!(api.status, 200);
    assert!(api.body.contains("x-real-ip: 127.0.0.1\n"), "{}", api.body);
    assert_eq!(
        api.header("x-frame-options"),
        Some("deny"),
        "curl lowercases the head"
    );

    let metrics = scrape(setup.admin).await;
    for (rule, hits) in [
        ("admin", 1.0),
        ("api", 1.0),
        ("headers", 2.0),
        ("moved", 0.0),
    ] {
        let labels = [("proxy", "web"), ("rule", rule)];
        assert_eq!(
            metrics.get("tandem_rule_hits_total", &labels),
            hits,
            "{rule}"
        );
    }
    assert_eq!(
        metrics.get("tandem_frontend_denied_total", &[("proxy", "web")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sni_a_tls_client_asked_for_picks_the_backend_and_fills_templates() {
    let (app, api) = (
        TestServer::start("app").await,
        TestServer::start("api").await,
    );
    let pki = Pki::new();
    let leaf = pki.leaf("site", &["www.example.com", "api.example.com"]);
    let edge = listen();
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         frontends:\n\
         \x20 - name: web\n    listen: \"{edge}\"\n    mode: http\n    backend: app\n\
         \x20   tls: {{ certificates: [{}] }}\n\
         \x20   rules:\n\
         \x20     - {{ match: {{ sni: api.example.com }}, backend: api, set_request_headers: {{ X-SNI: \"{{sni}} {{scheme}}\" }} }}\n\
         backends:\n\
         \x20 - {{ name: app, servers: [{{ name: app, address: \"{}\" }}] }}\n\
         \x20 - {{ name: api, servers: [{{ name: api, address: \"{}\" }}] }}\n",
        leaf.yaml(),
        app.address,
        api.address,
    );
    let _tandem = Tandem::start(&config, &[edge]).await;
    let ca = pki.ca_path.display().to_string();
    let ask = |name: &'static str| {
        let (resolve, url) = (
            format!("{name}:{}:127.0.0.1", edge.port()),
            format!("https://{name}:{}/headers", edge.port()),
        );
        let ca = ca.clone();
        async move { curl(&["--resolve", &resolve, "--cacert", &ca, &url]).await }
    };
    let api_answer = ask("api.example.com").await;
    assert_eq!(api_answer.header("x-server"), Some("api"));
    assert!(
        api_answer.body.contains("x-sni: api.example.com https\n"),
        "{}",
        api_answer.body
    );
    let www = ask("www.example.com").await;
    assert_eq!(www.header("x-server"), Some("app"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_count_per_client_or_header_and_survive_a_reload() {
    let app = TestServer::start("app").await;
    let (edge, admin) = (listen(), listen());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("429.html"), "<h1>slow down</h1>\n").unwrap();
    let config = format!(
        "node: {{ name: rules, threads: 2 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - name: web\n    listen: \"{edge}\"\n    mode: http\n    backend: app\n\
         \x20   error_pages: {{ 429: {}/429.html }}\n\
         \x20   rules:\n\
         \x20     - {{ name: per_client, match: {{ path_prefix: /client }}, rate_limit: {{ key: client, rate: 1/h, burst: 3 }} }}\n\
         \x20     - {{ name: per_key, match: {{ path_prefix: /key }}, rate_limit: {{ key: {{ header: X-Api-Key }}, rate: 1/h, burst: 2 }} }}\n\
         backends:\n\
         \x20 - {{ name: app, servers: [{{ name: app, address: \"{}\" }}] }}\n",
        dir.path().display(),
        app.address,
    );
    let tandem = Tandem::start(&config, &[edge, admin]).await;
    let status = |source: &'static str, path: &'static str, key: Option<&'static str>| async move {
        let mut headers = vec![("host", "a")];
        headers.extend(key.map(|key| ("x-api-key", key)));
        send(source, edge, "GET", path, &headers).await
    };
    for _ in 0..3 {
        assert_eq!(status("127.0.0.2", "/client", None).await.status, 200);
    }
    let limited = status("127.0.0.2", "/client", None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(text(&limited), "<h1>slow down</h1>\n");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(
        status("127.0.0.3", "/client", None).await.status,
        200,
        "another client"
    );
    assert_eq!(
        status("127.0.0.2", "/other", None).await.status,
        200,
        "another rule's path"
    );

    for source in ["127.0.0.4", "127.0.0.5"] {
        assert_eq!(
            status(source, "/key", Some("alpha")).await.status,
            200,
            "{source}"
        );
    }
    assert_eq!(
        status("127.0.0.6", "/key", Some("alpha")).await.status,
        429,
        "one key"
    );
    assert_eq!(status("127.0.0.6", "/key", Some("beta")).await.status, 200);

    // The same rules reloaded keep what each client has used.
    let log = tandem.reload(&config).await;
    assert!(log.contains("config reloaded"), "{log}");
    assert_eq!(status("127.0.0.2", "/client", None).await.status, 429);

    let metrics = scrape(admin).await;
    let limited = metrics.get("tandem_frontend_rate_limited_total", &[("proxy", "web")]);
    assert_eq!(limited, 3.0);
    assert_eq!(app.requests(), 3 + 1 + 1 + 2 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_path_templates_body_files_and_response_header_removal() {
    let app = TestServer::start("app").await;
    let edge = listen();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("maintenance.html"), "<p>back at noon</p>\n").unwrap();
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         frontends:\n\
         \x20 - name: web\n    listen: \"{edge}\"\n    mode: http\n    backend: app\n\
         \x20   rules:\n\
         \x20     - {{ match: {{ host_regex: \"^([a-z]+)\\\\.shop\\\\.example$\" }}, redirect: {{ location: \"https://example.com/shops/{{1}}{{path}}\" }} }}\n\
         \x20     - {{ match: {{ path: /maintenance }}, respond: {{ status: 503, body_file: {}/maintenance.html, headers: {{ Content-Type: text/html, Retry-After: \"120\" }} }} }}\n\
         \x20     - {{ match: {{ path_prefix: /old/ }}, rewrite: {{ path: \"/headers\" }} }}\n\
         \x20     - {{ match: {{ header: {{ User-Agent: \"~(?i)curl\" }} }}, set_request_headers: {{ X-Agent: curl }} }}\n\
         \x20     - {{ remove_response_headers: [X-Server], set_response_headers: {{ X-Via: \"tandem {{scheme}}\" }} }}\n\
         backends:\n\
         \x20 - {{ name: app, servers: [{{ name: app, address: \"{}\" }}] }}\n",
        dir.path().display(),
        app.address,
    );
    let _tandem = Tandem::start(&config, &[edge]).await;

    let shop = get(edge, "/cart?x=1", &[("host", "books.shop.example")]).await;
    assert_eq!(shop.status, 302, "redirect's default code");
    assert_eq!(
        shop.headers["location"],
        "https://example.com/shops/books/cart"
    );

    let down = get(edge, "/maintenance", &[]).await;
    assert_eq!(
        (down.status, text(&down).as_str()),
        (503, "<p>back at noon</p>\n")
    );
    assert_eq!(down.headers["content-type"], "text/html");
    assert_eq!(down.headers["retry-after"], "120");

    let moved = get(edge, "/old/page?q=2", &[("user-agent", "CURL/8")]).await;
    assert_eq!(moved.status, 200);
    assert!(moved.server.is_none(), "X-Server removed from the response");
    assert_eq!(moved.headers["x-via"], "tandem http");
    let seen = text(&moved);
    assert!(
        seen.contains("x-agent: curl\n"),
        "the rewrite reached /headers: {seen}"
    );
    let other = get(edge, "/headers", &[("user-agent", "wget")]).await;
    assert!(!text(&other).contains("x-agent"), "{}", text(&other));
    assert_eq!(app.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_the_rules_still_gets_the_headers_every_answer_gets() {
    let app = TestServer::start("app").await;
    let edge = listen();
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         frontends:\n\
         \x20 - name: web\n    listen: \"{edge}\"\n    mode: http\n    backend: app\n\
         \x20   request_id: true\n\
         \x20   response_headers: {{ set: {{ Strict-Transport-Security: max-age=600 }} }}\n\
         backends:\n\
         \x20 - {{ name: app, servers: [{{ name: app, address: \"{}\" }}] }}\n",
        app.address,
    );
    let _tandem = Tandem::start(&config, &[edge]).await;
    let mut stream = tokio::net::TcpStream::connect(edge).await.unwrap();
    let answer = exchange(
        &mut stream,
        b"GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 400 "), "{answer}");
    assert!(
        answer.contains("strict-transport-security: max-age=600\r\n"),
        "{answer}"
    );
    assert_eq!(app.requests(), 0);
}
