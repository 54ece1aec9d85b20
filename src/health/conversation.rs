//! The checks that talk over the connection itself: a tcp check's send/expect steps and the
//! database protocols (Redis, MySQL, PostgreSQL). What to send and what an answer means come
//! from [`crate::codec::check_protocols`] and the config; this is the reading and writing.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::check_protocols::{mysql, postgres, redis, Reading};
use crate::config::{BytesMatch, CheckStep, CHECK_BODY_LIMIT};

/// Runs a tcp check's steps in order; an expect looks at what arrived after the previous
/// match.
pub async fn steps<S>(stream: &mut S, steps: &[CheckStep]) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut read = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        match step {
            CheckStep::Send(bytes) => send(stream, bytes, index).await?,
            CheckStep::Expect(pattern) => loop {
                if let Some(end) = pattern.find_end(&read) {
                    read.drain(..end);
                    break;
                }
                if read.len() >= CHECK_BODY_LIMIT {
                    return Err(format!(
                        "step {index}: {} not in the first {CHECK_BODY_LIMIT} bytes",
                        shown(pattern)
                    ));
                }
                if !more(stream, &mut read).await? {
                    return Err(format!(
                        "step {index}: closed before {} arrived",
                        shown(pattern)
                    ));
                }
            },
        }
    }
    Ok(())
}

pub async fn redis<S>(stream: &mut S) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    write(stream, redis::PING).await?;
    answer(stream, redis::pong).await.map(drop)
}

/// The greeting, and with a `user` the login and COM_QUIT.
pub async fn mysql<S>(stream: &mut S, user: Option<&str>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    answer(stream, mysql::greeting).await?;
    let Some(user) = user else { return Ok(()) };
    write(stream, &mysql::handshake_response(user)).await?;
    answer(stream, mysql::authentication).await?;
    // The verdict is in; a server that leaves first counts no aborted connection either way.
    let _ = stream.write_all(mysql::QUIT).await;
    Ok(())
}

pub async fn postgres<S>(stream: &mut S, user: &str, database: Option<&str>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    write(stream, &postgres::startup(user, database)).await?;
    let read = answer(stream, postgres::answer).await?;
    if postgres::let_in(&read) {
        let _ = stream.write_all(postgres::TERMINATE).await;
    }
    Ok(())
}

/// Reads until `judge` tells what the answer means; a passing answer's bytes are returned.
async fn answer<S>(stream: &mut S, judge: fn(&[u8]) -> Reading) -> Result<Vec<u8>, String>
where
    S: AsyncRead + Unpin,
{
    let mut read = Vec::new();
    loop {
        match judge(&read) {
            Reading::Pass => return Ok(read),
            Reading::Fail(why) => return Err(why),
            // The codecs bound what they wait for; this bounds a codec that would not.
            Reading::More if read.len() >= CHECK_BODY_LIMIT => {
                return Err(format!("no answer in {CHECK_BODY_LIMIT} bytes"))
            }
            Reading::More => {
                if !more(stream, &mut read).await? {
                    return Err(if read.is_empty() {
                        "closed without answering".into()
                    } else {
                        "closed in the middle of an answer".into()
                    });
                }
            }
        }
    }
}

/// Reads what has arrived onto `read`; false when the server has closed.
async fn more<S: AsyncRead + Unpin>(stream: &mut S, read: &mut Vec<u8>) -> Result<bool, String> {
    read.reserve(1024);
    match stream.read_buf(read).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(error) => Err(format!("read: {error}")),
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), String> {
    stream
        .write_all(bytes)
        .await
        .map_err(|error| format!("write: {error}"))
}

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    step: usize,
) -> Result<(), String> {
    write(stream, bytes)
        .await
        .map_err(|error| format!("step {step}: {error}"))
}

/// A pattern as the log shows it.
pub fn shown(pattern: &BytesMatch) -> String {
    match pattern {
        BytesMatch::Contains(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        BytesMatch::Regex(regex) => format!("regex {:?}", regex.as_str()),
    }
}
