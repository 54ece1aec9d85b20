//! Session tickets under keys read from a file, so that a client's ticket from one node of a
//! pair resumes on the other after a failover, and on this one after a reload.
//!
//! The file holds one key per line: 48 bytes in base64 (`openssl rand -base64 48`), the first
//! 16 naming the key and the other 32 an AES-256-GCM-SIV key. Blank lines and lines starting
//! with `#` are skipped. The first key makes new tickets; every key opens them, so keys rotate
//! by adding a new first line on both nodes, reloading, and dropping the last line later.
//!
//! A ticket is the key's name, a random nonce, and the session state sealed with the name as
//! associated data. GCM-SIV because the keys live as long as the operator keeps them: a nonce
//! that comes up twice under a key leaks no more than that two tickets were equal.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM_SIV, NONCE_LEN};
use base64::Engine as _;
use rustls::server::ProducesTickets;

const NAME_LEN: usize = 16;
const SECRET_LEN: usize = 32;
/// Of a line, decoded.
pub const KEY_LEN: usize = NAME_LEN + SECRET_LEN;
/// How long clients are told a ticket may be used: how long it resumes is up to the keys,
/// which only their rotation retires.
const LIFETIME_SECONDS: u32 = 12 * 60 * 60;

/// The keys of a ticket-key file, in file order.
pub struct FileTicketer {
    keys: Vec<TicketKey>,
}

struct TicketKey {
    name: [u8; NAME_LEN],
    key: RandomizedNonceKey,
}

/// What is wrong with a ticket-key file's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysProblem {
    #[error("no key in it (one per line: 48 random bytes in base64, as `openssl rand -base64 48` writes)")]
    Empty,
    #[error("line {line} is not base64")]
    NotBase64 { line: usize },
    #[error("line {line} holds {bytes} bytes; a key is 48 (`openssl rand -base64 48`)")]
    WrongLength { line: usize, bytes: usize },
    #[error("line {line} repeats the key name of line {first} (its first 16 bytes)")]
    SameName { line: usize, first: usize },
}

impl FileTicketer {
    /// The keys of a file's text; the problem names the line, never a key.
    pub fn parse(text: &str) -> Result<FileTicketer, KeysProblem> {
        let mut keys: Vec<(usize, TicketKey)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|_| KeysProblem::NotBase64 { line: line_number })?;
            let Ok(bytes) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) else {
                return Err(KeysProblem::WrongLength {
                    line: line_number,
                    bytes: bytes.len(),
                });
            };
            let (name, secret) = bytes.split_at(NAME_LEN);
            let name: [u8; NAME_LEN] = name.try_into().expect("split at NAME_LEN");
            if let Some((first, _)) = keys.iter().find(|(_, key)| key.name == name) {
                return Err(KeysProblem::SameName {
                    line: line_number,
                    first: *first,
                });
            }
            let key = RandomizedNonceKey::new(&AES_256_GCM_SIV, secret)
                .expect("a 32-byte key is an AES-256 key");
            keys.push((line_number, TicketKey { name, key }));
        }
        if keys.is_empty() {
            return Err(KeysProblem::Empty);
        }
        Ok(FileTicketer {
            keys: keys.into_iter().map(|(_, key)| key).collect(),
        })
    }
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECONDS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let current = &self.keys[0];
        let mut sealed = Vec::with_capacity(plain.len() + 64);
        sealed.extend_from_slice(plain);
        let nonce = (current.key)
            .seal_in_place_append_tag(Aad::from(&current.name), &mut sealed)
            .ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&current.name);
        ticket.extend_from_slice(nonce.as_ref());
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(NAME_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let key = self.keys.iter().find(|key| key.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain_len = (key.key)
            .open_in_place(nonce, Aad::from(&key.name), &mut opened)
            .ok()?
            .len();
        opened.truncate(plain_len);
        Some(opened)
    }
}

impl std::fmt::Debug for FileTicketer {
    /// Never the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTicketer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: u8, secret: u8) -> String {
        let mut bytes = [secret; KEY_LEN];
        bytes[..NAME_LEN].fill(name);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn keys(lines: &[String]) -> FileTicketer {
        FileTicketer::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn a_ticket_opens_under_the_same_keys_and_no_others() {
        let ticketer = keys(&[line(1, 1)]);
        let ticket = ticketer.encrypt(b"session state").unwrap();
        assert_eq!(ticket.len(), NAME_LEN + NONCE_LEN + 13 + 16);
        assert_eq!(&ticket[..NAME_LEN], &[1; NAME_LEN]);
        // Another process reading the same file.
        let peer = keys(&[line(1, 1)]);
        assert_eq!(
            peer.decrypt(&ticket).as_deref(),
            Some(&b"session state"[..])
        );
        // Same name, another secret: refused, not mistaken.
        assert_eq!(keys(&[line(1, 2)]).decrypt(&ticket), None);
        assert_eq!(keys(&[line(3, 1)]).decrypt(&ticket), None);
        // Random nonces: two tickets of the same state differ.
        assert_ne!(ticketer.encrypt(b"session state").unwrap(), ticket);
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = keys(&[line(1, 1)]);
        let old_ticket = old.encrypt(b"old").unwrap();
        let rotated = keys(&[line(2, 2), line(1, 1)]);
        assert_eq!(rotated.decrypt(&old_ticket).as_deref(), Some(&b"old"[..]));
        let new_ticket = rotated.encrypt(b"new").unwrap();
        assert_eq!(&new_ticket[..NAME_LEN], &[2; NAME_LEN]);
        assert_eq!(old.decrypt(&new_ticket), None);
    }

    #[test]
    fn tampered_or_short_tickets_are_refused() {
        let ticketer = keys(&[line(1, 1)]);
        let ticket = ticketer.encrypt(b"state").unwrap();
        for index in [NAME_LEN, NAME_LEN + NONCE_LEN, ticket.len() - 1] {
            let mut tampered = ticket.clone();
            tampered[index] ^= 1;
            assert_eq!(ticketer.decrypt(&tampered), None, "byte {index}");
        }
        for len in 0..NAME_LEN + NONCE_LEN + 16 {
            assert_eq!(ticketer.decrypt(&ticket[..len]), None, "{len} bytes");
        }
    }

    #[test]
    fn reads_comments_and_blank_lines_and_names_the_bad_line() {
        let text = format!("# rotated weekly\n\n  {}  \n{}\n", line(1, 1), line(2, 2));
        assert_eq!(FileTicketer::parse(&text).unwrap().keys.len(), 2);
        let cases = [
            ("", KeysProblem::Empty),
            ("# nothing\n\n", KeysProblem::Empty),
            ("not base64!\n", KeysProblem::NotBase64 { line: 1 }),
            (
                "# a\nAAAA\n",
                KeysProblem::WrongLength { line: 2, bytes: 3 },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(FileTicketer::parse(text).err(), Some(expected), "{text:?}");
        }
        let repeated = format!("{}\n{}\n", line(1, 1), line(1, 2));
        assert_eq!(
            FileTicketer::parse(&repeated).err(),
            Some(KeysProblem::SameName { line: 2, first: 1 })
        );
        // An 80-byte nginx key file is not taken for something else.
        let nginx = base64::engine::general_purpose::STANDARD.encode([0u8; 80]);
        assert_eq!(
            FileTicketer::parse(&nginx).err(),
            Some(KeysProblem::WrongLength { line: 1, bytes: 80 })
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let text = format!("{:?}", keys(&[line(7, 9)]));
        assert_eq!(text, "FileTicketer { keys: 1 }");
    }
}
