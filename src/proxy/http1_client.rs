//! HTTP/1.1 to servers, driven by the task of the request that uses the connection.
//!
//! hyper's client runs each connection on a task of its own and hands every request, response
//! head and body chunk across channels between that task and the request's. Profiles of the
//! keep-alive benchmark showed that hand-off as the largest user-space cost of a proxied
//! request, so here the request's task writes the head, uploads the body, parses the answer
//! (with httparse, as hyper does) and streams it, with no task or channel in between.
//!
//! The head parser and the body decoder are pure, over bytes in memory: `codec::http1`.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use super::upstream_tls::ServerStream;
use crate::codec::http1::{
    decode, framing, parse_head, Decoded, Delimiting, Framing, Head, MAX_HEAD,
};

/// How long a request that expects `100 Continue` holds its body back for the server's word,
/// as curl waits: a server that ignores the expectation is then sent the body anyway.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);
/// How much a read may take at first: a small response whole. A read that fills it doubles it,
/// up to the largest, so a large body moves in few syscalls; a read far below it halves it.
const MIN_READ: usize = 16 * 1024;
const MAX_READ: usize = 256 * 1024;

/// An idle connection to a server, ready for a request.
pub struct Connection {
    socket: ServerStream,
    /// Read from the server and not yet handed on.
    input: BytesMut,
    /// A request head, encoded; kept for its allocation.
    output: Vec<u8>,
    /// What the next read may take, between `MIN_READ` and `MAX_READ`.
    read_size: usize,
}

/// What a request body must be to go up a connection.
pub trait RequestBody: Body<Data = Bytes, Error: Into<BoxError>> + Unpin {}

impl<B: Body<Data = Bytes, Error: Into<BoxError>> + Unpin> RequestBody for B {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError<B> {
    /// Nothing reached the server, so the request comes back to be sent elsewhere.
    Unsent(Box<Request<B>>, io::Error),
    /// The server may have seen the request.
    Failed(io::Error),
    /// The client's request body broke off or was malformed (a bad chunk, say): the client's
    /// fault, not the server's.
    ClientBody(io::Error),
}

impl<B> SendError<B> {
    pub fn error(&self) -> &io::Error {
        match self {
            SendError::Unsent(_, error)
            | SendError::Failed(error)
            | SendError::ClientBody(error) => error,
        }
    }

    /// The error of an exchange that ended before its response head, by whose fault.
    fn exchange(error: io::Error) -> SendError<B> {
        match error
            .get_ref()
            .is_some_and(|inner| inner.is::<ClientBodyError>())
        {
            true => SendError::ClientBody(error),
            false => SendError::Failed(error),
        }
    }
}

/// What a client's request body failed with, marked as the client's so that it is not taken
/// for the server's.
#[derive(Debug)]
struct ClientBodyError(BoxError);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl Connection {
    pub fn new(stream: impl Into<ServerStream>) -> Connection {
        Connection {
            socket: stream.into(),
            input: BytesMut::new(),
            output: Vec::new(),
            read_size: MIN_READ,
        }
    }

    /// Whether the server has left this idle connection alone: no end of stream and no stray
    /// bytes.
    pub fn is_open(&mut self) -> bool {
        self.socket.is_open()
    }

    /// The TLS settings it was made with (0: none).
    pub fn origination(&self) -> u64 {
        self.socket.origination()
    }

    /// Sends `request` and waits for the response head, uploading the request body meanwhile
    /// (and on, while the response streams, if the server answers before it has all of it).
    ///
    /// Not an `async fn`: see `http::handle`.
    #[allow(clippy::manual_async_fn)] // the point: see above
    pub fn send<B: RequestBody>(
        mut self,
        request: Request<B>,
    ) -> impl Future<Output = Result<Response<ResponseBody<B>>, SendError<B>>> {
        async move {
            let (chunked, upgrade) = match encode_head(&request, &mut self.output) {
                Ok(encoded) => encoded,
                Err(error) => return Err(SendError::Failed(error)),
            };
            let mut written = 0;
            while written < self.output.len() {
                let data = &self.output[written..];
                let sent = poll_fn(|cx| Pin::new(&mut self.socket).poll_write(cx, data)).await;
                match sent {
                    Ok(0) => return Err(SendError::Failed(io::ErrorKind::WriteZero.into())),
                    Ok(n) => written += n,
                    Err(error) if written == 0 => {
                        return Err(SendError::Unsent(Box::new(request), error));
                    }
                    Err(error) => return Err(SendError::Failed(error)),
                }
            }
            let head_request = request.method() == Method::HEAD;
            // Looked up only for a request with a body: most have none.
            let expects_continue = !request.body().is_end_stream()
                && (request.headers().get(header::EXPECT))
                    .is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            // An HTTP/1.0 request is the server's cue to close after answering.
            let persistent_request = request.version() != Version::HTTP_10;
            let mut exchange = Exchange {
                connection: self,
                upload: Upload::new(request.into_body(), chunked, expects_continue),
                upgrade,
            };
            let mut head = poll_fn(|cx| exchange.poll_head(cx))
                .await
                .map_err(SendError::exchange)?;
            // A switch of protocols has no body: what follows its head is the new protocol's.
            let switched = head.status == StatusCode::SWITCHING_PROTOCOLS;
            let framing = match switched {
                true => Delimiting::Length(0),
                false => framing(&head, head_request).map_err(SendError::Failed)?,
            };
            if framing == Delimiting::ChunkedThenClose {
                // Chunked framing wins (RFC 9112 §6.3); the client must not be told the length.
                head.headers.remove(header::CONTENT_LENGTH);
            }
            let reusable =
                !switched && persistent_request && head.persistent && framing.keeps_connection();
            let mut response = Response::new(ResponseBody {
                exchange: Some(exchange),
                framing: framing.into(),
                reusable,
                switched,
            });
            *response.status_mut() = head.status;
            *response.version_mut() = head.version;
            *response.headers_mut() = head.headers;
            Ok(response)
        }
    }
}

/// Writes `request`'s head into `out`; says whether its body goes chunked, and whether it asks
/// to switch protocols (has an Upgrade header, which only a tunnelled request keeps). A body goes with a
/// Content-Length when its length is known (even if a client's Connection header named
/// Content-Length and so removed it); chunked otherwise, and never in an HTTP/1.0 request
/// (RFC 9112 §6.1), which must then have a known length.
fn encode_head<B: RequestBody>(
    request: &Request<B>,
    out: &mut Vec<u8>,
) -> io::Result<(bool, bool)> {
    out.clear();
    let headers = request.headers();
    let body = request.body();
    let length = (!body.is_end_stream()).then(|| body.size_hint().exact());
    let http10 = request.version() == Version::HTTP_10;
    let chunked = matches!(length, Some(None));
    if chunked && http10 {
        return Err(invalid("an HTTP/1.0 request body of unknown length"));
    }
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(if http10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    // The length is this hop's own, written below; a client's Transfer-Encoding stays with a
    // chunked body (it may name a coding before chunked, which goes on as it came).
    let client_coding = chunked && headers.contains_key(header::TRANSFER_ENCODING);
    let mut upgrade = false;
    for (name, value) in headers {
        upgrade |= name == header::UPGRADE;
        let framing =
            name == header::CONTENT_LENGTH || (name == header::TRANSFER_ENCODING && !client_coding);
        if length.is_some() && framing {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        Some(Some(length)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Some(None) if !client_coding => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Some(None) | None => {}
    }
    out.extend_from_slice(b"\r\n");
    Ok((chunked, upgrade))
}

/// A request in progress on a connection: its body going up, the answer coming down.
struct Exchange<B> {
    connection: Connection,
    upload: Upload<B>,
    /// The request asked to switch protocols, so a 101 is its answer, not an error.
    upgrade: bool,
}

impl<B: RequestBody> Exchange<B> {
    /// The final response head, 1xx interim answers skipped.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Head>> {
        loop {
            self.poll_upload(cx)?;
            if let Some(head) = parse_head(&mut self.connection.input)? {
                if head.status.is_informational() {
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        if self.upgrade {
                            return Poll::Ready(Ok(head));
                        }
                        return Poll::Ready(Err(invalid("a switch of protocols nobody asked for")));
                    }
                    // The server wants the body: reading it from the client is what has hyper
                    // send the client its own 100. Other interim answers (102, 103) say
                    // nothing about the body (RFC 9110 §10.1.1).
                    if head.status == StatusCode::CONTINUE {
                        self.upload.go_on();
                    }
                    continue;
                }
                if self.upload.is_held() {
                    // Refused before the body (RFC 9110 §10.1.1): it is not sent, and the
                    // connection, which the server may still read it from, is not reused.
                    self.upload.abandon();
                }
                return Poll::Ready(Ok(head));
            }
            if self.connection.input.len() >= MAX_HEAD {
                return Poll::Ready(Err(invalid("response head too large")));
            }
            if ready!(self.poll_read(cx))? == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection before answering",
                )));
            }
        }
    }

    /// Moves the upload on as far as it goes without waiting. A client whose body fails ends
    /// the exchange; a server that stops taking it may still answer (an early 413, say), so
    /// that only ends the upload.
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.upload.poll_send(&mut self.connection.socket, cx) {
            Poll::Ready(Err(UploadError::Client(error))) => Err(error),
            Poll::Ready(Err(UploadError::Server(error))) => {
                tracing::debug!(%error, "the server stopped taking the request body");
                self.upload.abandon();
                Ok(())
            }
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let connection = &mut self.connection;
        let size = connection.read_size;
        let input = &mut connection.input;
        if input.capacity() - input.len() < size / 4 {
            input.reserve(size);
        }
        // At most `size`, even when more room is left over from earlier.
        let room = (input.capacity() - input.len()).min(size);
        let mut limited = (&mut *input).limit(room);
        let read = ready!(poll_read_buf(
            Pin::new(&mut connection.socket),
            cx,
            &mut limited
        ))?;
        connection.read_size = if read == room {
            (size * 2).min(MAX_READ)
        } else if read < size / 8 {
            (size / 2).max(MIN_READ)
        } else {
            size
        };
        Poll::Ready(Ok(read))
    }
}

/// A server's response body, read from the connection as the client takes it.
pub struct ResponseBody<B> {
    /// `None` once the connection has been taken back for reuse.
    exchange: Option<Exchange<B>>,
    framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    reusable: bool,
    /// The answer is a 101: the connection now carries another protocol.
    switched: bool,
}

impl<B: RequestBody> ResponseBody<B> {
    /// The connection, if the body has been read whole, the request body sent whole, and the
    /// server means to keep the connection.
    pub fn take_reusable(&mut self) -> Option<Connection> {
        if self.framing != Framing::Done || !self.reusable {
            return None;
        }
        let exchange = self.exchange.take()?;
        (exchange.upload.is_done() && exchange.connection.input.is_empty())
            .then_some(exchange.connection)
    }

    /// After a 101, the connection for the new protocol, with what the server already sent
    /// in it. Only once the request body has all gone up: the server reads the new protocol
    /// right after it.
    pub fn take_switched(&mut self) -> Option<(ServerStream, BytesMut)> {
        if !self.switched || !self.exchange.as_ref()?.upload.is_done() {
            return None;
        }
        let connection = self.exchange.take()?.connection;
        Some((connection.socket, connection.input))
    }
}

impl<B: RequestBody> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        let Some(exchange) = this.exchange.as_mut() else {
            return Poll::Ready(None);
        };
        exchange.poll_upload(cx)?;
        loop {
            match decode(&mut this.framing, &mut exchange.connection.input)? {
                Decoded::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Decoded::Trailers(trailers) => {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Decoded::Progress => continue,
                Decoded::End => return Poll::Ready(None),
                Decoded::NeedInput => {}
            }
            if ready!(exchange.poll_read(cx))? == 0 {
                if this.framing == Framing::UntilClose {
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection mid-body",
                ))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(remaining) => SizeHint::with_exact(remaining),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A request body on its way to the server, framed as its head said.
struct Upload<B> {
    /// `None` once it has all been read from the client (or abandoned).
    body: Option<B>,
    chunked: bool,
    /// Framing and data read from the client and not yet written.
    pending: VecDeque<Bytes>,
    /// The server stopped taking it: the connection can't be reused.
    abandoned: bool,
    /// For a request that expects `100 Continue`: the body is not read from the client until
    /// the server says continue, or this runs out.
    held: Option<Pin<Box<Sleep>>>,
}

enum UploadError {
    Client(io::Error),
    Server(io::Error),
}

impl<B: RequestBody> Upload<B> {
    fn new(body: B, chunked: bool, expects_continue: bool) -> Upload<B> {
        let body = (!body.is_end_stream()).then_some(body);
        let held = (expects_continue && body.is_some())
            .then(|| Box::pin(tokio::time::sleep(CONTINUE_WAIT)));
        Upload {
            body,
            chunked,
            pending: VecDeque::new(),
            abandoned: false,
            held,
        }
    }

    fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// The server has said continue.
    fn go_on(&mut self) {
        self.held = None;
    }

    fn is_done(&self) -> bool {
        self.body.is_none() && self.pending.is_empty() && !self.abandoned
    }

    fn abandon(&mut self) {
        self.body = None;
        self.pending.clear();
        self.abandoned = true;
        self.held = None;
    }

    /// Writes what the client has sent so far; ready once the whole body is written.
    fn poll_send(
        &mut self,
        socket: &mut ServerStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), UploadError>> {
        if let Some(held) = &mut self.held {
            ready!(held.as_mut().poll(cx));
            self.held = None;
        }
        loop {
            while !self.pending.is_empty() {
                let mut slices = [IoSlice::new(&[]); 3];
                for (slice, data) in slices.iter_mut().zip(&self.pending) {
                    *slice = IoSlice::new(data);
                }
                let written = ready!(Pin::new(&mut *socket).poll_write_vectored(cx, &slices))
                    .map_err(UploadError::Server)?;
                if written == 0 {
                    return Poll::Ready(Err(UploadError::Server(io::ErrorKind::WriteZero.into())));
                }
                self.consume(written);
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers are dropped: servers behind a proxy rarely ask for them.
                    if let Ok(data) = frame.into_data() {
                        self.queue(data);
                    }
                }
                Some(Err(error)) => {
                    let error = io::Error::other(ClientBodyError(error.into()));
                    return Poll::Ready(Err(UploadError::Client(error)));
                }
                None => {
                    self.body = None;
                    if self.chunked {
                        self.pending.push_back(Bytes::from_static(b"0\r\n\r\n"));
                    }
                }
            }
        }
    }

    fn queue(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        if self.chunked {
            let size = format!("{:x}\r\n", data.len());
            self.pending.push_back(Bytes::from(size));
            self.pending.push_back(data);
            self.pending.push_back(Bytes::from_static(b"\r\n"));
        } else {
            self.pending.push_back(data);
        }
    }

    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.pending.front_mut() else {
                return;
            };
            let take = written.min(front.len());
            front.advance(take);
            written -= take;
            if front.is_empty() {
                self.pending.pop_front();
            }
        }
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use futures_util::stream::{self, StreamExt};
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A client connection, and the server's end of it for the test to play the server.
    async fn connected() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Connection::new(client), server)
    }

    /// What the server got, up to and including `end`.
    async fn read_until(server: &mut TcpStream, end: &[u8]) -> String {
        let mut received = Vec::new();
        while !received.ends_with(end) {
            let mut byte = [0];
            assert_eq!(server.read(&mut byte).await.unwrap(), 1, "{received:?}");
            received.push(byte[0]);
        }
        String::from_utf8(received).unwrap()
    }

    fn get(path: &str) -> Request<Empty<Bytes>> {
        Request::get(path)
            .header("host", "example.com")
            .body(Empty::new())
            .unwrap()
    }

    type Answer = Result<Response<ResponseBody<Empty<Bytes>>>, SendError<Empty<Bytes>>>;

    /// A `GET /` that its server, once it has the request head, answers with `answer`; the
    /// server's end comes back too, open.
    async fn get_answered(answer: &[u8]) -> (Answer, TcpStream) {
        let (connection, mut server) = connected().await;
        let exchange = tokio::spawn(connection.send(get("/")));
        read_until(&mut server, b"\r\n\r\n").await;
        server.write_all(answer).await.unwrap();
        (exchange.await.unwrap(), server)
    }

    async fn body_of<B: RequestBody>(response: &mut Response<ResponseBody<B>>) -> Bytes {
        response.body_mut().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_response_with_a_length_is_read_whole_and_its_connection_reused() {
        let (connection, mut server) = connected().await;
        let exchange = tokio::spawn(connection.send(get("/a?b=1")));
        let head = read_until(&mut server, b"\r\n\r\n").await;
        assert_eq!(head, "GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\n\r\n");
        (server.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-a"], "1");
        assert_eq!(body_of(&mut response).await, "hello");
        let connection = response.body_mut().take_reusable().expect("reusable");

        let exchange = tokio::spawn(connection.send(get("/second")));
        assert!(read_until(&mut server, b"\r\n\r\n")
            .await
            .starts_with("GET /second "));
        (server.write_all(b"HTTP/1.1 204 No Content\r\n\r\n"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.status(), 204);
        assert!(response.body().is_end_stream());
        assert!(response.body_mut().take_reusable().is_some());
    }

    #[tokio::test]
    async fn a_head_response_has_no_body_whatever_its_length_says() {
        let (connection, mut server) = connected().await;
        let request = Request::head("/").body(Empty::<Bytes>::new()).unwrap();
        let exchange = tokio::spawn(connection.send(request));
        read_until(&mut server, b"\r\n\r\n").await;
        (server.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.headers()["content-length"], "10");
        assert_eq!(body_of(&mut response).await, "");
        assert!(response.body_mut().take_reusable().is_some());
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_a_switch_not_asked_for_refused() {
        let interim_then_final =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (answer, _server) = get_answered(interim_then_final).await;
        let mut response = answer.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(body_of(&mut response).await, "ok");

        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        let (answer, _server) = get_answered(upgrade).await;
        assert!(matches!(
            answer,
            Err(SendError::Failed(error)) if error.kind() == io::ErrorKind::InvalidData
        ));
    }

    #[tokio::test]
    async fn a_switch_asked_for_hands_over_the_connection_with_what_followed_the_head() {
        let (connection, mut server) = connected().await;
        let request = Request::get("/chat")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let exchange = tokio::spawn(connection.send(request));
        let head = read_until(&mut server, b"\r\n\r\n").await;
        assert!(head.contains("upgrade: websocket\r\n"), "{head}");
        (server.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nfirst"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.status(), 101);
        assert!(
            response.body_mut().take_reusable().is_none(),
            "never pooled"
        );
        let (mut socket, already) = response.body_mut().take_switched().unwrap();
        assert_eq!(&already[..], b"first");
        server.write_all(b" then more").await.unwrap();
        let mut more = [0; 10];
        tokio::io::AsyncReadExt::read_exact(&mut socket, &mut more)
            .await
            .unwrap();
        assert_eq!(&more, b" then more");
    }

    #[tokio::test]
    async fn a_body_without_framing_runs_to_the_close_and_ends_the_connection() {
        let (answer, mut server) = get_answered(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await;
        let mut response = answer.unwrap();
        server.write_all(b"the end").await.unwrap();
        drop(server);
        assert_eq!(body_of(&mut response).await, "until the end");
        assert!(response.body_mut().take_reusable().is_none());
    }

    #[tokio::test]
    async fn a_server_closing_mid_body_is_an_error_not_a_short_body() {
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
        let (answer, server) = get_answered(short).await;
        drop(server);
        let response = answer.unwrap();
        assert!(response.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn a_server_closing_before_answering_fails_the_request() {
        let (connection, mut server) = connected().await;
        let exchange = tokio::spawn(connection.send(get("/")));
        read_until(&mut server, b"\r\n\r\n").await;
        drop(server);
        assert!(matches!(
            exchange.await.unwrap(),
            Err(SendError::Failed(error)) if error.kind() == io::ErrorKind::UnexpectedEof
        ));
    }

    #[tokio::test]
    async fn chunked_framing_wins_over_a_length_and_the_length_is_not_passed_on() {
        let (answer, _server) = get_answered(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        let mut response = answer.unwrap();
        assert!(!response.headers().contains_key("content-length"));
        assert_eq!(body_of(&mut response).await, "hello");
        assert!(
            response.body_mut().take_reusable().is_none(),
            "a server that frames twice is not trusted with another request"
        );
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_goes_up_chunked_and_a_known_one_as_is() {
        let (connection, mut server) = connected().await;
        let frames = stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from("abc"))),
            Ok(Frame::data(Bytes::from("de"))),
        ]);
        let request = Request::post("/up").body(StreamBody::new(frames)).unwrap();
        let exchange = tokio::spawn(connection.send(request));
        let head = read_until(&mut server, b"\r\n\r\n").await;
        assert_eq!(
            head,
            "POST /up HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let body = read_until(&mut server, b"0\r\n\r\n").await;
        assert_eq!(body, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        (server.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.status(), 201);
        let connection = response.body_mut().take_reusable().expect("reusable");

        let request = Request::put("/up")
            .header("content-length", "4")
            .body(Full::new(Bytes::from("data")))
            .unwrap();
        let exchange = tokio::spawn(connection.send(request));
        let head = read_until(&mut server, b"\r\n\r\n").await;
        assert_eq!(head, "PUT /up HTTP/1.1\r\ncontent-length: 4\r\n\r\n");
        assert_eq!(read_until(&mut server, b"data").await, "data");
        (server.write_all(b"HTTP/1.1 204 No Content\r\n\r\n"))
            .await
            .unwrap();
        assert_eq!(exchange.await.unwrap().unwrap().status(), 204);
    }

    #[tokio::test]
    async fn a_known_length_goes_up_as_such_and_http_1_0_is_never_chunked() {
        // Sent with no Content-Length (a client's Connection header can name it away): the
        // body's own length goes up.
        let (connection, mut server) = connected().await;
        let request = Request::post("/up")
            .version(Version::HTTP_10)
            .body(Full::new(Bytes::from("data")))
            .unwrap();
        let exchange = tokio::spawn(connection.send(request));
        let head = read_until(&mut server, b"\r\n\r\n").await;
        assert_eq!(head, "POST /up HTTP/1.0\r\ncontent-length: 4\r\n\r\n");
        assert_eq!(read_until(&mut server, b"data").await, "data");
        (server.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert!(response.body_mut().take_reusable().is_none(), "HTTP/1.0");

        let (connection, _server) = connected().await;
        let frames = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from("abc")))]);
        let request = Request::post("/up")
            .version(Version::HTTP_10)
            .body(StreamBody::new(frames))
            .unwrap();
        assert!(matches!(
            connection.send(request).await,
            Err(SendError::Failed(error)) if error.kind() == io::ErrorKind::InvalidData
        ));
    }

    #[tokio::test]
    async fn a_body_expecting_100_continue_is_not_read_when_the_server_refuses_first() {
        let (connection, mut server) = connected().await;
        let read = Arc::new(AtomicBool::new(false));
        let reading = Arc::clone(&read);
        let frames = stream::poll_fn(move |_| {
            reading.store(true, Ordering::SeqCst);
            Poll::Ready(Some(Ok::<_, Infallible>(Frame::data(Bytes::from("abc")))))
        })
        .take(1);
        let request = Request::post("/up")
            .header("expect", "100-continue")
            .body(StreamBody::new(frames))
            .unwrap();
        let exchange = tokio::spawn(connection.send(request));
        let head = read_until(&mut server, b"\r\n\r\n").await;
        assert!(head.contains("expect: 100-continue\r\n"), "{head}");
        (server.write_all(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"))
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.status(), 417);
        assert_eq!(body_of(&mut response).await, "");
        assert!(!read.load(Ordering::SeqCst), "the body was read");
        assert!(
            response.body_mut().take_reusable().is_none(),
            "the server may still read a body from it"
        );
    }

    #[tokio::test]
    async fn a_chunked_answer_from_an_http_1_0_server_is_read_and_its_connection_closed() {
        let (answer, _server) = get_answered(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        let mut response = answer.unwrap();
        assert_eq!(body_of(&mut response).await, "hello");
        assert!(response.body_mut().take_reusable().is_none());
    }

    #[tokio::test]
    async fn an_answer_before_the_upload_ends_is_passed_on_and_the_connection_not_reused() {
        let (connection, mut server) = connected().await;
        let endless = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from("part")))])
            .chain(stream::pending());
        let request = Request::post("/up").body(StreamBody::new(endless)).unwrap();
        let exchange = tokio::spawn(connection.send(request));
        read_until(&mut server, b"4\r\npart\r\n").await;
        server
            .write_all(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut response = exchange.await.unwrap().unwrap();
        assert_eq!(response.status(), 413);
        assert_eq!(body_of(&mut response).await, "");
        assert!(response.body_mut().take_reusable().is_none());
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_seen_as_closed() {
        let (mut connection, server) = connected().await;
        assert!(connection.is_open());
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        while connection.is_open() {
            assert!(Instant::now() < deadline, "the close was never seen");
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn whether_the_server_keeps_the_connection() {
        let persistent = |head: &[u8]| {
            let head = parse_head(&mut BytesMut::from(head)).unwrap().unwrap();
            head.persistent
        };
        assert!(persistent(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!persistent(
            b"HTTP/1.1 200 OK\r\nConnection: Upgrade, close\r\n\r\n"
        ));
        assert!(!persistent(b"HTTP/1.0 200 OK\r\n\r\n"));
        assert!(persistent(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"
        ));
    }

    #[test]
    fn a_head_is_taken_whole_from_the_input_or_not_at_all() {
        let mut input = BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\n"[..]);
        assert!(parse_head(&mut input).unwrap().is_none());
        input.extend_from_slice(b"A: 2\r\n\r\nbody");
        let head = parse_head(&mut input).unwrap().unwrap();
        let values: Vec<_> = head.headers.get_all("a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&input[..], b"body");
        assert!(parse_head(&mut BytesMut::from(&b"HTTP/1.1 2000 OK\r\n\r\n"[..])).is_err());
        assert!(parse_head(&mut BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nA B: 1\r\n\r\n"[..]
        ))
        .is_err());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing_of = |head: &[u8], head_request: bool| {
            let head = parse_head(&mut BytesMut::from(head)).unwrap().unwrap();
            framing(&head, head_request).map_err(|error| error.to_string())
        };
        use Delimiting::*;
        let ok = |delimiting| Ok(delimiting);
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", false),
            ok(Length(7))
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true),
            ok(Length(0))
        );
        assert_eq!(
            framing_of(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
                false
            ),
            ok(Length(0))
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            ok(Length(0))
        );
        assert_eq!(
            framing_of(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n",
                false
            ),
            ok(Length(7))
        );
        assert_eq!(
            framing_of(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
                false
            ),
            ok(Chunked)
        );
        assert_eq!(
            framing_of(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                false
            ),
            ok(UntilClose)
        );
        assert_eq!(
            framing_of(b"HTTP/1.1 200 OK\r\n\r\n", false),
            ok(UntilClose)
        );
        for bad in ["7, 8", "-1", "", "0x10", "99999999999999999999999"] {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(framing_of(head.as_bytes(), false).is_err(), "{bad:?}");
        }
    }

    /// Decodes `encoded` as it would arrive `piece` bytes at a time: the body, its trailers,
    /// and what is left of the input.
    fn decode_in_pieces(
        encoded: &[u8],
        piece: usize,
    ) -> io::Result<(Vec<u8>, HeaderMap, BytesMut)> {
        let mut framing = Framing::ChunkSize;
        let mut input = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = HeaderMap::new();
        let mut pieces = encoded.chunks(piece);
        loop {
            match decode(&mut framing, &mut input)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Progress => {}
                Decoded::Trailers(fields) => trailers = fields,
                Decoded::End => return Ok((body, trailers, input)),
                Decoded::NeedInput => match pieces.next() {
                    Some(piece) => input.extend_from_slice(piece),
                    None => return Err(io::ErrorKind::UnexpectedEof.into()),
                },
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let encoded =
            b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for piece in 1..=encoded.len() {
            let (body, trailers, rest) = decode_in_pieces(encoded, piece).unwrap();
            assert_eq!(body, b"hello 0123456789", "pieces of {piece}");
            assert_eq!(trailers["trailer"], "x", "pieces of {piece}");
            assert!(
                rest.is_empty() || b"NEXT".starts_with(&rest),
                "pieces of {piece}"
            );
        }
        let broken: [&[u8]; 6] = [
            b"5\r\nhelloXX0\r\n\r\n",
            b"zz\r\n",
            b"5\r\nhel",
            // A size line without digits, which httparse reads as 0: the body would end early.
            b"A\r\n0123456789\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b";ext\r\nhello\r\n0\r\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
        ];
        for broken in broken {
            for piece in [1, broken.len()] {
                assert!(
                    decode_in_pieces(broken, piece).is_err(),
                    "{broken:?} in pieces of {piece}"
                );
            }
        }
    }
}
