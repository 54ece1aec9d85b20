//! The access log: one line per HTTP request or TCP session. Workers only queue a record;
//! a thread of the log's own formats and writes them in batches, so neither formatting nor a
//! slow disk holds up traffic. When the queue is full, records are dropped and counted.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use http::{Method, Uri};
use metrics::Counter;
use serde::Serialize;

use crate::backend::ServerState;
use crate::config::{self, LogFormat, LogTarget};
use crate::proxy::FrontendRuntime;
use crate::stats;

/// Records waiting to be written: at 100k requests a second, about 80 batches' worth.
const QUEUE: usize = 16_384;
/// How often a busy writer wakes: records wait at most this long, and workers never have to
/// wake a writer that sleeps between batches (a syscall per record). Short, so that each batch
/// is small: on a worker's core, a long batch would hold up requests. An idle writer blocks
/// until the next record instead.
const BATCH_INTERVAL: Duration = Duration::from_millis(2);
/// The writer yields to the workers when they share a core.
const WRITER_NICENESS: libc::c_int = 10;

/// One request or session, as it ended.
pub struct Record {
    /// When the request (or session) began.
    pub time: SystemTime,
    pub frontend: Arc<FrontendRuntime>,
    pub server: Option<Arc<ServerState>>,
    pub client: SocketAddr,
    /// HTTP only.
    pub request: Option<(Method, Uri)>,
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
}

pub struct AccessLog {
    config: config::AccessLog,
    queue: SyncSender<Entry>,
    /// A reopen asked for while the queue was full, done after the writer's next batch.
    reopen_pending: Arc<AtomicBool>,
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// In the queue, a reopen sits between the records before it (old file) and after it (new).
enum Entry {
    Record(Box<Record>),
    Reopen,
    Finish,
}

impl AccessLog {
    /// Opens the target (so a bad path fails here, naming it) and starts the writer.
    pub fn start(config: &config::AccessLog) -> io::Result<Arc<AccessLog>> {
        let output = open(&config.target)?;
        let (queue, entries) = mpsc::sync_channel(QUEUE);
        let reopen_pending = Arc::new(AtomicBool::new(false));
        let dropped = stats::access_log_dropped();
        let writer = Writer {
            format: config.format,
            target: config.target.clone(),
            output: BufWriter::with_capacity(64 * 1024, output),
            entries,
            reopen_pending: Arc::clone(&reopen_pending),
            dropped: dropped.clone(),
            failing: false,
        };
        let writer = thread::Builder::new()
            .name("tandem-access-log".into())
            .spawn(move || writer.run())?;
        Ok(Arc::new(AccessLog {
            config: config.clone(),
            queue,
            reopen_pending,
            dropped,
            writer: Mutex::new(Some(writer)),
        }))
    }

    pub fn config(&self) -> &config::AccessLog {
        &self.config
    }

    pub fn log(&self, record: Box<Record>) {
        if self.queue.try_send(Entry::Record(record)).is_err() {
            self.dropped.increment(1);
        }
    }

    /// Opens the file again at its path, after logrotate moved it away: records logged from
    /// now on go to the new file. Never waits: with the queue full, the writer reopens after
    /// its next batch instead.
    pub fn reopen(&self) {
        if self.config.target == LogTarget::Stdout {
            return;
        }
        if self.queue.try_send(Entry::Reopen).is_err() {
            self.reopen_pending.store(true, Ordering::Relaxed);
        }
    }

    /// Writes what is queued and stops the writer; records logged after this are lost.
    pub fn finish(&self) {
        let _ = self.queue.send(Entry::Finish);
        let writer = self.writer.lock().map(|mut writer| writer.take());
        if let Ok(Some(writer)) = writer {
            let _ = writer.join();
        }
    }
}

fn open(target: &LogTarget) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        LogTarget::Stdout => Box::new(io::stdout()),
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
    format: LogFormat,
    target: LogTarget,
    output: BufWriter<Box<dyn Write + Send>>,
    entries: Receiver<Entry>,
    reopen_pending: Arc<AtomicBool>,
    dropped: Counter,
    /// Whether the last write failed: a failing disk is reported once, not every batch.
    failing: bool,
}

impl Writer {
    fn run(mut self) {
        // Per thread on Linux: PRIO_PROCESS with a thread id. Failing only costs latency.
        // SAFETY: plain syscalls on this thread's own id.
        unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                WRITER_NICENESS,
            );
        }
        let mut line = Vec::with_capacity(512);
        loop {
            let mut handled = 0;
            loop {
                let entry = match self.entries.try_recv() {
                    Ok(entry) => entry,
                    // Idle: sleep until a record comes rather than waking every batch.
                    Err(TryRecvError::Empty) if handled == 0 => match self.entries.recv() {
                        Ok(entry) => entry,
                        Err(_) => return self.flush(),
                    },
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return self.flush(),
                };
                handled += 1;
                match entry {
                    Entry::Record(record) => {
                        line.clear();
                        format(&record, self.format, &mut line);
                        if let Err(error) = self.output.write_all(&line) {
                            self.dropped.increment(1);
                            self.report(Err(error));
                        }
                    }
                    Entry::Reopen => self.reopen_target(),
                    Entry::Finish => return self.flush(),
                }
            }
            self.flush();
            if self.reopen_pending.swap(false, Ordering::Relaxed) {
                self.reopen_target();
            }
            thread::sleep(BATCH_INTERVAL);
        }
    }

    fn flush(&mut self) {
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
        self.flush();
        if self.target == LogTarget::Stdout {
            return;
        }
        match open(&self.target) {
            Ok(output) => self.output = BufWriter::with_capacity(64 * 1024, output),
            Err(error) => {
                tracing::error!(%error, "reopening the access log failed; still writing to the old file")
            }
        }
    }
}

/// One line, with its newline.
pub fn format(record: &Record, format: LogFormat, out: &mut Vec<u8>) {
    let config = &record.frontend.config;
    let server = record.server.as_ref().map(|server| server.name.as_str());
    let (method, path) = match &record.request {
        Some((method, uri)) => (
            Some(method.as_str()),
            Some(uri.path_and_query().map_or("/", |pq| pq.as_str())),
        ),
        None => (None, None),
    };
    match format {
        LogFormat::Json => {
            let line = JsonLine {
                time: Rfc3339(record.time),
                frontend: &config.name,
                backend: &record.frontend.backend.config.name,
                server,
                client: record.client,
                method,
                path,
                status: record.status,
                bytes: record.bytes,
                connect_us: record.connect.map(micros),
                first_byte_us: record.first_byte.map(micros),
                total_us: micros(record.total),
                end: record.end,
            };
            let _ = serde_json::to_writer(&mut *out, &line);
        }
        LogFormat::Text => {
            let _ = write!(
                out,
                "{} {} {}/{} {} ",
                Rfc3339(record.time),
                config.name,
                record.frontend.backend.config.name,
                server.unwrap_or("-"),
                record.client,
            );
            match (method, path) {
                (Some(method), Some(path)) => {
                    out.extend_from_slice(b"\"");
                    out.extend_from_slice(method.as_bytes());
                    out.extend_from_slice(b" ");
                    quoted(path, out);
                    out.extend_from_slice(b"\" ");
                }
                _ => out.extend_from_slice(b"- "),
            }
            match record.status {
                Some(status) => {
                    let _ = write!(out, "{status} ");
                }
                None => out.extend_from_slice(b"- "),
            }
            let _ = write!(out, "{} connect_us=", record.bytes);
            optional_micros(record.connect, out);
            out.extend_from_slice(b" first_byte_us=");
            optional_micros(record.first_byte, out);
            let _ = write!(out, " total_us={} end={}", micros(record.total), record.end);
        }
    }
    out.push(b'\n');
}

fn optional_micros(duration: Option<Duration>, out: &mut Vec<u8>) {
    match duration {
        Some(duration) => {
            let _ = write!(out, "{}", micros(duration));
        }
        None => out.push(b'-'),
    }
}

/// The path as the client sent it, with quotes and backslashes escaped so the line splits
/// unambiguously.
fn quoted(text: &str, out: &mut Vec<u8>) {
    for byte in text.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
}

/// Durations are logged as whole microseconds: exact, and cheaper to write than a float.
fn micros(duration: Duration) -> u64 {
    duration.as_micros().try_into().unwrap_or(u64::MAX)
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: Rfc3339,
    frontend: &'a str,
    backend: &'a str,
    server: Option<&'a str>,
    client: SocketAddr,
    method: Option<&'a str>,
    path: Option<&'a str>,
    status: Option<u16>,
    bytes: u64,
    connect_us: Option<u64>,
    first_byte_us: Option<u64>,
    total_us: u64,
    end: &'static str,
}

/// A UTC time as RFC 3339 with milliseconds: `2026-11-24T19:04:05.123Z`.
struct Rfc3339(SystemTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since_epoch = (self.0.duration_since(SystemTime::UNIX_EPOCH)).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_date(seconds / 86_400);
        let of_day = seconds % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60,
            since_epoch.subsec_millis()
        )
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates_across_leap_years_and_month_ends() {
        let at = |seconds: u64, millis: u64| {
            Rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(seconds * 1000 + millis))
                .to_string()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(1_798_761_599, 0), "2026-12-31T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn escapes_quotes_in_text_paths() {
        let mut out = Vec::new();
        quoted(r#"/a"b\c"#, &mut out);
        assert_eq!(out, br#"/a\"b\\c"#);
    }
}
