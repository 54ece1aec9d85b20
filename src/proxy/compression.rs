//! Response compression on a frontend with `compression`: the coding a request accepts
//! (Accept-Encoding, RFC 9110 §12.5.3), whether its response may be compressed and the header
//! edits that go with it, and the encoder that compresses the body as it streams.
//!
//! The decisions are pure functions of headers. The encoder compresses each data frame as it
//! comes and flushes it, so a streamed response (server-sent events, a long poll) reaches the
//! client as promptly as it would uncompressed, and nothing is held but the codec's own window.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use compression_codecs::core::util::{PartialBuffer, WriteBuffer};
use compression_codecs::core::Level;
use compression_codecs::{brotli, zstd, BrotliEncoder, EncodeV2, GzipEncoder, ZstdEncoder};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body::{Body, Frame};

use crate::config::{Algorithm, Compression, MediaRange};

/// gzip's fastest level, nginx's default (`gzip_comp_level 1`): most of the saving on text for
/// a fraction of the CPU of the default 6.
const GZIP_LEVEL: i32 = 1;
/// Brotli's quality 11 (its default) is for compressing ahead of time; 4 is as fast as gzip's
/// fastest and compresses text better.
const BROTLI_QUALITY: i32 = 4;
/// zstd's own default level.
const ZSTD_LEVEL: i32 = 3;
/// Brotli's and zstd's window, as a power of two: 512 KiB (nginx's brotli module's default)
/// rather than their 4 MiB and 2 MiB, which each compressed response would hold until it ends.
/// A body of known length gets the smallest window that holds it, at least 1 KiB: setting up
/// the codec's tables, which grow with the window, cost a 2 KiB response 20 times what
/// compressing it did.
const WINDOW_LOG: u8 = 19;
const MIN_WINDOW_LOG: u8 = 10;

/// The algorithm to compress this request's response with: of those `config` offers and the
/// client accepts, the one it weighs highest, ties going to the first configured. None for HEAD
/// (no body), without Accept-Encoding, when the client weighs `identity` higher, or when the
/// header is malformed.
pub fn accepted(config: &Compression, method: &Method, headers: &HeaderMap) -> Option<Algorithm> {
    if method == Method::HEAD {
        return None;
    }
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    values.peek()?;
    let mut weights = Weights::default();
    for value in values {
        weights.read(value.as_bytes())?;
    }
    let mut best: Option<(Algorithm, u16)> = None;
    for &algorithm in &config.algorithms {
        let weight = weights.of(algorithm);
        if weight > 0 && best.is_none_or(|(_, highest)| weight > highest) {
            best = Some((algorithm, weight));
        }
    }
    let (algorithm, weight) = best?;
    // `*` stands for identity too when it is not listed; left out, it comes last.
    let identity = weights.identity.or(weights.any).unwrap_or(0);
    (weight >= identity).then_some(algorithm)
}

/// What an Accept-Encoding lists, as weights in thousandths (a qvalue, RFC 9110 §12.4.2).
#[derive(Debug, Default)]
struct Weights {
    zstd: Option<u16>,
    br: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    /// `*`: any coding not listed.
    any: Option<u16>,
}

impl Weights {
    /// Reads one field value: codings with optional weights, separated by commas; None when
    /// it is malformed. A coding listed twice keeps its higher weight.
    fn read(&mut self, value: &[u8]) -> Option<()> {
        for element in value.split(|&byte| byte == b',') {
            let mut parts = element.split(|&byte| byte == b';');
            let coding = trim(parts.next().unwrap_or_default());
            let weight = match parts.next() {
                None => 1000,
                Some(parameter) => {
                    let parameter = trim(parameter);
                    qvalue(
                        (parameter.strip_prefix(b"q="))
                            .or_else(|| parameter.strip_prefix(b"Q="))?,
                    )?
                }
            };
            if parts.next().is_some() {
                return None;
            }
            if coding.is_empty() {
                // An empty list element is allowed (RFC 9110 §5.6.1), a weight alone is not.
                if element.contains(&b';') {
                    return None;
                }
                continue;
            }
            if !coding.iter().all(|&byte| is_tchar(byte)) {
                return None;
            }
            let slot = match coding {
                _ if coding.eq_ignore_ascii_case(b"zstd") => &mut self.zstd,
                _ if coding.eq_ignore_ascii_case(b"br") => &mut self.br,
                // RFC 9110 §8.4.1.3: x-gzip is gzip.
                _ if coding.eq_ignore_ascii_case(b"gzip")
                    || coding.eq_ignore_ascii_case(b"x-gzip") =>
                {
                    &mut self.gzip
                }
                _ if coding.eq_ignore_ascii_case(b"identity") => &mut self.identity,
                b"*" => &mut self.any,
                _ => continue,
            };
            *slot = (*slot).max(Some(weight));
        }
        Some(())
    }

    /// The weight of `algorithm`: its own, or `*`'s, or 0 (not acceptable).
    fn of(&self, algorithm: Algorithm) -> u16 {
        let listed = match algorithm {
            Algorithm::Zstd => self.zstd,
            Algorithm::Brotli => self.br,
            Algorithm::Gzip => self.gzip,
        };
        listed.or(self.any).unwrap_or(0)
    }
}

/// A qvalue in thousandths: `0`, `0.5`, `0.123`, `1`, `1.000`; None for anything else.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (&first, rest) = text.split_first()?;
    let fraction = match rest {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 => digits,
        _ => return None,
    };
    let mut thousandths: u16 = 0;
    for (index, &digit) in fraction.iter().enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        thousandths += u16::from(digit - b'0') * [100, 10, 1][index];
    }
    match first {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// How one response body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub algorithm: Algorithm,
    /// The body's length, when the server gave it: it sizes the codec's window.
    pub length: Option<u64>,
}

/// Decides for a server's response to a request that accepted `accepted`, and edits its
/// headers to match: how its body is to be compressed, or None to send it as it is. A response
/// that could be compressed gets `Vary: Accept-Encoding` either way, so that a cache does not
/// hand one client's variant to all.
pub fn apply(
    config: &Compression,
    accepted: Option<Algorithm>,
    status: StatusCode,
    headers: &mut HeaderMap,
) -> Option<Plan> {
    let Compressible { vary, length } = compressible(config, status, headers)?;
    match vary {
        Vary::Absent => {
            headers.insert(header::VARY, HeaderValue::from_static(ACCEPT_ENCODING));
        }
        Vary::Covered => {}
        Vary::Other => add_to_vary(headers),
    }
    let algorithm = accepted?;
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(algorithm.token()),
    );
    // The length is the compressed one now, known only at the end; ranges of the compressed
    // bytes are not what a client would ask for.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    weaken_etag(headers);
    Some(Plan { algorithm, length })
}

const ACCEPT_ENCODING: &str = "Accept-Encoding";

/// A response that may be compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Compressible {
    vary: Vary,
    /// Its Content-Length.
    length: Option<u64>,
}

/// What a response's Vary says already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vary {
    Absent,
    /// Names Accept-Encoding, or is `*` (varies on everything).
    Covered,
    Other,
}

/// Whether a response may be compressed at all (and what its Vary says, if so): not one
/// without a body (1xx, 204, 304), a part (206, Content-Range), one already encoded, one the
/// server forbids changing (`Cache-Control: no-transform`, RFC 9111 §5.2.2.6), one shorter
/// than `min_size`, or one whose Content-Type is missing or not listed. The headers are read
/// in one pass: looking each name up would hash it.
fn compressible(
    config: &Compression,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Compressible> {
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
        )
    {
        return None;
    }
    let mut content_type = None;
    let mut vary = Vary::Absent;
    let mut length = None;
    for (name, value) in headers {
        let value = value.as_bytes();
        if name == header::CONTENT_ENCODING || name == header::CONTENT_RANGE {
            return None;
        } else if name == header::CONTENT_LENGTH {
            match content_length(value) {
                Some(known) if known >= config.min_size => length = Some(known),
                _ => return None,
            }
        } else if name == header::CACHE_CONTROL {
            if list(value).any(|directive| directive.eq_ignore_ascii_case(b"no-transform")) {
                return None;
            }
        } else if name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        } else if name == header::VARY {
            let covered = list(value)
                .any(|name| name == b"*" || name.eq_ignore_ascii_case(ACCEPT_ENCODING.as_bytes()));
            if covered {
                vary = Vary::Covered;
            } else if vary == Vary::Absent {
                vary = Vary::Other;
            }
        }
    }
    content_type
        .is_some_and(|content_type| type_listed(&config.types, content_type))
        .then_some(Compressible { vary, length })
}

/// A Content-Length value, read as digits (past u64: u64::MAX); None when it is not a number.
fn content_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut length: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        length = length
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'));
    }
    Some(length)
}

/// The elements of a comma-separated field value, trimmed.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&byte| byte == b',').map(trim)
}

/// Whether a Content-Type value's media type (its parameters aside) is one of `types`, compared
/// case-insensitively.
fn type_listed(types: &[MediaRange], content_type: &[u8]) -> bool {
    let media_type = content_type
        .split(|&byte| byte == b';')
        .next()
        .unwrap_or_default();
    let media_type = trim(media_type);
    let Some(slash) = media_type.iter().position(|&byte| byte == b'/') else {
        return false;
    };
    let (main, subtype) = (&media_type[..slash], &media_type[slash + 1..]);
    types.iter().any(|range| {
        main.eq_ignore_ascii_case(range.main.as_bytes())
            && (range.subtype.as_ref())
                .is_none_or(|wanted| subtype.eq_ignore_ascii_case(wanted.as_bytes()))
    })
}

/// Adds `Accept-Encoding` to a Vary that names other fields, into one line with them.
fn add_to_vary(headers: &mut HeaderMap) {
    let mut joined = Vec::new();
    for value in headers.get_all(header::VARY) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(ACCEPT_ENCODING.as_bytes());
    // Valid field values joined by ", " are a valid field value.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::VARY, value);
    }
}

/// A strong ETag names these exact bytes, which compressing changes: it becomes weak (`W/`), as
/// nginx does, so conditional requests still match while byte ranges do not.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(header::ETAG) else {
        return;
    };
    if etag.as_bytes().starts_with(b"W/") {
        return;
    }
    let weak = [b"W/", etag.as_bytes()].concat();
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        headers.insert(header::ETAG, weak);
    }
}

/// OWS on both sides (RFC 9110 §5.6.3) trimmed.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// The window, as a power of two, for a body of `length` bytes.
fn window_log(length: Option<u64>) -> u8 {
    let Some(length) = length else {
        return WINDOW_LOG;
    };
    let bits = u64::BITS - length.saturating_sub(1).leading_zeros();
    u8::try_from(bits).map_or(WINDOW_LOG, |bits| bits.clamp(MIN_WINDOW_LOG, WINDOW_LOG))
}

/// A response body's compressor: one codec's state, and where the stream is. It wraps no body
/// itself: its owner hands it the body to read at each poll, so the owner keeps the body (and
/// what it needs of it when the response ends).
pub struct Encoder {
    codec: Box<dyn EncodeV2 + Send>,
    state: State,
}

enum State {
    Encoding,
    /// The body's trailers, sent after the compressed stream has ended.
    Trailers(HeaderMap),
    Done,
}

impl Encoder {
    pub fn new(plan: Plan) -> Box<Encoder> {
        let window = window_log(plan.length);
        let codec: Box<dyn EncodeV2 + Send> = match plan.algorithm {
            Algorithm::Zstd => {
                use zstd::params::CParameter;
                // Level 3's tables are 2^17 and 2^16 entries; no larger than the window here.
                let window = u32::from(window);
                Box::new(ZstdEncoder::new_with_params(
                    ZSTD_LEVEL,
                    &[
                        CParameter::window_log(window),
                        CParameter::hash_log((window + 1).min(17)),
                        CParameter::chain_log(window.min(16)),
                    ],
                ))
            }
            Algorithm::Brotli => {
                let mut params = brotli::params::EncoderParams::default()
                    .quality(Level::Precise(BROTLI_QUALITY))
                    .window_size(window.into());
                if let Some(length) = plan.length {
                    params = params.size_hint(usize::try_from(length).unwrap_or(usize::MAX));
                }
                Box::new(BrotliEncoder::new(params))
            }
            Algorithm::Gzip => Box::new(GzipEncoder::new(Level::Precise(GZIP_LEVEL).into())),
        };
        Box::new(Encoder {
            codec,
            state: State::Encoding,
        })
    }

    /// Whether the compressed stream and any trailers have been given out.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next frame of `body`, compressed: each data frame as it comes, flushed, so that
    /// what the client has received decodes to all the body read so far; the stream's end with
    /// the last one (or alone, when the body ends with no data); then the trailers. An error of
    /// the body ends the stream as it would have uncompressed.
    pub fn poll_frame<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>>
    where
        B: Body<Data = Bytes, Error = io::Error>,
    {
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Trailers(trailers) => {
                    let trailers = std::mem::take(trailers);
                    self.state = State::Done;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                State::Encoding => {}
            }
            let frame = match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    self.state = State::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                None => return Poll::Ready(Some(self.end(State::Done))),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    let trailers = frame.into_trailers().unwrap_or_default();
                    return Poll::Ready(Some(self.end(State::Trailers(trailers))));
                }
            };
            if body.is_end_stream() {
                // The last data: the stream's end goes with it, in one frame.
                let compressed = self.compress(&data, true);
                self.state = State::Done;
                return Poll::Ready(Some(compressed.map(Frame::data)));
            }
            if data.is_empty() {
                continue;
            }
            let compressed = self.compress(&data, false);
            if compressed.is_err() {
                self.state = State::Done;
            }
            return Poll::Ready(Some(compressed.map(Frame::data)));
        }
    }

    /// The end of the compressed stream, with `next` what follows it.
    fn end(&mut self, next: State) -> io::Result<Frame<Bytes>> {
        let compressed = self.compress(&[], true);
        self.state = match compressed {
            Ok(_) => next,
            Err(_) => State::Done,
        };
        compressed.map(Frame::data)
    }

    /// `input` compressed and flushed (with `end`: and the stream ended), into a buffer of its
    /// own that grows while the codec fills it.
    fn compress(&mut self, input: &[u8], end: bool) -> io::Result<Bytes> {
        let codec = &mut self.codec;
        // Text compresses to well under half; less compressible input grows the buffer.
        let mut output = BytesMut::zeroed(input.len() / 2 + 64);
        let mut written = 0;
        let mut input = PartialBuffer::new(input);
        loop {
            let mut out = WriteBuffer::new_initialized(&mut output[written..]);
            let consumed = input.written_len();
            let done = if !input.unwritten().is_empty() {
                codec.encode(&mut input, &mut out)?;
                false
            } else if end {
                codec.finish(&mut out)?
            } else {
                codec.flush(&mut out)?
            };
            let progress = out.written_len() > 0 || input.written_len() > consumed;
            let full = out.has_no_spare_space();
            written += out.written_len();
            if done {
                break;
            }
            if full {
                output.resize(output.len() * 2, 0);
            } else if !progress {
                return Err(io::Error::other("the compressor made no progress"));
            }
        }
        output.truncate(written);
        Ok(output.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compression_codecs::{BrotliDecoder, DecodeV2, GzipDecoder, ZstdDecoder};
    use http::header::{
        ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
        CONTENT_RANGE, CONTENT_TYPE, ETAG, VARY,
    };
    use std::collections::VecDeque;

    const ALL: [Algorithm; 3] = [Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip];

    fn config(algorithms: &[Algorithm]) -> Compression {
        let range = |main: &str, subtype: Option<&str>| MediaRange {
            main: main.into(),
            subtype: subtype.map(Into::into),
        };
        Compression {
            algorithms: algorithms.to_vec(),
            types: vec![range("text", None), range("application", Some("json"))],
            min_size: 1024,
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// What a GET with these Accept-Encoding lines gets, offered `algorithms`.
    fn pick(algorithms: &[Algorithm], lines: &[&str]) -> Option<&'static str> {
        let pairs: Vec<_> = lines.iter().map(|line| (ACCEPT_ENCODING, *line)).collect();
        accepted(&config(algorithms), &Method::GET, &headers(&pairs)).map(Algorithm::token)
    }

    #[test]
    fn takes_the_clients_highest_weight() {
        assert_eq!(pick(&ALL, &["gzip"]), Some("gzip"));
        assert_eq!(
            pick(&ALL, &["gzip, br"]),
            Some("br"),
            "a tie: the configured order"
        );
        assert_eq!(pick(&ALL, &["gzip, deflate, br, zstd"]), Some("zstd"));
        assert_eq!(
            pick(&ALL, &["zstd;q=0.5, gzip;q=0.9, br;q=0.8"]),
            Some("gzip")
        );
        assert_eq!(pick(&ALL, &["zstd;q=0.001, br;q=0"]), Some("zstd"));
        assert_eq!(pick(&ALL, &["gzip;q=0.500, br;q=0.5"]), Some("br"));
        assert_eq!(pick(&ALL, &["gzip;q=1.0, zstd;q=0.999"]), Some("gzip"));
    }

    #[test]
    fn breaks_ties_by_the_configured_order() {
        use Algorithm::*;
        assert_eq!(
            pick(&[Gzip, Zstd, Brotli], &["zstd, br, gzip"]),
            Some("gzip")
        );
        assert_eq!(pick(&[Brotli, Gzip], &["gzip, br"]), Some("br"));
        assert_eq!(
            pick(&[Gzip], &["zstd, br"]),
            None,
            "none offered is accepted"
        );
        assert_eq!(
            pick(&[Gzip, Zstd], &["zstd;q=0.2, gzip;q=0.1"]),
            Some("zstd")
        );
    }

    #[test]
    fn reads_every_line_and_ignores_case_and_spaces() {
        assert_eq!(pick(&ALL, &["deflate", "GZIP"]), Some("gzip"));
        assert_eq!(pick(&ALL, &["Br ; Q=0.7 ,\tGzip;q=0.2"]), Some("br"));
        assert_eq!(
            pick(&ALL, &[" , gzip ,, "]),
            Some("gzip"),
            "empty list elements"
        );
        assert_eq!(pick(&ALL, &["x-gzip"]), Some("gzip"));
        assert_eq!(pick(&ALL, &["compress, deflate, lz4"]), None);
    }

    #[test]
    fn honours_exclusions_and_the_wildcard() {
        assert_eq!(pick(&ALL, &["*"]), Some("zstd"));
        assert_eq!(pick(&ALL, &["zstd;q=0, *"]), Some("br"));
        assert_eq!(pick(&ALL, &["zstd;q=0, br;q=0, *;q=0.5"]), Some("gzip"));
        assert_eq!(pick(&ALL, &["gzip, *;q=0"]), Some("gzip"));
        assert_eq!(pick(&ALL, &["*;q=0"]), None);
        assert_eq!(pick(&ALL, &["gzip;q=0"]), None);
        assert_eq!(
            pick(&ALL, &["gzip;q=0, gzip"]),
            Some("gzip"),
            "the higher of two"
        );
        assert_eq!(pick(&[Algorithm::Gzip], &["br, *;q=0"]), None);
    }

    #[test]
    fn leaves_the_body_as_it_is_when_identity_weighs_more() {
        assert_eq!(pick(&ALL, &["identity"]), None);
        assert_eq!(pick(&ALL, &["gzip;q=0.5, identity"]), None);
        assert_eq!(pick(&ALL, &["gzip;q=0.5, identity;q=0.5"]), Some("gzip"));
        assert_eq!(pick(&ALL, &["gzip, identity;q=0"]), Some("gzip"));
        assert_eq!(
            pick(&ALL, &["gzip;q=0.5, *"]),
            Some("zstd"),
            "* weighs zstd 1 too"
        );
        assert_eq!(
            pick(&[Algorithm::Gzip], &["gzip;q=0.5, *"]),
            None,
            "and identity"
        );
    }

    #[test]
    fn compresses_nothing_for_a_malformed_header() {
        for line in [
            "gzip;q=2",
            "gzip;q=1.001",
            "gzip;q=0.1234",
            "gzip;q=.5",
            "gzip;q=",
            "gzip;q=0.5;q=0.4",
            "gzip;level=1",
            "gzip;q = 0.5",
            "gz ip",
            "gzip\"",
            ";q=0.5",
            "gzip;",
            "gzip;q=-1",
        ] {
            assert_eq!(pick(&ALL, &[line]), None, "{line:?}");
        }
        assert_eq!(
            pick(&ALL, &["gzip", "br;q=x"]),
            None,
            "one bad line spoils all"
        );
    }

    #[test]
    fn accepts_every_qvalue_form() {
        for (text, weight) in [
            ("0", 0),
            ("0.", 0),
            ("0.5", 500),
            ("0.05", 50),
            ("0.123", 123),
            ("1", 1000),
            ("1.", 1000),
            ("1.000", 1000),
        ] {
            assert_eq!(qvalue(text.as_bytes()), Some(weight), "{text}");
        }
        for text in ["", "2", "1.5", "0.1234", ".5", "01", "0,5", "1.0001"] {
            assert_eq!(qvalue(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn compresses_nothing_without_the_header_or_for_head() {
        let config = config(&ALL);
        assert_eq!(accepted(&config, &Method::GET, &HeaderMap::new()), None);
        assert_eq!(
            accepted(&config, &Method::GET, &headers(&[(ACCEPT_ENCODING, "")])),
            None,
            "an empty list accepts identity only"
        );
        let gzip = headers(&[(ACCEPT_ENCODING, "gzip")]);
        assert_eq!(accepted(&config, &Method::HEAD, &gzip), None);
        assert_eq!(
            accepted(&config, &Method::POST, &gzip),
            Some(Algorithm::Gzip)
        );
    }

    /// A 200 of 4 KiB of text/html, with `extra` headers.
    fn response(extra: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = headers(&[
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_LENGTH, "4096"),
        ]);
        for (name, value) in extra {
            map.insert(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn decide(status: u16, headers: &mut HeaderMap) -> Option<Algorithm> {
        let status = StatusCode::from_u16(status).unwrap();
        let plan = apply(&config(&ALL), Some(Algorithm::Gzip), status, headers);
        plan.map(|plan| plan.algorithm)
    }

    #[test]
    fn compresses_a_listed_type_and_edits_the_headers() {
        let mut headers = response(&[(ACCEPT_RANGES, "bytes"), (ETAG, "\"v1\""), (VARY, "Origin")]);
        assert_eq!(decide(200, &mut headers), Some(Algorithm::Gzip));
        assert_eq!(headers[CONTENT_ENCODING], "gzip");
        assert_eq!(headers.get(CONTENT_LENGTH), None);
        assert_eq!(headers.get(ACCEPT_RANGES), None);
        assert_eq!(headers[ETAG], "W/\"v1\"");
        assert_eq!(headers[VARY], "Origin, Accept-Encoding");
        assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    }

    #[test]
    fn compresses_other_statuses_with_a_body_and_streams_of_any_length() {
        for status in [200, 201, 301, 404, 500, 503] {
            assert!(decide(status, &mut response(&[])).is_some(), "{status}");
        }
        let mut stream = headers(&[(CONTENT_TYPE, "text/event-stream")]);
        assert_eq!(decide(200, &mut stream), Some(Algorithm::Gzip));
        let mut exact = response(&[(CONTENT_LENGTH, "1024")]);
        assert_eq!(
            decide(200, &mut exact),
            Some(Algorithm::Gzip),
            "min_size itself"
        );
    }

    #[test]
    fn matches_types_by_pattern_ignoring_case_and_parameters() {
        for content_type in [
            "text/plain",
            "TEXT/CSS",
            "text/html;charset=utf-8",
            " text/csv ; header=present",
            "application/json",
            "Application/JSON; charset=utf-8",
        ] {
            let mut headers = response(&[(CONTENT_TYPE, content_type)]);
            assert!(decide(200, &mut headers).is_some(), "{content_type}");
        }
        for content_type in [
            "application/javascript",
            "application/jsonx",
            "image/png",
            "texts/plain",
            "text",
            "",
            "application/problem+json",
        ] {
            let mut headers = response(&[(CONTENT_TYPE, content_type)]);
            assert_eq!(decide(200, &mut headers), None, "{content_type}");
        }
    }

    #[test]
    fn leaves_alone_what_must_not_or_need_not_be_compressed() {
        let untouched = |status: u16, mut headers: HeaderMap, why: &str| {
            let before = headers.clone();
            assert_eq!(decide(status, &mut headers), None, "{why}");
            assert_eq!(headers, before, "{why}: headers unchanged, no Vary");
        };
        untouched(
            200,
            response(&[(CONTENT_ENCODING, "br")]),
            "already encoded",
        );
        untouched(
            200,
            response(&[(CONTENT_ENCODING, "identity")]),
            "encoding named",
        );
        untouched(206, response(&[]), "a part");
        untouched(
            200,
            response(&[(CONTENT_RANGE, "bytes 0-99/4096")]),
            "a range",
        );
        untouched(416, response(&[(CONTENT_RANGE, "bytes */4096")]), "416");
        untouched(204, response(&[]), "no content");
        untouched(304, response(&[]), "not modified");
        untouched(103, response(&[]), "interim");
        untouched(
            200,
            response(&[(CACHE_CONTROL, "public, No-Transform, max-age=60")]),
            "no-transform",
        );
        untouched(200, response(&[(CONTENT_LENGTH, "1023")]), "below min_size");
        untouched(200, response(&[(CONTENT_LENGTH, "0")]), "empty");
        untouched(
            200,
            response(&[(CONTENT_LENGTH, "lots")]),
            "length unreadable",
        );
        untouched(
            200,
            response(&[(CONTENT_TYPE, "image/png")]),
            "type not listed",
        );
        let mut no_type = response(&[]);
        no_type.remove(CONTENT_TYPE);
        untouched(200, no_type, "no Content-Type");
    }

    #[test]
    fn varies_on_accept_encoding_when_this_client_gets_it_plain() {
        let mut headers = response(&[(ETAG, "\"v1\"")]);
        let status = StatusCode::OK;
        assert_eq!(apply(&config(&ALL), None, status, &mut headers), None);
        assert_eq!(headers[VARY], "Accept-Encoding");
        assert_eq!(headers[CONTENT_LENGTH], "4096", "otherwise untouched");
        assert_eq!(headers[ETAG], "\"v1\"");
        assert_eq!(headers.get(CONTENT_ENCODING), None);
    }

    #[test]
    fn merges_vary_into_one_line_unless_it_covers_accept_encoding() {
        let vary = |lines: &[&str]| {
            let mut headers = response(&[]);
            for line in lines {
                headers.append(VARY, HeaderValue::from_str(line).unwrap());
            }
            decide(200, &mut headers);
            let values = headers.get_all(VARY).iter();
            values
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(vary(&[]), ["Accept-Encoding"]);
        assert_eq!(
            vary(&["Origin", "Cookie"]),
            ["Origin, Cookie, Accept-Encoding"]
        );
        assert_eq!(vary(&["*"]), ["*"]);
        assert_eq!(vary(&["Origin, *"]), ["Origin, *"]);
        assert_eq!(
            vary(&["origin, accept-encoding"]),
            ["origin, accept-encoding"]
        );
        assert_eq!(
            vary(&["Origin", "ACCEPT-ENCODING"]),
            ["Origin", "ACCEPT-ENCODING"]
        );
    }

    #[test]
    fn reads_a_content_length_as_digits_only() {
        assert_eq!(content_length(b"1024"), Some(1024));
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"99999999999999999999999"), Some(u64::MAX));
        for malformed in [&b""[..], b"-1", b"+1", b"1 0", b" 1", b"0x10"] {
            assert_eq!(content_length(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn plans_with_the_length_the_server_gave() {
        let status = StatusCode::OK;
        let gzip = Some(Algorithm::Gzip);
        let plan = apply(&config(&ALL), gzip, status, &mut response(&[]));
        assert_eq!(
            plan,
            Some(Plan {
                algorithm: Algorithm::Gzip,
                length: Some(4096)
            })
        );
        let mut stream = headers(&[(CONTENT_TYPE, "text/plain")]);
        let plan = apply(&config(&ALL), gzip, status, &mut stream).unwrap();
        assert_eq!(plan.length, None);
    }

    #[test]
    fn sizes_the_window_to_the_body() {
        assert_eq!(window_log(None), 19);
        assert_eq!(window_log(Some(0)), 10);
        assert_eq!(window_log(Some(1024)), 10);
        assert_eq!(window_log(Some(1025)), 11);
        assert_eq!(window_log(Some(4096)), 12);
        assert_eq!(window_log(Some(512 << 10)), 19);
        assert_eq!(window_log(Some(u64::MAX)), 19);
    }

    #[test]
    fn reads_every_cache_control_line() {
        let mut headers = response(&[]);
        headers.append(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        headers.append(CACHE_CONTROL, HeaderValue::from_static("no-transform"));
        assert_eq!(decide(200, &mut headers), None);
        assert_eq!(headers.get(VARY), None);
    }

    #[test]
    fn leaves_a_weak_etag_weak() {
        let mut headers = response(&[(ETAG, "W/\"v1\"")]);
        decide(200, &mut headers);
        assert_eq!(headers[ETAG], "W/\"v1\"");
    }

    /// A body from a list of frames, each ready at once, or `None` for a poll that is pending
    /// once; `error` ends it with an error instead of its end.
    struct Frames {
        frames: VecDeque<Option<Frame<Bytes>>>,
        error: bool,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
            match self.frames.pop_front() {
                Some(Some(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None if self.error => {
                    self.error = false;
                    Poll::Ready(Some(Err(io::Error::other("server went away"))))
                }
                None => Poll::Ready(None),
            }
        }

        fn is_end_stream(&self) -> bool {
            self.frames.is_empty() && !self.error
        }
    }

    /// Text that compresses but is not all one byte.
    fn text(len: usize) -> Vec<u8> {
        let words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do ";
        (0..len)
            .map(|i| words[(i * 7 + i / 61) % words.len()])
            .collect()
    }

    /// Everything `encoder` makes of `body`, frame by frame; a pending poll shows as `None`.
    fn drain(encoder: &mut Encoder, mut body: Frames) -> Vec<Option<io::Result<Frame<Bytes>>>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut frames = Vec::new();
        loop {
            match encoder.poll_frame(Pin::new(&mut body), &mut cx) {
                Poll::Ready(None) => return frames,
                Poll::Ready(Some(frame)) => frames.push(Some(frame)),
                Poll::Pending => frames.push(None),
            }
            assert!(frames.len() < 1000, "the encoder ends");
        }
    }

    /// Decodes `input` with `algorithm`; with `ended`, it must be a whole stream.
    fn decode(algorithm: Algorithm, input: &[u8], ended: bool) -> Vec<u8> {
        let mut decoder: Box<dyn DecodeV2> = match algorithm {
            Algorithm::Zstd => Box::new(ZstdDecoder::new()),
            Algorithm::Brotli => Box::new(BrotliDecoder::new()),
            Algorithm::Gzip => Box::new(GzipDecoder::new()),
        };
        let mut input = PartialBuffer::new(input);
        let mut decoded = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let mut out = WriteBuffer::new_initialized(&mut chunk);
            let finished = decoder.decode(&mut input, &mut out).unwrap();
            let full = out.has_no_spare_space();
            decoded.extend_from_slice(out.written());
            if finished {
                assert!(input.unwritten().is_empty(), "nothing after the end");
                return decoded;
            }
            if input.unwritten().is_empty() && !full {
                assert!(!ended, "{algorithm:?}: the stream has no end");
                return decoded;
            }
        }
    }

    fn data_of(frames: &[Option<io::Result<Frame<Bytes>>>]) -> Vec<u8> {
        let mut data = Vec::new();
        for frame in frames.iter().flatten() {
            let frame = frame.as_ref().expect("no error");
            data.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..]));
        }
        data
    }

    #[test]
    fn compresses_a_body_frame_by_frame_for_each_algorithm() {
        let original = text(50_000);
        // The exact length sizes the window; one too small (never sent: framing enforces the
        // length) would only find fewer matches.
        for (algorithm, length) in ALL
            .into_iter()
            .flat_map(|a| [None, Some(50_000), Some(100)].map(|length| (a, length)))
        {
            let case = format!("{algorithm:?}, length {length:?}");
            let body = Frames {
                frames: (original.chunks(7_000))
                    .map(|chunk| Some(Frame::data(Bytes::copy_from_slice(chunk))))
                    .collect(),
                error: false,
            };
            let frames = drain(&mut Encoder::new(Plan { algorithm, length }), body);
            assert_eq!(
                frames.len(),
                8,
                "{case}: one frame for each, the last ends it"
            );
            let compressed = data_of(&frames);
            assert!(
                compressed.len() < original.len() / 4,
                "{case}: {} bytes",
                compressed.len()
            );
            assert_eq!(decode(algorithm, &compressed, true), original, "{case}");
        }
    }

    #[test]
    fn each_frame_decodes_at_once_so_streams_are_not_held_back() {
        let (first, second) = (text(3_000), b"event: tick\ndata: 2\n\n".to_vec());
        for algorithm in ALL {
            let body = Frames {
                frames: VecDeque::from([
                    Some(Frame::data(Bytes::from(first.clone()))),
                    None,
                    Some(Frame::data(Bytes::from(second.clone()))),
                    None,
                ]),
                error: false,
            };
            let frames = drain(
                &mut Encoder::new(Plan {
                    algorithm,
                    length: None,
                }),
                body,
            );
            assert!(frames[1].is_none() && frames[3].is_none(), "{algorithm:?}");
            let until_pause = data_of(&frames[..1]);
            assert_eq!(
                decode(algorithm, &until_pause, false),
                first,
                "{algorithm:?}"
            );
            let until_second_pause = data_of(&frames[..3]);
            let decoded = decode(algorithm, &until_second_pause, false);
            assert_eq!(decoded, [&first[..], &second[..]].concat(), "{algorithm:?}");
            assert_eq!(frames.len(), 5, "{algorithm:?}: then the end alone");
            let whole = data_of(&frames);
            assert_eq!(
                decode(algorithm, &whole, true),
                [first.clone(), second.clone()].concat()
            );
        }
    }

    #[test]
    fn ends_the_stream_before_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        for algorithm in ALL {
            let body = Frames {
                frames: VecDeque::from([
                    Some(Frame::data(Bytes::from(text(2_000)))),
                    Some(Frame::trailers(trailers.clone())),
                ]),
                error: false,
            };
            let mut encoder = Encoder::new(Plan {
                algorithm,
                length: None,
            });
            let frames = drain(&mut encoder, body);
            assert!(encoder.is_done());
            assert_eq!(frames.len(), 3, "{algorithm:?}: data, the end, trailers");
            let last = frames[2].as_ref().unwrap().as_ref().unwrap();
            assert_eq!(last.trailers_ref(), Some(&trailers));
            assert_eq!(decode(algorithm, &data_of(&frames), true), text(2_000));
        }
    }

    #[test]
    fn an_empty_body_is_an_empty_stream() {
        for algorithm in ALL {
            let body = Frames {
                frames: VecDeque::new(),
                error: false,
            };
            let frames = drain(
                &mut Encoder::new(Plan {
                    algorithm,
                    length: None,
                }),
                body,
            );
            assert_eq!(frames.len(), 1);
            assert_eq!(decode(algorithm, &data_of(&frames), true), b"");
        }
    }

    #[test]
    fn an_error_of_the_body_ends_the_stream_with_it() {
        for algorithm in ALL {
            let body = Frames {
                frames: VecDeque::from([Some(Frame::data(Bytes::from(text(2_000))))]),
                error: true,
            };
            let mut encoder = Encoder::new(Plan {
                algorithm,
                length: None,
            });
            let frames = drain(&mut encoder, body);
            assert_eq!(frames.len(), 2, "{algorithm:?}");
            assert!(frames[1].as_ref().unwrap().is_err());
            assert!(encoder.is_done());
            assert_eq!(
                decode(algorithm, &data_of(&frames[..1]), false),
                text(2_000)
            );
        }
    }

    #[test]
    fn incompressible_frames_grow_the_buffer() {
        // xorshift: bytes no codec can shorten.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for algorithm in ALL {
            let body = Frames {
                frames: VecDeque::from([Some(Frame::data(Bytes::from(noise.clone())))]),
                error: false,
            };
            let frames = drain(
                &mut Encoder::new(Plan {
                    algorithm,
                    length: None,
                }),
                body,
            );
            assert_eq!(
                decode(algorithm, &data_of(&frames), true),
                noise,
                "{algorithm:?}"
            );
        }
    }
}
