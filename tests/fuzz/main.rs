//! Fuzz targets for the parsers that read what other machines send or what operators write: the
//! VRRP codec, the PROXY protocol header, the HTTP/1 response of a server, the answers of
//! databases to health checks, and the config file.
//!
//! Each target holds its parser to properties (a round trip gives back what went in, a parser
//! never takes more bytes than it was given, ...), not only to "does not panic". Under
//! `cargo test` bolero feeds each one a bounded number of random inputs ([`ITERATIONS`]) and
//! replays any corpus or crash files it finds under `tests/fuzz/__fuzz__/`; README's "Fuzzing"
//! says how to run them for longer. What a run found stays here as a named regression test.

mod check_protocols;
mod config;
mod http1_response;
mod proxy_protocol;
mod vrrp_packet;

/// Random inputs per target in an ordinary `cargo test`: enough to catch the easy slips on
/// every run while keeping the whole fuzz binary to seconds. `BOLERO_RANDOM_ITERATIONS`
/// overrides it, for a longer run.
const ITERATIONS: usize = 4000;
