//! MySQL and MariaDB: the server speaks first, with its initial handshake (protocol 10) or, when
//! it refuses the connection (too many connections, host blocked), an error packet. With a user,
//! the check answers the handshake as that user with no password and reads OK or error, then
//! quits with COM_QUIT, so the server counts no aborted connection; this is HAProxy's
//! `option mysql-check user NAME` (post-4.1 packets).

use super::{printable, Reading};

/// A greeting or an authentication result is a few hundred bytes: a packet that claims more is
/// not the MySQL protocol.
const MAX_PACKET: usize = 4096;
const PROTOCOL_10: u8 = 0x0a;
const OK: u8 = 0x00;
const ERROR: u8 = 0xff;

/// COM_QUIT, the first packet of a new command (sequence 0).
pub const QUIT: &[u8] = &[0x01, 0x00, 0x00, 0x00, 0x01];

/// What the server's first packet so far says.
pub fn greeting(read: &[u8]) -> Reading {
    match packet(read) {
        Err(reading) => reading,
        Ok(payload) => match payload.first() {
            Some(&PROTOCOL_10) => Reading::Pass,
            Some(&ERROR) => error(payload),
            first => Reading::Fail(format!(
                "not a MySQL protocol 10 handshake (first byte {:#04x})",
                first.copied().unwrap_or_default()
            )),
        },
    }
}

/// A HandshakeResponse41 for `user` with an empty password, answering the greeting (so it is
/// packet 1): capabilities PROTOCOL_41, TRANSACTIONS and SECURE_CONNECTION, as HAProxy's.
pub fn handshake_response(user: &str) -> Vec<u8> {
    const CAPABILITIES: u32 = 0x0200 | 0x2000 | 0x8000;
    const MAX_PACKET_SIZE: u32 = 1 << 24;
    const UTF8: u8 = 0x21;
    let mut payload = Vec::with_capacity(32 + 2 + user.len());
    payload.extend_from_slice(&CAPABILITIES.to_le_bytes());
    payload.extend_from_slice(&MAX_PACKET_SIZE.to_le_bytes());
    payload.push(UTF8);
    payload.extend_from_slice(&[0; 23]);
    payload.extend_from_slice(user.as_bytes());
    payload.push(0);
    // The authentication response's length: none.
    payload.push(0);
    let mut message = Vec::with_capacity(4 + payload.len());
    message.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    message.push(1);
    message.extend_from_slice(&payload);
    message
}

/// What the server's answer to [`handshake_response`] so far says: OK passes.
pub fn authentication(read: &[u8]) -> Reading {
    match packet(read) {
        Err(reading) => reading,
        Ok(payload) => match payload.first() {
            Some(&OK) => Reading::Pass,
            Some(&ERROR) => error(payload),
            first => Reading::Fail(format!(
                "expected OK or an error after logging in (first byte {:#04x})",
                first.copied().unwrap_or_default()
            )),
        },
    }
}

/// The payload of the first packet in `read`, or what to do without one.
fn packet(read: &[u8]) -> Result<&[u8], Reading> {
    let Some(header) = read.get(..4) else {
        return Err(Reading::More);
    };
    let length =
        usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if length == 0 || length > MAX_PACKET {
        return Err(Reading::Fail(format!(
            "not a MySQL packet (length {length})"
        )));
    }
    read.get(4..4 + length).ok_or(Reading::More)
}

/// An error packet's code and message; the SQL state (`#28000`) is there only once the client
/// said it speaks protocol 4.1, so not in an error sent instead of the greeting.
fn error(payload: &[u8]) -> Reading {
    let Some(code) = payload.get(1..3) else {
        return Reading::Fail("MySQL error packet without a code".into());
    };
    let code = u16::from_le_bytes([code[0], code[1]]);
    let mut message = &payload[3..];
    if message.first() == Some(&b'#') && message.len() >= 6 {
        message = &message[6..];
    }
    Reading::Fail(format!("MySQL error {code}: {}", printable(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    /// MariaDB 10.11.19 (Debian 12)'s greeting, as captured.
    const GREETING: &str = "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132\
        753100030000003c342e2a2622764f00fef7080200ff81150000000000001d000000683c3122535d5a2b643b36\
        3c006d7973716c5f6e61746976655f70617373776f726400";

    #[test]
    fn passes_on_a_protocol_10_greeting_and_waits_for_all_of_it() {
        let greeting_bytes = hex(GREETING);
        assert_eq!(greeting(&greeting_bytes), Reading::Pass);
        for cut in 0..greeting_bytes.len() {
            assert_eq!(greeting(&greeting_bytes[..cut]), Reading::More, "{cut}");
        }
    }

    #[test]
    fn fails_on_an_error_instead_of_a_greeting() {
        // ER_HOST_IS_BLOCKED as sent before any handshake: no SQL state.
        let message = b"Host '127.0.0.1' is blocked because of many connection errors";
        let mut packet = vec![(message.len() + 3) as u8, 0, 0, 0, 0xff, 0x69, 0x04];
        packet.extend_from_slice(message);
        assert_eq!(
            greeting(&packet),
            Reading::Fail(
                "MySQL error 1129: Host '127.0.0.1' is blocked because of many connection errors"
                    .into()
            )
        );
    }

    #[test]
    fn fails_on_what_is_not_mysql() {
        assert_eq!(
            greeting(b"HTTP/1.1 400 Bad Request\r\n"),
            Reading::Fail("not a MySQL packet (length 5526600)".into())
        );
        assert_eq!(
            greeting(b"\x01\x00\x00\x00\x09"),
            Reading::Fail("not a MySQL protocol 10 handshake (first byte 0x09)".into())
        );
        assert_eq!(
            greeting(b"\x00\x00\x00\x00"),
            Reading::Fail("not a MySQL packet (length 0)".into())
        );
    }

    #[test]
    fn builds_haproxys_handshake_response() {
        // The packet MariaDB accepted for user `tandem` in the capture below.
        let mut expected = hex("280000010 0a200000000000121".replace(' ', "").as_str());
        expected.extend_from_slice(&[0; 23]);
        expected.extend_from_slice(b"tandem\0\0");
        assert_eq!(handshake_response("tandem"), expected);
    }

    #[test]
    fn reads_the_login_result() {
        // MariaDB's OK, and its refusal of a user with a password, as captured.
        assert_eq!(
            authentication(&hex("0700000200000002000000")),
            Reading::Pass
        );
        let denied = hex(
            "45000002ff15042332383030304163636573732064656e69656420666f7220757365722027707727402731\
             32372e302e302e312720287573696e672070617373776f72643a204e4f29",
        );
        assert_eq!(
            authentication(&denied),
            Reading::Fail(
                "MySQL error 1045: Access denied for user 'pw'@'127.0.0.1' (using password: NO)"
                    .into()
            )
        );
        assert_eq!(authentication(&denied[..20]), Reading::More);
        assert_eq!(
            authentication(b"\x01\x00\x00\x02\xfe"),
            Reading::Fail("expected OK or an error after logging in (first byte 0xfe)".into())
        );
    }
}
