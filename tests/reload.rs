//! SIGHUP reloads: what changes, what survives, and what a broken file does.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_running_config_and_says_where() {
    let s1 = TestServer::start("s1").await;
    let address = listen();
    let good = config("http", address, "round_robin", "", &[("s1", s1.address, 1)]);
    let tandem = Tandem::start(&good, &[address]).await;

    let broken = good.replace("balance: round_robin", "balance: fastest");
    let log = tandem.reload(&broken).await;
    let path = tandem.config_path.display().to_string();
    let reported = log
        .lines()
        .any(|line| line.starts_with(&format!("{path}:")) && line.contains("backends[0].balance"));
    assert!(reported, "no file:line: field in the log:\n{log}");
    let answer = get(address, "/").await.unwrap();
    assert_eq!((answer.status, answer.server.as_deref()), (200, Some("s1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_backends_adds_and_removes_frontends_and_keeps_open_connections() {
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let (kept, added) = (listen(), listen());
    let tandem = Tandem::start(
        &config("http", kept, "round_robin", "", &[("s1", s1.address, 1)]),
        &[kept],
    )
    .await;
    let mut before_reload = KeepAliveClient::connect(kept).await;
    assert_eq!(
        before_reload.get("/").await.unwrap().server.as_deref(),
        Some("s1")
    );

    let second_frontend =
        format!("  - {{ name: fe2, listen: \"{added}\", mode: http, backend: pool }}\n");
    let reloaded = config("http", kept, "round_robin", "", &[("s2", s2.address, 1)])
        .replace("backends:\n", &format!("{second_frontend}backends:\n"));
    let log = tandem.reload(&reloaded).await;
    assert!(log.contains("config reloaded"), "{log}");

    // The connection accepted before the reload is still served, now by the new backend.
    assert_eq!(
        before_reload.get("/").await.unwrap().server.as_deref(),
        Some("s2")
    );
    assert_eq!(get(added, "/").await.unwrap().server.as_deref(), Some("s2"));

    // Back to one frontend: the added address stops accepting.
    tandem
        .reload(&config(
            "http",
            kept,
            "round_robin",
            "",
            &[("s2", s2.address, 1)],
        ))
        .await;
    wait_until(
        Duration::from_secs(5),
        "the removed frontend closes",
        || async { tokio::net::TcpStream::connect(added).await.is_err() },
    )
    .await;
    assert_eq!(
        before_reload.get("/").await.unwrap().server.as_deref(),
        Some("s2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_server_stays_down_across_a_reload() {
    let sick = TestServer::start("sick").await;
    let well = TestServer::start("well").await;
    sick.control.health_status.store(503, Ordering::SeqCst);
    let address = listen();
    let checked = "    health_check: { type: http, path: /health, interval: 300ms, timeout: 200ms, rise: 3, fall: 1 }\n";
    let servers = [("sick", sick.address, 1), ("well", well.address, 1)];
    let tandem = Tandem::start(
        &config("http", address, "round_robin", checked, &servers),
        &[address],
    )
    .await;
    wait_until(Duration::from_secs(5), "sick is down", || async {
        tandem.log().contains("server is down")
    })
    .await;

    let requests_before = sick.requests();
    // Unrelated change: the weights.
    let log = tandem
        .reload(&config(
            "http",
            address,
            "round_robin",
            checked,
            &[("sick", sick.address, 2), ("well", well.address, 1)],
        ))
        .await;
    assert!(log.contains("config reloaded"), "{log}");
    for _ in 0..10 {
        assert_eq!(
            get(address, "/").await.unwrap().server.as_deref(),
            Some("well")
        );
    }
    assert_eq!(
        sick.requests(),
        requests_before,
        "the down server got traffic after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_fail_no_request() {
    let s1 = TestServer::start("s1").await;
    let s2 = TestServer::start("s2").await;
    let address = listen();
    let one = config(
        "http",
        address,
        "round_robin",
        "",
        &[("s1", s1.address, 1), ("s2", s2.address, 1)],
    );
    let other = config(
        "http",
        address,
        "least_conn",
        "",
        &[("s1", s1.address, 1), ("s2", s2.address, 1)],
    );
    let tandem = Tandem::start(&one, &[address]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let (stop, failures, served) = (
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&served),
            );
            tokio::spawn(async move {
                let mut keep_alive = KeepAliveClient::connect(address).await;
                // Bounded: at most 100,000 requests per client.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    // Half the clients reuse one connection, half open one per request.
                    let answer = if n % 2 == 0 {
                        keep_alive.get("/").await
                    } else {
                        get(address, "/").await
                    };
                    match answer {
                        Ok(answer) if answer.status == 200 => served.fetch_add(1, Ordering::SeqCst),
                        _ => failures.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    for round in 0..20 {
        // Each reload lands while requests are flowing.
        let before = served.load(Ordering::SeqCst);
        wait_until(Duration::from_secs(10), "requests flow", || async {
            served.load(Ordering::SeqCst) >= before + 20
        })
        .await;
        let log = tandem
            .reload(if round % 2 == 0 { &other } else { &one })
            .await;
        assert_eq!(log.matches("config reloaded").count(), round + 1);
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_the_admin_endpoint_go_on_while_a_slow_file_is_read() {
    let mut victim = TestServer::start("victim").await;
    let other = TestServer::start("other").await;
    let (address, admin) = (listen(), listen());
    let checked =
        "    health_check: { type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n";
    let servers = [("victim", victim.address, 1), ("other", other.address, 1)];
    let good = config("http", address, "round_robin", checked, &servers)
        + &format!("admin: {{ listen: \"{admin}\" }}\n");
    let tandem = Tandem::start(&good, &[address, admin]).await;
    let victim_down = || async {
        let scraped =
            tokio::time::timeout(Duration::from_millis(500), support::metrics::scrape(admin));
        let labels = [("server", "victim"), ("state", "DOWN")];
        (scraped.await)
            .is_ok_and(|metrics| metrics.value("tandem_server_status", &labels) == Some(1.0))
    };
    assert!(!victim_down().await, "the victim is up to begin with");

    // A file that takes as long as we like to read: a pipe nobody writes to yet.
    std::fs::remove_file(&tandem.config_path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&tandem.config_path)
        .status()
        .unwrap();
    assert!(made.success());
    tandem.signal("HUP");
    victim.kill();
    wait_until(
        Duration::from_secs(3),
        "the victim is marked down while the new file is being read",
        victim_down,
    )
    .await;
    let log = tandem.log();
    assert!(
        !log.contains("config reloaded") && !log.contains("reload failed"),
        "the reload ended before its file was written:\n{log}"
    );

    let fifo = tandem.config_path.clone();
    tokio::task::spawn_blocking(move || std::fs::write(fifo, good))
        .await
        .unwrap()
        .unwrap();
    wait_until(Duration::from_secs(5), "the reload completes", || async {
        tandem.log().contains("config reloaded")
    })
    .await;
    assert_eq!(
        get(address, "/").await.unwrap().server.as_deref(),
        Some("other")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_held_up_by_a_config_file_that_never_ends() {
    let s1 = TestServer::start("s1").await;
    let address = listen();
    let good = config("http", address, "round_robin", "", &[("s1", s1.address, 1)]);
    let mut tandem = Tandem::start(&good, &[address]).await;
    // A pipe nobody writes to: the read of the new file never ends.
    std::fs::remove_file(&tandem.config_path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&tandem.config_path)
        .status()
        .unwrap();
    assert!(made.success());
    tandem.signal("HUP");
    // Opening a pipe waits for a writer: the reader shows as a thread of tandem's waiting there.
    let pid = tandem.pid();
    wait_until(
        Duration::from_secs(5),
        "tandem is reading the new file",
        || async move { waits_for_a_pipe_writer(pid) },
    )
    .await;
    tandem.signal("TERM");
    let mut status = None;
    wait_until(
        Duration::from_secs(5),
        "tandem exits on SIGTERM while its reload still reads",
        || {
            status = tandem.exited();
            std::future::ready(status.is_some())
        },
    )
    .await;
    let status = status.unwrap();
    assert!(status.success(), "{status}");
}

/// Whether a thread of process `pid` is blocked opening a pipe nobody writes to (the kernel's
/// wait channel for that is `wait_for_partner`).
fn waits_for_a_pipe_writer(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("wchan"))
            .is_ok_and(|wchan| wchan.trim() == "wait_for_partner")
    })
}
