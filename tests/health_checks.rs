//! Active health checks taking servers out and bringing them back.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::*;

const INTERVAL: Duration = Duration::from_millis(300);
const RISE: u32 = 3;
const FALL: u32 = 2;
/// What a busy CI machine may add to the configured timing.
const SLACK: Duration = Duration::from_millis(1500);

fn checked(check: &str) -> String {
    format!("    retries: 0\n    health_check: {{ {check}, interval: 300ms, timeout: 200ms, rise: {RISE}, fall: {FALL} }}\n")
}

/// Waits until `rounds` requests in a row all succeed from `expected`.
async fn served_only_by(address: SocketAddr, expected: &str, limit: Duration) {
    wait_until(limit, &format!("only {expected} answers"), || async {
        for _ in 0..4 {
            match get(address, "/").await {
                Ok(answer)
                    if answer.status == 200 && answer.server.as_deref() == Some(expected) => {}
                _ => return false,
            }
        }
        true
    })
    .await;
}

async fn reaches(address: SocketAddr, name: &str) -> bool {
    for _ in 0..4 {
        if get(address, "/")
            .await
            .is_ok_and(|answer| answer.server.as_deref() == Some(name))
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_within_fall_intervals_and_returns_after_rise() {
    let mut victim = TestServer::start("victim").await;
    let other = TestServer::start("other").await;
    let servers = [("victim", victim.address, 1), ("other", other.address, 1)];
    let (_tandem, address) =
        start_proxy("http", "round_robin", &checked("type: tcp"), &servers).await;
    wait_until(Duration::from_secs(5), "both servers serve", || async {
        reaches(address, "victim").await
    })
    .await;

    victim.kill();
    let killed = Instant::now();
    served_only_by(address, "other", INTERVAL * FALL + SLACK).await;
    assert!(killed.elapsed() <= INTERVAL * FALL + SLACK);

    victim.restart().await;
    let restarted = Instant::now();
    wait_until(INTERVAL * RISE + SLACK, "victim back", || async {
        reaches(address, "victim").await
    })
    .await;
    let back_after = restarted.elapsed();
    assert!(
        back_after >= INTERVAL * (RISE - 1),
        "back after {back_after:?}, before {RISE} checks could pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_check_follows_the_health_status() {
    let sick = TestServer::start("sick").await;
    let other = TestServer::start("other").await;
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let servers = [("sick", sick.address, 1), ("other", other.address, 1)];
    let check = checked("type: http, path: /health, expect_status: 2xx");
    let _tandem = Tandem::start(
        &config("http", address, "round_robin", &check, &servers),
        &[address],
    )
    .await;
    wait_until(Duration::from_secs(5), "both servers serve", || async {
        reaches(address, "sick").await
    })
    .await;

    sick.control.health_status.store(503, Ordering::SeqCst);
    served_only_by(address, "other", INTERVAL * FALL + SLACK).await;
    let requests_while_down = sick.requests();
    served_only_by(address, "other", Duration::from_secs(2)).await;
    assert_eq!(
        sick.requests(),
        requests_while_down,
        "a down server still got requests"
    );

    sick.control.health_status.store(200, Ordering::SeqCst);
    wait_until(INTERVAL * RISE + SLACK, "sick back", || async {
        reaches(address, "sick").await
    })
    .await;
}
