//! The access log: one line per HTTP request or TCP session. Workers only queue a record;
//! a thread of the log's own formats and writes them in batches, so neither formatting nor a
//! slow disk holds up traffic. When the queue is full, records are dropped and counted.

use std::cell::Cell;
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

use crate::address_text;
use crate::backend::{BackendState, ServerState};
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
    /// The backend the request was routed to, if any.
    pub backend: Option<Arc<BackendState>>,
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

/// One line, with its newline. Written field by field (serde_json only escapes the strings):
/// the writer formats every request, so its cost counts against the proxy's CPU.
pub fn format(record: &Record, format: LogFormat, out: &mut Vec<u8>) {
    let config = &record.frontend.config;
    let backend = record
        .backend
        .as_ref()
        .map(|backend| backend.config.name.as_str());
    let server = record.server.as_ref().map(|server| server.name.as_str());
    let (method, path) = match &record.request {
        Some((method, uri)) => (
            Some(method.as_str()),
            Some(uri.path_and_query().map_or("/", |pq| pq.as_str())),
        ),
        None => (None, None),
    };
    let connect = record.connect.map(micros);
    let first_byte = record.first_byte.map(micros);
    match format {
        LogFormat::Json => {
            out.extend_from_slice(b"{\"time\":\"");
            rfc3339(record.time, out);
            out.extend_from_slice(b"\",\"frontend\":");
            json_string(Some(&config.name), out);
            out.extend_from_slice(b",\"backend\":");
            json_string(backend, out);
            out.extend_from_slice(b",\"server\":");
            json_string(server, out);
            out.extend_from_slice(b",\"client\":\"");
            address_text::write_socket_address(record.client, out);
            out.extend_from_slice(b"\",\"method\":");
            json_string(method, out);
            out.extend_from_slice(b",\"path\":");
            json_string(path, out);
            out.extend_from_slice(b",\"status\":");
            number(record.status.map(u64::from), b"null", out);
            out.extend_from_slice(b",\"bytes\":");
            number(Some(record.bytes), b"null", out);
            out.extend_from_slice(b",\"connect_us\":");
            number(connect, b"null", out);
            out.extend_from_slice(b",\"first_byte_us\":");
            number(first_byte, b"null", out);
            out.extend_from_slice(b",\"total_us\":");
            number(Some(micros(record.total)), b"null", out);
            out.extend_from_slice(b",\"end\":\"");
            out.extend_from_slice(record.end.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        LogFormat::Text => {
            rfc3339(record.time, out);
            let _ = write!(
                out,
                " {} {}/{} {} ",
                config.name,
                backend.unwrap_or("-"),
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
            number(record.status.map(u64::from), b"-", out);
            out.push(b' ');
            number(Some(record.bytes), b"-", out);
            out.extend_from_slice(b" connect_us=");
            number(connect, b"-", out);
            out.extend_from_slice(b" first_byte_us=");
            number(first_byte, b"-", out);
            out.extend_from_slice(b" total_us=");
            number(Some(micros(record.total)), b"-", out);
            out.extend_from_slice(b" end=");
            out.extend_from_slice(record.end.as_bytes());
        }
    }
    out.push(b'\n');
}

/// A JSON string, escaped by serde_json when it needs escaping; or null. Names and most paths
/// are plain printable ASCII, copied as they are.
fn json_string(text: Option<&str>, out: &mut Vec<u8>) {
    let plain = |byte: u8| matches!(byte, b' '..=b'~') && byte != b'"' && byte != b'\\';
    match text {
        Some(text) if text.bytes().all(plain) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Some(text) => {
            let _ = serde_json::to_writer(&mut *out, text);
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn number(value: Option<u64>, absent: &[u8], out: &mut Vec<u8>) {
    match value {
        Some(value) => out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes()),
        None => out.extend_from_slice(absent),
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

/// A UTC time as RFC 3339 with milliseconds: `2026-11-24T19:04:05.123Z`.
pub(crate) fn rfc3339(time: SystemTime, out: &mut Vec<u8>) {
    thread_local! {
        /// The last second written, as text up to its fraction: the log writer's lines come
        /// many to a second.
        static LAST_SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let since_epoch = (time.duration_since(SystemTime::UNIX_EPOCH)).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (last, mut prefix) = LAST_SECOND.get();
    if seconds != last {
        let mut text = Vec::with_capacity(20);
        let (year, month, day) = civil_date(seconds / 86_400);
        let of_day = seconds % 86_400;
        let fields = [
            (year, 4, b'-'),
            (month, 2, b'-'),
            (day, 2, b'T'),
            (of_day / 3600, 2, b':'),
            (of_day % 3600 / 60, 2, b':'),
            (of_day % 60, 2, b'.'),
        ];
        for (value, width, separator) in fields {
            padded(value, width, &mut text);
            text.push(separator);
        }
        match <[u8; 20]>::try_from(text.as_slice()) {
            Ok(text) => {
                prefix = text;
                LAST_SECOND.set((seconds, prefix));
            }
            // Past the year 9999 the text is longer than the memo: written out in full.
            Err(_) => {
                out.extend_from_slice(&text);
                padded(u64::from(since_epoch.subsec_millis()), 3, out);
                out.push(b'Z');
                return;
            }
        }
    }
    out.extend_from_slice(&prefix);
    padded(u64::from(since_epoch.subsec_millis()), 3, out);
    out.push(b'Z');
}

/// `value` in decimal, zero-padded to `width` digits.
fn padded(value: u64, width: usize, out: &mut Vec<u8>) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
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
            let mut out = Vec::new();
            rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_millis(seconds * 1000 + millis),
                &mut out,
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(1_798_761_599, 0), "2026-12-31T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        // The memo of the last second serves the same second, and only it.
        assert_eq!(at(4_107_542_400, 7), "2100-03-01T00:00:00.007Z");
        assert_eq!(at(4_107_542_401, 7), "2100-03-01T00:00:01.007Z");
        assert_eq!(at(253_402_300_800, 1), "10000-01-01T00:00:00.001Z");
        assert_eq!(at(4_107_542_401, 8), "2100-03-01T00:00:01.008Z");
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "/plain/path?a=1&b=2",
            "sp ace",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "é",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            json_string(Some(text), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    fn record(path: &str) -> Record {
        let backend = Arc::new(crate::backend::checked_backend(&["s1"]));
        let frontend = Arc::new(FrontendRuntime {
            config: config::Frontend {
                name: "web".into(),
                listen: "127.0.0.1:80".parse().unwrap(),
                mode: config::Mode::Http,
                backend: Some(0),
                max_connections: 1,
                timeouts: config::FrontendTimeouts {
                    request_header: Duration::from_secs(1),
                    client_idle: Duration::from_secs(1),
                },
                accept_proxy: false,
                tls: None,
                routes: Vec::new(),
                request_headers: config::HeaderRules::default(),
                response_headers: config::HeaderRules::default(),
                redirect_https: None,
            },
            backend: Some(Arc::clone(&backend)),
            routes: Vec::new(),
            tls: None,
            stats: Arc::new(stats::FrontendStats::new("web")),
            access_log: None,
        });
        Record {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_798_761_599_250),
            frontend,
            backend: Some(Arc::clone(&backend)),
            server: Some(Arc::clone(&backend.servers[0])),
            client: "192.0.2.7:40000".parse().unwrap(),
            request: Some((Method::GET, path.parse().unwrap())),
            status: Some(200),
            bytes: 12,
            connect: Some(Duration::from_micros(150)),
            first_byte: None,
            total: Duration::from_micros(1_234),
            end: "done",
        }
    }

    #[test]
    fn a_json_line_is_one_object_with_every_field() {
        let mut out = Vec::new();
        format(&record("/a?q=%22x%22&b=\\"), LogFormat::Json, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let expected = serde_json::json!({
            "time": "2026-12-31T23:59:59.250Z", "frontend": "web", "backend": "web",
            "server": "s1", "client": "192.0.2.7:40000", "method": "GET",
            "path": "/a?q=%22x%22&b=\\", "status": 200, "bytes": 12, "connect_us": 150,
            "first_byte_us": null, "total_us": 1234, "end": "done"
        });
        assert_eq!(line, expected);
    }

    #[test]
    fn a_text_line_splits_on_spaces() {
        let mut out = Vec::new();
        format(&record("/a"), LogFormat::Text, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "2026-12-31T23:59:59.250Z web web/s1 192.0.2.7:40000 \"GET /a\" 200 12 \
             connect_us=150 first_byte_us=- total_us=1234 end=done\n"
        );
    }

    #[test]
    fn escapes_quotes_in_text_paths() {
        let mut out = Vec::new();
        quoted(r#"/a"b\c"#, &mut out);
        assert_eq!(out, br#"/a\"b\\c"#);
    }
}
