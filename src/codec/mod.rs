//! Wire formats, below every module that speaks them (the proxy and the health checks share
//! the PROXY protocol; VRRP and config validation share the VRRP packet's limits): pure encoders and parsers (plus the
//! thin reads that take exactly a header's bytes off a socket), below every module that uses them.

pub mod check_protocols;
pub mod http1;
pub mod proxy_protocol;
pub mod vrrp;
