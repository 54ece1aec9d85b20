//! What an http frontend decides per request, as clients and servers see it: routes to
//! backends, header rules both ways (also on tandem's own answers), redirects to https, and
//! cookie persistence in HAProxy's `insert indirect nocache` style.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tandem::status::Status;
use tokio::net::TcpStream;

use support::edge::*;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

fn text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// `path` with `headers` on a new connection from 127.0.0.1.
async fn request(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    request_from([127, 0, 0, 1].into(), address, request)
        .await
        .unwrap()
}

async fn request_host(address: SocketAddr, host: &str, path: &str) -> Answer {
    request(address, path, &[("host", host)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_send_each_request_to_the_first_matching_backend() {
    let (web, static_server, api) = (
        TestServer::start("web").await,
        TestServer::start("static").await,
        TestServer::start("api").await,
    );
    let edge = listen();
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         frontends:\n\
         \x20 - name: edge\n    listen: \"{edge}\"\n    mode: http\n\
         \x20   routes:\n\
         \x20     - {{ host: static.example.com, backend: static_pool }}\n\
         \x20     - {{ host: \"*.example.com\", path_prefix: /api/, backend: api_pool }}\n\
         \x20     - {{ path_prefix: /img/, backend: static_pool }}\n\
         \x20   backend: web_pool\n\
         backends:\n\
         \x20 - {{ name: web_pool, servers: [{{ name: web, address: \"{}\" }}] }}\n\
         \x20 - {{ name: static_pool, servers: [{{ name: static, address: \"{}\" }}] }}\n\
         \x20 - {{ name: api_pool, servers: [{{ name: api, address: \"{}\" }}] }}\n",
        web.address, static_server.address, api.address
    );
    let _tandem = Tandem::start(&config, &[edge]).await;

    let cases = [
        ("static.example.com", "/", "static", "exact host"),
        (
            "static.example.com",
            "/api/v1",
            "static",
            "first match wins over the api route",
        ),
        (
            "static.example.com:8443",
            "/",
            "static",
            "the Host's port is not part of the name",
        ),
        (
            "STATIC.Example.COM",
            "/",
            "static",
            "host names match case-insensitively",
        ),
        (
            "www.example.com",
            "/api/v1",
            "api",
            "wildcard host and path prefix",
        ),
        (
            "WWW.example.com:8080",
            "/api/",
            "api",
            "wildcard, with case and port",
        ),
        (
            "a.b.example.com",
            "/api/x",
            "api",
            "a host pattern's wildcard takes any depth",
        ),
        (
            "example.com",
            "/api/x",
            "web",
            "*.example.com does not match example.com",
        ),
        (
            "www.example.com",
            "/apix",
            "web",
            "path prefix not matched: falls through",
        ),
        (
            "www.example.com",
            "/API/x",
            "web",
            "path prefixes are case-sensitive",
        ),
        (
            "www.example.com",
            "/img/logo.png",
            "static",
            "falls through to the path route",
        ),
        (
            "other.test",
            "/img/a.png",
            "static",
            "path-only route, any host",
        ),
        (
            "other.test",
            "/api/x",
            "web",
            "no route matches: the frontend's backend",
        ),
        (
            "other.test",
            "/",
            "web",
            "no route matches: the frontend's backend",
        ),
    ];
    for (host, path, expected, why) in cases {
        let answer = request_host(edge, host, path).await;
        assert_eq!(
            (answer.status, answer.server.as_deref()),
            (200, Some(expected)),
            "{host}{path}: {why}"
        );
    }

    // HTTP/2 carries the host as :authority.
    let mut sender = h2_client(TcpStream::connect(edge).await.unwrap()).await;
    for (uri, expected) in [
        ("http://static.example.com/", "static"),
        ("http://www.example.com:8080/api/v1", "api"),
        ("http://other.test/", "web"),
    ] {
        let request = Request::get(uri).body(body(Bytes::new())).unwrap();
        let answer = read_answer(sender.send_request(request).await.unwrap())
            .await
            .unwrap();
        assert_eq!(answer.server.as_deref(), Some(expected), "h2 {uri}");
    }

    // The server sees the host routing saw: an authority in the request wins over Host.
    let mut sender = h2_client(TcpStream::connect(edge).await.unwrap()).await;
    let request = Request::get("http://static.example.com/headers")
        .header("host", "admin.internal")
        .body(body(Bytes::new()))
        .unwrap();
    let answer = read_answer(sender.send_request(request).await.unwrap())
        .await
        .unwrap();
    assert_eq!(answer.server.as_deref(), Some("static"));
    assert!(
        text(&answer.body).contains("host: static.example.com\n"),
        "{}",
        text(&answer.body)
    );
    let mut stream = TcpStream::connect(edge).await.unwrap();
    let answer = exchange(
        &mut stream,
        b"GET http://static.example.com/headers HTTP/1.1\r\nHost: admin.internal\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("host: static.example.com\n"), "{answer}");
    assert!(!answer.contains("admin.internal"), "{answer}");

    // Two Host headers could route one way and reach a server that reads the other.
    let seen = static_server.requests() + web.requests() + api.requests();
    let mut stream = TcpStream::connect(edge).await.unwrap();
    let answer = exchange(
        &mut stream,
        b"GET / HTTP/1.1\r\nHost: static.example.com\r\nHost: admin.internal\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        static_server.requests() + web.requests() + api.requests(),
        seen,
        "no server saw it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_change_requests_and_responses_including_tandems_own() {
    let server = HeaderServer::start(&[
        ("server", "testsrv"),
        ("strict-transport-security", "max-age=0"),
        ("x-server", "echo"),
    ])
    .await;
    let (edge, down) = (listen(), listen());
    let rules = "    request_headers: { set: { X-Env: prod }, remove: [X-Debug] }\n\
                 \x20   response_headers: { set: { Strict-Transport-Security: \"max-age=31536000\" }, remove: [Server] }\n";
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         frontends:\n\
         \x20 - name: edge\n    listen: \"{edge}\"\n    mode: http\n    backend: echo_pool\n{rules}\
         \x20 - name: down\n    listen: \"{down}\"\n    mode: http\n    backend: gone_pool\n{rules}\
         backends:\n\
         \x20 - {{ name: echo_pool, servers: [{{ name: echo, address: \"{}\" }}] }}\n\
         \x20 - {{ name: gone_pool, servers: [{{ name: gone, address: \"{}\" }}] }}\n",
        server.address,
        listen()
    );
    let _tandem = Tandem::start(&config, &[edge, down]).await;

    let answer = request(
        edge,
        "/",
        &[
            ("host", "www.example.com"),
            ("x-debug", "1"),
            ("x-env", "dev"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    assert_eq!(
        (answer.status, answer.server.as_deref()),
        (200, Some("echo"))
    );
    let seen = text(&answer.body);
    assert!(seen.contains("x-env: prod\n"), "{seen}");
    assert!(!seen.contains("x-env: dev"), "set replaces: {seen}");
    assert!(!seen.contains("x-debug"), "removed: {seen}");
    assert!(seen.contains("x-kept: yes\n"), "{seen}");
    let sts: Vec<_> = answer
        .headers
        .get_all("strict-transport-security")
        .iter()
        .collect();
    assert_eq!(sts, ["max-age=31536000"], "set replaces the server's value");
    assert!(
        answer.headers.get("server").is_none(),
        "{:?}",
        answer.headers
    );

    let answer = request_host(down, "www.example.com", "/").await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer
            .headers
            .get("strict-transport-security")
            .map(|v| v.as_bytes()),
        Some(&b"max-age=31536000"[..]),
        "tandem's own answer: {:?}",
        answer.headers
    );
    assert!(
        answer.headers.get("server").is_none(),
        "{:?}",
        answer.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_with_path_and_query() {
    let web = TestServer::start("web").await;
    let (to_8443, to_443, normal) = (listen(), listen(), listen());
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         frontends:\n\
         \x20 - {{ name: plain, listen: \"{to_8443}\", mode: http, redirect_https: 8443 }}\n\
         \x20 - {{ name: plain443, listen: \"{to_443}\", mode: http, redirect_https: 443 }}\n\
         \x20 - {{ name: normal, listen: \"{normal}\", mode: http, backend: web_pool }}\n\
         backends:\n\
         \x20 - {{ name: web_pool, servers: [{{ name: web, address: \"{}\" }}] }}\n",
        web.address
    );
    let _tandem = Tandem::start(&config, &[to_8443, to_443, normal]).await;
    let location = |answer: &Answer| {
        (answer.headers.get("location")).map(|value| value.to_str().unwrap().to_owned())
    };

    let cases = [
        (
            to_8443,
            "www.example.com:8080",
            "https://www.example.com:8443/a/b?x=1&y=2",
        ),
        (
            to_8443,
            "www.example.com",
            "https://www.example.com:8443/a/b?x=1&y=2",
        ),
        (
            to_443,
            "www.example.com:8080",
            "https://www.example.com/a/b?x=1&y=2",
        ),
    ];
    for (address, host, expected) in cases {
        let answer = request_host(address, host, "/a/b?x=1&y=2").await;
        assert_eq!(
            (answer.status, location(&answer).as_deref()),
            (308, Some(expected)),
            "Host {host}"
        );
    }

    let post = Request::post("/form?step=2")
        .header("host", "www.example.com:8080")
        .body(Full::new(Bytes::from_static(b"name=value")))
        .unwrap();
    let answer = request_from([127, 0, 0, 1].into(), to_8443, post)
        .await
        .unwrap();
    assert_eq!(
        (answer.status, location(&answer).as_deref()),
        (308, Some("https://www.example.com:8443/form?step=2"))
    );

    let mut sender = h2_client(TcpStream::connect(to_8443).await.unwrap()).await;
    let request = Request::get("http://www.example.com:8080/h2?q=1")
        .body(body(Bytes::new()))
        .unwrap();
    let answer = read_answer(sender.send_request(request).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        (answer.status, location(&answer).as_deref()),
        (308, Some("https://www.example.com:8443/h2?q=1")),
        "h2c, host from :authority"
    );

    // A Host that is not a name or an address is nowhere to redirect to either.
    for odd in ["evil.com/x?", "user@evil.com", "a\\b.example.com"] {
        let answer = request_host(to_8443, odd, "/p").await;
        assert_eq!(
            (answer.status, location(&answer)),
            (400, None),
            "Host {odd}"
        );
    }

    // HTTP/1.0 needs no Host, but without one there is nowhere to redirect to.
    let mut stream = TcpStream::connect(to_8443).await.unwrap();
    let answer = exchange(&mut stream, b"GET /a HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    let answer = request_host(normal, "www.example.com", "/").await;
    assert_eq!(
        (answer.status, answer.server.as_deref()),
        (200, Some("web"))
    );
}

/// The `SERVERID` value of the response's Set-Cookie, after checking its `Path=/`.
fn pinned_to(answer: &Answer) -> Option<String> {
    let cookies: Vec<&str> = (answer.headers.get_all("set-cookie").iter())
        .map(|value| value.to_str().unwrap())
        .filter(|cookie| cookie.starts_with("SERVERID="))
        .collect();
    assert!(cookies.len() <= 1, "{cookies:?}");
    let cookie = cookies.first()?;
    let mut parts = cookie.split(';').map(str::trim);
    let value = parts.next().unwrap().strip_prefix("SERVERID=").unwrap();
    assert!(
        parts.any(|attribute| attribute.eq_ignore_ascii_case("path=/")),
        "{cookie}"
    );
    let cache_control = (answer.headers.get("cache-control")).map(|v| v.to_str().unwrap());
    assert!(
        cache_control.is_some_and(|value| value.contains("private")),
        "a response that sets the cookie must not be cached for others: {cache_control:?}"
    );
    Some(value.to_owned())
}

async fn with_cookie(address: SocketAddr, path: &str, cookie: &str) -> Answer {
    request(
        address,
        path,
        &[("host", "www.example.com"), ("cookie", cookie)],
    )
    .await
}

async fn server_state(admin: SocketAddr, backend: usize, server: &str) -> String {
    let answer = get(admin, "/status").await.unwrap();
    let status: Status = serde_json::from_slice(&answer.body).unwrap();
    let servers = &status.backends[backend].servers;
    let found = servers.iter().find(|s| s.name == server).unwrap();
    found.state.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_pins_clients_to_a_server_while_it_is_up() {
    let mut servers = [
        TestServer::start("s1").await,
        TestServer::start("s2").await,
        TestServer::start("s3").await,
    ];
    let (drained, active) = (TestServer::start("d0").await, TestServer::start("d1").await);
    let (web, drain, admin) = (listen(), listen(), listen());
    let config = format!(
        "node: {{ name: rules, threads: 1 }}\n\
         admin: {{ listen: \"{admin}\" }}\n\
         frontends:\n\
         \x20 - {{ name: web, listen: \"{web}\", mode: http, backend: web_pool }}\n\
         \x20 - {{ name: drain, listen: \"{drain}\", mode: http, backend: drain_pool }}\n\
         backends:\n\
         \x20 - name: web_pool\n    balance: round_robin\n    retries: 0\n\
         \x20   persistence: {{ type: cookie, name: SERVERID }}\n\
         \x20   health_check: {{ type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }}\n\
         \x20   servers:\n\
         \x20     - {{ name: s1, address: \"{}\" }}\n\
         \x20     - {{ name: s2, address: \"{}\" }}\n\
         \x20     - {{ name: s3, address: \"{}\" }}\n\
         \x20 - name: drain_pool\n\
         \x20   persistence: {{ type: cookie, name: SERVERID }}\n\
         \x20   servers:\n\
         \x20     - {{ name: d0, address: \"{}\", weight: 0 }}\n\
         \x20     - {{ name: d1, address: \"{}\", weight: 1 }}\n",
        servers[0].address, servers[1].address, servers[2].address, drained.address, active.address
    );
    let _tandem = Tandem::start(&config, &[web, drain, admin]).await;

    let first = request_host(web, "www.example.com", "/").await;
    assert_eq!(first.status, 200);
    let pinned = first.server.clone().unwrap();
    assert_eq!(
        pinned_to(&first).as_deref(),
        Some(pinned.as_str()),
        "the first answer pins the client to the server that gave it"
    );

    // Round robin would rotate; the cookie keeps every request on one server, and the cookie
    // itself stays between client and tandem.
    let cookie = format!("a=1; SERVERID={pinned}; b=2");
    for _ in 0..6 {
        let answer = with_cookie(web, "/headers", &cookie).await;
        assert_eq!(answer.server.as_deref(), Some(pinned.as_str()));
        assert_eq!(pinned_to(&answer), None, "already pinned: no new cookie");
        let seen = text(&answer.body);
        let cookie_line = (seen.lines())
            .find(|line| line.starts_with("cookie:"))
            .unwrap_or_else(|| panic!("the other cookies reach the server: {seen}"));
        assert!(!cookie_line.contains("SERVERID"), "{cookie_line}");
        assert!(
            cookie_line.contains("a=1") && cookie_line.contains("b=2"),
            "{cookie_line}"
        );
    }

    // The pinned server dies: the client goes elsewhere and is pinned there.
    let index = servers.iter().position(|s| s.name == pinned).unwrap();
    servers[index].kill();
    wait_until(LIMIT, "the pinned server is DOWN", || async {
        server_state(admin, 0, &pinned).await == "DOWN"
    })
    .await;
    let moved = with_cookie(web, "/", &cookie).await;
    assert_eq!(moved.status, 200);
    let new_server = moved.server.clone().unwrap();
    assert_ne!(new_server, pinned);
    assert_eq!(pinned_to(&moved).as_deref(), Some(new_server.as_str()));
    let again = with_cookie(web, "/", &format!("SERVERID={new_server}")).await;
    assert_eq!(again.server.as_deref(), Some(new_server.as_str()));
    assert_eq!(pinned_to(&again), None);

    // A cookie naming no server of the backend: balanced as if absent, and pinned anew.
    let unknown = with_cookie(web, "/", "SERVERID=nosuch").await;
    assert_eq!(unknown.status, 200);
    let chosen = unknown.server.clone().unwrap();
    assert_ne!(chosen, pinned, "a DOWN server is not balanced to");
    assert_eq!(pinned_to(&unknown).as_deref(), Some(chosen.as_str()));

    // Weight 0 takes no new clients, but one pinned to it stays.
    for _ in 0..3 {
        let answer = with_cookie(drain, "/", "SERVERID=d0").await;
        assert_eq!(answer.server.as_deref(), Some("d0"));
        assert_eq!(pinned_to(&answer), None);
        let answer = request_host(drain, "www.example.com", "/").await;
        assert_eq!(answer.server.as_deref(), Some("d1"));
        assert_eq!(pinned_to(&answer).as_deref(), Some("d1"));
    }
    assert_eq!(drained.requests(), 3);
}
