//! Redis (RESP): `PING` answered by `+PONG`. A server still loading its data set answers
//! `-LOADING`, one that wants a password `-NOAUTH`: any error is a failure.

use super::{printable, Reading};

/// The inline command; every Redis since 1.0 takes it.
pub const PING: &[u8] = b"PING\r\n";

/// What the reply to [`PING`] so far says.
pub fn pong(reply: &[u8]) -> Reading {
    let Some(end) = memchr::memmem::find(reply, b"\r\n") else {
        // A reply longer than any sensible error line without its end is not Redis.
        return if reply.len() > 512 {
            Reading::Fail(format!("not a Redis reply: {}", printable(reply)))
        } else {
            Reading::More
        };
    };
    match &reply[..end] {
        b"+PONG" => Reading::Pass,
        [b'-', error @ ..] => Reading::Fail(format!("Redis error: {}", printable(error))),
        line => Reading::Fail(format!("expected +PONG, got {}", printable(line))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_on_pong() {
        // As redis-server 7.0 (Debian 12) answered PING.
        assert_eq!(pong(b"+PONG\r\n"), Reading::Pass);
    }

    #[test]
    fn waits_for_the_whole_line() {
        assert_eq!(pong(b""), Reading::More);
        assert_eq!(pong(b"+PO"), Reading::More);
        assert_eq!(pong(b"+PONG\r"), Reading::More);
    }

    #[test]
    fn fails_on_errors_and_other_replies() {
        assert_eq!(
            pong(b"-LOADING Redis is loading the dataset in memory\r\n"),
            Reading::Fail("Redis error: LOADING Redis is loading the dataset in memory".into())
        );
        assert_eq!(
            pong(b"-NOAUTH Authentication required.\r\n"),
            Reading::Fail("Redis error: NOAUTH Authentication required.".into())
        );
        assert_eq!(
            pong(b"HTTP/1.1 400 Bad Request\r\n"),
            Reading::Fail("expected +PONG, got HTTP/1.1 400 Bad Request".into())
        );
        assert!(matches!(pong(&[b'x'; 513]), Reading::Fail(_)));
    }

    #[test]
    fn escapes_what_it_logs() {
        assert_eq!(
            pong(b"-ERR \x1b[31m\r\n"),
            Reading::Fail("Redis error: ERR \\u{1b}[31m".into())
        );
    }
}
