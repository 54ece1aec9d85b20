//! `notify:` hooks: a program run on each state change of an instance, detached from it.
//!
//! Each instance has one runner task that runs its hooks in order, one at a time, so a hook
//! sees transitions in the order they happened. The instance only queues a transition (no
//! await, no syscall), so a slow or hung hook never delays an advert. The queue is bounded:
//! when hooks fall behind, the newest queued transition absorbs the next one (its old state
//! stays, its new state moves on), and one that ends where it started is dropped, since the
//! world outside last heard of that state; the log says how many were coalesced.
//!
//! A hook gets keepalived's `notify` arguments appended to its own (`INSTANCE`, the instance
//! name, the new state, the priority), so keepalived notify scripts run unchanged, and the
//! whole transition in `TANDEM_*` variables. The timeout is the hook's own process's: when it
//! is still running then, its whole process group is killed; what it started in the background
//! and left running when it exited is its business.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;
use tokio::process::Command;
use tokio::task::JoinHandle;

use super::machine::State;
use crate::config::{display_duration, Notify};

/// Transitions waiting for an instance's hook before newer ones are coalesced.
const QUEUE: usize = 8;
/// How much of a failed hook's standard error is logged: its end, where the reason usually is.
const STDERR_TAIL: usize = 512;
/// How long a failed hook's standard error may stay open once it has exited (a process it
/// left running may hold it): the tail read by then is logged.
const STDERR_AFTER_EXIT: Duration = Duration::from_millis(200);

/// One state change, as a hook is told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub instance: String,
    pub vrid: u8,
    pub from: State,
    pub to: State,
    /// The effective priority after the change.
    pub priority: u8,
    pub sync_group: Option<String>,
}

/// The transitions waiting for one instance's hook, with the hook each was configured with
/// when it happened (so a reload changes hooks from the next transition on).
#[derive(Debug, Default)]
struct HookQueue {
    pending: VecDeque<(Notify, Transition)>,
    /// Transitions merged into another or dropped since last taken.
    coalesced: u64,
    closed: bool,
}

impl HookQueue {
    fn push(&mut self, hook: Notify, transition: Transition) {
        if self.pending.len() < QUEUE {
            self.pending.push_back((hook, transition));
            return;
        }
        let (_, last) = self.pending.pop_back().expect("the queue is full");
        self.coalesced += 1;
        let merged = Transition {
            from: last.from,
            ..transition
        };
        if merged.from == merged.to {
            // Back where the outside world last heard: neither needs to run.
            self.coalesced += 1;
        } else {
            self.pending.push_back((hook, merged));
        }
    }

    fn pop(&mut self) -> Option<(Notify, Transition)> {
        self.pending.pop_front()
    }

    fn take_coalesced(&mut self) -> u64 {
        std::mem::take(&mut self.coalesced)
    }
}

/// An instance's hook runner: queue with [`Notifier::notify`], end with [`Notifier::finish`].
pub struct Notifier {
    queue: Arc<Mutex<HookQueue>>,
    wake: Arc<tokio::sync::Notify>,
    runner: JoinHandle<()>,
}

impl Notifier {
    /// Starts the runner of `instance`'s hooks on the current runtime.
    pub fn start(instance: &str) -> Notifier {
        let queue = Arc::new(Mutex::new(HookQueue::default()));
        let wake = Arc::new(tokio::sync::Notify::new());
        let runner = tokio::spawn(run(
            instance.to_owned(),
            Arc::clone(&queue),
            Arc::clone(&wake),
        ));
        Notifier {
            queue,
            wake,
            runner,
        }
    }

    /// Queues `transition` for `hook`; returns at once.
    pub fn notify(&self, hook: Notify, transition: Transition) {
        lock(&self.queue).push(hook, transition);
        self.wake.notify_one();
    }

    /// Runs what is queued, then ends: each hook is bounded by its timeout.
    pub async fn finish(self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
        let _ = self.runner.await;
    }
}

fn lock(queue: &Mutex<HookQueue>) -> std::sync::MutexGuard<'_, HookQueue> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn run(instance: String, queue: Arc<Mutex<HookQueue>>, wake: Arc<tokio::sync::Notify>) {
    loop {
        // A wake-up that comes between this look and the wait is kept by `Notify` as a permit.
        let (next, coalesced, closed) = {
            let mut queue = lock(&queue);
            (queue.pop(), queue.take_coalesced(), queue.closed)
        };
        if coalesced > 0 {
            tracing::warn!(
                instance,
                coalesced,
                "notify hooks fell behind: state changes were coalesced into the latest"
            );
        }
        match next {
            Some((hook, transition)) => run_hook(&hook, &transition).await,
            None if closed => return,
            None => wake.notified().await,
        }
    }
}

/// The command line and environment a hook runs with.
fn command(hook: &Notify, transition: &Transition) -> Command {
    let mut command = Command::new(&hook.program);
    command
        .args(&hook.args)
        .args([
            "INSTANCE",
            &transition.instance,
            transition.to.label(),
            &transition.priority.to_string(),
        ])
        .env("TANDEM_INSTANCE", &transition.instance)
        .env("TANDEM_VRID", transition.vrid.to_string())
        .env("TANDEM_OLD_STATE", transition.from.label())
        .env("TANDEM_NEW_STATE", transition.to.label())
        .env("TANDEM_PRIORITY", transition.priority.to_string())
        // systemd's socket is tandem's own: a hook's notifications would be taken as tandem's.
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so the timeout also reaches what it started.
        .process_group(0)
        .kill_on_drop(true);
    match &transition.sync_group {
        Some(group) => command.env("TANDEM_SYNC_GROUP", group),
        None => command.env_remove("TANDEM_SYNC_GROUP"),
    };
    command
}

async fn run_hook(hook: &Notify, transition: &Transition) {
    let program = hook.program.display();
    let instance = transition.instance.as_str();
    let (from, to) = (transition.from.label(), transition.to.label());
    let mut child = match command(hook, transition).spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(instance, %program, from, to, %error, "notify hook could not start");
            return;
        }
    };
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    // Read while it runs, so a hook that writes much never stalls on a full pipe. The reader
    // outlives a hook whose background process holds the pipe, until that closes it: a
    // closed pipe would kill the process at its next write (SIGPIPE).
    let tail = Arc::new(Mutex::new(Vec::new()));
    let reader =
        (child.stderr.take()).map(|stderr| tokio::spawn(keep_tail(stderr, Arc::clone(&tail))));
    // Only the hook's own process is timed, not the pipe: a process it started in the
    // background may hold its stderr long after it has exited.
    match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            tracing::debug!(instance, %program, from, to, "notify hook ran");
        }
        Ok(Ok(status)) => {
            if let Some(reader) = reader {
                let _ = tokio::time::timeout(STDERR_AFTER_EXIT, reader).await;
            }
            let stderr = one_line(&String::from_utf8_lossy(&lock_tail(&tail)));
            tracing::warn!(instance, %program, from, to, status = exit(status), %stderr, "notify hook failed");
        }
        Ok(Err(error)) => {
            tracing::error!(instance, %program, from, to, %error, "waiting for the notify hook failed");
        }
        Err(_) => {
            if let Some(group) = group {
                let _ = killpg(group, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            let timeout = display_duration(hook.timeout);
            tracing::warn!(instance, %program, from, to, %timeout, "notify hook ran past its timeout: killed with its process group");
        }
    }
}

/// How a hook ended, in words.
fn exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Reads `stderr` to its end, keeping its last [`STDERR_TAIL`] bytes in `tail`.
async fn keep_tail(mut stderr: ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 1024];
    while let Ok(read) = stderr.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        let mut kept = lock_tail(&tail);
        kept.extend_from_slice(&chunk[..read]);
        let excess = kept.len().saturating_sub(STDERR_TAIL);
        kept.drain(..excess);
    }
}

fn lock_tail(tail: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `text` trimmed, on one log line: line breaks and other control characters escaped.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_control() {
            line.extend(c.escape_debug());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Notify {
        Notify {
            program: "/bin/true".into(),
            args: Vec::new(),
            timeout: Duration::from_secs(1),
        }
    }

    fn transition(from: State, to: State) -> Transition {
        Transition {
            instance: "VI_1".into(),
            vrid: 1,
            from,
            to,
            priority: 100,
            sync_group: None,
        }
    }

    fn states(queue: &mut HookQueue) -> Vec<(State, State)> {
        std::iter::from_fn(|| queue.pop())
            .map(|(_, t)| (t.from, t.to))
            .collect()
    }

    #[test]
    fn keeps_transitions_in_order_while_there_is_room() {
        let mut queue = HookQueue::default();
        let steps = [
            (State::Initialize, State::Backup),
            (State::Backup, State::Master),
            (State::Master, State::Fault),
        ];
        for (from, to) in steps {
            queue.push(hook(), transition(from, to));
        }
        assert_eq!(states(&mut queue), steps);
        assert_eq!(queue.take_coalesced(), 0);
    }

    #[test]
    fn a_full_queue_merges_into_its_newest_transition() {
        let mut queue = HookQueue::default();
        let flip = [
            (State::Backup, State::Master),
            (State::Master, State::Backup),
        ];
        for i in 0..QUEUE {
            let (from, to) = flip[i % 2];
            queue.push(hook(), transition(from, to));
        }
        // The newest is Master → Backup: a further Backup → Fault merges into Master → Fault.
        queue.push(hook(), transition(State::Backup, State::Fault));
        let mut expected: Vec<_> = (0..QUEUE - 1).map(|i| flip[i % 2]).collect();
        expected.push((State::Master, State::Fault));
        assert_eq!(queue.take_coalesced(), 1);
        assert_eq!(states(&mut queue), expected);
    }

    #[test]
    fn a_merge_that_ends_where_it_started_is_dropped() {
        let mut queue = HookQueue::default();
        for _ in 0..QUEUE {
            queue.push(hook(), transition(State::Backup, State::Master));
        }
        queue.push(hook(), transition(State::Master, State::Backup));
        assert_eq!(queue.take_coalesced(), 2);
        assert_eq!(states(&mut queue).len(), QUEUE - 1);
        // Room again: the next one is queued as it is.
        queue.push(hook(), transition(State::Backup, State::Fault));
        assert_eq!(states(&mut queue), [(State::Backup, State::Fault)]);
    }

    /// Real processes: what a hook is told, and that a hung one is killed at its timeout.
    #[tokio::test]
    async fn runs_hooks_in_order_with_arguments_and_environment_and_kills_hung_ones() {
        let dir = std::env::temp_dir().join(format!("tandem-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = dir.join("record");
        let script = |body: &str, timeout: Duration| Notify {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), body.into(), "hook".into()],
            timeout,
        };
        let append = script(
            &format!(
                "echo \"$* $TANDEM_INSTANCE $TANDEM_VRID $TANDEM_OLD_STATE $TANDEM_NEW_STATE \
                 $TANDEM_PRIORITY ${{TANDEM_SYNC_GROUP:-none}}\" >> {}",
                record.display()
            ),
            Duration::from_secs(5),
        );
        let hang = script("sleep 30 & sleep 30", Duration::from_millis(200));
        let notifier = Notifier::start("VI_1");
        let started = tokio::time::Instant::now();
        notifier.notify(append.clone(), transition(State::Initialize, State::Backup));
        notifier.notify(hang, transition(State::Backup, State::Master));
        let mut grouped = transition(State::Backup, State::Master);
        grouped.sync_group = Some("g".into());
        notifier.notify(append, grouped);
        notifier.finish().await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            std::fs::read_to_string(&record).unwrap(),
            "INSTANCE VI_1 BACKUP 100 VI_1 1 INIT BACKUP 100 none\n\
             INSTANCE VI_1 MASTER 100 VI_1 1 BACKUP MASTER 100 g\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A hook that starts a process in the background without redirecting its stderr: the
    /// hook is done when it exits, and what it started keeps running.
    #[tokio::test]
    async fn a_hook_is_done_when_it_exits_and_what_it_left_running_lives_on() {
        const TIMEOUT: Duration = Duration::from_secs(10);
        let dir = tempfile::tempdir().unwrap();
        let pid_file = |status: i32| dir.path().join(format!("pid-{status}"));
        let notifier = Notifier::start("VI_1");
        let started = tokio::time::Instant::now();
        // One that succeeds, one that fails: its stderr is read within a short bound.
        for status in [0, 3] {
            let body = format!(
                "sleep 60 & echo $! > {}; echo one >&2; echo two >&2; exit {status}",
                pid_file(status).display()
            );
            let hook = Notify {
                program: "/bin/sh".into(),
                args: vec!["-c".into(), body, "hook".into()],
                timeout: TIMEOUT,
            };
            notifier.notify(hook, transition(State::Backup, State::Master));
        }
        notifier.finish().await;
        let elapsed = started.elapsed();
        let mut alive = Vec::new();
        for status in [0, 3] {
            let pid = std::fs::read_to_string(pid_file(status)).unwrap();
            let pid = Pid::from_raw(pid.trim().parse().unwrap());
            alive.push(nix::sys::signal::kill(pid, None).is_ok());
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        assert!(
            elapsed < TIMEOUT,
            "the hooks were timed until their background processes ended"
        );
        assert_eq!(
            alive,
            [true, true],
            "the hooks' background processes live on"
        );
    }

    #[test]
    fn a_stderr_tail_is_logged_on_one_line() {
        assert_eq!(
            one_line("\n  first\r\nsecond\t\u{1b}[31m \n"),
            "first\\r\\nsecond\\t\\u{1b}[31m"
        );
    }
}
