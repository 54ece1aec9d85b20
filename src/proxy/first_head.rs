//! A plain http client's first request head, as gathered before hyper's connection is built:
//! where it ends, and an HTTP/1.x version hyper would refuse.
//!
//! A client that holds a connection open halfway through its head then costs the bytes it has
//! sent, rather than hyper's connection with its buffers (8 KiB to read and 8 KiB to write).

/// Whether `received` holds a whole request head: a request line and fields ended by an empty
/// line (CRLF, or a bare LF as httparse also takes). `searched` bytes were already searched
/// without finding the end, so that a head arriving a byte at a time is scanned once.
pub fn is_complete(received: &[u8], searched: usize) -> bool {
    // Empty lines before the request line are skipped (RFC 9112 §2.2), as httparse does.
    let start = (received.iter())
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .unwrap_or(received.len());
    // Usually the head came whole and nothing after it: its end is the buffer's.
    if start + 3 < received.len()
        && matches!(received, [.., b'\n', b'\n'] | [.., b'\n', b'\r', b'\n'])
    {
        return true;
    }
    // Back by two, so that an end split across reads is found.
    let from = start.max(searched.saturating_sub(2));
    memchr::memchr_iter(b'\n', &received[from..])
        .any(|at| matches!(&received[from + at + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

/// `head` with an HTTP/1.2 to 1.9 request line made 1.1, and `Connection: close` added; `None`
/// for any other request line.
///
/// RFC 9110 §6.2 has a request of a higher minor version handled as the highest one we
/// implement; hyper (httparse) refuses any minor version but 0 and 1. Rewritten in the first
/// head only, so later requests on the connection would be refused again: the connection
/// closes after this one answer instead, which a client of any version must expect.
pub fn as_http_1_1(head: &[u8]) -> Option<Vec<u8>> {
    let start = (head.iter()).position(|&byte| byte != b'\r' && byte != b'\n')?;
    let line_end = start + memchr::memchr(b'\n', &head[start..])?;
    let line = &head[start..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line {
        [.., b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => {}
        _ => return None,
    }
    const CLOSE: &[u8] = b"Connection: close\r\n";
    let minor = start + line.len() - 1;
    let mut rewritten = Vec::with_capacity(head.len() + CLOSE.len());
    rewritten.extend_from_slice(&head[..minor]);
    rewritten.push(b'1');
    rewritten.extend_from_slice(&head[minor + 1..=line_end]);
    rewritten.extend_from_slice(CLOSE);
    rewritten.extend_from_slice(&head[line_end + 1..]);
    Some(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_complete_at_its_empty_line_however_it_arrived() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 0..head.len() {
            // As if the first `split` bytes came in an earlier read and were searched then.
            assert!(!is_complete(&head[..split], 0), "{split}");
            assert!(is_complete(head, split), "{split}");
        }
        assert!(is_complete(b"GET / HTTP/1.1\nHost: x\n\nbody", 0));
        assert!(is_complete(b"GET / HTTP/1.0\r\n\r\n", 0));
        assert!(!is_complete(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ", 0));
        // Empty lines before the request line end nothing.
        assert!(!is_complete(b"\r\n\r\n\nGET / HTTP/1.1\r\n", 0));
        assert!(is_complete(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 3));
        assert!(!is_complete(b"", 0));
    }

    #[test]
    fn http_1_2_to_1_9_are_read_as_1_1_and_the_connection_closed_after() {
        assert_eq!(
            as_http_1_1(b"GET /a HTTP/1.2\r\nHost: x\r\n\r\n").as_deref(),
            Some(&b"GET /a HTTP/1.1\r\nConnection: close\r\nHost: x\r\n\r\n"[..])
        );
        assert_eq!(
            as_http_1_1(b"\r\nPOST / HTTP/1.9\nHost: x\n\nbody").as_deref(),
            Some(&b"\r\nPOST / HTTP/1.1\nConnection: close\r\nHost: x\n\nbody"[..])
        );
        for untouched in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.12\r\n\r\n",
            b"GET /HTTP/1.2 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.2",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(as_http_1_1(untouched), None, "{untouched:?}");
        }
    }
}
