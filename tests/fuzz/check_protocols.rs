//! The readers of the database health checks (`codec::check_protocols`): a verdict, once the
//! bytes read so far give one, stays the same however many more bytes follow (the checker stops
//! reading at the first verdict, so a later byte must not have changed it), and none of them
//! panics on what a server, or something else on its port, sends. Inputs are messages of each
//! protocol with random types, lengths and bodies, so the readers get past their first check.

use bolero::{check, TypeGenerator};
use tandem::codec::check_protocols::{mysql, postgres, redis, Reading};

use super::ITERATIONS;

#[derive(Debug, TypeGenerator)]
enum Message {
    /// A MySQL packet: its length as given or as its payload's, a first byte among the ones
    /// the reader tells apart, then random bytes.
    Mysql {
        declared: Option<u32>,
        #[generator(0u8..=4)]
        first: u8,
        #[generator(Vec::produce().with().len(0usize..=64))]
        payload: Vec<u8>,
    },
    /// A PostgreSQL message: a type among the ones the reader tells apart, then its length as
    /// given or as its body's.
    Postgres {
        #[generator(0u8..=7)]
        kind: u8,
        declared: Option<u32>,
        #[generator(Vec::produce().with().len(0usize..=64))]
        body: Vec<u8>,
    },
    /// A Redis line, or random bytes.
    Line {
        #[generator(0u8..=3)]
        start: u8,
        #[generator(Vec::produce().with().len(0usize..=64))]
        text: Vec<u8>,
    },
}

impl Message {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Message::Mysql {
                declared,
                first,
                payload,
            } => {
                let first = [0x0a, 0xff, 0x00, 0xfe, 0x09][usize::from(*first)];
                let length = declared.unwrap_or(payload.len() as u32 + 1);
                out.extend_from_slice(&length.to_le_bytes()[..3]);
                out.push(0);
                out.push(first);
                out.extend_from_slice(payload);
            }
            Message::Postgres {
                kind,
                declared,
                body,
            } => {
                out.push(b"RSKNZEDv"[usize::from(*kind)]);
                let length = declared.unwrap_or(body.len() as u32 + 4);
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(body);
            }
            Message::Line { start, text } => {
                out.extend_from_slice([&b"+PONG"[..], b"-", b"+", b""][usize::from(*start)]);
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// A reader of what a server answered so far.
type Reader = fn(&[u8]) -> Reading;

/// Pass or fail, without the words.
fn verdict(reading: &Reading) -> Option<bool> {
    match reading {
        Reading::More => None,
        Reading::Pass => Some(true),
        Reading::Fail(_) => Some(false),
    }
}

#[test]
fn a_verdict_stands_whatever_follows() {
    let readers: [(&str, Reader); 4] = [
        ("redis", redis::pong),
        ("mysql greeting", mysql::greeting),
        ("mysql login", mysql::authentication),
        ("postgres", postgres::answer),
    ];
    check!()
        .with_type::<(Vec<Message>, Vec<u8>)>()
        .with_iterations(ITERATIONS)
        .for_each(|(messages, tail)| {
            let mut bytes = Vec::new();
            messages
                .iter()
                .for_each(|message| message.write(&mut bytes));
            bytes.extend_from_slice(tail);
            for (name, reader) in readers {
                let whole = verdict(&reader(&bytes));
                let first = (0..=bytes.len()).find_map(|end| verdict(&reader(&bytes[..end])));
                assert_eq!(first, whole, "{name} changed its verdict on {bytes:?}");
            }
        });
}

#[test]
fn what_tandem_sends_is_framed_by_its_own_length() {
    check!()
        .with_type::<(String, Option<String>)>()
        .with_iterations(ITERATIONS)
        .for_each(|(user, database)| {
            let login = mysql::handshake_response(user);
            let length = u32::from_le_bytes([login[0], login[1], login[2], 0]) as usize;
            assert_eq!(length + 4, login.len());
            let startup = postgres::startup(user, database.as_deref());
            let length = u32::from_be_bytes(startup[..4].try_into().unwrap()) as usize;
            assert_eq!(length, startup.len());
            assert_eq!(startup.last(), Some(&0));
        });
}
