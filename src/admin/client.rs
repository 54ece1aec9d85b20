//! The client side of the admin endpoint, for `tandem status` and `tandem ctl`: one request
//! over TCP or the unix socket, within a time limit.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// How long a call waits for the connection and the answer, unless it says otherwise.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a running tandem's admin endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `admin.listen`.
    Tcp(SocketAddr),
    /// `admin.socket`.
    Socket(PathBuf),
}

impl Target {
    /// The target the command-line flags `--admin ADDRESS` and `--socket PATH` name (clap keeps
    /// them exclusive), if either is given.
    pub fn from_flags(admin: Option<SocketAddr>, socket: Option<PathBuf>) -> Option<Target> {
        match (admin, socket) {
            (Some(address), _) => Some(Target::Tcp(address)),
            (None, path) => path.map(Target::Socket),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(address) => write!(f, "{address}"),
            Target::Socket(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Sends one request with `body` (and the bearer `token`, if any) and returns the answer's
/// status and body, or fails after `wait`.
pub async fn call(
    target: &Target,
    (method, path, body): (Method, &str, &str),
    token: Option<&str>,
    wait: Duration,
) -> anyhow::Result<(StatusCode, String)> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "tandem");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body.to_owned())))?;
    let connecting = async {
        anyhow::Ok(match target {
            Target::Tcp(address) => exchange(TcpStream::connect(address).await?, request).await?,
            Target::Socket(path) => exchange(UnixStream::connect(path).await?, request).await?,
        })
    };
    let answer = tokio::time::timeout(wait, connecting)
        .await
        .map_err(|_| anyhow!("no answer from {target} within {}s", wait.as_secs()))?;
    answer.with_context(|| {
        let key = match target {
            Target::Tcp(_) => "listen",
            Target::Socket(_) => "socket",
        };
        format!(
            "talking to the admin endpoint {target}: is tandem running with \
             `admin: {{ {key}: {target} }}`? (admin changes take a restart)"
        )
    })
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
