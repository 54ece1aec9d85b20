//! PostgreSQL: a StartupMessage (protocol 3.0) naming a user and optionally a database. The
//! server asks for credentials ('R' with a method) or lets the user in ('R' OK, some
//! parameters, then ReadyForQuery 'Z'): both pass. An ErrorResponse ('E': the server is
//! starting up, too many connections, no such role or database) or anything else fails. A
//! session let in is ended with Terminate; one asked for credentials is closed. HAProxy's
//! `option pgsql-check user NAME` stops at the first 'R'.

use super::{printable, Reading};

/// Protocol 3.0.
const PROTOCOL: u32 = 3 << 16;
/// A message this check expects is far shorter (errors are a few hundred bytes).
const MAX_MESSAGE: usize = 16 * 1024;
/// AuthenticationOk; any other request asks for credentials.
const AUTHENTICATION_OK: u32 = 0;

/// Terminate.
pub const TERMINATE: &[u8] = b"X\x00\x00\x00\x04";

/// The StartupMessage for `user` (and `database`; the server's default is the user's name).
pub fn startup(user: &str, database: Option<&str>) -> Vec<u8> {
    let mut message = vec![0; 4];
    message.extend_from_slice(&PROTOCOL.to_be_bytes());
    let parameters = [("user", Some(user)), ("database", database)];
    for (name, value) in parameters {
        if let Some(value) = value {
            message.extend_from_slice(name.as_bytes());
            message.push(0);
            message.extend_from_slice(value.as_bytes());
            message.push(0);
        }
    }
    message.push(0);
    let length = message.len() as u32;
    message[..4].copy_from_slice(&length.to_be_bytes());
    message
}

/// What the server's answer to [`startup`] so far says.
pub fn answer(read: &[u8]) -> Reading {
    judge(read).0
}

/// Whether a passing answer let the user in (ReadyForQuery): then the session is ended with
/// [`TERMINATE`]. A server still waiting for credentials is left by closing, which it takes
/// silently; Terminate there would be logged as a protocol violation.
pub fn let_in(read: &[u8]) -> bool {
    judge(read).1
}

fn judge(mut read: &[u8]) -> (Reading, bool) {
    let reading = |reading| (reading, false);
    loop {
        let Some(header) = read.get(..5) else {
            return reading(Reading::More);
        };
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if !(4..=MAX_MESSAGE).contains(&length) {
            return reading(Reading::Fail(format!(
                "not a PostgreSQL message (type {}, length {length})",
                printable(&header[..1])
            )));
        }
        let Some(body) = read.get(5..1 + length) else {
            return reading(Reading::More);
        };
        match header[0] {
            b'R' => match body.get(..4) {
                Some(method)
                    if u32::from_be_bytes(method.try_into().unwrap()) == AUTHENTICATION_OK => {}
                Some(_) => return reading(Reading::Pass),
                None => {
                    return reading(Reading::Fail(
                        "authentication request without a method".into(),
                    ))
                }
            },
            // ParameterStatus, BackendKeyData, NoticeResponse: on the way to ReadyForQuery.
            b'S' | b'K' | b'N' => {}
            b'Z' => return (Reading::Pass, true),
            b'E' => return reading(error(body)),
            other => {
                return reading(Reading::Fail(format!(
                    "unexpected PostgreSQL message type {}",
                    printable(&[other])
                )))
            }
        }
        read = &read[1 + length..];
    }
}

/// An ErrorResponse's SQLSTATE ('C') and message ('M') fields.
fn error(body: &[u8]) -> Reading {
    let (mut code, mut message) = (&b""[..], &b""[..]);
    for field in body.split(|&byte| byte == 0) {
        match field.split_first() {
            Some((b'C', value)) => code = value,
            Some((b'M', value)) => message = value,
            _ => {}
        }
    }
    Reading::Fail(format!(
        "PostgreSQL error {}: {}",
        printable(code),
        printable(message)
    ))
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

    #[test]
    fn builds_startup_messages() {
        assert_eq!(
            startup("postgres", None),
            b"\x00\x00\x00\x17\x00\x03\x00\x00user\x00postgres\x00\x00"
        );
        assert_eq!(
            startup("u", Some("db")),
            b"\x00\x00\x00\x1c\x00\x03\x00\x00user\x00u\x00database\x00db\x00\x00"
        );
    }

    /// PostgreSQL 15.18 (Debian 12) letting `postgres` in under trust authentication, as
    /// captured: AuthenticationOk, ParameterStatus x14, BackendKeyData, ReadyForQuery.
    const LET_IN: &str = "52000000080000000053000000166170706c69636174696f6e5f6e616d650000530000\
        0019636c69656e745f656e636f64696e670055544638005300000017446174655374796c650049534f2c204d\
        445900530000002664656661756c745f7472616e73616374696f6e5f726561645f6f6e6c79006f6666005300\
        000017696e5f686f745f7374616e646279006f6666005300000019696e74656765725f6461746574696d6573\
        006f6e00530000001b496e74657276616c5374796c6500706f73746772657300530000001469735f73757065\
        72757365720 06f6e0053000000197365727665725f656e636f64696e67005554463800530000003273657276\
        65725f76657273696f6e0031352e3138202844656269616e2031352e31382d302b6465623132753129005300\
        00002373657373696f6e5f617574686f72697a6174696f6e00706f7374677265730053000000237374616e64\
        6172645f636f6e666f726d696e675f737472696e6773006f6e00530000001554696d655a6f6e65004574632f\
        555443004b0000000c00000c4fbdf72a455a0000000549";

    #[test]
    fn passes_once_the_server_is_ready_and_waits_until_then() {
        let let_in = hex(&LET_IN.replace(' ', ""));
        assert_eq!(answer(&let_in), Reading::Pass);
        assert!(super::let_in(&let_in));
        for cut in 0..let_in.len() {
            assert_eq!(answer(&let_in[..cut]), Reading::More, "{cut}");
        }
    }

    #[test]
    fn passes_on_a_request_for_credentials_without_being_let_in() {
        // AuthenticationMD5Password with its salt, and AuthenticationSASL (SCRAM-SHA-256) as
        // PostgreSQL 15 sent it.
        let md5 = b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04";
        let sasl = b"R\x00\x00\x00\x17\x00\x00\x00\nSCRAM-SHA-256\x00\x00";
        for asked in [&md5[..], &sasl[..]] {
            assert_eq!(answer(asked), Reading::Pass);
            assert!(!let_in(asked));
        }
    }

    #[test]
    fn fails_on_an_error_even_after_letting_in() {
        // As captured: trust lets the user in, then the role is found missing.
        let no_role = b"R\x00\x00\x00\x08\x00\x00\x00\x00E\x00\x00\x00bSFATAL\x00VFATAL\x00C28000\
            \x00Mrole \"nobody\" does not exist\x00Fmiscinit.c\x00L768\x00RInitializeSessionUserId\
            \x00\x00";
        assert_eq!(
            answer(no_role),
            Reading::Fail("PostgreSQL error 28000: role \"nobody\" does not exist".into())
        );
        let starting = b"E\x00\x00\x00\x37SFATAL\x00C57P03\x00Mthe database system is starting \
            up\x00\x00";
        assert_eq!(
            answer(starting),
            Reading::Fail("PostgreSQL error 57P03: the database system is starting up".into())
        );
    }

    #[test]
    fn fails_on_what_is_not_postgres() {
        assert_eq!(
            answer(b"HTTP/1.1 400 Bad Request\r\n"),
            Reading::Fail("not a PostgreSQL message (type H, length 1414811695)".into())
        );
        assert_eq!(
            answer(b"+PONG\r\n\x00\x00\x00"),
            Reading::Fail("not a PostgreSQL message (type +, length 1347374663)".into())
        );
        assert_eq!(
            answer(b"D\x00\x00\x00\x04"),
            Reading::Fail("unexpected PostgreSQL message type D".into())
        );
    }
}
