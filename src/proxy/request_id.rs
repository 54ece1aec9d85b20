//! Request IDs: kept when a client (or a balancer in front) sent one, made when it did not,
//! and passed on to the server in the same header.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The longest ID kept as sent; a longer one is replaced, so that a client can't make every
/// log line and server request carry kilobytes.
const MAX_KEPT: usize = 128;

thread_local! {
    /// A random half per thread and a count: IDs are unique within the process without a
    /// shared counter, and across processes and nodes but for a 64-bit coincidence.
    static NEXT: Cell<(u64, u64)> = Cell::new((RandomState::new().hash_one(0u64), 0));
}

/// The request's ID in `name`: the one sent if there is exactly one of sensible length and
/// characters, otherwise a new one, which is set in `headers` in its place.
pub fn take_or_make(name: &HeaderName, headers: &mut HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(name).iter();
    if let (Some(id), None) = (sent.next(), sent.next()) {
        if (1..=MAX_KEPT).contains(&id.len()) && id.as_bytes().iter().all(is_id_byte) {
            return id.clone();
        }
    }
    let id = make();
    headers.insert(name.clone(), id.clone());
    id
}

/// What a kept ID may hold: visible ASCII but quotes and backslash (no space either), so that
/// it can't forge a field of a log line.
fn is_id_byte(byte: &u8) -> bool {
    byte.is_ascii_graphic() && !matches!(byte, b'"' | b'\\' | b'\'')
}

/// 32 lowercase hex digits.
fn make() -> HeaderValue {
    let (random, count) = NEXT.with(|next| {
        let (random, count) = next.get();
        next.set((random, count.wrapping_add(1)));
        (random, count)
    });
    let text = format!("{random:016x}{count:016x}");
    HeaderValue::try_from(text).expect("hex digits are a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: HeaderName = HeaderName::from_static("x-request-id");

    #[test]
    fn a_sent_id_is_kept_and_passed_on() {
        let mut headers = HeaderMap::new();
        headers.insert(NAME, HeaderValue::from_static("abc-123"));
        assert_eq!(take_or_make(&NAME, &mut headers), "abc-123");
        assert_eq!(headers[NAME], "abc-123");
    }

    #[test]
    fn a_missing_doubled_oversized_or_spaced_id_is_replaced_by_a_new_unique_one() {
        let mut made = Vec::new();
        for sent in [
            vec![],
            vec!["a", "b"],
            vec![""],
            vec![&*"x".repeat(MAX_KEPT + 1)],
            vec!["x end=done"],
        ] {
            let mut headers = HeaderMap::new();
            for value in sent {
                headers.append(NAME, HeaderValue::from_str(value).unwrap());
            }
            let id = take_or_make(&NAME, &mut headers);
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
            assert_eq!(headers.get_all(NAME).iter().collect::<Vec<_>>(), [&id]);
            made.push(id);
        }
        made.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        made.dedup();
        assert_eq!(made.len(), 5);
    }
}
