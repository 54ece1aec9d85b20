//! The access log: one line per HTTP request or TCP session. A worker formats its lines into
//! a buffer of its own, with no syscall, allocation or hand-off per line; a thread of the log's
//! own collects the buffers and writes them, so a slow disk never holds up traffic. When a
//! buffer is full (the disk can't keep up), lines are dropped and counted. The same thread
//! sends them to syslog, when configured.

mod format;
mod syslog;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use metrics::Counter;

pub use self::format::format;
pub(crate) use self::format::rfc3339;
use self::syslog::SyslogSender;
use crate::config::{self, HeaderSide, LogFormat, LogTarget};
use crate::stats;

/// Buffers that workers format into, one picked per thread, so two workers rarely share one.
const SHARDS: usize = 16;
/// A buffer this full drops lines until the writer empties it: about 16,000 lines.
const SHARD_LIMIT: usize = 4 << 20;
/// A buffer the writer keeps for reuse; one grown past this (a backlog) is freed instead.
const SPARE_CAPACITY: usize = 1 << 20;
/// How often a busy writer collects: lines wait about this long. Each collection is a few
/// writes of whole buffers, so a longer interval costs the workers' core nothing but saves
/// its wake-ups. An idle writer sleeps until a line comes instead.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// The writer yields to the workers when they share a core.
const WRITER_NICENESS: libc::c_int = 10;

/// One request or session, as it ended.
pub struct Record<'a> {
    /// When the request (or session) began.
    pub time: SystemTime,
    pub frontend: &'a str,
    /// The backend the request was routed to, if any.
    pub backend: Option<&'a str>,
    pub server: Option<&'a str>,
    /// The client's address and port as text, written as it is: it has nothing to escape.
    pub client: &'a str,
    /// HTTP only.
    pub request: Option<(&'a Method, &'a Uri)>,
    /// Written only when the frontend gives requests IDs.
    pub request_id: Option<&'a str>,
    /// HTTP only.
    pub status: Option<u16>,
    /// Sent to the client: the response body (http) or everything from the server (tcp).
    pub bytes: u64,
    /// Until a server connection was ready (a reused one is ready at once).
    pub connect: Option<Duration>,
    /// Until the server's response head arrived (http).
    pub first_byte: Option<Duration>,
    pub total: Duration,
    /// Why it ended: `done`, `client_aborted`, `no_server`...
    pub end: &'static str,
    /// The values of the headers a template names (`AccessLog::named_headers`), in its
    /// order; empty when it names none.
    pub headers: &'a [Option<HeaderValue>],
    /// The subject of the client's verified TLS certificate; written only when there is one.
    pub client_subject: Option<&'a str>,
}

pub struct AccessLog {
    config: config::AccessLog,
    shared: Arc<Shared>,
    /// To wake the writer.
    writer_thread: Thread,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What workers, the writer and reloads share.
struct Shared {
    shards: [Shard; SHARDS],
    /// Lines logged before a reopen was asked for, to go to the old file; `None` when no reopen
    /// waits. The writer collects the shards under this lock, so each line lands on its side
    /// of the reopen.
    reopen: Mutex<Option<Vec<Vec<u8>>>>,
    /// Set when the writer parks having found nothing to write: the next line wakes it.
    idle: AtomicBool,
    finish: AtomicBool,
    dropped: Counter,
}

/// A cache line of its own, so that workers on different cores don't contend for one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Vec<u8>>);

impl Shard {
    fn lines(&self) -> MutexGuard<'_, Vec<u8>> {
        // Formatting doesn't panic mid-line; a poisoned buffer holds whole lines.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    /// Whether the writer has nothing to do.
    fn is_quiet(&self) -> bool {
        !self.finish.load(Ordering::SeqCst)
            && lock(&self.reopen).is_none()
            && self.shards.iter().all(|shard| shard.lines().is_empty())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shard of the calling thread.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

impl AccessLog {
    /// Opens the target (so a bad path fails here, naming it) and starts the writer.
    pub fn start(config: &config::AccessLog) -> io::Result<Arc<AccessLog>> {
        let output = open(&config.target)?;
        let syslog = (config.syslog.as_ref())
            .map(|syslog| SyslogSender::new(syslog, stats::access_log_syslog_dropped()))
            .transpose()?;
        let shared = Arc::new(Shared {
            shards: Default::default(),
            reopen: Mutex::new(None),
            idle: AtomicBool::new(false),
            finish: AtomicBool::new(false),
            dropped: stats::access_log_dropped(),
        });
        let writer = Writer {
            target: config.target.clone(),
            output,
            shared: Arc::clone(&shared),
            spares: Vec::new(),
            failing: false,
            syslog,
        };
        let writer = thread::Builder::new()
            .name("tandem-access-log".into())
            .spawn(move || writer.run())?;
        Ok(Arc::new(AccessLog {
            config: config.clone(),
            shared,
            writer_thread: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
        }))
    }

    pub fn config(&self) -> &config::AccessLog {
        &self.config
    }

    pub fn log(&self, record: &Record<'_>) {
        let shared = &*self.shared;
        let mut lines = shared.shards[shard_index()].lines();
        // Read under the shard's lock: the writer's last collection locks it after it has
        // seen `finish`, so a line is either collected or counted here.
        if lines.len() >= SHARD_LIMIT || shared.finish.load(Ordering::SeqCst) {
            drop(lines);
            shared.dropped.increment(1);
            return;
        }
        let was_empty = lines.is_empty();
        format(record, &self.config.format, &mut lines);
        drop(lines);
        // Only a shard's first line can find the writer parked: it empties every shard
        // before it parks.
        if was_empty && shared.idle.load(Ordering::SeqCst) {
            self.wake_writer();
        }
    }

    /// The headers the log's template names, whose values a request keeps for its line.
    pub fn named_headers(&self) -> &[(HeaderSide, HeaderName)] {
        match &self.config.format {
            LogFormat::Template(template) => &template.headers,
            _ => &[],
        }
    }

    /// The values of the request headers the template names, with room for its response
    /// headers: nothing, and no allocation, when it names none.
    pub fn request_headers(&self, headers: &HeaderMap) -> Vec<Option<HeaderValue>> {
        let named = self.named_headers();
        if named.is_empty() {
            return Vec::new();
        }
        (named.iter())
            .map(|(side, name)| match side {
                HeaderSide::Request => headers.get(name).cloned(),
                HeaderSide::Response => None,
            })
            .collect()
    }

    /// Adds the values of the response headers the template names to `values`, from
    /// `request_headers`.
    pub fn response_headers(&self, headers: &HeaderMap, values: &mut [Option<HeaderValue>]) {
        for ((side, name), value) in self.named_headers().iter().zip(values) {
            if *side == HeaderSide::Response {
                *value = headers.get(name).cloned();
            }
        }
    }

    fn wake_writer(&self) {
        if self.shared.idle.swap(false, Ordering::SeqCst) {
            self.writer_thread.unpark();
        }
    }

    /// Opens the file again at its path, after logrotate moved it away: lines logged before
    /// this go to the old file, and lines logged from now on to the new one. Never waits on
    /// the disk. A reopen asked for while the last one waits adds nothing: the writer reopens
    /// once, and the lines in between go to the new file.
    pub fn reopen(&self) {
        if matches!(
            self.config.target,
            LogTarget::Stdout | LogTarget::SyslogOnly
        ) {
            return;
        }
        let mut before = lock(&self.shared.reopen);
        if before.is_some() {
            return;
        }
        let before = before.insert(Vec::new());
        for shard in &self.shared.shards {
            let lines = mem::take(&mut *shard.lines());
            if !lines.is_empty() {
                before.push(lines);
            }
        }
        self.wake_writer();
    }

    /// Writes what was logged and stops the writer; lines logged after this are dropped.
    pub fn finish(&self) {
        self.shared.finish.store(true, Ordering::SeqCst);
        self.wake_writer();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for AccessLog {
    /// A log replaced by a reload ends when the last request still holding it has logged:
    /// its writer writes what is left and stops, without anyone waiting for it.
    fn drop(&mut self) {
        self.shared.finish.store(true, Ordering::SeqCst);
        self.wake_writer();
    }
}

fn open(target: &LogTarget) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        LogTarget::Stdout => Box::new(io::stdout()),
        LogTarget::SyslogOnly => Box::new(io::sink()),
        LogTarget::File(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!(
                            "access_log.path {}: {error}; use a directory the service user can \
                             write to (the systemd unit makes /var/log/tandem) or `stdout`",
                            path.display()
                        ),
                    )
                })?,
        ),
    })
}

struct Writer {
    target: LogTarget,
    output: Box<dyn Write + Send>,
    shared: Arc<Shared>,
    /// Emptied buffers, swapped into the shards it collects so workers keep their capacity.
    spares: Vec<Vec<u8>>,
    /// Whether the last write failed: a failing disk is reported once, not every batch.
    failing: bool,
    syslog: Option<SyslogSender>,
}

impl Writer {
    fn run(mut self) {
        // Per thread on Linux: PRIO_PROCESS with a thread id. SCHED_BATCH: its wake-ups
        // never preempt a worker mid-burst. Failing only costs latency.
        // SAFETY: plain syscalls on this thread's own id, with a parameter that outlives them.
        unsafe {
            let thread = libc::gettid();
            let batch = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(thread, libc::SCHED_BATCH, &batch);
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, WRITER_NICENESS);
        }
        let shared = Arc::clone(&self.shared);
        loop {
            // Read first: what was logged before `finish` is in this collection.
            let finishing = shared.finish.load(Ordering::SeqCst);
            let wrote = self.collect_and_write();
            if finishing {
                return;
            }
            if wrote {
                thread::sleep(BATCH_INTERVAL);
                continue;
            }
            shared.idle.store(true, Ordering::SeqCst);
            // A line logged before `idle` was set woke no one: look once more before parking.
            if shared.is_quiet() {
                while shared.idle.load(Ordering::SeqCst) {
                    thread::park();
                }
            } else {
                shared.idle.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Writes every shard's lines (and a waiting reopen's, before reopening); whether there
    /// were any.
    fn collect_and_write(&mut self) -> bool {
        let mut batch = Vec::new();
        let before_reopen = {
            let mut reopen = lock(&self.shared.reopen);
            for shard in &self.shared.shards {
                let mut lines = shard.lines();
                if !lines.is_empty() {
                    let spare = self.spares.pop().unwrap_or_default();
                    batch.push(mem::replace(&mut *lines, spare));
                }
            }
            reopen.take()
        };
        let reopened = before_reopen.is_some();
        if let Some(before) = before_reopen {
            self.write(before);
            self.reopen_target();
        }
        let wrote = !batch.is_empty();
        self.write(batch);
        wrote || reopened
    }

    fn write(&mut self, batch: Vec<Vec<u8>>) {
        if batch.is_empty() {
            return;
        }
        let now = SystemTime::now();
        for mut lines in batch {
            if let Err(error) = self.output.write_all(&lines) {
                let count = lines.iter().filter(|&&byte| byte == b'\n').count();
                self.shared.dropped.increment(count as u64);
                self.report(Err(error));
            }
            if let Some(syslog) = &mut self.syslog {
                syslog.send(&lines, now);
            }
            lines.clear();
            // A reopen hands the workers new buffers: more spares than shards would never
            // be used.
            if lines.capacity() <= SPARE_CAPACITY && self.spares.len() < SHARDS {
                self.spares.push(lines);
            }
        }
        let flushed = self.output.flush();
        self.report(flushed);
    }

    /// Logs the first failure of a run of them, and the recovery.
    fn report(&mut self, result: io::Result<()>) {
        match result {
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::error!(%error, "writing the access log failed; lines are dropped (tandem_access_log_dropped_total) until it works again");
            }
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("writing the access log works again");
            }
            _ => {}
        }
    }

    fn reopen_target(&mut self) {
        match open(&self.target) {
            Ok(output) => self.output = output,
            Err(error) => {
                tracing::error!(%error, "reopening the access log failed; still writing to the old file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format::tests::record;
    use super::*;

    /// A text log to `access.log` in a new directory, which lives as long as the first value.
    fn file_log() -> (tempfile::TempDir, std::path::PathBuf, Arc<AccessLog>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(&config::AccessLog {
            format: LogFormat::Text,
            target: LogTarget::File(path.clone()),
            syslog: None,
        })
        .unwrap();
        (dir, path, log)
    }

    fn log_path(log: &AccessLog, path: &str) {
        let uri: Uri = path.parse().unwrap();
        log.log(&record(&Method::GET, &uri));
    }

    /// The paths of the lines in the file at `path`, in order.
    fn paths(path: &std::path::Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // `"GET /path"`: the sixth field, less its quote.
        let field = |line: &str| {
            let quoted = line.split(' ').nth(5).unwrap_or_default();
            quoted.trim_end_matches('"').to_owned()
        };
        text.lines().map(field).collect()
    }

    fn wait_for_paths(path: &std::path::Path, count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = paths(path);
            if found.len() >= count || std::time::Instant::now() > deadline {
                return found;
            }
            thread::park_timeout(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_from_every_thread_are_written_whole() {
        let (_dir, path, log) = file_log();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    for request in 0..500 {
                        log_path(&log, &format!("/{thread}/{request}"));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        log.finish();
        let mut found = paths(&path);
        assert_eq!(found.len(), 2000);
        // Each thread's lines stay in order; together, every line is there once.
        for thread in 0..4 {
            let own: Vec<_> = (found.iter())
                .filter(|path| path.starts_with(&format!("/{thread}/")))
                .cloned()
                .collect();
            let expected: Vec<_> = (0..500).map(|n| format!("/{thread}/{n}")).collect();
            assert_eq!(own, expected);
        }
        found.sort();
        found.dedup();
        assert_eq!(found.len(), 2000);
    }

    #[test]
    fn an_idle_writer_wakes_for_the_next_line() {
        let (_dir, path, log) = file_log();
        for round in 0..20 {
            log_path(&log, &format!("/{round}"));
            // No finish: the writer alone has to notice each line, after idling.
            assert_eq!(wait_for_paths(&path, round + 1).len(), round + 1);
        }
        log.finish();
    }

    #[test]
    fn a_reopen_splits_the_lines_at_the_moment_it_was_asked_for() {
        let (dir, path, log) = file_log();
        let rotated = dir.path().join("access.log.1");
        for round in 0..50 {
            log_path(&log, &format!("/before-{round}"));
        }
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        log_path(&log, "/after");
        log.finish();
        let before: Vec<_> = (0..50).map(|round| format!("/before-{round}")).collect();
        assert_eq!(paths(&rotated), before);
        assert_eq!(paths(&path), ["/after"]);
    }

    #[test]
    fn lines_after_finish_are_dropped_not_kept() {
        let (_dir, path, log) = file_log();
        log_path(&log, "/kept");
        log.finish();
        log_path(&log, "/late");
        assert_eq!(paths(&path), ["/kept"]);
        let shard = log.shared.shards[shard_index()].lines();
        assert!(shard.is_empty(), "nothing waits in a finished log");
    }

    #[test]
    fn reopens_keep_no_more_spare_buffers_than_shards() {
        let (_dir, path, log) = file_log();
        let mut writer = Writer {
            target: LogTarget::File(path.clone()),
            output: open(&LogTarget::File(path.clone())).unwrap(),
            shared: Arc::clone(&log.shared),
            spares: Vec::new(),
            failing: false,
            syslog: None,
        };
        // What many reopens, each taking every worker's buffer, would hand back.
        let batch = (0..3 * SHARDS).map(|_| b"line\n".to_vec()).collect();
        writer.write(batch);
        assert_eq!(writer.spares.len(), SHARDS);
        log.finish();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            3 * SHARDS
        );
    }

    #[test]
    fn a_dropped_log_writes_what_it_holds() {
        let (_dir, path, log) = file_log();
        log_path(&log, "/last");
        drop(log);
        assert_eq!(wait_for_paths(&path, 1), ["/last"]);
    }
}
