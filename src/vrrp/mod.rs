//! VRRP: the sans-IO core of the engine that holds the virtual IPs.
//!
//! - [`packet`]: advertisements on the wire (RFC 3768 v2, RFC 9568 v3), decode and encode.
//! - [`machine`]: the protocol state machine, a pure function of (state, event, time) that returns
//!   the actions the IO shell performs.
//!
//! Neither part opens a socket or reads a clock: the shell hands in what it received and the time,
//! and carries out what comes back, so every protocol rule is tested without a network.

mod checksum;
pub mod machine;
pub mod packet;
