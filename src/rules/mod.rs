//! The rule layer of http frontends.

pub mod rate_limit;
