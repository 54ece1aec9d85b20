//! The few messages of the database protocols that a health check exchanges, as HAProxy's
//! `redis-check`, `mysql-check` and `pgsql-check` do: what to send, and what the server's answer
//! so far means. Pure functions over bytes in memory; the health checker does the IO.

pub mod mysql;
pub mod postgres;
pub mod redis;

/// What a server's answer, as read so far, says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Not enough bytes yet to tell.
    More,
    /// The server answered as a healthy one does.
    Pass,
    /// The server answered, but not as a healthy one does: why, in words for the log.
    Fail(String),
}

/// Printable text of a server's message, for the log: at most 200 characters, control
/// characters escaped, so a hostile or broken server cannot flood or forge log lines.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(200)
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
}
