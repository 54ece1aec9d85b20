//! VRRP: the engine that holds the virtual IPs.
//!
//! - [`crate::codec::vrrp`]: advertisements on the wire (RFC 3768 v2, RFC 9568 v3), decode and
//!   encode.
//! - [`machine`]: the protocol state machine, a pure function of (state, event, time) that returns
//!   the actions the IO shell performs.
//! - [`net`]: the thin IO shell's primitives: raw VRRP sockets, VIPs over netlink, gratuitous
//!   ARP and unsolicited neighbour advertisements.
//!
//! The core opens no socket and reads no clock: the shell hands in what it received and the time,
//! and carries out what comes back, so every protocol rule is tested without a network.

pub mod engine;
mod instance;
pub mod machine;
pub mod net;
mod notify;
pub mod status;
mod sync_group;
mod tally;
