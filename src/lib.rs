//! tandem: an L4/L7 reverse proxy and a VRRP engine in one process.

pub mod access_log;
pub mod address_text;
pub mod admin;
pub mod announce;
pub mod appliance;
pub mod backend;
pub mod balance;
pub mod codec;
pub mod config;
pub mod ctl;
pub mod dns;
pub mod health;
pub mod limits;
pub mod proxy;
pub mod rules;
pub mod stats;
pub mod status;
pub mod systemd;
pub mod tls;
pub mod track;
pub mod vrrp;
