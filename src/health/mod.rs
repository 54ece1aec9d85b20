//! Active health checks: one task per server, whose results feed the server's rise/fall
//! counter ([`crate::backend::rise_fall`]).

pub mod checker;
mod conversation;
