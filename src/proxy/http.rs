//! The http frontend's connections: HTTP/1.1 and HTTP/2 from clients, keep-alive, header and
//! idle timeouts, and draining; each request is an exchange (`exchange.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::activity::Activity;
use super::client::Client;
use super::drain::UntilTrue;
use super::exchange;
use super::upstream::UpstreamPool;
use super::FrontendCell;

/// The HTTP versions a connection may speak: as TLS's ALPN settled, or for a plain connection
/// whatever it starts with (HTTP/2 only with prior knowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Http1,
    Http2,
    Detect,
}

/// Serves one client connection until it closes, idles out, or stalls in a request head. Once
/// draining starts, the requests in progress are answered and the connection then closed.
/// `waited` is how long the connection took to get ready for its first request head.
#[allow(clippy::too_many_arguments)] // one connection's whole context, passed once
pub async fn serve<I>(
    io: I,
    activity: Arc<Activity>,
    client: Client,
    versions: Versions,
    frontend: FrontendCell,
    pool: Arc<UpstreamPool>,
    draining: UntilTrue,
    waited: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeouts = frontend.load().config.timeouts;
    let client = Arc::new(client);
    // Kept to run a tunnel after hyper has handed the connection over.
    let connection = Arc::clone(&client);
    let service = service_fn(move |request| {
        let answered = exchange::handle(
            request,
            Arc::clone(&client),
            frontend.load_full(),
            Arc::clone(&pool),
        );
        answered.map(Ok::<_, Infallible>)
    });
    let io = TokioIo::new(io);
    let header_timeout = header_timeout(timeouts.request_header, waited);
    let idle = Idle {
        activity: &activity,
        limit: timeouts.client_idle,
        client: &connection,
    };
    // A connection whose version is settled gets hyper's server for it directly: the auto
    // server's detection and buffering are only for a plain connection that may be either.
    match versions {
        Versions::Http1 => {
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .writev(false)
                .serve_connection(io, service)
                .with_upgrades();
            let served = std::pin::pin!(served);
            drive(served, |c| c.graceful_shutdown(), idle, draining).await;
        }
        // Boxed, these two: inline, their connections would size every connection's future,
        // copied in whole as each is accepted, at nearly twice what HTTP/1 needs.
        Versions::Http2 => {
            let mut served = Box::pin(
                http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .enable_connect_protocol()
                    .serve_connection(io, service),
            );
            drive(served.as_mut(), |c| c.graceful_shutdown(), idle, draining).await;
        }
        Versions::Detect => {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .writev(false);
            builder
                .http2()
                .timer(TokioTimer::new())
                .enable_connect_protocol();
            let mut served = Box::pin(builder.serve_connection_with_upgrades(io, service));
            drive(served.as_mut(), |c| c.graceful_shutdown(), idle, draining).await;
        }
    }
    // An HTTP/1.1 connection that switched protocols: hyper has let go of it.
    if connection.has_tunnels() {
        if let Some(tunnel) = connection.take_tunnel() {
            tunnel.await;
        }
    }
}

/// When a connection is idle: no byte either way for `limit`, and no tunnel open on it (an
/// HTTP/2 connection's tunnels have `timeouts.tunnel` of their own).
struct Idle<'a> {
    activity: &'a Activity,
    limit: Duration,
    client: &'a Client,
}

/// Runs a served connection until it ends or goes idle; once draining starts, asks it to finish
/// the requests in progress and close.
async fn drive<C, E>(
    mut connection: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    watch: Idle<'_>,
    mut draining: UntilTrue,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let peer = watch.client.address;
    let mut idle = std::pin::pin!(watch.activity.idle_timeout(watch.limit));
    let mut closing = false;
    loop {
        // Biased: the connection is what wakes the task nearly every time, so it goes first,
        // and no random start is drawn per poll.
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(client = %peer, %error, "client connection ended");
                }
                return;
            }
            () = idle.as_mut() => {
                if watch.client.has_tunnels() {
                    idle.set(watch.activity.idle_timeout(watch.limit));
                    continue;
                }
                tracing::debug!(client = %peer, "client idle timeout");
                return;
            }
            () = &mut draining, if !closing => {
                graceful_shutdown(connection.as_mut());
                closing = true;
            }
        }
    }
}

/// hyper's head timer for a connection whose first byte took `waited` to come: what is left of
/// `request_header` for the first head, so a slow client doesn't get it twice. hyper has one
/// setting per connection, so later heads get the same; it is kept to at least half the limit
/// so a client that was slow to start still has time for its next requests.
fn header_timeout(request_header: Duration, waited: Duration) -> Duration {
    request_header
        .saturating_sub(waited)
        .max(request_header / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_first_byte_is_taken_off_the_first_head_but_no_more_than_half() {
        let limit = Duration::from_secs(10);
        assert_eq!(header_timeout(limit, Duration::ZERO), limit);
        assert_eq!(
            header_timeout(limit, Duration::from_secs(3)),
            Duration::from_secs(7)
        );
        assert_eq!(
            header_timeout(limit, Duration::from_secs(9)),
            Duration::from_secs(5)
        );
    }
}
