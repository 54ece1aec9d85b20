//! tandem: an L4/L7 reverse proxy and a VRRP engine in one process.

pub mod balance;
pub mod config;
pub mod vrrp;
