//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, v1 text and v2 binary): reading the header
//! a balancer in front puts at the start of a connection, and building the one tandem puts at the
//! start of its connections to servers. The `ppp` crate parses and builds the formats; this module
//! decides how many bytes to take off the socket, so that nothing after the header is consumed.

use std::net::SocketAddr;

use ppp::v2::{Command, Protocol, Version};
use smallvec::SmallVec;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Which of the two formats: v1's text line, or v2's binary header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// The addresses a PROXY header carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

/// Why a connection that must start with a PROXY header did not; the caller closes it.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("connection closed before sending a PROXY protocol header")]
    Empty,
    #[error("connection closed inside the PROXY protocol header")]
    Closed,
    #[error("no PROXY protocol header (the client sent \"{sent}\")")]
    Missing { sent: String },
    #[error("malformed PROXY v1 header \"{line}\": {reason}")]
    MalformedV1 {
        line: String,
        #[source]
        reason: ppp::v1::BinaryParseError,
    },
    #[error("PROXY v1 header without CRLF in its first {V1_MAX_LENGTH} bytes")]
    V1TooLong,
    #[error("malformed PROXY v2 header: {0}")]
    MalformedV2(#[source] ppp::v2::ParseError),
    #[error(
        "PROXY v2 header of {length} bytes, over the {V2_MAX_LENGTH} accepted (nginx's limit too)"
    )]
    V2TooLong { length: usize },
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[source] std::io::Error),
}

/// The spec's longest v1 line, CRLF included: `PROXY UNKNOWN` with two full IPv6 addresses.
pub const V1_MAX_LENGTH: usize = 107;
/// How a v1 header starts.
const V1_START: &[u8] = b"PROXY ";
/// The v2 signature, version-command, family-protocol and the 16-bit length of what follows.
const V2_FIXED_LENGTH: usize = 16;
/// nginx's limit for a whole header (`NGX_PROXY_PROTOCOL_MAX_HEADER`): room for the TLVs that
/// cloud balancers and HAProxy's `proxy-v2-options` send (ids, SNI, TLS details), while a
/// client can't make us buffer the 64 KiB the length field allows.
pub const V2_MAX_LENGTH: usize = 4096;
/// How much of a client's first bytes an error quotes.
const QUOTED: usize = 8;

/// Reads a PROXY v1 or v2 header from the start of `stream`, consuming exactly its bytes and
/// nothing after them. `Ok(None)`: a v2 LOCAL command, v1 `UNKNOWN`, or a v2 family or protocol
/// other than TCP over IPv4/IPv6 (the spec's fall-back to UNSPEC, as HAProxy and nginx do): the
/// connection's own addresses apply. The caller bounds the time with `tokio::time::timeout`.
///
/// Each round peeks at what has arrived and lets [`parse`] judge it: a complete header is taken
/// off the socket up to its end; otherwise every byte seen is header, so all are taken, and the
/// next peek waits for new ones.
pub async fn read_header(stream: &mut TcpStream) -> Result<Option<Carried>, HeaderError> {
    // Inline room for a whole v1 line, or a v2 header with IPv6 addresses and a few TLVs.
    let mut taken: SmallVec<[u8; 128]> = SmallVec::new();
    let mut wanted = V1_MAX_LENGTH;
    loop {
        let start = taken.len();
        taken.resize(wanted, 0);
        let peeked = peek(stream, &mut taken[start..]).await?;
        if peeked == 0 {
            return Err(if start == 0 {
                HeaderError::Empty
            } else {
                HeaderError::Closed
            });
        }
        taken.truncate(start + peeked);
        match parse(&taken)? {
            Parsed::Complete { length, carried } => {
                read_exact(stream, &mut taken[start..length]).await?;
                return Ok(carried);
            }
            Parsed::Partial { length } => {
                read_exact(stream, &mut taken[start..]).await?;
                wanted = length.unwrap_or(V1_MAX_LENGTH);
            }
        }
    }
}

/// What the first bytes of a connection hold, as far as they have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header: the first `length` bytes. What follows them is the application's.
    Complete {
        length: usize,
        carried: Option<Carried>,
    },
    /// Every byte so far is header and more must come: up to `Some(length)` bytes in all once a
    /// v2 header has announced it (always more than received), else up to a v1 line's LF or a
    /// v2 fixed part's end (then fewer than [`V1_MAX_LENGTH`] bytes were received).
    Partial { length: Option<usize> },
}

/// The sans-IO core of [`read_header`]: judges `received`, the first bytes of a connection.
/// More bytes never change a complete header, and never turn an error into a header.
pub fn parse(received: &[u8]) -> Result<Parsed, HeaderError> {
    if may_start(received, ppp::v2::PROTOCOL_PREFIX) {
        parse_v2(received)
    } else if may_start(received, V1_START) {
        parse_v1(received)
    } else {
        Err(missing(received))
    }
}

/// Whether `received` can be the start of a header beginning with `start` (either may be the
/// longer), so that a client speaking anything else is refused at its first segment.
fn may_start(received: &[u8], start: &[u8]) -> bool {
    let common = received.len().min(start.len());
    received[..common] == start[..common]
}

fn missing(received: &[u8]) -> HeaderError {
    let quoted = received[..received.len().min(QUOTED)].escape_ascii();
    let more = if received.len() > QUOTED { "..." } else { "" };
    HeaderError::Missing {
        sent: format!("{quoted}{more}"),
    }
}

/// The v1 line ends at the first LF, within [`V1_MAX_LENGTH`] bytes.
fn parse_v1(received: &[u8]) -> Result<Parsed, HeaderError> {
    let within = &received[..received.len().min(V1_MAX_LENGTH)];
    match within.iter().position(|&byte| byte == b'\n') {
        Some(end) => Ok(Parsed::Complete {
            length: end + 1,
            carried: parse_v1_line(&within[..=end])?,
        }),
        None if within.len() == V1_MAX_LENGTH => Err(HeaderError::V1TooLong),
        None => Ok(Parsed::Partial { length: None }),
    }
}

/// `line` ends with LF, and must end with CRLF as the spec says: ppp checks that of a TCP4 or
/// TCP6 line, but takes `UNKNOWN` with anything after it, a bare LF included.
fn parse_v1_line(line: &[u8]) -> Result<Option<Carried>, HeaderError> {
    let parsed = if line.ends_with(b"\r\n") {
        ppp::v1::Header::try_from(line)
    } else {
        Err(ppp::v1::ParseError::MissingNewLine.into())
    };
    let header = parsed.map_err(|reason| HeaderError::MalformedV1 {
        line: line.escape_ascii().to_string(),
        reason,
    })?;
    Ok(match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(carried(
            (a.source_address.into(), a.source_port),
            (a.destination_address.into(), a.destination_port),
        )),
        ppp::v1::Addresses::Tcp6(a) => Some(carried(
            (a.source_address.into(), a.source_port),
            (a.destination_address.into(), a.destination_port),
        )),
        ppp::v1::Addresses::Unknown => None,
    })
}

/// The fixed part says how many bytes follow; ppp checks it first, so that a bad version or
/// command is refused before waiting for a length that means nothing.
fn parse_v2(received: &[u8]) -> Result<Parsed, HeaderError> {
    let Some(fixed) = received.get(..V2_FIXED_LENGTH) else {
        return Ok(Parsed::Partial { length: None });
    };
    match ppp::v2::Header::try_from(fixed) {
        Ok(_) | Err(ppp::v2::ParseError::Partial(..)) => {}
        Err(error) => return Err(HeaderError::MalformedV2(error)),
    }
    let length = V2_FIXED_LENGTH + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if length > V2_MAX_LENGTH {
        return Err(HeaderError::V2TooLong { length });
    }
    let Some(header) = received.get(..length) else {
        return Ok(Parsed::Partial {
            length: Some(length),
        });
    };
    let parsed = ppp::v2::Header::try_from(header).map_err(HeaderError::MalformedV2)?;
    Ok(Parsed::Complete {
        length,
        carried: carried_v2(&parsed),
    })
}

/// TLVs are ignored. UDP, UNIX and UNSPEC describe no TCP peer of ours, so, as the spec allows
/// for combinations a receiver does not implement, they fall back to UNSPEC.
fn carried_v2(header: &ppp::v2::Header) -> Option<Carried> {
    if header.command != Command::Proxy || header.protocol != Protocol::Stream {
        return None;
    }
    match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some(carried(
            (a.source_address.into(), a.source_port),
            (a.destination_address.into(), a.destination_port),
        )),
        ppp::v2::Addresses::IPv6(a) => Some(carried(
            (a.source_address.into(), a.source_port),
            (a.destination_address.into(), a.destination_port),
        )),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 peers (a sender mixing families, as `header` does, maps
/// them): they are carried as IPv4, as the peer would have appeared connecting directly.
fn carried(source: (std::net::IpAddr, u16), destination: (std::net::IpAddr, u16)) -> Carried {
    Carried {
        source: SocketAddr::new(source.0.to_canonical(), source.1),
        destination: SocketAddr::new(destination.0.to_canonical(), destination.1),
    }
}

async fn peek(stream: &TcpStream, buffer: &mut [u8]) -> Result<usize, HeaderError> {
    stream.peek(buffer).await.map_err(HeaderError::Io)
}

/// Reads bytes already known to be header.
async fn read_exact(stream: &mut TcpStream, buffer: &mut [u8]) -> Result<(), HeaderError> {
    match stream.read_exact(buffer).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Err(HeaderError::Closed),
        Err(error) => Err(HeaderError::Io(error)),
    }
}

/// The header tandem sends first on a connection to a server: `source` is the client,
/// `destination` the address the client connected to. Of two families, the IPv4 address is
/// mapped into IPv6 (as HAProxy does), since a header carries one family.
pub fn header(version: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let addresses = one_family(source, destination);
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::from(addresses).to_string().into_bytes(),
        ProxyVersion::V2 => v2(
            Command::Proxy,
            Protocol::Stream,
            ppp::v2::Addresses::from(addresses),
        ),
    }
}

/// The v2 header a health check sends: LOCAL, "no client", as HAProxy's checks do. (v1's
/// `UNKNOWN` is refused by some servers, so a v1 check names its own connection instead.)
pub fn local_header() -> Vec<u8> {
    v2(
        Command::Local,
        Protocol::Unspecified,
        ppp::v2::Addresses::Unspecified,
    )
}

fn v2(command: Command, protocol: Protocol, addresses: ppp::v2::Addresses) -> Vec<u8> {
    ppp::v2::Builder::with_addresses(Version::Two | command, protocol, addresses)
        .build()
        .expect("at most 36 address bytes and no TLVs fit the 16-bit length")
}

fn one_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) => (mapped(source), destination),
        (SocketAddr::V6(_), SocketAddr::V4(_)) => (source, mapped(destination)),
        _ => (source, destination),
    }
}

fn mapped(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        SocketAddr::V6(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;
    use std::time::Duration;

    use futures_util::FutureExt;
    use ppp::v2::{AddressFamily, Type};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A deadline so that a reader that wrongly waits fails the test instead of hanging it.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// A connected pair over loopback: (the sender's end, the reader's end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.set_nodelay(true).unwrap();
        (client, server)
    }

    async fn within<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(DEADLINE, future)
            .await
            .expect("read_header waited past the deadline")
    }

    /// Sends `bytes` in one write, keeps the connection open, and reads a header.
    async fn read_sent(bytes: &[u8]) -> Result<Option<Carried>, HeaderError> {
        let (mut client, mut server) = pair().await;
        client.write_all(bytes).await.unwrap();
        let read = within(read_header(&mut server)).await;
        drop(client);
        read
    }

    fn at(address: &str) -> SocketAddr {
        address.parse().unwrap()
    }

    fn carried_as(source: &str, destination: &str) -> Option<Carried> {
        Some(Carried {
            source: at(source),
            destination: at(destination),
        })
    }

    fn v2_with(
        command: Command,
        protocol: Protocol,
        addresses: impl Into<ppp::v2::Addresses>,
    ) -> ppp::v2::Builder {
        ppp::v2::Builder::with_addresses(Version::Two | command, protocol, addresses)
    }

    #[tokio::test]
    async fn v1_tcp4() {
        let read = read_sent(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n").await;
        assert_eq!(
            read.unwrap(),
            carried_as("192.0.2.1:56324", "198.51.100.2:443")
        );
    }

    #[tokio::test]
    async fn v1_tcp6() {
        let read = read_sent(b"PROXY TCP6 2001:db8::1 2001:db8::2 51000 8443\r\n").await;
        assert_eq!(
            read.unwrap(),
            carried_as("[2001:db8::1]:51000", "[2001:db8::2]:8443")
        );
    }

    #[tokio::test]
    async fn v1_unknown_short_and_long_forms() {
        assert_eq!(read_sent(b"PROXY UNKNOWN\r\n").await.unwrap(), None);
        let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                        ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), V1_MAX_LENGTH);
        assert_eq!(read_sent(longest).await.unwrap(), None);
    }

    #[tokio::test]
    async fn v2_ipv4() {
        let mut sent = ppp::v2::PROTOCOL_PREFIX.to_vec();
        sent.extend([
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb,
        ]);
        assert_eq!(
            read_sent(&sent).await.unwrap(),
            carried_as("192.0.2.1:56324", "198.51.100.2:443")
        );
    }

    #[tokio::test]
    async fn v2_ipv6() {
        let sent = v2_with(
            Command::Proxy,
            Protocol::Stream,
            (at("[2001:db8::1]:51000"), at("[2001:db8::2]:443")),
        )
        .build()
        .unwrap();
        assert_eq!(
            read_sent(&sent).await.unwrap(),
            carried_as("[2001:db8::1]:51000", "[2001:db8::2]:443")
        );
    }

    #[tokio::test]
    async fn v2_local_ignores_any_addresses_it_carries() {
        let sent = v2_with(
            Command::Local,
            Protocol::Stream,
            (at("192.0.2.1:1"), at("192.0.2.2:2")),
        )
        .build()
        .unwrap();
        assert_eq!(read_sent(&sent).await.unwrap(), None);
    }

    #[tokio::test]
    async fn v2_udp_unix_and_unspec_use_the_connections_own_addresses() {
        let udp = v2_with(
            Command::Proxy,
            Protocol::Datagram,
            (at("192.0.2.1:53"), at("192.0.2.2:53")),
        );
        let unix = v2_with(
            Command::Proxy,
            Protocol::Stream,
            ppp::v2::Unix::new([b'a'; 108], [b'b'; 108]),
        );
        let unspec = ppp::v2::Builder::new(
            Version::Two | Command::Proxy,
            AddressFamily::Unspecified | Protocol::Unspecified,
        );
        for builder in [udp, unix, unspec] {
            let sent = builder.build().unwrap();
            assert_eq!(read_sent(&sent).await.unwrap(), None, "{sent:?}");
        }
    }

    #[tokio::test]
    async fn v2_tlvs_are_skipped_and_what_follows_is_intact() {
        let mut sent = v2_with(
            Command::Proxy,
            Protocol::Stream,
            (at("192.0.2.1:40000"), at("198.51.100.2:443")),
        )
        .write_tlv(Type::Authority, b"example.com")
        .unwrap()
        .write_tlv(Type::NoOp, &[0; 200])
        .unwrap()
        .build()
        .unwrap();
        sent.extend_from_slice(b"GET /");
        let (mut client, mut server) = pair().await;
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        let read = within(read_header(&mut server)).await.unwrap();
        assert_eq!(read, carried_as("192.0.2.1:40000", "198.51.100.2:443"));
        assert_eq!(rest(&mut server).await, b"GET /");
    }

    async fn rest(server: &mut TcpStream) -> Vec<u8> {
        let mut rest = Vec::new();
        within(server.read_to_end(&mut rest)).await.unwrap();
        rest
    }

    /// The header and the request in one write: the request is left whole for whoever reads next.
    #[tokio::test]
    async fn the_bytes_after_the_header_stay_unread() {
        for sent in [
            header(ProxyVersion::V1, at("192.0.2.1:1000"), at("192.0.2.2:80")),
            header(ProxyVersion::V2, at("192.0.2.1:1000"), at("192.0.2.2:80")),
            b"PROXY UNKNOWN\r\n".to_vec(),
            local_header(),
        ] {
            let (mut client, mut server) = pair().await;
            client
                .write_all(&[&sent[..], b"GET /"].concat())
                .await
                .unwrap();
            client.shutdown().await.unwrap();
            within(read_header(&mut server)).await.unwrap();
            assert_eq!(rest(&mut server).await, b"GET /", "after {sent:?}");
        }
    }

    /// Every split point, each part its own write, the reader polled in between: whether it
    /// sees one segment or two, it gets the same header, and the bytes after it are untouched.
    #[tokio::test]
    async fn a_header_split_across_writes_reads_the_same() {
        for sent in [
            header(
                ProxyVersion::V1,
                at("[2001:db8::1]:1000"),
                at("[2001:db8::2]:80"),
            ),
            header(
                ProxyVersion::V2,
                at("[2001:db8::1]:1000"),
                at("[2001:db8::2]:80"),
            ),
        ] {
            for split in 1..sent.len() {
                let (mut client, mut server) = pair().await;
                let read = {
                    let mut reading = std::pin::pin!(read_header(&mut server));
                    client.write_all(&sent[..split]).await.unwrap();
                    assert!(
                        reading.as_mut().now_or_never().is_none(),
                        "done after {split} bytes of {sent:?}"
                    );
                    let last = [&sent[split..], b"GET /"].concat();
                    client.write_all(&last).await.unwrap();
                    client.shutdown().await.unwrap();
                    within(reading).await.unwrap()
                };
                assert_eq!(
                    read,
                    carried_as("[2001:db8::1]:1000", "[2001:db8::2]:80"),
                    "split at {split} of {sent:?}"
                );
                assert_eq!(rest(&mut server).await, b"GET /");
            }
        }
    }

    #[tokio::test]
    async fn a_header_sent_byte_by_byte_reads_whole() {
        for sent in [
            header(ProxyVersion::V1, at("192.0.2.1:1000"), at("192.0.2.2:80")),
            header(ProxyVersion::V2, at("192.0.2.1:1000"), at("192.0.2.2:80")),
        ] {
            let (mut client, mut server) = pair().await;
            let mut reading = std::pin::pin!(read_header(&mut server));
            let (last, before) = sent.split_last().unwrap();
            for byte in before {
                client.write_all(&[*byte]).await.unwrap();
                assert!(reading.as_mut().now_or_never().is_none());
            }
            client.write_all(&[*last]).await.unwrap();
            let read = within(reading).await.unwrap();
            assert_eq!(read, carried_as("192.0.2.1:1000", "192.0.2.2:80"));
        }
    }

    #[tokio::test]
    async fn anything_else_is_refused_at_once_and_quoted() {
        let error = read_sent(b"GET / HTTP/1.1\r\n").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no PROXY protocol header (the client sent \"GET / HT...\")"
        );
        // Fewer bytes than any header, the connection still open: refused without waiting.
        let error = read_sent(b"hi\n").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no PROXY protocol header (the client sent \"hi\\n\")"
        );
        for sent in [
            &b"PROXYTCP4 192.0.2.1"[..],
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\0",
        ] {
            let error = read_sent(sent).await;
            assert!(
                matches!(error, Err(HeaderError::Missing { .. })),
                "{error:?}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_headers_are_refused() {
        for sent in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
            b"PROXY TCP4 192.0.2.1 2001:db8::1 56324 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 56324 443\r\n",
            b"PROXY UNKNOWN\r\r\n",
        ] {
            let error = read_sent(sent).await;
            assert!(
                matches!(error, Err(HeaderError::MalformedV1 { .. })),
                "{error:?}"
            );
        }
        let bad_version = [ppp::v2::PROTOCOL_PREFIX, &[0x11, 0x11, 0, 12]].concat();
        let bad_command = [ppp::v2::PROTOCOL_PREFIX, &[0x22, 0x11, 0, 12]].concat();
        let short_addresses = [ppp::v2::PROTOCOL_PREFIX, &[0x21, 0x21, 0, 12]].concat();
        for sent in [bad_version, bad_command, short_addresses] {
            // The fixed part is enough to refuse: the announced bytes are never waited for.
            let error = read_sent(&sent).await;
            assert!(
                matches!(error, Err(HeaderError::MalformedV2(_))),
                "{error:?}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_v1_names_the_line_and_the_fault() {
        let error = read_sent(b"PROXY TCP4 192.0.2.300 198.51.100.2 56324 443\r\n")
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed PROXY v1 header \"PROXY TCP4 192.0.2.300 198.51.100.2 56324 443\\r\\n\": \
             Header contains invalid IP address for the source."
        );
    }

    #[tokio::test]
    async fn over_long_headers_are_refused_without_waiting() {
        let long_line = [&b"PROXY UNKNOWN "[..], &[b'f'; 200]].concat();
        assert!(matches!(
            read_sent(&long_line).await,
            Err(HeaderError::V1TooLong)
        ));
        let huge = [ppp::v2::PROTOCOL_PREFIX, &[0x21, 0x11, 0xff, 0xff]].concat();
        assert!(matches!(
            read_sent(&huge).await,
            Err(HeaderError::V2TooLong { length: 65551 })
        ));
        let just_over = [ppp::v2::PROTOCOL_PREFIX, &[0x21, 0x11, 0x0f, 0xf1]].concat();
        assert!(matches!(
            read_sent(&just_over).await,
            Err(HeaderError::V2TooLong { length: 4097 })
        ));
    }

    #[tokio::test]
    async fn the_v2_limit_itself_is_accepted() {
        let addresses = (at("192.0.2.1:1"), at("192.0.2.2:2"));
        let padding = V2_MAX_LENGTH - V2_FIXED_LENGTH - 12 - 3;
        let sent = v2_with(Command::Proxy, Protocol::Stream, addresses)
            .write_tlv(Type::NoOp, &vec![0; padding])
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(sent.len(), V2_MAX_LENGTH);
        assert_eq!(
            read_sent(&sent).await.unwrap(),
            carried_as("192.0.2.1:1", "192.0.2.2:2")
        );
    }

    #[tokio::test]
    async fn closing_inside_a_header_is_an_error() {
        let v1 = header(ProxyVersion::V1, at("192.0.2.1:1000"), at("192.0.2.2:80"));
        let v2 = header(ProxyVersion::V2, at("192.0.2.1:1000"), at("192.0.2.2:80"));
        for sent in [
            &b"PROX"[..],
            &v1[..20],
            &v1[..v1.len() - 1],
            &v2[..10],
            &v2[..20],
            &v2[..v2.len() - 1],
        ] {
            let (mut client, mut server) = pair().await;
            client.write_all(sent).await.unwrap();
            client.shutdown().await.unwrap();
            let error = within(read_header(&mut server)).await.unwrap_err();
            assert!(matches!(error, HeaderError::Closed), "{sent:?}: {error:?}");
        }
        let (client, mut server) = pair().await;
        drop(client);
        let error = within(read_header(&mut server)).await.unwrap_err();
        assert!(matches!(error, HeaderError::Empty), "{error:?}");
        assert_eq!(
            HeaderError::Closed.to_string(),
            "connection closed inside the PROXY protocol header"
        );
    }

    /// The spec's own examples, byte for byte: what HAProxy's `send-proxy`/`send-proxy-v2` send.
    #[test]
    fn headers_are_the_specs_formats() {
        let (client, listener) = (at("192.168.0.1:56324"), at("192.168.0.11:443"));
        assert_eq!(
            header(ProxyVersion::V1, client, listener),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        let mut v2 = ppp::v2::PROTOCOL_PREFIX.to_vec();
        v2.extend([
            0x21, 0x11, 0, 12, 192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb,
        ]);
        assert_eq!(header(ProxyVersion::V2, client, listener), v2);
        assert_eq!(
            header(ProxyVersion::V1, at("[2001:db8::1]:1"), at("[::1]:2")),
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
        );
        let v6 = header(ProxyVersion::V2, at("[2001:db8::1]:1"), at("[::1]:2"));
        assert_eq!(&v6[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(v6.len(), 16 + 36);
    }

    #[test]
    fn mixed_families_map_the_ipv4_address_into_ipv6() {
        assert_eq!(
            header(
                ProxyVersion::V1,
                at("192.0.2.1:1000"),
                at("[2001:db8::2]:443")
            ),
            b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1000 443\r\n"
        );
        assert_eq!(
            header(
                ProxyVersion::V1,
                at("[2001:db8::1]:1000"),
                at("192.0.2.2:443")
            ),
            b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.2 1000 443\r\n"
        );
        let v2 = header(
            ProxyVersion::V2,
            at("192.0.2.1:1000"),
            at("[2001:db8::2]:443"),
        );
        assert_eq!(v2[13], 0x21);
        assert_eq!(
            &v2[16..32],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]
        );
    }

    #[test]
    fn the_local_header_says_there_is_no_client() {
        let mut v2 = ppp::v2::PROTOCOL_PREFIX.to_vec();
        v2.extend([0x20, 0x00, 0, 0]);
        assert_eq!(local_header(), v2);
    }

    #[tokio::test]
    async fn what_header_builds_read_header_reads_back() {
        let pairs = [
            ("192.0.2.1:1000", "198.51.100.2:443"),
            ("[2001:db8::1]:1000", "[2001:db8::2]:443"),
            ("192.0.2.1:1000", "[2001:db8::2]:443"),
            ("[2001:db8::1]:1000", "192.0.2.2:443"),
            ("0.0.0.0:0", "255.255.255.255:65535"),
        ];
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            for (source, destination) in pairs {
                let sent = header(version, at(source), at(destination));
                assert_eq!(
                    read_sent(&sent).await.unwrap(),
                    carried_as(source, destination),
                    "{version:?} {source} {destination}"
                );
            }
        }
        assert_eq!(read_sent(&local_header()).await.unwrap(), None);
    }
}
