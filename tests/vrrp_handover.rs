//! Planned hand-over on SIGTERM, alone in its test binary: it counts failed connections, and
//! tests running beside it on two cores would stretch every connection's lifetime.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::lab::{spawn_in, wait_until};
use support::pair::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Planned handover: SIGTERM on the master resigns, keeps serving until b holds the VIP, drains
/// and exits 0, while a client opening a new connection every 5 ms sees no refusal and no
/// silence (no answer within 500 ms counts as a failure: a lost SYN would be retried only after
/// 1 s). One reset is tolerated, and only one: a connection that a opened just before b's
/// gratuitous ARP lands sends its last packets to b, which knows no such connection and resets
/// it (about one run in six; keepalived pairs have the same race, see the README's table).
#[test]
fn a_planned_handover_fails_no_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let Some(lab) = lab() else { return };
    let (mut a, _b) = start_pair(&lab, VIP4);

    let served = Arc::new(AtomicUsize::new(0));
    let client = spawn_in(&lab.hosts[2].namespace, {
        let served = Arc::clone(&served);
        move || async move {
            let address: SocketAddr = format!("{VIP4}:80").parse().unwrap();
            let mut failures = Vec::new();
            let mut answered_by_b = 0;
            // Bounded: stops 100 answers after b first answered, or after 2000 attempts.
            for attempt in 0..2000 {
                let reply = tokio::time::timeout(Duration::from_millis(500), async {
                    let mut stream = TcpStream::connect(address).await?;
                    let mut reply = String::new();
                    stream.read_to_string(&mut reply).await?;
                    Ok::<_, std::io::Error>(reply)
                })
                .await;
                match reply {
                    Ok(Ok(name)) if !name.is_empty() => {
                        served.fetch_add(1, Ordering::SeqCst);
                        answered_by_b += usize::from(name == "node-b");
                    }
                    other => failures.push(format!("attempt {attempt}: {other:?}")),
                }
                if answered_by_b >= 100 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (failures, answered_by_b)
        }
    });
    wait_until(FAILOVER, "the client is being served", || {
        served.load(Ordering::SeqCst) >= 50
    });
    let status = a.signal_and_wait("TERM");
    assert!(status.success(), "node-a exited with {status}");
    let (failures, answered_by_b) = client.join().unwrap();
    let at_the_switch = |failure: &String| failure.contains("ConnectionReset");
    assert!(
        failures.len() <= 1 && failures.iter().all(at_the_switch),
        "{} failed connections: {failures:?}",
        failures.len()
    );
    assert_eq!(answered_by_b, 100, "node-b never took over");
    assert!(holds(&lab, 1, VIP4) && !holds(&lab, 0, VIP4));
}
