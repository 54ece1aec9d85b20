//! Wire formats shared by the proxy and the health checks: pure encoders and parsers (plus the
//! thin reads that take exactly a header's bytes off a socket), below every module that uses them.

pub mod proxy_protocol;
