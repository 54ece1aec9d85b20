//! Cookie persistence, as HAProxy's `cookie NAME insert indirect nocache`.
//!
//! `insert`: tandem, not the server, sets the cookie `NAME=<server name>; path=/` on a response
//! from a server the client was not pinned to, and drops any the server sets itself. `indirect`: the cookie is taken out of requests, so
//! servers never see it. `nocache`: a response that gets the cookie and would otherwise be
//! cacheable also gets `Cache-Control: private`, so that a shared cache does not hand one
//! client's pin to everyone.
//!
//! Pure functions over headers, run on every request of a backend with persistence: they
//! allocate only when they change something.

use http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, COOKIE, PRAGMA, SET_COOKIE};

/// The server name the request's persistence cookie names, if any (over all Cookie headers; HTTP/2
/// clients may split cookies into several Cookie headers).
pub fn pinned<'a>(headers: &'a HeaderMap, cookie: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| pairs(value.as_bytes()))
        .find(|pair| pair.name == cookie.as_bytes() && !pair.value.is_empty())
        .and_then(|pair| std::str::from_utf8(pair.value).ok())
}

/// Takes the persistence cookie out of the request (indirect: servers never see it), keeping the
/// client's other cookies byte for byte and dropping a Cookie header left empty.
pub fn strip(headers: &mut HeaderMap, cookie: &str) {
    let cookie = cookie.as_bytes();
    let carries = |value: &HeaderValue| pairs(value.as_bytes()).any(|pair| pair.name == cookie);
    if !headers.get_all(COOKIE).iter().any(carries) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| {
            if !carries(value) {
                return Some(value.clone());
            }
            let rest = without(value.as_bytes(), cookie);
            (!rest.is_empty()).then(|| {
                HeaderValue::try_from(rest).expect("bytes taken from a header value make one")
            })
        })
        .collect();
    let mut kept = kept.into_iter();
    match kept.next() {
        None => {
            headers.remove(COOKIE);
        }
        Some(first) => {
            headers.insert(COOKIE, first);
            for value in kept {
                headers.append(COOKIE, value);
            }
        }
    }
}

/// Takes out of a server's response any Set-Cookie of the persistence cookie's name: tandem owns
/// that cookie (HAProxy's insert mode does the same unless told to `preserve`).
pub fn drop_server_cookie(headers: &mut HeaderMap, cookie: &str) {
    let ours = |value: &HeaderValue| {
        let text = value.as_bytes();
        let name = text.split(|&byte| byte == b'=').next().unwrap_or(text);
        trim(name) == cookie.as_bytes()
    };
    if !headers.get_all(SET_COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = (headers.get_all(SET_COOKIE).iter())
        .filter(|value| !ours(value))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for value in kept {
        headers.append(SET_COOKIE, value);
    }
}

/// Adds to a response the Set-Cookie that pins the client to `server`, and marks the response
/// non-cacheable the way HAProxy's nocache does.
pub fn pin(headers: &mut HeaderMap, cookie: &str, server: &str) {
    // HAProxy's default attributes: a session cookie for the whole site, nothing else.
    let mut set_cookie = String::with_capacity(cookie.len() + 1 + server.len() + "; path=/".len());
    set_cookie.push_str(cookie);
    set_cookie.push('=');
    set_cookie.push_str(server);
    set_cookie.push_str("; path=/");
    // A server name with control characters makes no header value: the client is left
    // unpinned rather than the response failed.
    let Ok(set_cookie) = HeaderValue::try_from(set_cookie) else {
        return;
    };
    let cacheable = cacheable(headers);
    headers.append(SET_COOKIE, set_cookie);
    if cacheable {
        headers.append(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

/// Whether a response's own headers leave it cacheable, judged as HAProxy does before adding
/// `Cache-Control: private` (`http_check_response_for_cacheability`): the first Pragma being
/// `no-cache` settles it; otherwise Cache-Control directives in order, the last of `public` and
/// `private`/`no-cache`/`no-store`/`max-age=0`/`s-maxage=0` winning.
fn cacheable(headers: &HeaderMap) -> bool {
    if headers
        .get(PRAGMA)
        .is_some_and(|pragma| trim(pragma.as_bytes()).eq_ignore_ascii_case(b"no-cache"))
    {
        return false;
    }
    const UNCACHEABLE: [&[u8]; 5] = [
        b"private",
        b"no-cache",
        b"no-store",
        b"max-age=0",
        b"s-maxage=0",
    ];
    let mut cacheable = true;
    for value in &headers.get_all(CACHE_CONTROL) {
        for directive in value.as_bytes().split(|&byte| byte == b',').map(trim) {
            if directive.eq_ignore_ascii_case(b"public") {
                cacheable = true;
            } else if UNCACHEABLE
                .iter()
                .any(|word| directive.eq_ignore_ascii_case(word))
            {
                cacheable = false;
            }
        }
    }
    cacheable
}

/// A cookie in a Cookie header (RFC 6265 §5.4, leniently: pieces between `;`, spaces trimmed,
/// a value in double quotes taken without them).
struct Pair<'a> {
    name: &'a [u8],
    value: &'a [u8],
    /// The trimmed `name=value` text.
    text: &'a [u8],
    /// Where the `;` before it is (0 for the first): the separator spans from there to `text`.
    separator: usize,
    start: usize,
}

fn pairs(header: &[u8]) -> impl Iterator<Item = Pair<'_>> {
    let mut offset = 0usize;
    header.split(|&byte| byte == b';').filter_map(move |piece| {
        let separator = offset.saturating_sub(1);
        let start = offset + (piece.len() - trim_start(piece).len());
        offset += piece.len() + 1;
        let text = trim(piece);
        if text.is_empty() {
            return None;
        }
        let (name, value) = match text.iter().position(|&byte| byte == b'=') {
            Some(equals) => (trim(&text[..equals]), trim(&text[equals + 1..])),
            None => (&b""[..], text),
        };
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            value => value,
        };
        Some(Pair {
            name,
            value,
            text,
            separator,
            start,
        })
    })
}

/// The header without the cookie `name`: the other cookies, each with the separator that came
/// before it, except the first kept.
fn without(header: &[u8], name: &[u8]) -> Vec<u8> {
    let mut rest = Vec::with_capacity(header.len());
    for pair in pairs(header).filter(|pair| pair.name != name) {
        if !rest.is_empty() {
            rest.extend_from_slice(&header[pair.separator..pair.start]);
        }
        rest.extend_from_slice(pair.text);
    }
    rest
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|&&byte| byte == b' ' || byte == b'\t')
        .count();
    &bytes[skip..]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start(bytes);
    let keep = bytes.len()
        - bytes
            .iter()
            .rev()
            .take_while(|&&byte| byte == b' ' || byte == b'\t')
            .count();
    &bytes[..keep]
}

#[cfg(test)]
mod tests {
    use super::super::headers::test_map as map;
    use super::*;
    use http::header::HeaderName;

    const NAME: &str = "SERVERID";

    #[test]
    fn a_servers_own_persistence_cookie_is_dropped_and_its_others_kept() {
        let mut headers = map(&[
            ("set-cookie", "session=abc; Path=/; HttpOnly"),
            ("set-cookie", "SERVERID=forged; path=/"),
            ("set-cookie", " SERVERID =x"),
            ("set-cookie", "SERVERID2=kept"),
            ("content-type", "text/plain"),
        ]);
        drop_server_cookie(&mut headers, NAME);
        assert_eq!(
            headers.get_all(SET_COOKIE).iter().collect::<Vec<_>>(),
            ["session=abc; Path=/; HttpOnly", "SERVERID2=kept"]
        );
        assert_eq!(headers["content-type"], "text/plain");

        let mut untouched = map(&[("set-cookie", "a=1")]);
        drop_server_cookie(&mut untouched, NAME);
        assert_eq!(untouched["set-cookie"], "a=1");
    }

    fn cookies(values: &[&str]) -> HeaderMap {
        map(&values
            .iter()
            .map(|value| ("cookie", *value))
            .collect::<Vec<_>>())
    }

    fn values(map: &HeaderMap, name: HeaderName) -> Vec<&str> {
        map.get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect()
    }

    #[test]
    fn pinned_finds_the_cookie_among_others() {
        let headers = cookies(&["a=1; SERVERID=s2; b=2"]);
        assert_eq!(pinned(&headers, NAME), Some("s2"));
        let headers = cookies(&["SERVERID=s1"]);
        assert_eq!(pinned(&headers, NAME), Some("s1"));
        let headers = cookies(&["a=1;SERVERID=s3"]);
        assert_eq!(pinned(&headers, NAME), Some("s3"));
        let headers = cookies(&["  a=1 ;  SERVERID = s4 ; "]);
        assert_eq!(pinned(&headers, NAME), Some("s4"));
    }

    #[test]
    fn pinned_looks_in_every_cookie_header() {
        let headers = cookies(&["a=1; b=2", "c=3", "SERVERID=web-2"]);
        assert_eq!(pinned(&headers, NAME), Some("web-2"));
    }

    #[test]
    fn pinned_strips_double_quotes() {
        let headers = cookies(&["SERVERID=\"s1\""]);
        assert_eq!(pinned(&headers, NAME), Some("s1"));
        let headers = cookies(&["SERVERID=\"s\"1"]);
        assert_eq!(pinned(&headers, NAME), Some("\"s\"1"));
    }

    #[test]
    fn pinned_needs_the_exact_name() {
        let headers = cookies(&["SERVERID2=x; XSERVERID=y; serverid=z; SERVERI=w"]);
        assert_eq!(pinned(&headers, NAME), None);
        let headers = cookies(&["SERVERID2=x; SERVERID=s1"]);
        assert_eq!(pinned(&headers, NAME), Some("s1"));
    }

    #[test]
    fn pinned_skips_empty_values_and_takes_the_first_otherwise() {
        let headers = cookies(&["SERVERID=; SERVERID=\"\"", "SERVERID=s2; SERVERID=s3"]);
        assert_eq!(pinned(&headers, NAME), Some("s2"));
        assert_eq!(pinned(&cookies(&["SERVERID="]), NAME), None);
        assert_eq!(pinned(&cookies(&["SERVERID"]), NAME), None);
        assert_eq!(pinned(&HeaderMap::new(), NAME), None);
        assert_eq!(pinned(&map(&[("set-cookie", "SERVERID=s1")]), NAME), None);
    }

    #[test]
    fn strip_keeps_other_cookies_byte_for_byte() {
        let cases = [
            ("a=1; SERVERID=s1; b=2", "a=1; b=2"),
            ("SERVERID=s1; a=1;b=2", "a=1;b=2"),
            ("a=1;  b=\"x y\" ;SERVERID=s1", "a=1;  b=\"x y\""),
            ("a=1;SERVERID=s1;b=2", "a=1;b=2"),
            ("a=1; SERVERID=\"s1\"; SERVERID2=x", "a=1; SERVERID2=x"),
            ("SERVERID=s1; SERVERID=s2; a=%7B1%7D", "a=%7B1%7D"),
            ("flag; SERVERID=s1; =odd", "flag; =odd"),
        ];
        for (before, after) in cases {
            let mut headers = cookies(&[before]);
            strip(&mut headers, NAME);
            assert_eq!(values(&headers, COOKIE), [after], "from {before:?}");
        }
    }

    #[test]
    fn strip_drops_a_cookie_header_left_empty() {
        let mut headers = cookies(&["SERVERID=s1"]);
        strip(&mut headers, NAME);
        assert!(headers.get(COOKIE).is_none());
        let mut headers = cookies(&[" SERVERID=s1 ; ;"]);
        strip(&mut headers, NAME);
        assert!(headers.get(COOKIE).is_none());
    }

    #[test]
    fn strip_works_over_every_cookie_header_in_order() {
        let mut headers = map(&[
            ("cookie", "a=1"),
            ("host", "example.com"),
            ("cookie", "SERVERID=s1"),
            ("cookie", "b=2; SERVERID=s1"),
            ("cookie", "c=3"),
        ]);
        strip(&mut headers, NAME);
        assert_eq!(values(&headers, COOKIE), ["a=1", "b=2", "c=3"]);
        assert_eq!(headers["host"], "example.com");
    }

    #[test]
    fn strip_leaves_requests_without_the_cookie_alone() {
        let mut headers = cookies(&["SERVERID2=x; a=1", "b=2;;  c=3 "]);
        let before = headers.clone();
        strip(&mut headers, NAME);
        assert_eq!(headers, before);
        let mut headers = HeaderMap::new();
        strip(&mut headers, NAME);
        assert!(headers.is_empty());
    }

    #[test]
    fn strip_keeps_bytes_that_are_not_ascii() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_bytes(b"n=caf\xc3\xa9; SERVERID=s1").unwrap(),
        );
        strip(&mut headers, NAME);
        assert_eq!(headers[COOKIE].as_bytes(), b"n=caf\xc3\xa9");
    }

    #[test]
    fn pin_appends_set_cookie_with_haproxy_attributes() {
        let mut headers = map(&[
            ("set-cookie", "session=abc; HttpOnly"),
            ("set-cookie", "t=1"),
        ]);
        pin(&mut headers, NAME, "web-1");
        assert_eq!(
            values(&headers, SET_COOKIE),
            ["session=abc; HttpOnly", "t=1", "SERVERID=web-1; path=/"]
        );
    }

    #[test]
    fn pin_marks_a_cacheable_response_private() {
        let mut headers = HeaderMap::new();
        pin(&mut headers, NAME, "s1");
        assert_eq!(values(&headers, CACHE_CONTROL), ["private"]);

        // Added beside what the server said, as HAProxy does; not replacing it.
        let mut headers = map(&[("cache-control", "max-age=3600")]);
        pin(&mut headers, NAME, "s1");
        assert_eq!(values(&headers, CACHE_CONTROL), ["max-age=3600", "private"]);

        let mut headers = map(&[("cache-control", "public, max-age=60")]);
        pin(&mut headers, NAME, "s1");
        assert_eq!(
            values(&headers, CACHE_CONTROL),
            ["public, max-age=60", "private"]
        );

        // `no-cache="set-cookie"` only keeps the cookie out of caches; the page stays cacheable.
        let mut headers = map(&[("cache-control", "no-cache=\"set-cookie\"")]);
        pin(&mut headers, NAME, "s1");
        assert_eq!(
            values(&headers, CACHE_CONTROL),
            ["no-cache=\"set-cookie\"", "private"]
        );

        // The last of public and private wins.
        let mut headers = map(&[("cache-control", "private"), ("cache-control", "Public")]);
        pin(&mut headers, NAME, "s1");
        assert_eq!(
            values(&headers, CACHE_CONTROL),
            ["private", "Public", "private"]
        );

        // Only the first Pragma counts, and only `no-cache` in it.
        let mut headers = map(&[("pragma", "x"), ("pragma", "no-cache")]);
        pin(&mut headers, NAME, "s1");
        assert_eq!(values(&headers, CACHE_CONTROL), ["private"]);
    }

    #[test]
    fn pin_leaves_an_uncacheable_response_as_it_is() {
        for cache_control in [
            "private",
            "no-cache",
            "No-Store",
            "max-age=0",
            "s-maxage=0",
            "max-age=60, no-store",
            "public,  private ",
        ] {
            let mut headers = map(&[("cache-control", cache_control)]);
            pin(&mut headers, NAME, "s1");
            assert_eq!(values(&headers, CACHE_CONTROL), [cache_control]);
            assert_eq!(values(&headers, SET_COOKIE), ["SERVERID=s1; path=/"]);
        }
        let mut headers = map(&[("pragma", " No-Cache ")]);
        pin(&mut headers, NAME, "s1");
        assert!(headers.get(CACHE_CONTROL).is_none());
        assert_eq!(values(&headers, SET_COOKIE), ["SERVERID=s1; path=/"]);
    }

    #[test]
    fn pin_with_a_name_that_is_no_header_value_pins_nobody() {
        let mut headers = HeaderMap::new();
        pin(&mut headers, NAME, "bad\nname");
        assert!(headers.is_empty());
    }

    #[test]
    fn a_pinned_cookie_reads_back() {
        let mut response = HeaderMap::new();
        pin(&mut response, NAME, "web-3");
        let set_cookie = response[SET_COOKIE].to_str().unwrap();
        let sent_back = set_cookie.split(';').next().unwrap();
        let mut request = cookies(&["a=1", sent_back]);
        assert_eq!(pinned(&request, NAME), Some("web-3"));
        strip(&mut request, NAME);
        assert_eq!(values(&request, COOKIE), ["a=1"]);
    }
}
