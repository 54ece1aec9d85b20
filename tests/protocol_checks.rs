//! Health checks that speak the server's protocol, against real servers: Redis, MariaDB and
//! PostgreSQL from Debian are marked up by their protocol and down once another process that
//! accepts holds their port; tcp send/expect steps against Redis; http method, headers and
//! expected body against nginx; a check on another port than the server's.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::check_peers::*;
use support::*;

/// Rise 2, fall 2: being marked up takes two passing checks.
const CHECK: &str = "interval: 200ms, timeout: 150ms, rise: 2, fall: 2";
/// What a database's start and a busy CI machine may take beyond the checks themselves.
const LIMIT: Duration = Duration::from_secs(10);

/// A tcp frontend per backend; `backends` are (name, health check keys, server address).
fn config(admin: SocketAddr, backends: &[(&str, &str, SocketAddr)]) -> String {
    let mut yaml =
        format!("node: {{ name: checks, threads: 1 }}\nadmin: {{ listen: {admin} }}\nfrontends:\n");
    for (name, _, _) in backends {
        let listen = support::listen();
        yaml.push_str(&format!(
            "  - {{ name: {name}, listen: {listen}, mode: tcp, backend: {name} }}\n"
        ));
    }
    yaml.push_str("backends:\n");
    for (name, check, server) in backends {
        yaml.push_str(&format!(
            "  - name: {name}\n    health_check: {{ {check}, {CHECK} }}\n    \
             servers: [{{ name: {name}1, address: {server} }}]\n"
        ));
    }
    yaml
}

/// The state /status shows for the server of backend `backend`: UP or DOWN.
async fn state(admin: SocketAddr, backend: &str) -> String {
    let answer = get(admin, "/status").await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let backends = status["backends"].as_array().unwrap();
    let found = backends.iter().find(|b| b["name"] == backend).unwrap();
    found["servers"][0]["state"].as_str().unwrap().to_string()
}

async fn wait_state(admin: SocketAddr, backend: &str, expected: &str, tandem: &Tandem) {
    let what = format!("{backend} {expected}");
    let deadline = std::time::Instant::now() + LIMIT;
    while state(admin, backend).await != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; tandem's log:\n{}",
            tandem.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a protocol check is shown to work on a database.
struct Case {
    /// The health check's keys.
    check: &'static str,
    /// What a listener that takes the port answers, and what the log then says.
    garbage: &'static [u8],
    garbage_logged: &'static str,
    /// A check of the same server that the running database refuses, and what the log says.
    refused: &'static str,
    refused_logged: &'static str,
    /// Other checks of the same server that the running database passes.
    also_passing: &'static [&'static str],
}

/// `case.check` on a database at `port`: down while something that answers nothing holds the
/// port, up once the database (from `start`) listens there while `case.refused` stays down,
/// and down again when the database stops and a listener that answers garbage takes the port.
/// `while_up` looks at the database while it is checked.
async fn marks_up_by_protocol_then_down<F, Fut>(
    case: Case,
    port: u16,
    start: F,
    while_up: impl FnOnce(&Database),
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Database>,
{
    let admin = support::listen();
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let silent = hold_port(port, b"").await;
    let also: Vec<String> = (0..case.also_passing.len())
        .map(|index| format!("also{index}"))
        .collect();
    let mut backends = vec![("db", case.check, server)];
    backends.extend(
        (also.iter().zip(case.also_passing)).map(|(name, check)| (name.as_str(), *check, server)),
    );
    let tandem = Tandem::start(&config(admin, &backends), &[admin]).await;
    wait_state(admin, "db", "DOWN", &tandem).await;
    wait_until(LIMIT, "the silent port's check times out", || async {
        tandem.log().contains("health check: no answer within")
    })
    .await;

    silent.abort();
    let _ = silent.await;
    let mut database = start().await;
    wait_state(admin, "db", "UP", &tandem).await;
    for name in &also {
        wait_state(admin, name, "UP", &tandem).await;
    }
    // Another tandem, whose server starts up as every new one does: the first refusal takes
    // it down and says why.
    let other_admin = support::listen();
    let refused = [("refused", case.refused, server)];
    let other = Tandem::start(&config(other_admin, &refused), &[other_admin]).await;
    wait_state(other_admin, "refused", "DOWN", &other).await;
    let log = other.log();
    assert!(log.contains(case.refused_logged), "{log}");
    assert_eq!(state(admin, "db").await, "UP");
    while_up(&database);

    database.stop();
    let _held = hold_port(port, case.garbage).await;
    wait_state(admin, "db", "DOWN", &tandem).await;
    let log = tandem.log();
    assert!(log.contains(case.garbage_logged), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_is_checked_with_ping() {
    let Some(program) = peer_program("redis-server", "redis-server") else {
        return;
    };
    let port = free_port();
    let case = Case {
        check: "type: redis",
        garbage: b"-ERR unknown command\r\n",
        garbage_logged: "Redis error: ERR unknown command",
        // A tcp check whose step expects what Redis does not answer.
        refused: r#"type: tcp, steps: [{ send: "PING\r\n" }, { expect: "+NOPE" }]"#,
        refused_logged: "no answer within",
        also_passing: &[],
    };
    marks_up_by_protocol_then_down(
        case,
        port,
        || async { Database::redis(&program, port).await },
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_is_checked_by_its_greeting_and_a_login() {
    let (Some(install_db), Some(mariadbd), Some(client)) = (
        peer_program("mariadb-install-db", "mariadb-server"),
        peer_program("mariadbd", "mariadb-server"),
        peer_program("mariadb", "mariadb-server"),
    ) else {
        return;
    };
    let port = free_port();
    let init = "CREATE USER 'check'@'127.0.0.1';\n";
    let case = Case {
        check: "type: mysql, user: check",
        garbage: b"HTTP/1.1 400 Bad Request\r\n\r\n",
        garbage_logged: "not a MySQL packet",
        refused: "type: mysql, user: nobody",
        refused_logged: "MySQL error 1045: Access denied for user 'nobody'@'127.0.0.1'",
        // Without a user, the greeting is enough.
        also_passing: &["type: mysql"],
    };
    marks_up_by_protocol_then_down(
        case,
        port,
        || async { Database::mariadb(&install_db, &mariadbd, port, init).await },
        |database| {
            // Each check logged in and quit: a client that leaves without COM_QUIT is counted.
            assert_eq!(database.mariadb_status(&client, "Aborted_clients"), 0);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_checked_with_a_startup_message() {
    let (Some(initdb), Some(postgres)) = (
        peer_program("initdb", "postgresql"),
        peer_program("postgres", "postgresql"),
    ) else {
        return;
    };
    let port = free_port();
    let case = Case {
        check: "type: postgres, user: postgres, database: postgres",
        garbage: b"+PONG\r\n",
        garbage_logged: "not a PostgreSQL message",
        refused: "type: postgres, user: postgres, database: nowhere",
        refused_logged: "PostgreSQL error 3D000: database \"nowhere\" does not exist",
        // Asked for a password: the server is up, and is left without a logged complaint.
        also_passing: &["type: postgres, user: secret"],
    };
    marks_up_by_protocol_then_down(
        case,
        port,
        || async { Database::postgres(&initdb, &postgres, port).await },
        |database| {
            let log = database.log();
            assert!(log.contains("database system is ready"), "{log}");
            assert!(!log.contains("expected SASL response"), "{log}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_steps_send_and_expect_text_regex_and_hex() {
    let Some(program) = peer_program("redis-server", "redis-server") else {
        return;
    };
    let port = free_port();
    let case = Case {
        // RESP's PING as hex, answered +PONG (hex); then the inline ECHO, answered by a bulk
        // string that a regex recognises.
        check: r#"type: tcp, steps: [{ send: { hex: "2a310d0a 24340d0a 50494e47 0d0a" } }, { expect: { hex: "2b504f4e470d0a" } }, { send: "ECHO tandem\r\n" }, { expect: { regex: "^\\$6\r\ntandem\r\n" } }]"#,
        garbage: b"+PONG\r\n$5\r\nother\r\n",
        garbage_logged: "server is down backend=db",
        // Redis says +OK to QUIT and closes before the expected text comes.
        refused: r#"type: tcp, steps: [{ send: "QUIT\r\n" }, { expect: { regex: "^\\+NOPE" } }]"#,
        refused_logged: "step 1: closed before regex \"^\\\\+NOPE\" arrived",
        also_passing: &[],
    };
    marks_up_by_protocol_then_down(
        case,
        port,
        || async { Database::redis(&program, port).await },
        |_| {},
    )
    .await;
}

/// Checks that nginx has answered at least `count` times on `path`.
fn answered(nginx: &EchoNginx, method_and_path: &str) -> usize {
    nginx.access_log().matches(method_and_path).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_send_their_method_and_headers_and_look_in_the_body() {
    let Some(program) = peer_program("nginx", "nginx") else {
        return;
    };
    let nginx = EchoNginx::start(&program).await;
    let admin = support::listen();
    let backends = [
        (
            "exact",
            r#"type: http, path: /exact, method: PUT, headers: { X-Check: tandem }, expect_body: { regex: "^PUT tandem\n$" }"#,
            nginx.address,
        ),
        (
            "text",
            "type: http, path: /text, method: OPTIONS, headers: { X-Check: tandem }, \
             expect_body: 'OPTIONS tandem'",
            nginx.address,
        ),
        (
            "wrong",
            "type: http, path: /wrong, method: PUT, headers: { X-Check: other }, \
             expect_body: 'PUT tandem'",
            nginx.address,
        ),
    ];
    let tandem = Tandem::start(&config(admin, &backends), &[admin]).await;
    wait_state(admin, "wrong", "DOWN", &tandem).await;
    assert!(
        tandem
            .log()
            .contains("health check: body lacks \"PUT tandem\""),
        "{}",
        tandem.log()
    );
    // Three checks each, with fall 2: a failing one would be down by now.
    wait_until(LIMIT, "three checks of each", || async {
        answered(&nginx, "\"PUT /exact HTTP/1.1\" 200") >= 3
            && answered(&nginx, "\"OPTIONS /text HTTP/1.1\" 200") >= 3
    })
    .await;
    assert_eq!(state(admin, "exact").await, "UP");
    assert_eq!(state(admin, "text").await, "UP");
    assert_eq!(state(admin, "wrong").await, "DOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_and_address_send_the_check_elsewhere() {
    let Some(program) = peer_program("nginx", "nginx") else {
        return;
    };
    let nginx = EchoNginx::start(&program).await;
    let admin = support::listen();
    // Nothing listens at the servers' own addresses: only a check sent elsewhere passes.
    let nowhere = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let port = nginx.address.port();
    let backends = [
        (
            "moved",
            format!("type: http, path: /moved, port: {port}, address: 127.0.0.1"),
            nowhere,
        ),
        ("own", "type: http, path: /own".to_string(), nowhere),
    ];
    let backends: Vec<_> = (backends.iter())
        .map(|(name, check, server)| (*name, check.as_str(), *server))
        .collect();
    let tandem = Tandem::start(&config(admin, &backends), &[admin]).await;
    wait_state(admin, "own", "DOWN", &tandem).await;
    wait_until(LIMIT, "three checks at nginx", || async {
        answered(&nginx, "\"GET /moved HTTP/1.1\" 200") >= 3
    })
    .await;
    assert_eq!(state(admin, "moved").await, "UP");
    assert_eq!(answered(&nginx, "/own"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_backends_http_check_looks_in_the_body_too() {
    let Some(program) = peer_program("nginx", "nginx") else {
        return;
    };
    let nginx = EchoNginx::start_h2c(&program).await;
    let admin = support::listen();
    let mut yaml =
        format!("node: {{ name: checks, threads: 1 }}\nadmin: {{ listen: {admin} }}\nfrontends:\n");
    let checks = [("good", "X-Check: tandem"), ("wrong", "X-Check: other")];
    for (name, _) in checks {
        let listen = support::listen();
        yaml.push_str(&format!(
            "  - {{ name: {name}, listen: {listen}, mode: http, backend: {name} }}\n"
        ));
    }
    yaml.push_str("backends:\n");
    for (name, header) in checks {
        yaml.push_str(&format!(
            "  - name: {name}\n    protocol: h2\n    health_check: {{ type: http, path: /{name}, \
             method: POST, headers: {{ {header} }}, expect_body: {{ regex: \"^POST tandem\" }}, \
             {CHECK} }}\n    servers: [{{ name: {name}1, address: {} }}]\n",
            nginx.address
        ));
    }
    let tandem = Tandem::start(&yaml, &[admin]).await;
    wait_state(admin, "wrong", "DOWN", &tandem).await;
    wait_until(LIMIT, "three checks of good", || async {
        answered(&nginx, "\"POST /good HTTP/2.0\" 200") >= 3
    })
    .await;
    assert_eq!(state(admin, "good").await, "UP");
}
