//! An access log line from a record: JSON, text, or the operator's template. Written field by
//! field into the worker's buffer (serde_json only escapes the strings): workers format every
//! request, so its cost counts against the proxy's CPU. Templates take each field's value from
//! `value`, so a field added to `LogField` and there is a template's at once.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, SystemTime};

use super::Record;
use crate::config::{LogField, LogFormat, LogPiece, LogTemplate};

/// A field's value in one record.
enum Value<'a> {
    Text(&'a str),
    Number(u64),
    Time(SystemTime),
    Absent,
}

fn value<'a>(field: LogField, record: &Record<'a>) -> Value<'a> {
    let text = |text: Option<&'a str>| text.map_or(Value::Absent, Value::Text);
    let number = |number: Option<u64>| number.map_or(Value::Absent, Value::Number);
    match field {
        LogField::Time => Value::Time(record.time),
        LogField::Frontend => Value::Text(record.frontend),
        LogField::Backend => text(record.backend),
        LogField::Server => text(record.server),
        LogField::Client => Value::Text(record.client),
        LogField::Method => text(record.request.map(|(method, _)| method.as_str())),
        LogField::Path => text(
            (record.request).map(|(_, uri)| uri.path_and_query().map_or("/", |pq| pq.as_str())),
        ),
        LogField::Status => number(record.status.map(u64::from)),
        LogField::Bytes => Value::Number(record.bytes),
        LogField::ConnectUs => number(record.connect.map(micros)),
        LogField::FirstByteUs => number(record.first_byte.map(micros)),
        LogField::TotalUs => Value::Number(micros(record.total)),
        LogField::RequestId => text(record.request_id),
        LogField::End => Value::Text(record.end),
        LogField::ClientSubject => text(record.client_subject),
    }
}

/// One line, with its newline.
pub fn format(record: &Record<'_>, format: &LogFormat, out: &mut Vec<u8>) {
    match format {
        LogFormat::Json => json(record, out),
        LogFormat::Text => text(record, out),
        LogFormat::Template(template) => templated(record, template, out),
    }
    out.push(b'\n');
}

/// Every field, in `LogField::ALL`'s order (a test holds the two together). Written out by
/// hand: constant keys are copied without a call, which makes a line twice as fast as a loop
/// over the fields.
fn json(record: &Record<'_>, out: &mut Vec<u8>) {
    let (method, path) = match record.request {
        Some((method, uri)) => (
            Some(method.as_str()),
            Some(uri.path_and_query().map_or("/", |pq| pq.as_str())),
        ),
        None => (None, None),
    };
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339(record.time, out);
    out.extend_from_slice(b"\",\"frontend\":");
    json_string(Some(record.frontend), out);
    out.extend_from_slice(b",\"backend\":");
    json_string(record.backend, out);
    out.extend_from_slice(b",\"server\":");
    json_string(record.server, out);
    out.extend_from_slice(b",\"client\":\"");
    out.extend_from_slice(record.client.as_bytes());
    out.extend_from_slice(b"\",\"method\":");
    json_string(method, out);
    out.extend_from_slice(b",\"path\":");
    json_string(path, out);
    out.extend_from_slice(b",\"status\":");
    number(record.status.map(u64::from), b"null", out);
    out.extend_from_slice(b",\"bytes\":");
    number(Some(record.bytes), b"null", out);
    out.extend_from_slice(b",\"connect_us\":");
    number(record.connect.map(micros), b"null", out);
    out.extend_from_slice(b",\"first_byte_us\":");
    number(record.first_byte.map(micros), b"null", out);
    out.extend_from_slice(b",\"total_us\":");
    number(Some(micros(record.total)), b"null", out);
    if let Some(id) = record.request_id {
        out.extend_from_slice(b",\"request_id\":");
        json_string(Some(id), out);
    }
    out.extend_from_slice(b",\"end\":\"");
    out.extend_from_slice(record.end.as_bytes());
    out.push(b'"');
    if let Some(subject) = record.client_subject {
        out.extend_from_slice(b",\"client_subject\":");
        json_string(Some(subject), out);
    }
    out.push(b'}');
}

/// Fields split by spaces, HAProxy-like: `TIME FRONTEND BACKEND/SERVER CLIENT "METHOD PATH"
/// STATUS BYTES connect_us=.. first_byte_us=.. total_us=.. end=.. [request_id=".."]
/// [client_subject=".."]`.
fn text(record: &Record<'_>, out: &mut Vec<u8>) {
    rfc3339(record.time, out);
    let _ = write!(
        out,
        " {} {}/{} {} ",
        record.frontend,
        record.backend.unwrap_or("-"),
        record.server.unwrap_or("-"),
        record.client,
    );
    match record.request {
        Some((method, uri)) => {
            out.extend_from_slice(b"\"");
            out.extend_from_slice(method.as_str().as_bytes());
            out.extend_from_slice(b" ");
            quoted(uri.path_and_query().map_or("/", |pq| pq.as_str()), out);
            out.extend_from_slice(b"\" ");
        }
        None => out.extend_from_slice(b"- "),
    }
    number(record.status.map(u64::from), b"-", out);
    out.push(b' ');
    number(Some(record.bytes), b"-", out);
    out.extend_from_slice(b" connect_us=");
    number(record.connect.map(micros), b"-", out);
    out.extend_from_slice(b" first_byte_us=");
    number(record.first_byte.map(micros), b"-", out);
    out.extend_from_slice(b" total_us=");
    number(Some(micros(record.total)), b"-", out);
    out.extend_from_slice(b" end=");
    out.extend_from_slice(record.end.as_bytes());
    if let Some(id) = record.request_id {
        out.extend_from_slice(b" request_id=\"");
        quoted(id, out);
        out.push(b'"');
    }
    if let Some(subject) = record.client_subject {
        out.extend_from_slice(b" client_subject=\"");
        quoted(subject, out);
        out.push(b'"');
    }
}

/// The template's text as it is, and each field's or header's value escaped; `-` for one
/// that has none.
fn templated(record: &Record<'_>, template: &LogTemplate, out: &mut Vec<u8>) {
    for piece in &template.pieces {
        match piece {
            LogPiece::Text(text) => out.extend_from_slice(text.as_bytes()),
            LogPiece::Field(field) => match value(*field, record) {
                Value::Text(text) => escaped(text.as_bytes(), out),
                Value::Number(value) => number(Some(value), b"-", out),
                Value::Time(time) => rfc3339(time, out),
                Value::Absent => out.push(b'-'),
            },
            LogPiece::Header(index) => match record.headers.get(*index) {
                Some(Some(value)) => escaped(value.as_bytes(), out),
                _ => out.push(b'-'),
            },
        }
    }
}

/// `bytes` as one field of a line whatever the client put in them: quotes and backslashes
/// escaped by a backslash, and control characters and bytes past ASCII as `\xHH` (as nginx
/// escapes), so a value can neither end the line nor fake a quoted field's end.
fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    let plain = |byte: &u8| matches!(byte, b' '..=b'~') && *byte != b'"' && *byte != b'\\';
    if bytes.iter().all(plain) {
        out.extend_from_slice(bytes);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
            b' '..=b'~' => out.push(byte),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
    }
}

/// A JSON string, escaped by serde_json when it needs escaping; or null. Names and most paths
/// are plain printable ASCII, copied as they are.
fn json_string(text: Option<&str>, out: &mut Vec<u8>) {
    let plain = |byte: u8| matches!(byte, b' '..=b'~') && byte != b'"' && byte != b'\\';
    match text {
        Some(text) if text.bytes().all(plain) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Some(text) => {
            let _ = serde_json::to_writer(&mut *out, text);
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn number(value: Option<u64>, absent: &[u8], out: &mut Vec<u8>) {
    match value {
        Some(value) => out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes()),
        None => out.extend_from_slice(absent),
    }
}

/// The path as the client sent it, with quotes and backslashes escaped so the line splits
/// unambiguously.
fn quoted(text: &str, out: &mut Vec<u8>) {
    for byte in text.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
}

/// Durations are logged as whole microseconds: exact, and cheaper to write than a float.
fn micros(duration: Duration) -> u64 {
    duration.as_micros().try_into().unwrap_or(u64::MAX)
}

/// A UTC time as RFC 3339 with milliseconds: `2026-11-24T19:04:05.123Z`.
pub(crate) fn rfc3339(time: SystemTime, out: &mut Vec<u8>) {
    thread_local! {
        /// The last second written, as text up to its fraction: a worker's lines come many
        /// to a second.
        static LAST_SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
    }
    let since_epoch = (time.duration_since(SystemTime::UNIX_EPOCH)).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (last, mut prefix) = LAST_SECOND.get();
    if seconds != last {
        let mut text = Vec::with_capacity(20);
        let (year, month, day) = civil_date(seconds / 86_400);
        let of_day = seconds % 86_400;
        let fields = [
            (year, 4, b'-'),
            (month, 2, b'-'),
            (day, 2, b'T'),
            (of_day / 3600, 2, b':'),
            (of_day % 3600 / 60, 2, b':'),
            (of_day % 60, 2, b'.'),
        ];
        for (value, width, separator) in fields {
            padded(value, width, &mut text);
            text.push(separator);
        }
        match <[u8; 20]>::try_from(text.as_slice()) {
            Ok(text) => {
                prefix = text;
                LAST_SECOND.set((seconds, prefix));
            }
            // Past the year 9999 the text is longer than the memo: written out in full.
            Err(_) => {
                out.extend_from_slice(&text);
                padded(u64::from(since_epoch.subsec_millis()), 3, out);
                out.push(b'Z');
                return;
            }
        }
    }
    out.extend_from_slice(&prefix);
    padded(u64::from(since_epoch.subsec_millis()), 3, out);
    out.push(b'Z');
}

/// `value` in decimal, zero-padded to `width` digits.
fn padded(value: u64, width: usize, out: &mut Vec<u8>) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use http::{HeaderValue, Method, Uri};

    #[test]
    fn a_client_certificate_subject_ends_the_line() {
        let uri: Uri = "/a".parse().unwrap();
        let record = Record {
            client_subject: Some("CN=alice \\\"x\\\",O=Example"),
            ..record(&Method::GET, &uri)
        };
        let mut out = Vec::new();
        super::format(&record, &LogFormat::Json, &mut out);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["client_subject"], "CN=alice \\\"x\\\",O=Example");
        let mut out = Vec::new();
        super::format(&record, &LogFormat::Text, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(" end=done client_subject=\"CN=alice \\\\\\\"x\\\\\\\",O=Example\"\n"),
            "one quoted field: {text}"
        );
    }

    #[test]
    fn formats_utc_dates_across_leap_years_and_month_ends() {
        let at = |seconds: u64, millis: u64| {
            let mut out = Vec::new();
            rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_millis(seconds * 1000 + millis),
                &mut out,
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(1_798_761_599, 0), "2026-12-31T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        // The memo of the last second serves the same second, and only it.
        assert_eq!(at(4_107_542_400, 7), "2100-03-01T00:00:00.007Z");
        assert_eq!(at(4_107_542_401, 7), "2100-03-01T00:00:01.007Z");
        assert_eq!(at(253_402_300_800, 1), "10000-01-01T00:00:00.001Z");
        assert_eq!(at(4_107_542_401, 8), "2100-03-01T00:00:01.008Z");
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "/plain/path?a=1&b=2",
            "sp ace",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "é",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            json_string(Some(text), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    /// A line of a request for `path`.
    fn line(path: &str, format: LogFormat) -> Vec<u8> {
        let uri: Uri = path.parse().unwrap();
        let mut out = Vec::new();
        super::format(&record(&Method::GET, &uri), &format, &mut out);
        out
    }

    pub(in crate::access_log) fn record<'a>(method: &'a Method, uri: &'a Uri) -> Record<'a> {
        Record {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_798_761_599_250),
            frontend: "web",
            backend: Some("pool"),
            server: Some("s1"),
            client: "192.0.2.7:40000",
            request: Some((method, uri)),
            request_id: None,
            status: Some(200),
            bytes: 12,
            connect: Some(Duration::from_micros(150)),
            first_byte: None,
            total: Duration::from_micros(1_234),
            end: "done",
            headers: &[],
            client_subject: None,
        }
    }

    #[test]
    fn a_json_line_is_one_object_with_every_field() {
        let out = line("/a?q=%22x%22&b=\\", LogFormat::Json);
        assert_eq!(out.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let expected = serde_json::json!({
            "time": "2026-12-31T23:59:59.250Z", "frontend": "web", "backend": "pool",
            "server": "s1", "client": "192.0.2.7:40000", "method": "GET",
            "path": "/a?q=%22x%22&b=\\", "status": 200, "bytes": 12, "connect_us": 150,
            "first_byte_us": null, "total_us": 1234, "end": "done"
        });
        assert_eq!(line, expected);
    }

    #[test]
    fn the_json_format_writes_every_field_in_the_field_lists_order() {
        let uri: Uri = "/a".parse().unwrap();
        let with_id = Record {
            request_id: Some("id-1"),
            client_subject: Some("CN=alice"),
            ..record(&Method::GET, &uri)
        };
        let mut out = Vec::new();
        super::format(&with_id, &LogFormat::Json, &mut out);
        let line: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&out).unwrap();
        assert_eq!(line.len(), LogField::ALL.len());
        let text = String::from_utf8(out).unwrap();
        let at = |field: LogField| text.find(&format!("\"{}\":", field.name()));
        let positions: Vec<_> = LogField::ALL.into_iter().map(at).collect();
        assert!(positions.iter().all(Option::is_some), "{text}");
        assert!(positions.is_sorted(), "{text}");
        // And each holds what a template's field of that name writes.
        for field in LogField::ALL {
            let template = LogTemplate::parse(&format!("{{{}}}", field.name())).unwrap();
            let mut templated = Vec::new();
            super::format(&with_id, &LogFormat::Template(template), &mut templated);
            let templated = String::from_utf8(templated).unwrap();
            let json = match &line[field.name()] {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => "-".to_owned(),
                other => other.to_string(),
            };
            assert_eq!(templated.trim_end(), json, "{}", field.name());
        }
    }

    #[test]
    fn a_text_line_splits_on_spaces() {
        let line = String::from_utf8(line("/a", LogFormat::Text)).unwrap();
        assert_eq!(
            line,
            "2026-12-31T23:59:59.250Z web pool/s1 192.0.2.7:40000 \"GET /a\" 200 12 \
             connect_us=150 first_byte_us=- total_us=1234 end=done\n"
        );
        let uri: Uri = "/a".parse().unwrap();
        let record = Record {
            request_id: Some("id-7 \"x\""),
            ..record(&Method::GET, &uri)
        };
        let mut out = Vec::new();
        super::format(&record, &LogFormat::Text, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.ends_with(" end=done request_id=\"id-7 \\\"x\\\"\"\n"),
            "the ID is one quoted field: {line}"
        );
    }

    #[test]
    fn escapes_quotes_in_text_paths() {
        let mut out = Vec::new();
        quoted(r#"/a"b\c"#, &mut out);
        assert_eq!(out, br#"/a\"b\\c"#);
    }

    #[test]
    fn a_template_writes_its_text_fields_and_headers() {
        let template = LogTemplate::parse(
            "{{{client}}} \"{method} {path}\" {status} {backend}/{server} {first_byte_us} \
             ua=\"{request_header.user-agent}\" via={response_header.via} {request_id} {time}",
        )
        .unwrap();
        let uri: Uri = "/a?b=1".parse().unwrap();
        let headers = [Some(HeaderValue::from_static("curl/8 \"x\"")), None];
        let record = Record {
            headers: &headers,
            ..record(&Method::GET, &uri)
        };
        let mut out = Vec::new();
        super::format(&record, &LogFormat::Template(template), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{192.0.2.7:40000} \"GET /a?b=1\" 200 pool/s1 - ua=\"curl/8 \\\"x\\\"\" via=- - \
             2026-12-31T23:59:59.250Z\n"
        );
    }

    #[test]
    fn no_value_can_break_a_line_or_a_quoted_field() {
        let mut out = Vec::new();
        escaped(b"a\r\nb\t\"c\\\x00\x7f\xc3\xa9 d", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"a\x0D\x0Ab\x09\"c\\\x00\x7F\xC3\xA9 d"#
        );
    }
}
