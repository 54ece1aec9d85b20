//! HTTP/1.1 responses from servers, over bytes in memory: the head (with httparse, as hyper
//! does) and the body's framing and decoding (RFC 9112 §6), trailers included. The reading and
//! writing around them is the proxy's (`proxy::http1_client`).

use std::io;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use smallvec::SmallVec;

/// As hyper: more header lines than this is a broken or hostile server.
const MAX_HEADERS: usize = 100;
/// A response head (or chunk-size line, or trailer section) longer than this is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// Trailer fields after a chunked body, at most.
const MAX_TRAILERS: usize = 32;

/// A response head, parsed.
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// Whether the server keeps the connection open after this response.
    pub persistent: bool,
}

/// A complete response head from the front of `input`, taken out of it; `None` until one has
/// all arrived.
pub fn parse_head(input: &mut BytesMut) -> io::Result<Option<Head>> {
    // Uninitialised, as hyper does: zeroing a hundred header slots costs more than the parse.
    let mut lines = [MaybeUninit::uninit(); MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let length = match parser.parse_response_with_uninit_headers(&mut parsed, input, &mut lines) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(invalid(format!("response head: {error}"))),
    };
    let status = (parsed.code)
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("response status"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Where each name and value lies, so that values can share the head's buffer once frozen
    // rather than each be copied. Inline for a usual head's few lines.
    let base = input.as_ptr() as usize;
    let spans: SmallVec<[(usize, usize, usize, usize); 16]> = (parsed.headers.iter())
        .map(|line| {
            let name = line.name.as_ptr() as usize - base;
            let value = line.value.as_ptr() as usize - base;
            (
                name,
                name + line.name.len(),
                value,
                value + line.value.len(),
            )
        })
        .collect();
    let head = input.split_to(length).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut close = false;
    let mut keep_alive = false;
    for (name_start, name_end, value_start, value_end) in spans {
        let name = HeaderName::from_bytes(&head[name_start..name_end])
            .map_err(|_| invalid("response header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_start..value_end))
            .map_err(|_| invalid("response header value"))?;
        if name == header::CONNECTION {
            for token in value.as_bytes().split(|&byte| byte == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    let persistent = !close && (version == Version::HTTP_11 || keep_alive);
    Ok(Some(Head {
        status,
        version,
        headers,
        persistent,
    }))
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
pub enum Delimiting {
    Length(u64),
    Chunked,
    /// Chunked where the head also gave a length, or came from an HTTP/1.0 server: the body is
    /// read as chunked, but the connection can't be trusted after (RFC 9112 §6.1, §6.3).
    ChunkedThenClose,
    UntilClose,
}

impl Delimiting {
    /// Whether the connection can carry another exchange once this body is read.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, Delimiting::Length(_) | Delimiting::Chunked)
    }
}

/// The body's framing, from the head. A Content-Length that is not a number, or values that
/// disagree, leave no framing to trust (RFC 9112 §6.3): the response is refused.
pub fn framing(head: &Head, head_request: bool) -> io::Result<Delimiting> {
    let status = head.status;
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Delimiting::Length(0));
    }
    let headers = &head.headers;
    if let Some(encoding) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let last = encoding.as_bytes().rsplit(|&byte| byte == b',').next();
        let chunked =
            last.is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        let trusted =
            !headers.contains_key(header::CONTENT_LENGTH) && head.version == Version::HTTP_11;
        return Ok(match (chunked, trusted) {
            (true, true) => Delimiting::Chunked,
            (true, false) => Delimiting::ChunkedThenClose,
            (false, _) => Delimiting::UntilClose,
        });
    }
    Ok(match content_length(headers).map_err(invalid)? {
        Some(length) => Delimiting::Length(length),
        None => Delimiting::UntilClose,
    })
}

/// The Content-Length, whose values must all agree; `None` when there is none.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&byte| byte == b',') {
            let item = item.trim_ascii();
            let parsed = (!item.is_empty() && item.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(item).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or("Content-Length is not a number")?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err("Content-Length values disagree");
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

/// Where a body stands, as it is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// The trailer section after the last chunk.
    Trailers,
    UntilClose,
    Done,
}

impl From<Delimiting> for Framing {
    fn from(delimiting: Delimiting) -> Framing {
        match delimiting {
            Delimiting::Length(0) => Framing::Done,
            Delimiting::Length(length) => Framing::Length(length),
            Delimiting::Chunked | Delimiting::ChunkedThenClose => Framing::ChunkSize,
            Delimiting::UntilClose => Framing::UntilClose,
        }
    }
}

/// What one step of decoding gave.
pub enum Decoded {
    Data(Bytes),
    /// Moved on without data (a chunk boundary); decode again.
    Progress,
    /// The body has ended with these trailers.
    Trailers(HeaderMap),
    /// The body has ended.
    End,
    NeedInput,
}

/// Decodes what `input` holds, without reading.
pub fn decode(framing: &mut Framing, input: &mut BytesMut) -> io::Result<Decoded> {
    Ok(match framing {
        Framing::Done => Decoded::End,
        _ if input.is_empty() => Decoded::NeedInput,
        Framing::Length(remaining) => {
            let take = (*remaining).min(input.len() as u64);
            *remaining -= take;
            if *remaining == 0 {
                *framing = Framing::Done;
            }
            Decoded::Data(input.split_to(take as usize).freeze())
        }
        Framing::UntilClose => Decoded::Data(input.split().freeze()),
        Framing::ChunkData(remaining) => {
            let take = (*remaining).min(input.len() as u64);
            *remaining -= take;
            if *remaining == 0 {
                *framing = Framing::ChunkEnd;
            }
            Decoded::Data(input.split_to(take as usize).freeze())
        }
        // httparse takes a line without digits as size 0, and a bare LF in an extension: both
        // would end a body early as if whole, so they are refused first.
        Framing::ChunkSize if !input[0].is_ascii_hexdigit() => {
            return Err(invalid("chunk size without digits"))
        }
        Framing::ChunkSize
            if input
                .iter()
                .position(|&byte| byte == b'\n')
                .is_some_and(|end| input[end - 1] != b'\r') =>
        {
            return Err(invalid("chunk size line not ended by CRLF"))
        }
        Framing::ChunkSize => match httparse::parse_chunk_size(input) {
            Ok(httparse::Status::Complete((length, 0))) => {
                input.advance(length);
                *framing = Framing::Trailers;
                Decoded::Progress
            }
            Ok(httparse::Status::Complete((length, size))) => {
                input.advance(length);
                *framing = Framing::ChunkData(size);
                Decoded::Progress
            }
            Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => Decoded::NeedInput,
            _ => return Err(invalid("chunk size")),
        },
        Framing::ChunkEnd => {
            if input.len() < 2 {
                return Ok(Decoded::NeedInput);
            }
            if &input[..2] != b"\r\n" {
                return Err(invalid("chunk not ended by CRLF"));
            }
            input.advance(2);
            *framing = Framing::ChunkSize;
            Decoded::Progress
        }
        Framing::Trailers => {
            let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
            match httparse::parse_headers(input, &mut fields) {
                Ok(httparse::Status::Complete((length, fields))) => {
                    let mut trailers = HeaderMap::with_capacity(fields.len());
                    for field in fields {
                        let name = HeaderName::from_bytes(field.name.as_bytes())
                            .map_err(|_| invalid("trailer name"))?;
                        let value = HeaderValue::from_bytes(field.value)
                            .map_err(|_| invalid("trailer value"))?;
                        trailers.append(name, value);
                    }
                    input.advance(length);
                    *framing = Framing::Done;
                    if trailers.is_empty() {
                        Decoded::End
                    } else {
                        Decoded::Trailers(trailers)
                    }
                }
                Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => Decoded::NeedInput,
                _ => return Err(invalid("trailer section")),
            }
        }
    })
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}
