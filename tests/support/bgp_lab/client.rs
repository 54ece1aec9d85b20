//! Clients of the BGP lab's service, in its client namespace. Every attempt is a new HTTP
//! connection from a port the kernel picks (so the router hashes it anew) and learns which node
//! served it from the backend's answer, which names the address the request came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{node_named_by, service, BgpLab, NODES};
use crate::support::lab::{join, run_in, spawn_in};

/// A new connection this often.
const PERIOD: Duration = Duration::from_millis(5);
/// An attempt that has no answer by then failed (a lost SYN is sent again only after 1 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// How late a test sees the router's paths change: it looks every 10 ms, and `ip route`
/// takes a few more.
const SWITCH_SEEN_WITHIN: Duration = Duration::from_millis(50);
/// However the test goes, the paced client stops after this long.
const LONGEST_RUN: Duration = Duration::from_secs(90);

/// One new connection: when it started and ended, and the node that served it or why it failed.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub started: Instant,
    pub ended: Instant,
    pub outcome: Result<&'static str, String>,
}

/// Opens a new connection every 5 ms until finished, each with a 1 s time-out.
pub struct PacedClient {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    started: Instant,
    task: JoinHandle<()>,
}

impl PacedClient {
    pub fn start(lab: &BgpLab) -> PacedClient {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let task = spawn_in(&lab.client, {
            let (stop, attempts) = (Arc::clone(&stop), Arc::clone(&attempts));
            move || async move {
                let mut tick = tokio::time::interval(PERIOD);
                // After a stall (a busy machine), no burst of connections to catch up.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut running = tokio::task::JoinSet::new();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < LONGEST_RUN {
                    tick.tick().await;
                    let attempts = Arc::clone(&attempts);
                    running.spawn(async move {
                        let attempt = attempt().await;
                        attempts.lock().unwrap().push(attempt);
                    });
                    while running.try_join_next().is_some() {}
                }
                while running.join_next().await.is_some() {}
            }
        });
        PacedClient {
            stop,
            attempts,
            started,
            task,
        }
    }

    /// How many attempts `node` has served so far.
    pub fn served_by(&self, node: &str) -> usize {
        let attempts = self.attempts.lock().unwrap();
        attempts
            .iter()
            .filter(|attempt| attempt.outcome.as_deref() == Ok(node))
            .count()
    }

    /// Waits until every node in `nodes` has served `count` more attempts than now: proof that
    /// the client runs and reaches them.
    pub fn wait_for_answers(&self, nodes: &[&str], count: usize, limit: Duration) {
        let before: Vec<usize> = nodes.iter().map(|node| self.served_by(node)).collect();
        let what = format!("{nodes:?} each serve {count} more new connections");
        crate::support::lab::wait_until(limit, &what, || {
            nodes
                .iter()
                .zip(&before)
                .all(|(node, before)| self.served_by(node) >= before + count)
        });
    }

    /// Stops opening connections, waits for those under way, and returns the whole run.
    pub fn finish(self) -> Run {
        self.stop.store(true, Ordering::Relaxed);
        join(self.task);
        let mut attempts = std::mem::take(&mut *self.attempts.lock().unwrap());
        attempts.sort_by_key(|attempt| attempt.started);
        Run {
            started: self.started,
            ended: Instant::now(),
            attempts,
        }
    }
}

/// What a paced client saw.
pub struct Run {
    pub started: Instant,
    pub ended: Instant,
    pub attempts: Vec<Attempt>,
}

impl Run {
    /// The longest time without a successful answer: between two completions, or between the
    /// client's start or end and the nearest one.
    pub fn gap(&self) -> Duration {
        let mut answers: Vec<Instant> = self
            .attempts
            .iter()
            .filter(|attempt| attempt.outcome.is_ok())
            .map(|attempt| attempt.ended)
            .collect();
        answers.sort_unstable();
        std::iter::once(self.started)
            .chain(answers)
            .chain(std::iter::once(self.ended))
            .collect::<Vec<_>>()
            .windows(2)
            .map(|pair| pair[1].saturating_duration_since(pair[0]))
            .max()
            .unwrap_or_default()
    }

    pub fn failures(&self) -> Vec<&Attempt> {
        let failed = |attempt: &&Attempt| attempt.outcome.is_err();
        self.attempts.iter().filter(failed).collect()
    }

    /// The failures a change of the router's paths, seen at one of `switches`, does not
    /// explain, and how many it does. Routers doing ECMP keep no state per connection: when
    /// the set of paths changes, the next packets of a connection under way may hash to
    /// another node, which has no socket for it and resets it. That explains a reset of a
    /// connection in flight at a switch (started before it was seen, ended at most
    /// `SWITCH_SEEN_WITHIN` before), and nothing else: a refusal, a time-out or an error
    /// answer is the node's doing.
    pub fn failures_apart_from_switches(&self, switches: &[Instant]) -> (Vec<&Attempt>, usize) {
        let moved = |attempt: &Attempt| {
            let reset = (attempt.outcome.as_ref()).is_err_and(|why| why.contains("reset by peer"));
            reset
                && switches.iter().any(|&seen| {
                    attempt.started <= seen && attempt.ended + SWITCH_SEEN_WITHIN >= seen
                })
        };
        let (explained, unexplained): (Vec<&Attempt>, Vec<&Attempt>) = self
            .failures()
            .into_iter()
            .partition(|attempt| moved(attempt));
        (unexplained, explained.len())
    }

    /// From the start of the first failed attempt to the start of the last: how long a new
    /// connection could fail (with ECMP, the other nodes' answers go on meanwhile).
    pub fn failure_window(&self) -> Duration {
        let failures = self.failures();
        match (failures.first(), failures.last()) {
            (Some(first), Some(last)) => last.started - first.started,
            _ => Duration::ZERO,
        }
    }

    /// How many attempts started at `since` or later `node` served.
    pub fn served_by_since(&self, node: &str, since: Instant) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| attempt.started >= since && attempt.outcome.as_deref() == Ok(node))
            .count()
    }

    /// One line with the figures, for the test's output and its failure messages.
    pub fn summary(&self) -> String {
        let served: Vec<String> = NODES
            .iter()
            .map(|node| format!("{node}:{}", self.served_by_since(node, self.started)))
            .collect();
        let failures = self.failures();
        let first_failures: Vec<&String> = failures
            .iter()
            .filter_map(|attempt| attempt.outcome.as_ref().err())
            .take(3)
            .collect();
        format!(
            "{} attempts, served {}, {} failed (window {:?}, first {:?}), longest gap {:?}",
            self.attempts.len(),
            served.join(","),
            failures.len(),
            self.failure_window(),
            first_failures,
            self.gap()
        )
    }
}

/// Opens `connections` new connections, 8 at a time, and counts which node served each; the
/// failures are listed apart.
pub fn spread(lab: &BgpLab, connections: usize) -> (BTreeMap<&'static str, usize>, Vec<String>) {
    const AT_ONCE: usize = 8;
    run_in(&lab.client, move || async move {
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..AT_ONCE {
            let share = connections / AT_ONCE + usize::from(worker < connections % AT_ONCE);
            workers.spawn(async move {
                let mut outcomes = Vec::with_capacity(share);
                for _ in 0..share {
                    outcomes.push(attempt().await.outcome);
                }
                outcomes
            });
        }
        let mut served = BTreeMap::new();
        let mut failures = Vec::new();
        while let Some(outcomes) = workers.join_next().await {
            for outcome in outcomes.unwrap() {
                match outcome {
                    Ok(node) => *served.entry(node).or_default() += 1,
                    Err(failure) => failures.push(failure),
                }
            }
        }
        (served, failures)
    })
}

/// One GET on a new connection to the service.
async fn attempt() -> Attempt {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(service())).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
    };
    Attempt {
        started,
        ended: Instant::now(),
        outcome,
    }
}

/// Sends GET / and returns the node the backend's answer names.
async fn exchange(target: SocketAddr) -> Result<&'static str, String> {
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let request = format!("GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("send: {error}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|error| format!("receive: {error}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer: {answer:?}"))?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("answered {:?}", head.lines().next()));
    }
    body.split_whitespace()
        .nth(1)
        .and_then(|peer| peer.parse().ok())
        .and_then(node_named_by)
        .ok_or_else(|| format!("an answer that names no node: {body:?}"))
}
