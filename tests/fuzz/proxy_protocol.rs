//! The PROXY protocol reader (`codec::proxy_protocol::parse`, the core of `read_header`): it
//! never claims more bytes than it was given, judges a header the same however its bytes
//! arrive (the shell takes them off the socket as they come), and reads back every header that
//! tandem builds for its servers.

use std::net::{IpAddr, SocketAddr};

use bolero::{check, TypeGenerator};
use tandem::codec::proxy_protocol::{
    header, local_header, parse, Carried, HeaderError, Parsed, V1_MAX_LENGTH, V2_MAX_LENGTH,
};
use tandem::config::ProxyVersion;

use super::ITERATIONS;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// What a v1 line is made of, so that random lines reach the address parsing.
#[derive(Debug, TypeGenerator)]
enum Token {
    Space,
    Cr,
    Lf,
    Tcp4,
    Tcp6,
    Unknown,
    Ipv4([u8; 4]),
    Ipv6([u16; 8]),
    Port(u32),
    Byte(u8),
}

impl Token {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Token::Space => out.push(b' '),
            Token::Cr => out.push(b'\r'),
            Token::Lf => out.push(b'\n'),
            Token::Tcp4 => out.extend(b"TCP4"),
            Token::Tcp6 => out.extend(b"TCP6"),
            Token::Unknown => out.extend(b"UNKNOWN"),
            Token::Ipv4(octets) => out.extend(IpAddr::from(*octets).to_string().bytes()),
            Token::Ipv6(segments) => out.extend(IpAddr::from(*segments).to_string().bytes()),
            Token::Port(port) => out.extend(port.to_string().bytes()),
            Token::Byte(byte) => out.push(*byte),
        }
    }
}

#[derive(Debug, TypeGenerator)]
enum Start {
    V1(#[generator(Vec::produce().with().len(0usize..=40))] Vec<Token>),
    V2 {
        version_command: u8,
        family_protocol: u8,
        #[generator(0u16..=4200)]
        length: u16,
    },
    Anything,
}

#[derive(Debug, TypeGenerator)]
struct FirstBytes {
    start: Start,
    #[generator(Vec::produce().with().len(0usize..=300))]
    rest: Vec<u8>,
    /// Bytes a complete header may be followed by.
    #[generator(Vec::produce().with().len(0usize..=8))]
    after: Vec<u8>,
}

impl FirstBytes {
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        match &self.start {
            Start::V1(tokens) => {
                bytes.extend(b"PROXY ");
                tokens.iter().for_each(|token| token.write(&mut bytes));
            }
            Start::V2 {
                version_command,
                family_protocol,
                length,
            } => {
                bytes.extend(V2_SIGNATURE);
                bytes.extend([*version_command, *family_protocol]);
                bytes.extend(length.to_be_bytes());
            }
            Start::Anything => {}
        }
        bytes.extend(&self.rest);
        bytes
    }
}

#[test]
fn any_first_bytes_are_judged_within_them_and_alike_however_they_arrive() {
    check!()
        .with_type::<FirstBytes>()
        .with_iterations(ITERATIONS)
        .for_each(|first| {
            let bytes = first.bytes();
            let whole = parse(&bytes).map_err(|error| error.to_string());
            match whole {
                Ok(Parsed::Complete { length, carried }) => {
                    assert!(0 < length && length <= bytes.len(), "{length} of {bytes:?}");
                    assert!(length <= V1_MAX_LENGTH.max(V2_MAX_LENGTH));
                    if bytes.starts_with(b"PROXY ") {
                        assert!(bytes[..length].ends_with(b"\r\n"), "{bytes:?}");
                        assert!(length <= V1_MAX_LENGTH);
                    }
                    let alone = parse(&bytes[..length]).map_err(|error| error.to_string());
                    assert_eq!(alone, Ok(Parsed::Complete { length, carried }));
                    let followed = [&bytes[..], &first.after].concat();
                    let followed = parse(&followed).map_err(|error| error.to_string());
                    assert_eq!(followed, Ok(Parsed::Complete { length, carried }));
                }
                Ok(Parsed::Partial {
                    length: Some(length),
                }) => {
                    assert!(bytes.len() < length && length <= V2_MAX_LENGTH);
                }
                Ok(Parsed::Partial { length: None }) => assert!(bytes.len() < V1_MAX_LENGTH),
                Err(_) => {}
            }
            // What the shell sees on the way: each prefix says no more than the whole.
            for end in 0..bytes.len() {
                match parse(&bytes[..end]) {
                    Ok(Parsed::Partial { .. }) => {
                        if let Ok(Parsed::Complete { length, .. }) = whole {
                            assert!(length > end, "complete within {end} bytes, yet partial");
                        }
                    }
                    complete @ Ok(Parsed::Complete { .. }) => {
                        assert_eq!(complete.map_err(|error| error.to_string()), whole);
                    }
                    Err(error) => assert!(
                        whole.is_err(),
                        "refused at {end} bytes ({error}), accepted whole: {whole:?}"
                    ),
                }
            }
        });
}

#[derive(Debug, TypeGenerator)]
struct Sent {
    v2: bool,
    source: (IpAddr, u16),
    destination: (IpAddr, u16),
    #[generator(Vec::produce().with().len(0usize..=16))]
    after: Vec<u8>,
}

#[test]
fn every_header_tandem_sends_reads_back_whole_however_it_arrives() {
    check!()
        .with_type::<Sent>()
        .with_iterations(ITERATIONS)
        .for_each(|sent| {
            let version = if sent.v2 {
                ProxyVersion::V2
            } else {
                ProxyVersion::V1
            };
            let source = SocketAddr::from(sent.source);
            let destination = SocketAddr::from(sent.destination);
            let built = header(version, source, destination);
            // IPv4-mapped addresses are read as the IPv4 peers they stand for.
            let canonical =
                |address: SocketAddr| SocketAddr::new(address.ip().to_canonical(), address.port());
            let expected = Parsed::Complete {
                length: built.len(),
                carried: Some(Carried {
                    source: canonical(source),
                    destination: canonical(destination),
                }),
            };
            assert_whole_and_split(&built, &sent.after, expected);
            let local = local_header();
            let expected = Parsed::Complete {
                length: local.len(),
                carried: None,
            };
            assert_whole_and_split(&local, &sent.after, expected);
        });
}

/// `built` followed by `after` parses as `expected`, and every prefix shorter than `built` is
/// partial.
fn assert_whole_and_split(built: &[u8], after: &[u8], expected: Parsed) {
    let stream = [built, after].concat();
    assert_eq!(parse(&stream).unwrap(), expected, "{stream:?}");
    for end in 0..built.len() {
        assert!(
            matches!(parse(&stream[..end]), Ok(Parsed::Partial { .. })),
            "{end} bytes of {built:?}"
        );
    }
}

/// Found by the first target: ppp took `UNKNOWN` ended by a bare LF. The spec ends every v1
/// line with CRLF, and so does tandem for TCP4 and TCP6.
#[test]
fn a_v1_unknown_line_without_its_cr_is_refused() {
    for line in [
        &b"PROXY UNKNOWN \n"[..],
        b"PROXY UNKNOWN\n",
        b"PROXY UNKNOWN 1 2 3 4\n",
    ] {
        let error = parse(line).unwrap_err();
        assert!(
            matches!(error, HeaderError::MalformedV1 { .. }),
            "{line:?}: {error}"
        );
    }
    assert_eq!(
        parse(b"PROXY UNKNOWN 1 2 3 4\r\n").unwrap(),
        Parsed::Complete {
            length: 23,
            carried: None
        }
    );
}
