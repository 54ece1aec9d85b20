//! The path rules see: the request's path normalised as a server behind would read it, so
//! that `//admin`, `/./admin`, `/x/../admin` and `/%61dmin` all meet a rule on `/admin`.
//!
//! RFC 3986 §6.2.2: percent-encoded unreserved characters decoded (other encodings, `%2F`
//! among them, kept as sent), dot segments removed (§5.2.4), and runs of slashes merged, as
//! nginx does. The request is forwarded as it came; only matching and templates use this.

use std::borrow::Cow;

/// `path` normalised; borrowed when it already is, which is nearly always.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !needs_normalizing(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = decoded.split('/').peekable();
    // The first part is what precedes the leading slash: nothing, for a path in origin form.
    let first = parts.next().unwrap_or("");
    let mut ends_in_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "" | "." => ends_in_slash = last,
            ".." => {
                segments.pop();
                ends_in_slash = last;
            }
            segment => {
                segments.push(segment);
                ends_in_slash = false;
            }
        }
    }
    let mut normalized = String::with_capacity(decoded.len());
    normalized.push_str(first);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if ends_in_slash || segments.is_empty() {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

/// Whether `path` holds an empty or dot segment, or a percent-encoding.
fn needs_normalizing(path: &[u8]) -> bool {
    path.windows(2)
        .any(|pair| matches!(pair, [b'/', b'/' | b'.']))
        || path.contains(&b'%')
}

/// `path` with `%XX` of letters, digits, `-`, `.`, `_` and `~` decoded.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        let decoded = match &bytes[at..] {
            [b'%', high, low, ..] => (hex(*high).zip(hex(*low)))
                .map(|(high, low)| high * 16 + low)
                .filter(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(byte)),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(char::from(byte));
                at += 3;
            }
            None => {
                let next = (at + 1..=bytes.len())
                    .find(|&end| path.is_char_boundary(end))
                    .unwrap_or(bytes.len());
                out.push_str(&path[at..next]);
                at = next;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_reach_the_same_resource_read_the_same() {
        for (sent, read) in [
            ("/", "/"),
            ("/admin", "/admin"),
            ("//admin", "/admin"),
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/a//b///c/", "/a/b/c/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("/a/%2F/b", "/a/%2F/b"),
            ("/%zz/%4", "/%zz/%4"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a/..b/c", "/a/..b/c"),
            ("/é/../x", "/x"),
        ] {
            assert_eq!(normalize(sent), read, "{sent}");
        }
    }

    #[test]
    fn a_normal_path_is_borrowed() {
        assert!(matches!(normalize("/api/v1/users"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/a.b/c"), Cow::Borrowed(_)));
    }
}
