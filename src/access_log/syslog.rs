//! Access log lines to syslog as RFC 5424 messages, one datagram each, from the access log's
//! writer thread. Its sockets never block: a line the receiver has no room for (or refuses) is
//! dropped, counted, and reported at most every `WARNING_INTERVAL`, so a dead syslog daemon
//! neither slows the file nor floods the operator's log.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use metrics::Counter;

use super::rfc3339;
use crate::config::{Syslog, SyslogAddress};

const WARNING_INTERVAL: Duration = Duration::from_secs(10);

pub struct SyslogSender {
    socket: Socket,
    /// As the config writes it, for the warning.
    address: String,
    /// `<PRI>1 `: what comes before the timestamp.
    before_time: Vec<u8>,
    /// ` HOSTNAME APP-NAME PROCID - - `: no MSGID, no structured data.
    after_time: Vec<u8>,
    max_length: usize,
    /// The message being sent, kept for its capacity.
    message: Vec<u8>,
    dropped: Counter,
    /// Lines dropped since the last warning.
    unreported: u64,
    last_warning: Option<Instant>,
}

enum Socket {
    /// Connected to the receiver.
    Udp(UdpSocket),
    Unix(UnixDatagram, PathBuf),
}

impl Socket {
    fn open(address: &SyslogAddress) -> io::Result<Socket> {
        Ok(match address {
            SyslogAddress::Udp(address) => {
                let any: SocketAddr = match address {
                    SocketAddr::V4(_) => "0.0.0.0:0".parse(),
                    SocketAddr::V6(_) => "[::]:0".parse(),
                }
                .expect("a literal address");
                let socket = UdpSocket::bind(any)?;
                socket.connect(address)?;
                socket.set_nonblocking(true)?;
                Socket::Udp(socket)
            }
            SyslogAddress::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Socket::Unix(socket, path.clone())
            }
        })
    }
}

impl SyslogSender {
    /// Opens the socket; an error names the address.
    pub fn new(config: &Syslog, dropped: Counter) -> io::Result<SyslogSender> {
        let address = match &config.address {
            SyslogAddress::Udp(address) => format!("udp://{address}"),
            SyslogAddress::Unix(path) => format!("unix:{}", path.display()),
        };
        let socket = Socket::open(&config.address).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("access_log.syslog {address}: {error}"),
            )
        })?;
        let priority = u16::from(config.facility) * 8 + u16::from(config.severity);
        let hostname = config.hostname.clone().unwrap_or_else(host_name);
        Ok(SyslogSender {
            socket,
            address,
            before_time: format!("<{priority}>1 ").into_bytes(),
            after_time: format!(" {hostname} {} {} - - ", config.tag, std::process::id())
                .into_bytes(),
            max_length: config.max_length,
            message: Vec::with_capacity(config.max_length),
            dropped,
            unreported: 0,
            last_warning: None,
        })
    }

    /// Sends each line of `lines` (each ending in a newline) as one message stamped `now`.
    pub fn send(&mut self, lines: &[u8], now: SystemTime) {
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(&self.before_time);
        rfc3339(now, &mut header);
        header.extend_from_slice(&self.after_time);
        for line in lines.split(|&byte| byte == b'\n') {
            if line.is_empty() {
                continue;
            }
            self.message.clear();
            self.message.extend_from_slice(&header);
            let room = self.max_length.saturating_sub(header.len());
            self.message.extend_from_slice(cut(line, room));
            let sent = match &self.socket {
                Socket::Udp(socket) => socket.send(&self.message),
                Socket::Unix(socket, path) => socket.send_to(&self.message, path),
            };
            if let Err(error) = sent {
                self.drop_line(&error);
            }
        }
    }

    fn drop_line(&mut self, error: &io::Error) {
        self.dropped.increment(1);
        self.unreported += 1;
        let now = Instant::now();
        if (self.last_warning).is_some_and(|at| now - at < WARNING_INTERVAL) {
            return;
        }
        tracing::warn!(
            syslog = %self.address,
            %error,
            lines = self.unreported,
            "sending access log lines to syslog failed; they are dropped \
             (tandem_access_log_syslog_dropped_total)"
        );
        self.unreported = 0;
        self.last_warning = Some(now);
    }
}

/// At most `room` bytes of `line`, not ending inside a UTF-8 character.
fn cut(line: &[u8], room: usize) -> &[u8] {
    if line.len() <= room {
        return line;
    }
    let mut end = room;
    while end > 0 && (line[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &line[..end]
}

/// The system's host name, as RFC 5424's HOSTNAME: `-` when it has none that fits.
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer outlives the call, which writes at most its length.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let name = match result {
        0 => buffer.split(|&byte| byte == 0).next().unwrap_or_default(),
        _ => &[],
    };
    match !name.is_empty() && name.iter().all(u8::is_ascii_graphic) {
        true => String::from_utf8_lossy(name).into_owned(),
        false => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_lines_at_a_character_boundary() {
        assert_eq!(cut(b"abc", 5), b"abc");
        assert_eq!(cut(b"abcdef", 3), b"abc");
        assert_eq!(cut("aé".as_bytes(), 2), b"a");
        assert_eq!(cut("aé".as_bytes(), 3), "aé".as_bytes());
    }

    #[test]
    fn sends_each_line_as_an_rfc_5424_message() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = Syslog {
            address: SyslogAddress::Udp(receiver.local_addr().unwrap()),
            facility: 16,
            severity: 6,
            hostname: Some("lb1".into()),
            tag: "tandem".into(),
            max_length: 480,
        };
        let dropped = Counter::noop();
        let mut sender = SyslogSender::new(&config, dropped).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_798_761_599_250);
        let long = "x".repeat(600);
        sender.send(format!("first line\n{long}\n").as_bytes(), at);
        let mut buffer = [0u8; 2048];
        let header = format!(
            "<134>1 2026-12-31T23:59:59.250Z lb1 tandem {} - - ",
            std::process::id()
        );
        let length = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], format!("{header}first line").as_bytes());
        let length = receiver.recv(&mut buffer).unwrap();
        assert_eq!(length, 480, "cut to max_length");
        assert!(buffer[..length].starts_with(header.as_bytes()));
    }
}
