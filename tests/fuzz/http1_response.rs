//! A server's HTTP/1 response as the server client reads it (`proxy::http1_client`): the head
//! parser takes exactly the head and nothing after it, judges a head the same however it is
//! split, frames the body as RFC 9112 §6.3 says (a Transfer-Encoding always wins over a
//! Content-Length), and the body decoder gives the same body however its bytes arrive.

use bolero::{check, TypeGenerator};
use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use tandem::codec::http1::{decode, framing, parse_head, Decoded, Delimiting, Framing, Head};

use super::ITERATIONS;

/// Header lines a server may send, so that random heads reach the framing rules.
#[derive(Debug, TypeGenerator)]
enum Line {
    ContentLength(#[generator(Vec::produce().with().len(0usize..=3))] Vec<LengthItem>),
    TransferEncoding(#[generator(Vec::produce().with().len(0usize..=3))] Vec<Coding>),
    Connection(bool),
    Other(u8, u8),
    Raw(#[generator(Vec::produce().with().len(0usize..=12))] Vec<u8>),
}

#[derive(Debug, TypeGenerator)]
enum LengthItem {
    Number(#[generator(0u64..=20)] u64),
    Huge,
    Word,
    Empty,
}

#[derive(Debug, TypeGenerator)]
enum Coding {
    Chunked,
    ChunkedUpper,
    Gzip,
    Empty,
}

#[derive(Debug, TypeGenerator)]
struct ResponseHead {
    version: u8,
    #[generator(0u16..=1000)]
    status: u16,
    #[generator(Vec::produce().with().len(0usize..=6))]
    lines: Vec<Line>,
    /// Break the head's end, or not.
    end: Option<u8>,
    #[generator(Vec::produce().with().len(0usize..=8))]
    after: Vec<u8>,
    head_request: bool,
}

impl ResponseHead {
    fn bytes(&self) -> Vec<u8> {
        let version = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "http/1.1"]
            [usize::from(self.version % 5)];
        let mut head = format!("{version} {:03} Reason\r\n", self.status).into_bytes();
        for line in &self.lines {
            match line {
                Line::ContentLength(items) => {
                    let items: Vec<String> = items.iter().map(LengthItem::text).collect();
                    head.extend(format!("Content-Length: {}\r\n", items.join(", ")).bytes());
                }
                Line::TransferEncoding(codings) => {
                    let codings: Vec<&str> = codings.iter().map(Coding::text).collect();
                    head.extend(format!("Transfer-Encoding: {}\r\n", codings.join(",")).bytes());
                }
                Line::Connection(close) => {
                    let token = if *close { "close" } else { "keep-alive" };
                    head.extend(format!("Connection: {token}\r\n").bytes());
                }
                Line::Other(name, value) => {
                    head.extend(format!("X-{name}: {value}\r\n").bytes());
                }
                Line::Raw(bytes) => head.extend(bytes),
            }
        }
        match self.end {
            Some(byte) => head.push(byte),
            None => head.extend(b"\r\n"),
        }
        head
    }
}

impl LengthItem {
    fn text(&self) -> String {
        match self {
            LengthItem::Number(number) => number.to_string(),
            LengthItem::Huge => "99999999999999999999".into(),
            LengthItem::Word => "ten".into(),
            LengthItem::Empty => String::new(),
        }
    }
}

impl Coding {
    fn text(&self) -> &'static str {
        match self {
            Coding::Chunked => "chunked",
            Coding::ChunkedUpper => " CHUNKED ",
            Coding::Gzip => "gzip",
            Coding::Empty => "",
        }
    }
}

/// What a parse gave, comparable.
type Judged = Result<Option<(StatusCode, Version, HeaderMap, bool, usize)>, String>;

/// Parses `bytes`; on success, also how many bytes the head took. On `Ok(None)` the input must
/// be untouched: nothing is taken until a whole head has arrived.
fn judge(bytes: &[u8]) -> (Judged, Option<Head>) {
    let mut input = BytesMut::from(bytes);
    match parse_head(&mut input) {
        Ok(Some(head)) => {
            let taken = bytes.len() - input.len();
            assert_eq!(
                &input[..],
                &bytes[taken..],
                "only the head is taken, from the front"
            );
            let judged = (
                head.status,
                head.version,
                head.headers.clone(),
                head.persistent,
                taken,
            );
            (Ok(Some(judged)), Some(head))
        }
        Ok(None) => {
            assert_eq!(&input[..], bytes, "nothing taken before the head is whole");
            (Ok(None), None)
        }
        Err(error) => (Err(error.to_string()), None),
    }
}

#[test]
fn a_head_is_taken_exactly_judged_alike_however_split_and_framed_by_rfc_9112() {
    check!()
        .with_type::<ResponseHead>()
        .with_iterations(ITERATIONS)
        .for_each(|response| {
            let bytes = response.bytes();
            let (judged, head) = judge(&bytes);
            let Some(head) = head else {
                // Refused or incomplete: no prefix may have been taken as a head either.
                for end in 0..bytes.len() {
                    let (prefix, _) = judge(&bytes[..end]);
                    assert!(!matches!(prefix, Ok(Some(_))), "a head within {end} bytes");
                }
                return;
            };
            let taken = judged.as_ref().unwrap().as_ref().unwrap().4;
            assert!(taken > 0 && taken <= bytes.len());
            // A head arriving in pieces is waited for, not refused, and bytes after it are not
            // part of it.
            for end in 0..taken {
                assert_eq!(judge(&bytes[..end]).0, Ok(None), "{end} bytes of {bytes:?}");
            }
            let followed = [&bytes[..], &response.after].concat();
            assert_eq!(judge(&followed).0, judged);

            assert!(head.version == Version::HTTP_10 || head.version == Version::HTTP_11);
            let close = head.headers.get_all(CONNECTION).iter().any(|value| {
                value
                    .as_bytes()
                    .split(|&byte| byte == b',')
                    .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
            });
            assert!(
                !(close && head.persistent),
                "persistent despite Connection: close"
            );

            let no_body = response.head_request
                || head.status == StatusCode::NO_CONTENT
                || head.status == StatusCode::NOT_MODIFIED;
            let encoded = head.headers.contains_key(TRANSFER_ENCODING);
            let lengths = head.headers.contains_key(CONTENT_LENGTH);
            match framing(&head, response.head_request) {
                Ok(Delimiting::Length(length)) => {
                    assert!(
                        no_body || !encoded,
                        "a length trusted beside a Transfer-Encoding"
                    );
                    assert!(no_body || lengths || length == 0);
                    if no_body {
                        assert_eq!(length, 0);
                    }
                }
                Ok(Delimiting::Chunked) => {
                    assert!(encoded && !lengths && head.version == Version::HTTP_11);
                }
                Ok(Delimiting::ChunkedThenClose) => {
                    assert!(encoded && (lengths || head.version == Version::HTTP_10));
                }
                Ok(Delimiting::UntilClose) => assert!(!no_body),
                Err(_) => assert!(!no_body && !encoded && lengths),
            }
        });
}

/// How a decode ended: the body, the trailers, and how many bytes the body took; or the error.
type Outcome = Result<(Vec<u8>, HeaderMap, usize), String>;

/// Decodes `encoded` with `framing`, fed in pieces of the given sizes (cycled; 0 means the
/// rest), as a server's connection would deliver it, until the body ends or the input does.
fn decode_in_pieces(mut framing: Framing, encoded: &[u8], pieces: &[u16]) -> Outcome {
    let mut input = BytesMut::new();
    let mut body = Vec::new();
    let mut trailers = HeaderMap::new();
    let mut fed = 0;
    let mut sizes = pieces.iter().cycle();
    loop {
        match decode(&mut framing, &mut input).map_err(|error| error.to_string())? {
            Decoded::Data(data) => {
                assert!(!data.is_empty(), "an empty data frame");
                body.extend_from_slice(&data);
            }
            Decoded::Progress => {}
            Decoded::Trailers(fields) => trailers = fields,
            Decoded::End => return Ok((body, trailers, fed - input.len())),
            Decoded::NeedInput if fed == encoded.len() => {
                // The server closed: only a body delimited by the close is whole.
                return match framing {
                    Framing::UntilClose => Ok((body, trailers, fed)),
                    _ => Err("closed inside the body".into()),
                };
            }
            Decoded::NeedInput => {
                let size = usize::from(*sizes.next().unwrap_or(&0));
                let end = if size == 0 {
                    encoded.len()
                } else {
                    (fed + size).min(encoded.len())
                };
                input.extend_from_slice(&encoded[fed..end]);
                fed = end;
            }
        }
        assert!(body.len() <= fed, "more body than bytes received");
    }
}

#[derive(Debug, TypeGenerator)]
enum BodyFraming {
    Chunked,
    Length(#[generator(1u64..=600)] u64),
    UntilClose,
}

impl BodyFraming {
    fn start(&self) -> Framing {
        match self {
            BodyFraming::Chunked => Framing::ChunkSize,
            BodyFraming::Length(length) => Framing::Length(*length),
            BodyFraming::UntilClose => Framing::UntilClose,
        }
    }
}

#[derive(Debug, TypeGenerator)]
struct AnyBody {
    framing: BodyFraming,
    #[generator(Vec::produce().with().len(0usize..=512))]
    bytes: Vec<u8>,
    #[generator(Vec::produce().with().len(1usize..=4))]
    pieces: Vec<u16>,
}

#[test]
fn any_body_bytes_decode_alike_however_they_arrive() {
    check!()
        .with_type::<AnyBody>()
        .with_iterations(ITERATIONS)
        .for_each(|any| {
            // Which fault a refusal names may depend on how much had arrived; that it is
            // refused may not.
            let decoded = |pieces| {
                decode_in_pieces(any.framing.start(), &any.bytes, pieces).map_err(|_| "refused")
            };
            let whole = decoded(&[0]);
            assert_eq!(decoded(&any.pieces), whole, "pieces {:?}", any.pieces);
            assert_eq!(decoded(&[1]), whole);
            if let Ok((body, _, taken)) = &whole {
                assert!(body.len() <= *taken && *taken <= any.bytes.len());
                if let BodyFraming::Length(length) = any.framing {
                    assert_eq!(body, &any.bytes[..length as usize]);
                    assert_eq!(*taken, length as usize);
                }
            }
        });
}

#[derive(Debug, TypeGenerator)]
struct Chunk {
    #[generator(Vec::produce().with().len(1usize..=40))]
    data: Vec<u8>,
    upper_case: bool,
    #[generator(0usize..=3)]
    leading_zeros: usize,
    extension: Option<u8>,
}

#[derive(Debug, TypeGenerator)]
struct ChunkedBody {
    #[generator(Vec::produce().with().len(0usize..=8))]
    chunks: Vec<Chunk>,
    #[generator(Vec::produce().with().len(0usize..=3))]
    trailers: Vec<(u8, u8)>,
    #[generator(Vec::produce().with().len(0usize..=8))]
    after: Vec<u8>,
    #[generator(Vec::produce().with().len(1usize..=4))]
    pieces: Vec<u16>,
    /// A byte (at a position modulo the encoding's length) to overwrite afterwards.
    damage: (u16, u8),
}

#[test]
fn a_chunked_body_decodes_to_its_data_and_trailers_and_stops_at_its_end() {
    check!()
        .with_type::<ChunkedBody>()
        .with_iterations(ITERATIONS)
        .for_each(|chunked| {
            let mut encoded = Vec::new();
            let mut data: Vec<u8> = Vec::new();
            for chunk in &chunked.chunks {
                let size = if chunk.upper_case {
                    format!("{:X}", chunk.data.len())
                } else {
                    format!("{:x}", chunk.data.len())
                };
                encoded.extend("0".repeat(chunk.leading_zeros).bytes());
                encoded.extend(size.bytes());
                if let Some(value) = chunk.extension {
                    encoded.extend(format!(";ext={value}").bytes());
                }
                encoded.extend(b"\r\n");
                encoded.extend(&chunk.data);
                encoded.extend(b"\r\n");
                data.extend(&chunk.data);
            }
            encoded.extend(b"0\r\n");
            let mut trailers = HeaderMap::new();
            for (name, value) in &chunked.trailers {
                encoded.extend(format!("t-{name}: {value}\r\n").bytes());
                trailers.append(
                    HeaderName::try_from(format!("t-{name}")).unwrap(),
                    HeaderValue::from(u16::from(*value)),
                );
            }
            encoded.extend(b"\r\n");
            let body_end = encoded.len();
            encoded.extend(&chunked.after);

            let (body, got_trailers, taken) =
                decode_in_pieces(Framing::ChunkSize, &encoded, &chunked.pieces)
                    .expect("a well-formed chunked body decodes");
            assert_eq!(body, data);
            assert_eq!(got_trailers, trailers);
            assert_eq!(
                taken, body_end,
                "the body ends where it ends, not before or after"
            );
            assert_eq!(
                decode_in_pieces(Framing::ChunkSize, &encoded[..body_end - 1], &[0]),
                Err("closed inside the body".into())
            );

            // One byte changed: near-valid syntax, judged alike however it arrives.
            let (at, byte) = chunked.damage;
            encoded[usize::from(at) % body_end] = byte;
            let decoded = |pieces| {
                decode_in_pieces(Framing::ChunkSize, &encoded, pieces).map_err(|_| "refused")
            };
            let whole = decoded(&[0]);
            assert_eq!(decoded(&chunked.pieces), whole);
            assert_eq!(decoded(&[1]), whole);
            if let Ok((body, _, taken)) = whole {
                assert!(body.len() < taken && taken <= encoded.len());
            }
        });
}
