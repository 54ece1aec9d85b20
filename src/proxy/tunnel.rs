//! Upgraded connections (WebSocket): which requests may switch protocols, how their server is
//! asked, what the client is answered, and the tunnel that then joins the two byte for byte
//! until a side closes or both stay quiet for `timeouts.tunnel`.
//!
//! An HTTP/1.1 client's `Upgrade` goes to the server on a connection of its own, never pooled.
//! An HTTP/2 client's extended CONNECT with `:protocol = websocket` (RFC 8441) reaches the
//! HTTP/1.1 server as a WebSocket handshake (RFC 6455 §4.1), and the server's 101 becomes the
//! client's 200.
//!
//! Either side's end of stream ends the tunnel, once what it sent is written, as nginx does:
//! WebSocket closes with frames, and its server closes TCP first (RFC 6455 §7.1.1), so no
//! half-closed state is kept.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::activity::Activity;
use super::client::Client;
use super::exchange::PendingLine;
use super::forward::Finish;
use super::headers;
use super::local::Local;
use super::upstream::ResponseBody;
use super::upstream_tls::ServerStream;
use super::FrontendRuntime;
use crate::address_text;
use crate::stats::FrontendStats;

/// A tunnel, ready to run once hyper hands the client's connection over.
pub type Joined = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What each direction reads at once.
const BUFFER: usize = 16 * 1024;
/// How long closing a side may take (a TLS close_notify into a full socket buffer, say).
const CLOSE_LIMIT: Duration = Duration::from_secs(1);
/// RFC 6455 §1.3: what a server appends to the key before hashing it into its accept value.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// A request that may switch protocols, with the client's side of the switch.
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    kind: Kind,
}

enum Kind {
    /// HTTP/1.1 `Upgrade`: the protocols the server is offered (those the frontend allows).
    Http1 { protocols: HeaderValue },
    /// HTTP/2 extended CONNECT for WebSocket: the key of the handshake made for the server.
    WebSocketOverH2 { key: HeaderValue },
}

/// The switch `request` asks for, if the frontend `allowed` it; an HTTP/2 WebSocket request
/// becomes the GET of a handshake. Otherwise `None`, and the request goes on as any other
/// (its Upgrade header removed with the hop-by-hop ones; a CONNECT refused).
///
/// hyper marks only requests with an Upgrade header or CONNECT, so others cost a branch. Boxed:
/// the request's future, moved whole for every request, holds it across the server's answer.
/// Tunnels one HTTP/2 connection may hold open at once. Each holds a connection to its server
/// for as long as it lasts, and `max_connections` counts client connections, not streams: past
/// this, one client could hold a server connection per stream hyper allows.
pub const MAX_PER_CONNECTION: usize = 8;

/// Refuses a switch asked for on a connection already holding [`MAX_PER_CONNECTION`] tunnels
/// (`open`): 429, as a client over its share (RFC 6585 §4).
pub fn room(asked: bool, open: usize) -> Result<(), Local> {
    match asked && open >= MAX_PER_CONNECTION {
        false => Ok(()),
        true => Err(Local::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many tunnels open on this connection\n",
            "rejected",
        )),
    }
}

pub fn requested(request: &mut Request<Incoming>, allowed: &[String]) -> Option<Box<Upgrade>> {
    let on_upgrade = request.extensions_mut().remove::<OnUpgrade>()?;
    let kind = match request.version() {
        Version::HTTP_2 => websocket_over_h2(request, allowed)?,
        _ => http1_upgrade(request, allowed)?,
    };
    Some(Box::new(Upgrade { on_upgrade, kind }))
}

fn websocket_over_h2(request: &mut Request<Incoming>, allowed: &[String]) -> Option<Kind> {
    let protocol = request.extensions_mut().remove::<hyper::ext::Protocol>()?;
    let websocket = request.method() == Method::CONNECT
        && protocol.as_str().eq_ignore_ascii_case("websocket")
        && allowed.iter().any(|allowed| allowed == "websocket");
    if !websocket {
        return None;
    }
    // Rules, the access log excepted, see the request the server will get.
    *request.method_mut() = Method::GET;
    Some(Kind::WebSocketOverH2 { key: new_key() })
}

/// RFC 9110 §7.8: the client names `upgrade` in Connection. A request with a body is not
/// switched: the server would read the new protocol right after it.
fn http1_upgrade(request: &Request<Incoming>, allowed: &[String]) -> Option<Kind> {
    if request.method() == Method::CONNECT || !http_body::Body::is_end_stream(request.body()) {
        return None;
    }
    let headers = request.headers();
    let asks = (headers.get_all(header::CONNECTION).iter())
        .any(|value| has_token(value.as_bytes(), b"upgrade"));
    if !asks {
        return None;
    }
    Some(Kind::Http1 {
        protocols: allowed_protocols(headers, allowed)?,
    })
}

/// Whether a comma-separated list holds `token` (in any case).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    (list.split(|&byte| byte == b',')).any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// The Upgrade protocols the frontend allows, in the client's order: its own value when it
/// offered nothing else.
fn allowed_protocols(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let mut values = headers.get_all(header::UPGRADE).iter();
    let first = values.next()?;
    let single = values.next().is_none();
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut all = true;
    for value in headers.get_all(header::UPGRADE) {
        for offered in value.as_bytes().split(|&byte| byte == b',') {
            let offered = offered.trim_ascii();
            if offered.is_empty() {
                continue;
            }
            // `name/version`: allowed by its name, or by the two together.
            let name = offered
                .split(|&byte| byte == b'/')
                .next()
                .unwrap_or(offered);
            let is_allowed = allowed.iter().any(|allowed| {
                let allowed = allowed.as_bytes();
                allowed.eq_ignore_ascii_case(offered) || allowed.eq_ignore_ascii_case(name)
            });
            if is_allowed {
                kept.push(offered);
            } else {
                all = false;
            }
        }
    }
    match (kept.is_empty(), all && single) {
        (true, _) => None,
        (false, true) => Some(first.clone()),
        (false, false) => HeaderValue::from_bytes(&kept.join(&b", "[..])).ok(),
    }
}

/// A WebSocket key (RFC 6455 §4.1): 16 random bytes in base64.
fn new_key() -> HeaderValue {
    let mut nonce = [0u8; 16];
    // The system's random source failing leaves a fixed key: the handshake still checks out,
    // and the key is no secret (it only proves the server read the request).
    let _ = aws_lc_rs::rand::fill(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    HeaderValue::from_str(&key).expect("base64 is a valid header value")
}

/// The Sec-WebSocket-Accept a server must answer `key` with (RFC 6455 §4.2.2).
fn accept_for(key: &HeaderValue) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(context.finish())
}

impl Upgrade {
    /// Asks the server to switch: added to the request after the proxy's hop-by-hop hygiene
    /// (and before the rules' own headers).
    pub fn ask_server(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        match &self.kind {
            Kind::Http1 { protocols } => {
                headers.insert(header::UPGRADE, protocols.clone());
            }
            Kind::WebSocketOverH2 { key } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(&SEC_WEBSOCKET_KEY, key.clone());
                headers.insert(&SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
        }
    }
}

/// A server's answer to a request that asked to switch protocols.
pub enum Answer {
    /// Any other answer, streamed to the client as usual.
    Ordinary(Response<ResponseBody>, Finish),
    /// The server switched: the client's answer, and the tunnel to run once it is sent.
    Switched(Response<Full<Bytes>>, Tunnel),
}

const SERVER_REFUSED_SWITCH: Local =
    Local::new(StatusCode::BAD_GATEWAY, "bad gateway\n", "bad_gateway");

/// Turns the server's 101 into the client's answer: a 101 naming the protocol the server chose
/// (HTTP/1.1), or a 200 once the server's accept value proves the handshake (HTTP/2). A 2xx to
/// an HTTP/2 WebSocket request would tell the client its tunnel is open when it is not: 502.
pub fn answer(
    mut response: Response<ResponseBody>,
    finish: Finish,
    upgrade: Upgrade,
) -> Result<Answer, Local> {
    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let protocol = match &upgrade.kind {
        Kind::Http1 { .. } if !switched => return Ok(Answer::Ordinary(response, finish)),
        Kind::Http1 { .. } => match response.headers().get(header::UPGRADE) {
            Some(protocol) => Some(protocol.clone()),
            None => {
                tracing::warn!("server switched protocols without naming one");
                return Err(SERVER_REFUSED_SWITCH);
            }
        },
        Kind::WebSocketOverH2 { .. } if !switched && response.status().is_success() => {
            tracing::warn!(status = %response.status(), "server answered a WebSocket handshake without switching");
            return Err(SERVER_REFUSED_SWITCH);
        }
        Kind::WebSocketOverH2 { .. } if !switched => return Ok(Answer::Ordinary(response, finish)),
        Kind::WebSocketOverH2 { key } => {
            let accepted = (response.headers().get(&SEC_WEBSOCKET_ACCEPT))
                .is_some_and(|accept| accept.as_bytes() == accept_for(key).as_bytes());
            if !accepted {
                tracing::warn!("server's Sec-WebSocket-Accept does not answer the handshake's key");
                return Err(SERVER_REFUSED_SWITCH);
            }
            None
        }
    };
    let Some((server, already)) = response.body_mut().take_switched() else {
        return Err(SERVER_REFUSED_SWITCH);
    };
    let (mut parts, _) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    match protocol {
        Some(protocol) => {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, protocol);
            parts.version = Version::HTTP_11;
        }
        None => {
            parts.headers.remove(&SEC_WEBSOCKET_ACCEPT);
            parts.status = StatusCode::OK;
        }
    }
    let tunnel = Tunnel {
        on_upgrade: upgrade.on_upgrade,
        server,
        already,
        finish,
        over_h2: matches!(upgrade.kind, Kind::WebSocketOverH2 { .. }),
    };
    Ok(Answer::Switched(
        Response::from_parts(parts, Full::new(Bytes::new())),
        tunnel,
    ))
}

/// Both sides of a switched connection, not yet joined.
pub struct Tunnel {
    on_upgrade: OnUpgrade,
    server: ServerStream,
    /// What the server sent after its 101, for the client first.
    already: BytesMut,
    /// Keeps the server counted busy while the tunnel lasts.
    finish: Finish,
    /// The client's side is an HTTP/2 stream.
    over_h2: bool,
}

/// Who a tunnel joins, for its log lines.
pub struct Ends {
    pub client: Arc<Client>,
    pub frontend: Arc<FrontendRuntime>,
    pub server: Box<str>,
    /// The handshake's access log line, written when the tunnel closes.
    pub line: Option<PendingLine>,
}

impl Tunnel {
    /// Starts the tunnel once the answer is on its way: an HTTP/1.1 connection's task runs it
    /// when hyper lets go of the connection; an HTTP/2 stream's runs on a task of its own,
    /// beside the connection's other streams.
    pub fn start(self, ends: Ends) {
        let client = Arc::clone(&ends.client);
        let over_h2 = self.over_h2;
        let joined = self.join(ends);
        match over_h2 {
            true => drop(tokio::spawn(joined)),
            false => client.set_tunnel(joined),
        }
    }

    /// The tunnel as a future: it waits for hyper to hand the client's connection over, then
    /// joins it to the server's until a side closes or both are quiet for `timeouts.tunnel`.
    /// Counted on the client's connection (and the frontend) from now.
    fn join(self, ends: Ends) -> Joined {
        let open = (
            ends.client.tunnel_opened(),
            Current::open(&ends.frontend.stats),
        );
        Box::pin(async move {
            let started = Instant::now();
            let (end, up, down) = self.run(&ends).await;
            let frontend = &ends.frontend.config.name;
            let client = address_text::socket_address(ends.client.address);
            tracing::info!(
                %frontend,
                server = %ends.server,
                client = client.as_str(),
                duration = %crate::config::display_duration(started.elapsed()),
                bytes_to_server = up,
                bytes_to_client = down,
                end,
                "tunnel closed"
            );
            if let Some(line) = &ends.line {
                line.write(down, end, Instant::now());
            }
            drop(open);
        })
    }

    /// Why the tunnel ended, and the bytes it moved to the server and to the client.
    async fn run(self, ends: &Ends) -> (&'static str, u64, u64) {
        let Tunnel {
            on_upgrade,
            mut server,
            already,
            mut finish,
            over_h2: _,
        } = self;
        let client = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "client connection not handed over");
                return ("client_aborted", 0, 0);
            }
        };
        let mut client = TokioIo::new(client);
        let activity = Activity::new();
        let mut up = Pipe::new(Bytes::new());
        let mut down = Pipe::new(already.freeze());
        let joined = poll_fn(|cx| {
            // on_down / on_up: the server's sessions, tunnels included, are shut down.
            if finish.shut_down(cx) {
                return Poll::Ready("server_shutdown");
            }
            let to_server = up.poll(cx, &mut client, &mut server, &activity);
            let to_client = down.poll(cx, &mut server, &mut client, &activity);
            match (to_server, to_client) {
                (Poll::Ready(Err(error)), _) | (_, Poll::Ready(Err(error))) => {
                    tracing::debug!(%error, "tunnel broken");
                    Poll::Ready("error")
                }
                (Poll::Ready(Ok(())), _) => Poll::Ready("client_closed"),
                (_, Poll::Ready(Ok(()))) => Poll::Ready("server_closed"),
                _ => Poll::Pending,
            }
        });
        let limit = ends.frontend.config.timeouts.tunnel;
        let end = tokio::select! {
            end = joined => end,
            () = activity.idle_timeout(limit) => "tunnel_timeout",
        };
        // Both sides see the close: an HTTP/2 stream its end, a socket its FIN.
        let closing = async {
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
        };
        let _ = tokio::time::timeout(CLOSE_LIMIT, closing).await;
        drop(finish);
        (end, up.moved, down.moved)
    }
}

/// Counts a tunnel on its frontend (established, and open until dropped).
struct Current(Arc<FrontendStats>);

impl Current {
    fn open(stats: &Arc<FrontendStats>) -> Current {
        stats.tunnels.increment(1);
        stats.current_tunnels.fetch_add(1, Ordering::Relaxed);
        Current(Arc::clone(stats))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        self.0.current_tunnels.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One direction of a tunnel: what was read and not yet written, and how much went through.
struct Pipe {
    /// Read before the tunnel began (what a server sent after its 101), written first.
    first: Bytes,
    buffer: Box<[u8]>,
    /// Where the unwritten bytes of `buffer` start and end.
    start: usize,
    end: usize,
    /// The reading side has ended.
    ended: bool,
    /// Written bytes not yet flushed (a TLS stream holds some back until flushed).
    unflushed: bool,
    moved: u64,
}

impl Pipe {
    fn new(first: Bytes) -> Pipe {
        Pipe {
            first,
            buffer: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            ended: false,
            unflushed: false,
            moved: 0,
        }
    }

    /// Moves bytes from `from` to `to`; ready once `from` has ended and all it sent is written.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        activity: &Activity,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            while !self.first.is_empty() {
                let written = ready!(Pin::new(&mut *to).poll_write(cx, &self.first))?;
                self.wrote(written, activity)?;
                self.first.advance(written);
            }
            while self.start < self.end {
                let unwritten = &self.buffer[self.start..self.end];
                let written = ready!(Pin::new(&mut *to).poll_write(cx, unwritten))?;
                self.wrote(written, activity)?;
                self.start += written;
            }
            if self.unflushed {
                ready!(Pin::new(&mut *to).poll_flush(cx))?;
                self.unflushed = false;
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut self.buffer);
            ready!(Pin::new(&mut *from).poll_read(cx, &mut read))?;
            let filled = read.filled().len();
            (self.start, self.end) = (0, filled);
            match filled {
                0 => self.ended = true,
                _ => activity.touch(),
            }
        }
    }

    fn wrote(&mut self, written: usize, activity: &Activity) -> io::Result<()> {
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.moved += written as u64;
        self.unflushed = true;
        activity.touch();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn a_connection_holds_at_most_max_per_connection_tunnels() {
        assert!(room(true, MAX_PER_CONNECTION - 1).is_ok());
        assert!(room(false, MAX_PER_CONNECTION).is_ok(), "a plain request");
        let refused = room(true, MAX_PER_CONNECTION).expect_err("one too many");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn the_accept_value_is_rfc_6455_s_example() {
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept_for(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let made = new_key();
        let nonce = base64::engine::general_purpose::STANDARD
            .decode(made.as_bytes())
            .unwrap();
        assert_eq!(nonce.len(), 16);
        assert_ne!(made, new_key(), "a new key each time");
    }

    #[test]
    fn only_allowed_protocols_are_offered_to_the_server() {
        let allowed = ["websocket".to_owned(), "x-game/2".to_owned()];
        let offered = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::UPGRADE, HeaderValue::from_str(value).unwrap());
            }
            allowed_protocols(&headers, &allowed).map(|value| value.to_str().unwrap().to_owned())
        };
        assert_eq!(offered(&["WebSocket"]).as_deref(), Some("WebSocket"));
        assert_eq!(
            offered(&["h2c, websocket/13", "x-game/2, x-game/3"]).as_deref(),
            Some("websocket/13, x-game/2")
        );
        assert_eq!(offered(&["h2c"]), None);
        assert_eq!(offered(&[]), None);
        assert!(has_token(b"keep-alive, Upgrade", b"upgrade"));
        assert!(!has_token(b"keep-alive, upgrades", b"upgrade"));
    }

    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    #[tokio::test]
    async fn a_pipe_passes_what_came_first_then_the_stream_then_ends_with_it() {
        let (mut writer, mut from) = connected().await;
        let (mut to, mut reader) = connected().await;
        let activity = Activity::new();
        let mut pipe = Pipe::new(Bytes::from_static(b"early "));
        writer.write_all(b"and late").await.unwrap();
        writer.shutdown().await.unwrap();
        poll_fn(|cx| pipe.poll(cx, &mut from, &mut to, &activity))
            .await
            .unwrap();
        drop(to);
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"early and late");
        assert_eq!(pipe.moved, 14);
    }
}
