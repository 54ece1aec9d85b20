//! Session tickets under keys read from a file, so that a client's ticket from one node of a
//! pair resumes on the other after a failover, and on this one after a reload.
//!
//! The file holds one key per line: 48 bytes in base64 (`openssl rand -base64 48`), the first
//! 16 naming the key and the other 32 an AES-256-GCM-SIV key. Blank lines and lines starting
//! with `#` are skipped. The first key makes new tickets; every key opens them, so keys rotate
//! by adding a new first line on both nodes, reloading, and dropping the last line later.
//!
//! A ticket is the key's name, a random nonce, and the issue time and session state sealed
//! with the name and the frontend's [`Binding`] as associated data. rustls takes a resumed
//! session's client certificate from the ticket without checking it again, so a ticket must
//! only open where it was issued: on the same frontend with the same client-certificate
//! settings (on either node of a pair, which share the config). Tickets older than
//! [`LIFETIME_SECONDS`] are refused, since keys may be kept for months. GCM-SIV because the
//! keys live as long as the operator keeps them: a nonce that comes up twice under a key
//! leaks no more than that two tickets were equal.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM_SIV, NONCE_LEN};
use aws_lc_rs::digest::{Context, SHA256, SHA256_OUTPUT_LEN};
use base64::Engine as _;
use rustls::server::ProducesTickets;

const NAME_LEN: usize = 16;
const SECRET_LEN: usize = 32;
/// Of a line, decoded.
pub const KEY_LEN: usize = NAME_LEN + SECRET_LEN;
/// How long a ticket resumes a session, from when it was issued; clients are told the same.
const LIFETIME_SECONDS: u32 = 12 * 60 * 60;
/// How far ahead of this node's clock a ticket's issue time may be, for a peer whose clock
/// runs a little fast; a ticket past it is refused, which costs only a full handshake.
const CLOCK_SKEW_SECONDS: u64 = 5 * 60;
/// The issue time, seconds since the Unix epoch, big-endian, ahead of the session state.
const ISSUED_LEN: usize = 8;

/// The keys of a ticket-key file, in file order.
pub struct TicketKeys {
    keys: Vec<TicketKey>,
}

struct TicketKey {
    name: [u8; NAME_LEN],
    key: RandomizedNonceKey,
}

/// What a frontend's tickets are bound to: a SHA-256 digest of its name, the bytes of its
/// client CA file (if it has `client_auth`) and whether a certificate is `required`. Nodes
/// with the same config get the same binding, so tickets resume across a failover; another
/// frontend, or this one after its CA file or `required` changed, refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding([u8; SHA256_OUTPUT_LEN]);

impl Binding {
    /// `client_ca` is the CA file's contents as read for the verifier; `required` counts
    /// only with one.
    pub fn new(frontend: &str, client_ca: Option<&[u8]>, required: bool) -> Binding {
        let mut digest = Context::new(&SHA256);
        digest.update(b"tandem session ticket binding 1\0");
        // Each field length-prefixed, so no two settings write the same bytes.
        digest.update(&(frontend.len() as u64).to_be_bytes());
        digest.update(frontend.as_bytes());
        match client_ca {
            None => digest.update(&[0]),
            Some(ca) => {
                digest.update(&[1]);
                digest.update(&(ca.len() as u64).to_be_bytes());
                digest.update(ca);
                digest.update(&[u8::from(required)]);
            }
        }
        let digest = digest.finish();
        Binding(digest.as_ref().try_into().expect("a SHA-256 digest"))
    }
}

/// A frontend's tickets under a file's keys.
#[derive(Debug)]
pub struct FileTicketer {
    keys: TicketKeys,
    binding: Binding,
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

impl TicketKeys {
    /// The keys of a file's text; the problem names the line, never a key.
    pub fn parse(text: &str) -> Result<TicketKeys, KeysProblem> {
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
        Ok(TicketKeys {
            keys: keys.into_iter().map(|(_, key)| key).collect(),
        })
    }
}

impl FileTicketer {
    pub fn new(keys: TicketKeys, binding: Binding) -> FileTicketer {
        FileTicketer { keys, binding }
    }

    /// The associated data of a ticket under `key`: its name and this frontend's binding.
    fn aad(&self, key: &TicketKey) -> [u8; NAME_LEN + SHA256_OUTPUT_LEN] {
        let mut aad = [0; NAME_LEN + SHA256_OUTPUT_LEN];
        aad[..NAME_LEN].copy_from_slice(&key.name);
        aad[NAME_LEN..].copy_from_slice(&self.binding.0);
        aad
    }

    /// A ticket for the session state `plain`, issued at `now` (seconds since the epoch).
    fn seal(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        let current = &self.keys.keys[0];
        let mut sealed = Vec::with_capacity(ISSUED_LEN + plain.len() + 16);
        sealed.extend_from_slice(&now.to_be_bytes());
        sealed.extend_from_slice(plain);
        let nonce = (current.key)
            .seal_in_place_append_tag(Aad::from(self.aad(current)), &mut sealed)
            .ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + sealed.len());
        ticket.extend_from_slice(&current.name);
        ticket.extend_from_slice(nonce.as_ref());
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    /// The session state of a ticket this frontend issued under one of its keys and that is
    /// no older than the lifetime at `now`.
    fn open(&self, ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(NAME_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let key = self.keys.keys.iter().find(|key| key.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = (key.key)
            .open_in_place(nonce, Aad::from(self.aad(key)), &mut opened)
            .ok()?;
        let (issued, state) = plain.split_at_checked(ISSUED_LEN)?;
        let issued = u64::from_be_bytes(issued.try_into().ok()?);
        let fresh = issued <= now.saturating_add(CLOCK_SKEW_SECONDS)
            && now.saturating_sub(issued) <= u64::from(LIFETIME_SECONDS);
        fresh.then(|| state.to_vec())
    }
}

/// Seconds since the Unix epoch by the system clock (0 before it, which no ticket outlives).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECONDS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal(plain, unix_now())
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        self.open(ticket, unix_now())
    }
}

impl std::fmt::Debug for TicketKeys {
    /// Never the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some time in 2026, as seconds since the epoch.
    const NOW: u64 = 1_780_000_000;

    fn line(name: u8, secret: u8) -> String {
        let mut bytes = [secret; KEY_LEN];
        bytes[..NAME_LEN].fill(name);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn binding() -> Binding {
        Binding::new("web", None, false)
    }

    fn keys(lines: &[String]) -> FileTicketer {
        FileTicketer::new(TicketKeys::parse(&lines.join("\n")).unwrap(), binding())
    }

    #[test]
    fn a_ticket_opens_under_the_same_keys_and_no_others() {
        let ticketer = keys(&[line(1, 1)]);
        let ticket = ticketer.seal(b"session state", NOW).unwrap();
        assert_eq!(ticket.len(), NAME_LEN + NONCE_LEN + ISSUED_LEN + 13 + 16);
        assert_eq!(&ticket[..NAME_LEN], &[1; NAME_LEN]);
        // Another process reading the same file.
        let peer = keys(&[line(1, 1)]);
        assert_eq!(
            peer.open(&ticket, NOW).as_deref(),
            Some(&b"session state"[..])
        );
        // Same name, another secret: refused, not mistaken.
        assert_eq!(keys(&[line(1, 2)]).open(&ticket, NOW), None);
        assert_eq!(keys(&[line(3, 1)]).open(&ticket, NOW), None);
        // Random nonces: two tickets of the same state differ.
        assert_ne!(ticketer.seal(b"session state", NOW).unwrap(), ticket);
    }

    #[test]
    fn a_ticket_opens_only_under_the_binding_it_was_issued_with() {
        let file = [line(1, 1)].join("\n");
        let bound = |binding| FileTicketer::new(TicketKeys::parse(&file).unwrap(), binding);
        let ca = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let other_ca = b"-----BEGIN CERTIFICATE-----\nAAAB\n-----END CERTIFICATE-----\n";
        let settings = [
            Binding::new("web", None, false),
            Binding::new("api", None, false),
            Binding::new("web", Some(ca), false),
            Binding::new("web", Some(ca), true),
            Binding::new("web", Some(other_ca), true),
            Binding::new("web", Some(b""), false),
            // Lengths are part of the digest: moving bytes between fields is another binding.
            Binding::new("webX", None, false),
        ];
        for (issued_by, issuer) in settings.iter().enumerate() {
            let ticket = bound(*issuer).seal(b"state", NOW).unwrap();
            for (opened_by, opener) in settings.iter().enumerate() {
                let opened = bound(*opener).open(&ticket, NOW);
                let expected = (issued_by == opened_by).then(|| b"state".to_vec());
                assert_eq!(
                    opened, expected,
                    "issued by {issued_by}, opened by {opened_by}"
                );
            }
        }
        // Two nodes with the same config (equal bytes read apart) compute the same binding.
        let read_on_the_peer = ca.to_vec();
        assert_eq!(
            Binding::new("web", Some(ca), true),
            Binding::new("web", Some(&read_on_the_peer), true)
        );
        // Without a CA, `required` means nothing and changes nothing.
        assert_eq!(
            Binding::new("web", None, true),
            Binding::new("web", None, false)
        );
    }

    #[test]
    fn a_ticket_opens_for_its_lifetime_and_not_after() {
        let ticketer = keys(&[line(1, 1)]);
        let ticket = ticketer.seal(b"state", NOW).unwrap();
        let lifetime = u64::from(LIFETIME_SECONDS);
        assert_eq!(ticketer.lifetime(), LIFETIME_SECONDS);
        for (at, opens) in [
            (NOW, true),
            (NOW + 1, true),
            (NOW + lifetime, true),
            (NOW + lifetime + 1, false),
            (NOW + 30 * 24 * 60 * 60, false),
            // Issued by a peer whose clock runs a little ahead.
            (NOW - CLOCK_SKEW_SECONDS, true),
            (NOW - CLOCK_SKEW_SECONDS - 1, false),
            (0, false),
        ] {
            let opened = ticketer.open(&ticket, at);
            assert_eq!(
                opened.is_some(),
                opens,
                "{} s after issue",
                at as i64 - NOW as i64
            );
        }
        // The issue time is sealed: changing it breaks the ticket rather than renewing it.
        let mut tampered = ticket.clone();
        tampered[NAME_LEN + NONCE_LEN + ISSUED_LEN - 1] ^= 1;
        assert_eq!(ticketer.open(&tampered, NOW), None);
        // The trait's clock: a ticket made now opens now.
        let fresh = ticketer.encrypt(b"state").unwrap();
        assert_eq!(ticketer.decrypt(&fresh).as_deref(), Some(&b"state"[..]));
        assert_eq!(ticketer.decrypt(&ticket), None, "issued in 2026, long gone");
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = keys(&[line(1, 1)]);
        let old_ticket = old.seal(b"old", NOW).unwrap();
        let rotated = keys(&[line(2, 2), line(1, 1)]);
        assert_eq!(rotated.open(&old_ticket, NOW).as_deref(), Some(&b"old"[..]));
        let new_ticket = rotated.seal(b"new", NOW).unwrap();
        assert_eq!(&new_ticket[..NAME_LEN], &[2; NAME_LEN]);
        assert_eq!(old.open(&new_ticket, NOW), None);
    }

    #[test]
    fn tampered_or_short_tickets_are_refused() {
        let ticketer = keys(&[line(1, 1)]);
        let ticket = ticketer.seal(b"state", NOW).unwrap();
        for index in [NAME_LEN, NAME_LEN + NONCE_LEN, ticket.len() - 1] {
            let mut tampered = ticket.clone();
            tampered[index] ^= 1;
            assert_eq!(ticketer.open(&tampered, NOW), None, "byte {index}");
        }
        for len in 0..NAME_LEN + NONCE_LEN + ISSUED_LEN + 16 {
            assert_eq!(ticketer.open(&ticket[..len], NOW), None, "{len} bytes");
        }
    }

    #[test]
    fn reads_comments_and_blank_lines_and_names_the_bad_line() {
        let text = format!("# rotated weekly\n\n  {}  \n{}\n", line(1, 1), line(2, 2));
        assert_eq!(TicketKeys::parse(&text).unwrap().keys.len(), 2);
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
            assert_eq!(TicketKeys::parse(text).err(), Some(expected), "{text:?}");
        }
        let repeated = format!("{}\n{}\n", line(1, 1), line(1, 2));
        assert_eq!(
            TicketKeys::parse(&repeated).err(),
            Some(KeysProblem::SameName { line: 2, first: 1 })
        );
        // An 80-byte nginx key file is not taken for something else.
        let nginx = base64::engine::general_purpose::STANDARD.encode([0u8; 80]);
        assert_eq!(
            TicketKeys::parse(&nginx).err(),
            Some(KeysProblem::WrongLength { line: 1, bytes: 80 })
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let keys = TicketKeys::parse(&line(7, 9)).unwrap();
        assert_eq!(format!("{keys:?}"), "TicketKeys { keys: 1 }");
    }
}
