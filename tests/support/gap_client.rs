//! A client that opens a new connection to the VIP every 5 ms, as `deploy/lab.sh`'s client does,
//! and records when each answer came and who gave it: the longest time between two answers is
//! how long the service was out of reach for a client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::lab::{join, spawn_in};

const PERIOD: Duration = Duration::from_millis(5);
/// An attempt that has no answer by then failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// However the test goes, the client stops after this long.
const LONGEST_RUN: Duration = Duration::from_secs(30);

/// One answer: when it completed and the name the node's app sent.
type Answer = (Instant, String);

pub struct GapClient {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    started: Instant,
    task: JoinHandle<()>,
}

impl GapClient {
    /// Starts the client in `namespace` against `target`.
    pub fn start(namespace: &str, target: SocketAddr) -> GapClient {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let task = spawn_in(namespace, {
            let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
            move || async move {
                let mut tick = tokio::time::interval(PERIOD);
                let mut attempts = tokio::task::JoinSet::new();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < LONGEST_RUN {
                    tick.tick().await;
                    let answers = Arc::clone(&answers);
                    attempts.spawn(async move {
                        let attempt = async {
                            let mut stream = TcpStream::connect(target).await.ok()?;
                            let mut reply = String::new();
                            stream.read_to_string(&mut reply).await.ok()?;
                            Some(reply).filter(|reply| !reply.is_empty())
                        };
                        if let Ok(Some(name)) = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await
                        {
                            answers.lock().unwrap().push((Instant::now(), name));
                        }
                    });
                    while attempts.try_join_next().is_some() {}
                }
                while attempts.join_next().await.is_some() {}
            }
        });
        GapClient {
            stop,
            answers,
            started,
            task,
        }
    }

    /// How many answers `name` has given so far.
    pub fn answers_from(&self, name: &str) -> usize {
        let answers = self.answers.lock().unwrap();
        answers.iter().filter(|(_, from)| from == name).count()
    }

    /// Stops the client once its attempts have ended, and returns the longest time without an
    /// answer between its start and now, and the name that answered last.
    pub fn finish(self) -> (Duration, Option<String>) {
        let ended = Instant::now();
        self.stop.store(true, Ordering::Relaxed);
        join(self.task);
        let mut answers = std::mem::take(&mut *self.answers.lock().unwrap());
        answers.retain(|(at, _)| *at <= ended);
        answers.sort_by_key(|(at, _)| *at);
        let last = answers.last().map(|(_, name)| name.clone());
        let edges: Vec<Instant> = std::iter::once(self.started)
            .chain(answers.iter().map(|(at, _)| *at))
            .chain(std::iter::once(ended))
            .collect();
        let gap = edges
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default();
        (gap, last)
    }
}
